package tui

import (
	"fmt"
	"testing"

	"github.com/concord-sync/concord/reconcile"
)

// bigPlan returns a plan of n reviewable items in path order, one in
// fifty a conflict.
func bigPlan(n int) *reconcile.Plan {
	p := &reconcile.Plan{Items: make([]reconcile.Item, n)}
	for i := range p.Items {
		a := reconcile.OneToTwo
		switch {
		case i%50 == 0:
			a = reconcile.Conflict
		case i%3 == 0:
			a = reconcile.TwoToOne
		}
		p.Items[i] = reconcile.Item{
			Path: fmt.Sprintf("dir%03d/sub%02d/file%06d.txt", i/1000, i/100%10, i),
			Base: file("base", 0), One: file(fmt.Sprint("one", i), 1), Two: file(fmt.Sprint("two", i), 2),
			Action: a, Default: a,
		}
	}
	return p
}

// BenchmarkRender100k measures the review of a 100,000-item plan: the
// time to the first screen (building the sorted index included), one
// scroll step (key and redraw), and one filter keystroke.
func BenchmarkRender100k(b *testing.B) {
	plan := bigPlan(100_000)
	st := testStyles()
	b.Run("first_screen", func(b *testing.B) {
		for b.Loop() {
			r := newReview(st, plan, "/a", "/b", nil)
			r.SetSize(80, 24)
			_ = r.View()
		}
	})
	b.Run("scroll_step", func(b *testing.B) {
		r := newReview(st, plan, "/a", "/b", nil)
		r.SetSize(80, 24)
		down, up := keyMsg("<down>"), keyMsg("<up>")
		i := 0
		for b.Loop() {
			k := down
			if i/50_000%2 == 1 {
				k = up
			}
			r.Update(k)
			_ = r.View()
			i++
		}
	})
	b.Run("page_step", func(b *testing.B) {
		r := newReview(st, plan, "/a", "/b", nil)
		r.SetSize(80, 24)
		for b.Loop() {
			r.Update(keyMsg("<pgdown>"))
			_ = r.View()
		}
	})
	b.Run("filter_keystroke", func(b *testing.B) {
		r := newReview(st, plan, "/a", "/b", nil)
		r.SetSize(80, 24)
		texts := []string{"file01", "file012"}
		i := 0
		for b.Loop() {
			r.applyFilter(texts[i%2])
			_ = r.View()
			i++
		}
	})
}

// TestLargePlanStaysOnScreen checks the 100,000-item review at its ends.
func TestLargePlanStaysOnScreen(t *testing.T) {
	r := newReview(testStyles(), bigPlan(100_000), "/a", "/b", nil)
	r.SetSize(80, 24)
	for _, k := range []string{"<end>", "<pgdown>", "<home>", "<pgup>", "<down>"} {
		r.Update(keyMsg(k))
		checkScreen(t, r.View(), 80, 24)
	}
	if i, _ := r.selected(); r.plan.Items[i].Action != reconcile.Conflict {
		t.Error("conflicts do not come first")
	}
	r.Update(keyMsg("<end>"))
	if i, _ := r.selected(); i != len(r.plan.Items)-1 || r.plan.Items[i].Action == reconcile.Conflict {
		t.Errorf("the last row is item %d, want the last non-conflict %d", i, len(r.plan.Items)-1)
	}
}

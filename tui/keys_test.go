package tui

import (
	"strings"
	"testing"

	"github.com/concord-sync/concord/reconcile"
)

// Rows of the fixture, in review order: conflicts first, then path order.
//
//	0 data.bin (conflict)      5 newdir (2to1)
//	1 docs/readme.txt (conf.)  6 old.txt (1to2)
//	2 bin/tool (2to1)          7 src/main.go (1to2)
//	3 guarded.txt (skip)       8 src/util.go (2to1)
//	4 link (1to2)              9 weird\nname... (1to2)

func TestKeyHandling(t *testing.T) {
	const (
		c  = reconcile.Conflict
		l2 = reconcile.OneToTwo
		r1 = reconcile.TwoToOne
		sk = reconcile.Skip
	)
	for _, tc := range []struct {
		name string
		keys []string
		text string // typed after keys, then "more" keys follow
		more []string
		want map[string]reconcile.Action
		// status is a text the status line must show afterwards.
		status string
	}{
		{name: "> on the first conflict, then < on the next", keys: []string{">", "<"},
			want: map[string]reconcile.Action{"data.bin": l2, "docs/readme.txt": r1}},
		{name: "Unison's . and , keys", keys: []string{".", ","},
			want: map[string]reconcile.Action{"data.bin": l2, "docs/readme.txt": r1}},
		{name: "moving with j and k", keys: []string{"j", "j", "k", "s"},
			want: map[string]reconcile.Action{"data.bin": c, "docs/readme.txt": sk, "bin/tool": r1}},
		{name: "end then skip", keys: []string{"<end>", "s"},
			want: map[string]reconcile.Action{"weird\nname\x1b[31m.txt": sk}},
		{name: "pgdown goes to the last row of a short list", keys: []string{"<pgdown>", "s"},
			want: map[string]reconcile.Action{"weird\nname\x1b[31m.txt": sk, "data.bin": c}},
		{name: "home after moving", keys: []string{"<down>", "<down>", "<home>", "<"},
			want: map[string]reconcile.Action{"data.bin": r1, "bin/tool": r1}},
		{name: "r reverts the selected item", keys: []string{">", "<up>", "r"},
			want: map[string]reconcile.Action{"data.bin": c}},
		{name: "f also reverts", keys: []string{"<", "<up>", "f"},
			want: map[string]reconcile.Action{"data.bin": c}},
		{name: "a propagation can be turned around", keys: []string{"<down>", "<down>", ">"},
			want: map[string]reconcile.Action{"bin/tool": l2}},
		{name: "a deletion can be propagated back as a re-creation", keys: []string{"<end>", "<up>", "<up>", "<up>", "<"},
			want: map[string]reconcile.Action{"old.txt": r1}},
		{name: "a guard refuses a deletion", keys: []string{"<down>", "<down>", "<down>", "<"},
			want:   map[string]reconcile.Action{"guarded.txt": sk},
			status: "--no-deletion forbids deleting guarded.txt on side 1"},
		{name: "a guarded item may go the other way", keys: []string{"<down>", "<down>", "<down>", ">"},
			want: map[string]reconcile.Action{"guarded.txt": l2}},
		{name: "C > sends every conflict from side 1", keys: []string{"<end>", "C", ">"},
			want:   map[string]reconcile.Action{"data.bin": l2, "docs/readme.txt": l2, "bin/tool": r1, "src/util.go": r1},
			status: "every conflict set to ---->: 2 changed"},
		{name: "C then esc changes nothing", keys: []string{"C", "<esc>", "<"},
			want: map[string]reconcile.Action{"data.bin": r1, "docs/readme.txt": c}},
		{name: "C < then C r", keys: []string{"C", "<", "C", "r"},
			want: map[string]reconcile.Action{"data.bin": c, "docs/readme.txt": c}},
		{name: "D applies to the selected item's directory", keys: []string{"<end>", "<up>", "D", "s"},
			want:   map[string]reconcile.Action{"src/main.go": sk, "src/util.go": sk, "bin/tool": r1, "data.bin": c},
			status: "everything under src set to -----: 2 changed"},
		{name: "D on a directory covers it", keys: []string{"<down>", "<down>", "<down>", "<down>", "<down>", "D", ">"},
			want:   map[string]reconcile.Action{"newdir": l2, "bin/tool": r1},
			status: "everything under newdir set to ---->: 1 changed"},
		{name: "F after a filter", keys: []string{"/"}, text: "src", more: []string{"<enter>", "F", "s"},
			want:   map[string]reconcile.Action{"src/main.go": sk, "src/util.go": sk, "bin/tool": r1, "data.bin": c},
			status: `every item matching "src" set to -----: 2 changed`},
		{name: "F without a filter applies to everything, guards refuse", keys: []string{"F", "<"},
			want: map[string]reconcile.Action{"data.bin": r1, "docs/readme.txt": r1, "link": r1, "old.txt": r1,
				"guarded.txt": sk, "src/main.go": l2, "weird\nname\x1b[31m.txt": l2},
			status: "every item set to <----: 4 changed, 3 refused"},
		{name: "R reverts everything", keys: []string{"C", ">", "<end>", "s", "R"},
			want: map[string]reconcile.Action{"data.bin": c, "docs/readme.txt": c, "weird\nname\x1b[31m.txt": l2}},
		{name: "an unknown key after C cancels", keys: []string{"C", "x"},
			want:   map[string]reconcile.Action{"data.bin": c},
			status: "bulk choice cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
			h.keys(tc.keys...)
			h.typeText(tc.text)
			h.keys(tc.more...)
			got := h.actions()
			for path, want := range tc.want {
				if got[path] != want {
					t.Errorf("%q: action %v, want %v", path, got[path], want)
				}
			}
			v := h.view()
			checkScreen(t, v, 80, 24)
			if tc.status != "" && !strings.Contains(v, tc.status) {
				t.Errorf("screen lacks %q:\n%s", tc.status, v)
			}
			// The counts kept key by key agree with a fresh count.
			h.inspect(func(m *model) {
				var counts [5]int
				var bytes int64
				changed := 0
				for _, i := range m.review.rows {
					it := &m.review.plan.Items[i]
					counts[it.Action]++
					bytes += moveBytes(it, it.Action)
					if it.Action != it.Default {
						changed++
					}
				}
				if counts != m.review.counts || bytes != m.review.bytes || changed != m.review.changed {
					t.Errorf("kept counts %v/%d/%d, recounted %v/%d/%d", m.review.counts, m.review.bytes,
						m.review.changed, counts, bytes, changed)
				}
			})
		})
	}
}

func TestFilterCaseAndSelection(t *testing.T) {
	h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
	h.keys("<end>", "/")
	h.typeText("NAME")
	h.inspect(func(m *model) {
		if len(m.review.view) != 0 {
			t.Errorf("upper-case filter is case-sensitive; %d rows match NAME", len(m.review.view))
		}
	})
	for range 4 {
		h.keys("<backspace>")
	}
	h.typeText("name")
	h.inspect(func(m *model) {
		if len(m.review.view) != 1 {
			t.Fatalf("filter name shows %d rows, want 1", len(m.review.view))
		}
		if i, _ := m.review.selected(); m.review.plan.Items[i].Path != "weird\nname\x1b[31m.txt" {
			t.Errorf("the selected item did not stay selected")
		}
	})
	h.keys("<esc>")
	h.inspect(func(m *model) {
		if i, _ := m.review.selected(); m.review.plan.Items[i].Path != "weird\nname\x1b[31m.txt" {
			t.Errorf("clearing the filter lost the selection")
		}
	})
}

func TestGoWithUnresolvedConflicts(t *testing.T) {
	runner := newFakeRunner(newFixture())
	h := newHarness(t, runner, 80, 24)
	h.keys("g")
	h.waitFor("the summary", func(m *model) bool { return m.phase == phaseSummary })
	if runner.seen[1] != reconcile.Conflict || runner.seen[2] != reconcile.Conflict {
		t.Errorf("unresolved conflicts reached Execute as %v, %v", runner.seen[1], runner.seen[2])
	}
}

func TestEmptyPlan(t *testing.T) {
	f := newFixture()
	f.plan.Items = f.plan.Items[7:8] // same.txt only: a Record
	h := newHarness(t, newFakeRunner(f), 80, 24)
	h.keys("<down>", ">", "d", "D", "<")
	v := h.view()
	checkScreen(t, v, 80, 24)
	if !strings.Contains(v, "Nothing to propagate") {
		t.Errorf("empty review does not say so:\n%s", v)
	}
}

package reconcile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

func TestCounts(t *testing.T) {
	plan := Reconcile([]Path{
		at("a", f0, f1, f0),            // 1→2
		at("b", f0, f0, f1),            // 2→1
		at("c", f0, nil, f1),           // conflict
		at("d", f0, nil, nil),          // record
		at("e", nil, f1, nil),          // 1→2, skipped by --no-creation
		at("f", f0, ft, f0),            // 1→2, time only
		at("g", f0, f0, f0),            // nothing
		at("h", f0, f1, file(2, 0, 0)), // conflict
	}, Options{NoCreation: [3]bool{2: true}})
	got := plan.Counts()
	want := Counts{OneToTwo: 2, TwoToOne: 1, Conflicts: 2, Skipped: 1, Recorded: 1}
	if got != want {
		t.Errorf("Counts() = %+v, want %+v", got, want)
	}
	if n := got.Propagations(); n != 3 {
		t.Errorf("Propagations() = %d, want 3", n)
	}
	// Counts follows the current action, not the default.
	plan.Items[2].Action = TwoToOne
	if got := plan.Counts(); got.Conflicts != 1 || got.TwoToOne != 2 {
		t.Errorf("after resolving a conflict: Counts() = %+v", got)
	}
}

func TestDeletesAndRemovesDir(t *testing.T) {
	dirSub := []Path{
		at("d/a", f0, nil, f0),    // deleted with d
		at("d/b", f0, nil, nil),   // already gone on both sides
		at("d/c", nil, nil, d0),   // created on side 2 below d
		at("d/c/x", nil, nil, l0), // and inside it
	}
	tests := []struct {
		name       string
		it         Item
		deletes    int
		removesDir bool
	}{
		{"file deleted", Item{Path: "a", Base: f0, Two: f0, Action: OneToTwo}, 1, false},
		{"file deleted on side 1", Item{Path: "a", Base: f0, One: f0, Action: TwoToOne}, 1, false},
		{"file created", Item{Path: "a", One: f1, Action: OneToTwo}, 0, false},
		{"file modified", Item{Path: "a", Base: f0, One: f1, Two: f0, Action: OneToTwo}, 0, false},
		{"file replaced by a symlink", Item{Path: "a", Base: f0, One: l0, Two: f0, Action: OneToTwo}, 0, false},
		{"file replaced by a directory", Item{Path: "a", Base: f0, One: d0, Two: f0, Action: OneToTwo, Sub: []Path{at("a/x", nil, f1, nil)}}, 0, false},
		{"directory deleted with its contents", Item{Path: "d", Base: d0, Two: d0, Action: OneToTwo, Sub: dirSub}, 4, true},
		{"directory replaced by a file", Item{Path: "d", Base: d0, One: f1, Two: d0, Action: OneToTwo, Sub: dirSub}, 4, true},
		{"directory created on side 1", Item{Path: "d", One: d0, Action: OneToTwo, Sub: []Path{at("d/x", nil, f1, nil)}}, 0, false},
		{"directory deletion as a conflict", Item{Path: "d", Base: d0, Two: d0, Action: Conflict, Sub: dirSub}, 0, false},
		{"directory deletion skipped", Item{Path: "d", Base: d0, Two: d0, Action: Skip, Sub: dirSub}, 0, false},
		{"deleted on both sides", Item{Path: "d", Base: d0, Action: Record}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Deletes(&tc.it); got != tc.deletes {
				t.Errorf("Deletes() = %d, want %d", got, tc.deletes)
			}
			if got := RemovesDir(&tc.it); got != tc.removesDir {
				t.Errorf("RemovesDir() = %v, want %v", got, tc.removesDir)
			}
		})
	}
	plan := &Plan{Items: []Item{tests[0].it, tests[6].it, tests[9].it}}
	if got := plan.Deletes(); got != 5 {
		t.Errorf("Plan.Deletes() = %d, want 5", got)
	}
}

func TestGuarded(t *testing.T) {
	conflict := Item{Path: "a", Base: f0, One: f1, Two: nil, Action: Conflict}
	newDir := Item{Path: "n", One: d0, Two: f0, Base: f0, Sub: []Path{at("n/x", nil, f1, nil)}}
	all := [3]bool{1: true, 2: true}
	tests := []struct {
		name string
		it   Item
		a    Action
		opts Options
		want string
	}{
		{"keeping the modification creates on side 2", conflict, OneToTwo, Options{NoCreation: [3]bool{2: true}}, "--no-creation on side 2"},
		{"keeping the modification deletes and overwrites nothing", conflict, OneToTwo, Options{NoDeletion: all, NoUpdate: all}, ""},
		{"taking the deletion", conflict, TwoToOne, Options{NoDeletion: [3]bool{1: true}}, "--no-deletion on side 1"},
		{"taking the deletion, other side guarded", conflict, TwoToOne, Options{NoDeletion: [3]bool{2: true}}, ""},
		{"a conflict is always allowed", conflict, Conflict, Options{NoDeletion: all, NoUpdate: all, NoCreation: all}, ""},
		{"a skip is always allowed", conflict, Skip, Options{NoDeletion: all, NoUpdate: all, NoCreation: all}, ""},
		{"replacing a file with a directory updates", newDir, OneToTwo, Options{NoUpdate: [3]bool{2: true}}, "--no-update on side 2"},
		{"replacing a file with a directory creates below", newDir, OneToTwo, Options{NoCreation: [3]bool{2: true}}, "--no-creation on side 2"},
		{"deletion is named before update and creation", newDir, TwoToOne, Options{NoDeletion: all, NoUpdate: all, NoCreation: all}, "--no-deletion on side 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Guarded(&tc.it, tc.a, tc.opts); got != tc.want {
				t.Errorf("Guarded(%v) = %q, want %q", tc.a, got, tc.want)
			}
		})
	}
}

func ExampleReconcile() {
	f := func(h byte, mtime int64) *state.Entry {
		return &state.Entry{Kind: state.File, Mode: 0o644, Size: 1, MTime: mtime, Hash: [32]byte{h}}
	}
	d := &state.Entry{Kind: state.Dir, Mode: 0o755}
	plan := Reconcile([]Path{
		{Path: "docs", Base: nil, One: d, Two: nil},
		{Path: "docs/a.txt", Base: nil, One: f(1, 10), Two: nil},
		{Path: "notes.txt", Base: f(1, 10), One: f(2, 20), Two: f(3, 30)},
		{Path: "todo\n.txt", Base: f(1, 10), One: f(1, 10), Two: f(1, 40)},
	}, Options{})
	for _, it := range plan.Items {
		line := fmt.Sprintf("%-12s %s %s", state.Display(it.Path), it.Action.Arrow(), it.Reason)
		fmt.Println(strings.TrimSpace(line))
		for _, s := range it.Sub {
			fmt.Printf("  %s\n", state.Display(s.Path))
		}
	}
	fmt.Printf("%+v\n", plan.Counts())
	// Output:
	// docs         ---->
	//   docs/a.txt
	// notes.txt    <-?-> both sides modified
	// todo\n.txt   <----
	// {OneToTwo:1 TwoToOne:1 Conflicts:1 Skipped:0 Recorded:0}
}

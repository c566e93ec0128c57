package engine

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
)

func changes(paths ...string) []remote.Change {
	out := make([]remote.Change, len(paths))
	for i, p := range paths {
		out[i].Path = p
	}
	return out
}

// merged runs mergeChanges and checks that each path it returns comes with
// the changes of exactly the sides that list it; it returns the paths.
func merged(t *testing.T, a, b []remote.Change) []string {
	t.Helper()
	pcs := mergeChanges(a, b)
	if pcs == nil {
		return nil
	}
	in := func(l []remote.Change, p string) bool {
		return slices.ContainsFunc(l, func(c remote.Change) bool { return c.Path == p })
	}
	var out []string
	for _, pc := range pcs {
		for side, l := range map[int][]remote.Change{1: a, 2: b} {
			if c := pc.c[side]; (c != nil) != in(l, pc.path) || (c != nil && c.Path != pc.path) {
				t.Fatalf("%s: side %d's change is %v", pc.path, side, c)
			}
		}
		out = append(out, pc.path)
	}
	return out
}

func TestMergeChanges(t *testing.T) {
	tests := []struct {
		name string
		a, b []remote.Change
		want []string // nil: the lists are refused
	}{
		{"both empty", nil, nil, nil},
		{"one side", changes("a", "a/b", "c"), nil, []string{"a", "a/b", "c"}},
		{"other side", nil, changes("x", "y"), []string{"x", "y"}},
		{"interleaved with shared paths", changes("a", "c", "d/e"), changes("b", "c", "d", "d/e", "f"),
			[]string{"a", "b", "c", "d", "d/e", "f"}},
		{"a directory's contents before a longer sibling", changes("d", "d.txt"), changes("d/x"),
			[]string{"d", "d/x", "d.txt"}},
		{"unsorted side", changes("b", "a"), changes("c"), nil},
		{"unsorted in byte order only", changes("d.txt", "d/x"), nil, nil},
		{"repeated path", changes("a", "a"), nil, nil},
		{"repeated path after a merge", changes("a", "b"), changes("b", "b"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := merged(t, tt.a, tt.b); !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
				t.Errorf("mergeChanges gives %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMergeChangesAsSet checks the merge against the set and sort it
// replaces, on random sorted lists that share some paths.
func TestMergeChangesAsSet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"a", "a.b", "a-b", "b", "d", "d.txt", "z"}
	for round := range 200 {
		set := map[string]bool{}
		var lists [2][]string
		for i := range lists {
			seen := map[string]bool{}
			for range r.IntN(30) {
				p := names[r.IntN(len(names))]
				for range r.IntN(3) {
					p += "/" + names[r.IntN(len(names))]
				}
				if !seen[p] {
					seen[p] = true
					set[p] = true
					lists[i] = append(lists[i], p)
				}
			}
			slices.SortFunc(lists[i], state.ComparePaths)
		}
		var want []string
		for p := range set {
			want = append(want, p)
		}
		slices.SortFunc(want, state.ComparePaths)
		got := merged(t, changes(lists[0]...), changes(lists[1]...))
		if len(want) == 0 {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: mergeChanges(%q, %q) gives %q, want %q", round, lists[0], lists[1], got, want)
		}
	}
}

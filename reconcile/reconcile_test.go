package reconcile

import (
	"slices"
	"strings"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

// file returns a regular file whose contents are named by h (equal h, equal
// contents), with permission bits mode and modification time mtime.
func file(h byte, mode uint32, mtime int64) *state.Entry {
	return &state.Entry{Kind: state.File, Mode: mode, Size: int64(h), MTime: mtime, Hash: [32]byte{h}}
}

// dir returns a directory with permission bits mode.
func dir(mode uint32) *state.Entry {
	return &state.Entry{Kind: state.Dir, Mode: mode}
}

// link returns a symbolic link to target.
func link(target string) *state.Entry {
	return &state.Entry{Kind: state.Symlink, Mode: 0o777, Target: target, Hash: [32]byte{byte(len(target))}}
}

// at builds one input path: its ancestor and both sides (nil = absent).
func at(path string, base, one, two *state.Entry) Path {
	return Path{Path: path, Base: base, One: one, Two: two}
}

// want is the expected shape of one plan item.
type want struct {
	path     string
	action   Action
	reason   string
	resolved string
	timeOnly bool
	sub      []string
}

// Entries shared by the cases. An ancestor file f0 is edited to f1 on one
// side and to f2 on the other; fp changes only its permissions, ft and ft2
// only their times.
var (
	f0  = file(1, 0o644, 100)
	f1  = file(2, 0o644, 200)
	f2  = file(3, 0o644, 300)
	fp  = file(1, 0o600, 100)
	fp2 = file(1, 0o640, 100)
	ft  = file(1, 0o644, 150)
	ft2 = file(1, 0o644, 180)
	d0  = dir(0o755)
	dp  = dir(0o700)
	l0  = link("target")
	l1  = link("elsewhere")
	l2  = link("third place")
)

var reconcileTests = []struct {
	name string
	opts Options
	in   []Path
	want []want
}{
	// The SPEC table, row by row.
	{
		name: "unchanged on both sides",
		in:   []Path{at("a", f0, f0, f0)},
	},
	{
		name: "modified on side 1",
		in:   []Path{at("a", f0, f1, f0)},
		want: []want{{path: "a", action: OneToTwo}},
	},
	{
		name: "modified on side 2",
		in:   []Path{at("a", f0, f0, f1)},
		want: []want{{path: "a", action: TwoToOne}},
	},
	{
		name: "deleted on side 1",
		in:   []Path{at("a", f0, nil, f0)},
		want: []want{{path: "a", action: OneToTwo}},
	},
	{
		name: "deleted on side 2",
		in:   []Path{at("a", f0, f0, nil)},
		want: []want{{path: "a", action: TwoToOne}},
	},
	{
		name: "kind changed on side 1 (file to symlink)",
		in:   []Path{at("a", f0, l0, f0)},
		want: []want{{path: "a", action: OneToTwo}},
	},
	{
		name: "symlink retargeted on side 2",
		in:   []Path{at("l", l0, l0, l1)},
		want: []want{{path: "l", action: TwoToOne}},
	},
	{
		name: "both sides modified to the same contents",
		in:   []Path{at("a", f0, f1, f1)},
		want: []want{{path: "a", action: Record}},
	},
	{
		name: "both sides modified to the same contents, newer time wins",
		in:   []Path{at("a", f0, file(2, 0o644, 250), f1)},
		want: []want{{path: "a", action: OneToTwo, timeOnly: true}},
	},
	{
		name: "both sides modified differently",
		in:   []Path{at("a", f0, f1, f2)},
		want: []want{{path: "a", action: Conflict, reason: "both sides modified"}},
	},
	{
		name: "both sides retargeted a symlink differently",
		in:   []Path{at("l", l0, l1, l2)},
		want: []want{{path: "l", action: Conflict, reason: "both sides modified"}},
	},
	{
		name: "modified on side 1, deleted on side 2",
		in:   []Path{at("a", f0, f1, nil)},
		want: []want{{path: "a", action: Conflict, reason: "modified on side 1, deleted on side 2"}},
	},
	{
		name: "deleted on side 1, permissions changed on side 2",
		in:   []Path{at("a", f0, nil, fp)},
		want: []want{{path: "a", action: Conflict, reason: "deleted on side 1, permissions changed on side 2 (0644→0600)"}},
	},
	{
		name: "deleted on both sides",
		in:   []Path{at("a", f0, nil, nil)},
		want: []want{{path: "a", action: Record}},
	},
	{
		name: "directory deleted on side 1, file deep inside changed on side 2",
		in: []Path{
			at("d", d0, nil, d0),
			at("d/e/f/g", f0, nil, f1),
			at("e", f0, f0, f1),
		},
		want: []want{
			{path: "d", action: Conflict, reason: "deleted on side 1, changed below on side 2 (1 path)", sub: []string{"d/e/f/g"}},
			{path: "e", action: TwoToOne},
		},
	},
	{
		name: "directory deleted on side 2, files created and removed inside on side 1",
		in: []Path{
			at("d", d0, d0, nil),
			at("d/new", nil, f1, nil),
			at("d/old", f0, nil, nil),
			at("d/same", f0, f0, nil),
		},
		want: []want{
			{path: "d", action: Conflict, reason: "deleted on side 2, changed below on side 1 (1 path)", sub: []string{"d/new", "d/old", "d/same"}},
		},
	},
	{
		name: "directory deleted on side 1, a file inside deleted on side 2",
		in: []Path{
			at("d", d0, nil, d0),
			at("d/f", f0, nil, nil),
		},
		want: []want{{path: "d", action: OneToTwo, sub: []string{"d/f"}}},
	},
	{
		name: "no ancestor, exists on side 1 only",
		in:   []Path{at("a", nil, f1, nil)},
		want: []want{{path: "a", action: OneToTwo}},
	},
	{
		name: "no ancestor, exists on side 2 only",
		in:   []Path{at("a", nil, nil, l0)},
		want: []want{{path: "a", action: TwoToOne}},
	},
	{
		name: "no ancestor, both exist and differ",
		in:   []Path{at("a", nil, f1, f2)},
		want: []want{{path: "a", action: Conflict, reason: "created on both sides with different contents"}},
	},
	{
		name: "no ancestor, directories on both sides are walked into",
		in: []Path{
			at("n", nil, d0, dp),
			at("n/a", nil, f1, nil),
			at("n/b", nil, f1, f2),
			at("n/c", nil, f1, f1),
		},
		want: []want{
			{path: "n", action: Conflict, reason: "created on both sides with different permissions (0755 on side 1, 0700 on side 2)"},
			{path: "n/a", action: OneToTwo},
			{path: "n/b", action: Conflict, reason: "created on both sides with different contents"},
			{path: "n/c", action: Record},
		},
	},
	{
		name: "no ancestor, a directory on side 1 and a file on side 2",
		in: []Path{
			at("n", nil, d0, f1),
			at("n/a", nil, f1, nil),
		},
		want: []want{{path: "n", action: Conflict, reason: "created on both sides as different kinds (dir on side 1, file on side 2)", sub: []string{"n/a"}}},
	},

	// Nested and property cases.
	{
		name: "file to directory on side 1, edit on side 2",
		in: []Path{
			at("a", f0, d0, f1),
			at("a/x", nil, f2, nil),
			at("a/y", nil, d0, nil),
			at("a/y/z", nil, l0, nil),
			at("b", f0, f0, f0),
		},
		want: []want{{path: "a", action: Conflict, reason: "kind changed on side 1 (file→dir), modified on side 2", sub: []string{"a/x", "a/y", "a/y/z"}}},
	},
	{
		name: "file to directory on side 1, side 2 unchanged",
		in: []Path{
			at("a", f0, d0, f0),
			at("a/x", nil, f2, nil),
		},
		want: []want{{path: "a", action: OneToTwo, sub: []string{"a/x"}}},
	},
	{
		name: "directory to file on side 2, side 1 unchanged below",
		in: []Path{
			at("d", d0, d0, f1),
		},
		want: []want{{path: "d", action: TwoToOne}},
	},
	{
		name: "directory to file on side 1, a file created inside on side 2",
		in: []Path{
			at("d", d0, f1, d0),
			at("d/x", nil, nil, f2),
		},
		want: []want{{path: "d", action: Conflict, reason: "kind changed on side 1 (dir→file), changed below on side 2 (1 path)", sub: []string{"d/x"}}},
	},
	{
		name: "kind changed differently on both sides",
		in:   []Path{at("a", f0, d0, l0)},
		want: []want{{path: "a", action: Conflict, reason: "kind changed on both sides (file→dir on side 1, file→symlink on side 2)"}},
	},
	{
		name: "directory replaced by files on both sides, different contents",
		in:   []Path{at("d", d0, f1, f2)},
		want: []want{{path: "d", action: Conflict, reason: "kind changed on both sides (dir→file), to different contents"}},
	},
	{
		name: "directory replaced by files on both sides, different permissions",
		in:   []Path{at("d", d0, f1, file(2, 0o600, 200))},
		want: []want{{path: "d", action: Conflict, reason: "kind changed on both sides (dir→file), to different permissions"}},
	},
	{
		name: "both sides created the same file with the same contents",
		in:   []Path{at("a", nil, f1, file(2, 0o644, 200))},
		want: []want{{path: "a", action: Record}},
	},
	{
		name: "both sides created the same file at different times",
		in:   []Path{at("a", nil, f1, file(2, 0o644, 260))},
		want: []want{{path: "a", action: TwoToOne, timeOnly: true}},
	},
	{
		name: "both sides created the same symlink",
		in:   []Path{at("l", nil, l0, link("target"))},
		want: []want{{path: "l", action: Record}},
	},
	{
		name: "permissions changed on side 1",
		in:   []Path{at("a", f0, fp, f0)},
		want: []want{{path: "a", action: OneToTwo}},
	},
	{
		name: "permissions changed on both sides, differently",
		in:   []Path{at("a", f0, fp, fp2)},
		want: []want{{path: "a", action: Conflict, reason: "permissions changed on both sides (0644→0600 on side 1, 0644→0640 on side 2)"}},
	},
	{
		name: "permissions changed on both sides, the same way",
		in:   []Path{at("a", f0, fp, file(1, 0o600, 100))},
		want: []want{{path: "a", action: Record}},
	},
	{
		name: "both sides modified to the same contents with different permissions",
		in:   []Path{at("a", f0, f1, file(2, 0o600, 200))},
		want: []want{{path: "a", action: Conflict, reason: "both sides modified, to the same contents with different permissions (0644 on side 1, 0600 on side 2)"}},
	},
	{
		name: "mtime-only change on side 1",
		in:   []Path{at("a", f0, ft, f0)},
		want: []want{{path: "a", action: OneToTwo, timeOnly: true}},
	},
	{
		name: "mtime-only change on side 2",
		in:   []Path{at("a", f0, f0, ft)},
		want: []want{{path: "a", action: TwoToOne, timeOnly: true}},
	},
	{
		name: "mtime-only change on both sides, newer wins",
		in:   []Path{at("a", f0, ft2, ft), at("b", f0, ft, ft2)},
		want: []want{
			{path: "a", action: OneToTwo, timeOnly: true},
			{path: "b", action: TwoToOne, timeOnly: true},
		},
	},
	{
		name: "mtime-only change on both sides, to the same time",
		in:   []Path{at("a", f0, ft, file(1, 0o644, 150))},
		want: []want{{path: "a", action: Record}},
	},
	{
		name: "contents changed on side 1, mtime-only change on side 2",
		in:   []Path{at("a", f0, f1, ft)},
		want: []want{{path: "a", action: OneToTwo}},
	},
	{
		name: "mtime-only change on side 1, deleted on side 2",
		in:   []Path{at("a", f0, ft, nil)},
		want: []want{{path: "a", action: TwoToOne}},
	},
	{
		name: "directory deleted on side 1, a file inside only touched on side 2",
		in: []Path{
			at("d", d0, nil, d0),
			at("d/f", f0, nil, ft),
		},
		want: []want{{path: "d", action: OneToTwo, sub: []string{"d/f"}}},
	},
	{
		name: "directory time is not synchronized",
		in:   []Path{at("d", d0, &state.Entry{Kind: state.Dir, Mode: 0o755, MTime: 999}, d0)},
	},
	{
		name: "new directory with nested contents is one item",
		in: []Path{
			at("n", nil, d0, nil),
			at("n/a", nil, f1, nil),
			at("n/b", nil, d0, nil),
			at("n/b/c", nil, l0, nil),
			at("n.txt", nil, f1, nil),
		},
		want: []want{
			{path: "n", action: OneToTwo, sub: []string{"n/a", "n/b", "n/b/c"}},
			{path: "n.txt", action: OneToTwo},
		},
	},
	{
		name: "directory deleted on side 2, nothing changed below",
		in:   []Path{at("d", d0, d0, nil)},
		want: []want{{path: "d", action: TwoToOne}},
	},
	{
		name: "directory deleted on both sides",
		in:   []Path{at("d", d0, nil, nil)},
		want: []want{{path: "d", action: Record}},
	},
	{
		name: "directory permissions follow the table, children stand alone",
		in: []Path{
			at("d", d0, dp, d0),
			at("d/f", f0, f0, f1),
			at("d/g", f0, nil, f0),
		},
		want: []want{
			{path: "d", action: OneToTwo},
			{path: "d/f", action: TwoToOne},
			{path: "d/g", action: OneToTwo},
		},
	},
	{
		name: "unchanged paths among changes produce nothing",
		in: []Path{
			at("a", f0, f0, f0),
			at("b", d0, d0, d0),
			at("b/c", f0, f1, f0),
			at("c", nil, nil, nil),
		},
		want: []want{{path: "b/c", action: OneToTwo}},
	},

	// --force.
	{
		name: "force 1 overrides a conflict",
		opts: Options{Force: One},
		in:   []Path{at("a", f0, f1, f2)},
		want: []want{{path: "a", action: OneToTwo, resolved: "both sides modified"}},
	},
	{
		name: "force 1 reverts a change made on side 2",
		opts: Options{Force: One},
		in:   []Path{at("a", f0, f0, f1)},
		want: []want{{path: "a", action: OneToTwo}},
	},
	{
		name: "force 1 deletes what only side 2 has, even without ancestor",
		opts: Options{Force: One},
		in:   []Path{at("a", nil, nil, f1)},
		want: []want{{path: "a", action: OneToTwo}},
	},
	{
		name: "force 1 carries an older time",
		opts: Options{Force: One},
		in:   []Path{at("a", f0, ft, ft2)},
		want: []want{{path: "a", action: OneToTwo, timeOnly: true}},
	},
	{
		name: "force 1 leaves identical sides recorded",
		opts: Options{Force: One},
		in:   []Path{at("a", f0, f1, f1)},
		want: []want{{path: "a", action: Record}},
	},
	{
		name: "force 2 deletes a directory changed below on side 1",
		opts: Options{Force: Two},
		in: []Path{
			at("d", d0, d0, nil),
			at("d/f", f0, f1, nil),
		},
		want: []want{{path: "d", action: TwoToOne, resolved: "deleted on side 2, changed below on side 1 (1 path)", sub: []string{"d/f"}}},
	},
	{
		name: "force 2 wins over prefer 1",
		opts: Options{Force: Two, Prefer: PreferOne},
		in:   []Path{at("a", f0, f1, f2)},
		want: []want{{path: "a", action: TwoToOne, resolved: "both sides modified"}},
	},

	// --prefer.
	{
		name: "prefer 1",
		opts: Options{Prefer: PreferOne},
		in:   []Path{at("a", f0, f1, f2), at("b", f0, f0, f1)},
		want: []want{
			{path: "a", action: OneToTwo, resolved: "both sides modified"},
			{path: "b", action: TwoToOne},
		},
	},
	{
		name: "prefer 2",
		opts: Options{Prefer: PreferTwo},
		in:   []Path{at("a", f0, f1, f2), at("b", f0, f1, f0)},
		want: []want{
			{path: "a", action: TwoToOne, resolved: "both sides modified"},
			{path: "b", action: OneToTwo},
		},
	},
	{
		name: "prefer newer",
		opts: Options{Prefer: PreferNewer},
		in: []Path{
			at("a", f0, f1, f2),
			at("b", f0, f2, f1),
			at("c", f0, f1, nil),
			at("d", d0, nil, d0),
			at("d/f", f0, nil, f1),
			at("e", f0, file(2, 0o644, 500), file(3, 0o644, 500)),
		},
		want: []want{
			{path: "a", action: TwoToOne, resolved: "both sides modified"},
			{path: "b", action: OneToTwo, resolved: "both sides modified"},
			{path: "c", action: OneToTwo, resolved: "modified on side 1, deleted on side 2"},
			{path: "d", action: TwoToOne, resolved: "deleted on side 1, changed below on side 2 (1 path)", sub: []string{"d/f"}},
			{path: "e", action: Conflict, reason: "both sides modified"},
		},
	},
	{
		name: "prefer older",
		opts: Options{Prefer: PreferOlder},
		in: []Path{
			at("a", f0, f1, f2),
			at("b", f0, f2, f1),
			at("c", f0, f1, nil),
			at("d", d0, nil, d0),
			at("d/f", f0, nil, f1),
			at("e", f0, file(2, 0o644, 500), file(3, 0o644, 500)),
		},
		want: []want{
			{path: "a", action: OneToTwo, resolved: "both sides modified"},
			{path: "b", action: TwoToOne, resolved: "both sides modified"},
			{path: "c", action: TwoToOne, resolved: "modified on side 1, deleted on side 2"},
			{path: "d", action: OneToTwo, resolved: "deleted on side 1, changed below on side 2 (1 path)", sub: []string{"d/f"}},
			{path: "e", action: Conflict, reason: "both sides modified"},
		},
	},

	// --no-deletion, --no-update, --no-creation on each side.
	{
		name: "no-deletion on side 2",
		opts: Options{NoDeletion: [3]bool{2: true}},
		in: []Path{
			at("a", f0, nil, f0),
			at("b", f0, f1, f0),
			at("c", nil, f1, nil),
			at("d", d0, f1, d0),
			at("e", f0, f0, nil),
		},
		want: []want{
			{path: "a", action: Skip, reason: "--no-deletion on side 2"},
			{path: "b", action: OneToTwo},
			{path: "c", action: OneToTwo},
			{path: "d", action: Skip, reason: "--no-deletion on side 2"},
			{path: "e", action: TwoToOne},
		},
	},
	{
		name: "no-deletion on side 1",
		opts: Options{NoDeletion: [3]bool{1: true}},
		in: []Path{
			at("a", f0, f0, nil),
			at("b", f0, nil, f0),
			at("n", nil, d0, d0),
			at("n/x", nil, f1, nil),
		},
		want: []want{
			{path: "a", action: Skip, reason: "--no-deletion on side 1"},
			{path: "b", action: OneToTwo},
			{path: "n", action: Record},
			{path: "n/x", action: OneToTwo},
		},
	},
	{
		name: "no-update on side 2",
		opts: Options{NoUpdate: [3]bool{2: true}},
		in: []Path{
			at("a", f0, f1, f0),
			at("b", f0, ft, f0),
			at("c", f0, fp, f0),
			at("d", nil, f1, nil),
			at("e", f0, f1, f1),
		},
		want: []want{
			{path: "a", action: Skip, reason: "--no-update on side 2"},
			{path: "b", action: Skip, reason: "--no-update on side 2", timeOnly: true},
			{path: "c", action: Skip, reason: "--no-update on side 2"},
			{path: "d", action: OneToTwo},
			{path: "e", action: Record},
		},
	},
	{
		name: "no-update on side 1",
		opts: Options{NoUpdate: [3]bool{1: true}},
		in: []Path{
			at("a", f0, f0, f1),
			at("b", f0, f0, nil),
			at("c", f0, f1, f0),
		},
		want: []want{
			{path: "a", action: Skip, reason: "--no-update on side 1"},
			{path: "b", action: TwoToOne},
			{path: "c", action: OneToTwo},
		},
	},
	{
		name: "no-creation on side 2",
		opts: Options{NoCreation: [3]bool{2: true}},
		in: []Path{
			at("a", nil, f1, nil),
			at("b", f0, d0, f0),
			at("b/x", nil, f1, nil),
			at("c", f0, f1, f0),
			at("d", f0, nil, f0),
		},
		want: []want{
			{path: "a", action: Skip, reason: "--no-creation on side 2"},
			{path: "b", action: Skip, reason: "--no-creation on side 2", sub: []string{"b/x"}},
			{path: "c", action: OneToTwo},
			{path: "d", action: OneToTwo},
		},
	},
	{
		name: "no-creation on side 1",
		opts: Options{NoCreation: [3]bool{1: true}},
		in: []Path{
			at("a", nil, nil, l0),
			at("b", nil, f1, nil),
		},
		want: []want{
			{path: "a", action: Skip, reason: "--no-creation on side 1"},
			{path: "b", action: OneToTwo},
		},
	},
	{
		name: "a guard applies after prefer",
		opts: Options{Prefer: PreferOne, NoDeletion: [3]bool{2: true}},
		in:   []Path{at("a", f0, nil, f1)},
		want: []want{{path: "a", action: Skip, reason: "--no-deletion on side 2", resolved: "deleted on side 1, modified on side 2"}},
	},
	{
		name: "a guard applies after force",
		opts: Options{Force: Two, NoUpdate: [3]bool{1: true}},
		in:   []Path{at("a", f0, f1, f0)},
		want: []want{{path: "a", action: Skip, reason: "--no-update on side 1"}},
	},
	{
		name: "guards leave conflicts alone",
		opts: Options{NoDeletion: [3]bool{true, true, true}, NoUpdate: [3]bool{true, true, true}, NoCreation: [3]bool{true, true, true}},
		in:   []Path{at("a", f0, f1, f2)},
		want: []want{{path: "a", action: Conflict, reason: "both sides modified"}},
	},
}

func TestReconcile(t *testing.T) {
	for _, tc := range reconcileTests {
		t.Run(tc.name, func(t *testing.T) {
			if !slices.IsSortedFunc(tc.in, func(a, b Path) int { return state.ComparePaths(a.Path, b.Path) }) {
				t.Fatalf("test input is not sorted by state.ComparePaths")
			}
			plan := Reconcile(tc.in, tc.opts)
			input := map[string]Path{}
			for _, p := range tc.in {
				input[p.Path] = p
			}
			for i, it := range plan.Items {
				if i >= len(tc.want) {
					t.Errorf("unexpected item %s", describe(it))
					continue
				}
				w := tc.want[i]
				got := want{path: it.Path, action: it.Action, reason: it.Reason, resolved: it.Resolved, timeOnly: it.TimeOnly, sub: subPaths(it)}
				if !equalWant(got, w) {
					t.Errorf("item %d:\n got %+v\nwant %+v", i, got, w)
				}
				if it.Default != it.Action {
					t.Errorf("%s: Default %v, want it equal to Action %v", it.Path, it.Default, it.Action)
				}
				// A guard's skip remembers the direction it held back:
				// towards the side the reason names.
				wantAttempt := it.Action
				if it.Action == Skip && strings.HasPrefix(it.Reason, "--no-") {
					wantAttempt = OneToTwo
					if strings.HasSuffix(it.Reason, "on side 1") {
						wantAttempt = TwoToOne
					}
				}
				if got := it.Attempted(); got != wantAttempt {
					t.Errorf("%s (%s, %q): Attempted %v, want %v", it.Path, it.Action, it.Reason, got, wantAttempt)
				}
				p := input[it.Path]
				if it.Base != p.Base || it.One != p.One || it.Two != p.Two {
					t.Errorf("%s: item does not carry the input's states", it.Path)
				}
			}
			for _, w := range tc.want[min(len(plan.Items), len(tc.want)):] {
				t.Errorf("missing item %+v", w)
			}
		})
	}
}

func equalWant(a, b want) bool {
	return a.path == b.path && a.action == b.action && a.reason == b.reason &&
		a.resolved == b.resolved && a.timeOnly == b.timeOnly && slices.Equal(a.sub, b.sub)
}

func subPaths(it Item) []string {
	var s []string
	for _, d := range it.Sub {
		s = append(s, d.Path)
	}
	return s
}

func describe(it Item) string {
	return it.Path + " " + it.Action.String() + " " + it.Reason
}

func TestReconcileDoesNotAliasInput(t *testing.T) {
	in := []Path{at("n", nil, d0, nil), at("n/a", nil, f1, nil)}
	plan := Reconcile(in, Options{})
	if len(plan.Items) != 1 || len(plan.Items[0].Sub) != 1 {
		t.Fatalf("got %d items, want 1 with 1 sub", len(plan.Items))
	}
	plan.Items[0].Sub[0].Path = "changed"
	if in[1].Path != "n/a" {
		t.Errorf("Sub shares the input slice: input path became %q", in[1].Path)
	}
}

func TestAttempted(t *testing.T) {
	for _, tc := range []struct {
		it   Item
		want Action
	}{
		{Item{Action: OneToTwo, Default: OneToTwo}, OneToTwo},
		{Item{Action: Skip, Default: Skip, Held: TwoToOne}, TwoToOne}, // a guard
		{Item{Action: Skip, Default: OneToTwo}, OneToTwo},             // a person
		{Item{Action: Skip, Default: Conflict}, Skip},                 // a conflict set aside
		{Item{Action: Conflict, Default: Conflict}, Conflict},
		{Item{Action: TwoToOne, Default: Skip, Held: OneToTwo}, TwoToOne}, // a person overrode the guard
	} {
		if got := tc.it.Attempted(); got != tc.want {
			t.Errorf("%+v.Attempted() = %v, want %v", tc.it, got, tc.want)
		}
	}
}

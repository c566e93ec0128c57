package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

func fileE(size int64, h byte) *state.Entry {
	return &state.Entry{Kind: state.File, Mode: 0o644, Size: size, MTime: 1_000 + int64(h), Hash: hashOf(h), Ino: uint64(h) + 1, CTime: 7}
}

func dirE() *state.Entry { return &state.Entry{Kind: state.Dir, Mode: 0o755, MTime: 3} }

func linkE(target string) *state.Entry {
	return &state.Entry{Kind: state.Symlink, Target: target, Hash: hashOf(byte(len(target)))}
}

// model is a reference archive: a plain map with the documented semantics
// of Apply (a nil entry forgets the path and everything below it; a
// directory replaced by something else loses its subtree).
type model map[string]*state.Entry

func (m model) apply(ups []Update) {
	for _, u := range ups {
		if u.Path == "" {
			continue
		}
		old := m[u.Path]
		if old != nil && old.Kind == state.Dir && (u.Entry == nil || u.Entry.Kind != state.Dir) {
			for p := range m {
				if state.IsBelow(p, u.Path) {
					delete(m, p)
				}
			}
		}
		if u.Entry == nil {
			delete(m, u.Path)
		} else {
			m[u.Path] = u.Entry.Clone()
		}
	}
}

func (m model) sorted() []string {
	ps := make([]string, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return state.ComparePaths(ps[i], ps[j]) < 0 })
	return ps
}

// digestFromScratch recomputes the digest from every stored entry.
func digestFromScratch(t *testing.T, d *DB) ([32]byte, int64) {
	t.Helper()
	var dg [32]byte
	var n int64
	if err := d.Subtree(context.Background(), "", func(p string, e *state.Entry) error {
		xor(&dg, Fingerprint(p, e))
		n++
		return nil
	}); err != nil {
		t.Fatalf("Subtree: %v", err)
	}
	return dg, n
}

// checkAgainst compares d with the reference model in every way.
func checkAgainst(t *testing.T, d *DB, m model) {
	t.Helper()
	ctx := context.Background()
	paths, entries, err := d.All(ctx)
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	want := m.sorted()
	if !slices.Equal(paths, want) {
		t.Fatalf("All paths:\n got %q\nwant %q", paths, want)
	}
	for i, p := range paths {
		if !reflect.DeepEqual(entries[i], m[p]) {
			t.Fatalf("All entry %q = %+v, want %+v", p, entries[i], m[p])
		}
	}
	var wantDigest [32]byte
	for p, e := range m {
		xor(&wantDigest, Fingerprint(p, e))
	}
	dg, n := digestFromScratch(t, d)
	if dg != d.Digest() || dg != wantDigest {
		t.Fatalf("digest: incremental %x, from scratch %x, model %x", d.Digest(), dg, wantDigest)
	}
	if n != d.Count() || n != int64(len(m)) {
		t.Fatalf("count: Count() %d, stored %d, model %d", d.Count(), n, len(m))
	}
}

func TestApplyCases(t *testing.T) {
	deep := []Update{{Path: "d", Entry: dirE()}}
	p := "d"
	for i := 0; i < 12; i++ {
		p += fmt.Sprintf("/l%d", i)
		deep = append(deep, Update{Path: p, Entry: dirE()})
		for j := 0; j < 3; j++ {
			deep = append(deep, Update{Path: fmt.Sprintf("%s/f%d", p, j), Entry: fileE(int64(j), byte(i*3+j))})
		}
	}
	tests := []struct {
		name    string
		batches [][]Update
		want    []string // sorted paths afterwards
	}{
		{"insert all kinds",
			[][]Update{{{"a", dirE()}, {"a/f", fileE(1, 1)}, {"a/l", linkE("f")}, {"z", fileE(0, 2)}}},
			[]string{"a", "a/f", "a/l", "z"}},
		{"update a file",
			[][]Update{{{"f", fileE(1, 1)}}, {{"f", fileE(2, 2)}}},
			[]string{"f"}},
		{"delete a file",
			[][]Update{{{"a", dirE()}, {"a/f", fileE(1, 1)}, {"a/g", fileE(1, 1)}}, {{"a/f", nil}}},
			[]string{"a", "a/g"}},
		{"delete the last file of a directory",
			[][]Update{{{"a", dirE()}, {"a/f", fileE(1, 1)}}, {{"a/f", nil}}},
			[]string{"a"}},
		{"delete an absent path",
			[][]Update{{{"f", fileE(1, 1)}}, {{"nope", nil}, {"x/y", nil}}},
			[]string{"f"}},
		{"delete a deep tree with other updates in the same batch",
			[][]Update{deep, {{"e", dirE()}, {"e/x", fileE(5, 5)}}, {{"d/l0/f0", fileE(9, 9)}, {"d", nil}, {"e/x", fileE(6, 6)}, {"e/y", fileE(1, 1)}, {"top", linkE("e")}}},
			[]string{"e", "e/x", "e/y", "top"}},
		{"delete a tree after updating inside it in the same batch",
			[][]Update{deep, {{"d/l0/l1/new", fileE(1, 1)}, {"d/l0/f1", nil}, {"d", nil}}},
			nil},
		{"replace a directory by a file",
			[][]Update{deep, {{"d", fileE(3, 3)}}},
			[]string{"d"}},
		{"replace a directory by a symlink",
			[][]Update{{{"d", dirE()}, {"d/x", fileE(1, 1)}}, {{"d", linkE("elsewhere")}}},
			[]string{"d"}},
		{"replace a file by a directory",
			[][]Update{{{"d", fileE(1, 1)}}, {{"d", dirE()}, {"d/x", fileE(1, 1)}}},
			[]string{"d", "d/x"}},
		{"directory permissions change keeps the subtree",
			[][]Update{{{"d", dirE()}, {"d/x", fileE(1, 1)}}, {{"d", &state.Entry{Kind: state.Dir, Mode: 0o700}}}},
			[]string{"d", "d/x"}},
		{"delete and recreate a directory in one batch",
			[][]Update{{{"d", dirE()}, {"d/s", dirE()}, {"d/s/old", fileE(1, 1)}, {"d/keep", fileE(1, 1)}}, {{"d", nil}, {"d", dirE()}, {"d/s", dirE()}, {"d/s/new", fileE(2, 2)}}},
			[]string{"d", "d/s", "d/s/new"}},
		{"delete a tree twice in one batch",
			[][]Update{{{"d", dirE()}, {"d/a", dirE()}, {"d/a/x", fileE(1, 1)}}, {{"d", nil}, {"d", dirE()}, {"d/a", dirE()}, {"d/a/y", fileE(1, 2)}, {"d", nil}}},
			nil},
		{"root update is ignored",
			[][]Update{{{"", dirE()}, {"f", fileE(1, 1)}}, {{"", nil}}},
			[]string{"f"}},
		{"non-UTF-8 and newline names",
			[][]Update{{{"\xff", dirE()}, {"\xff/a\nb", fileE(1, 1)}, {"\xff/\x01", linkE("\xfe")}}, {{"\xff/a\nb", fileE(2, 2)}}},
			[]string{"\xff", "\xff/\x01", "\xff/a\nb"}},
		{"sibling with a slash-sorting prefix survives",
			[][]Update{{{"a", dirE()}, {"a/x", fileE(1, 1)}, {"a.b", dirE()}, {"a.b/y", fileE(1, 1)}, {"a0", dirE()}, {"a0/z", fileE(1, 1)}}, {{"a", nil}}},
			[]string{"a.b", "a.b/y", "a0", "a0/z"}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openTemp(t)
			m := model{}
			for _, b := range tt.batches {
				if err := d.Apply(ctx, b); err != nil {
					t.Fatalf("Apply: %v", err)
				}
				m.apply(b)
				checkAgainst(t, d, m)
			}
			if got := m.sorted(); !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("paths = %q, want %q", got, tt.want)
			}
			// The digest and count survive a reopen.
			dg, n := d.Digest(), d.Count()
			d.Close()
			d2, err := Open(d.Path(), false)
			if err != nil {
				t.Fatal(err)
			}
			defer d2.Close()
			if d2.Digest() != dg || d2.Count() != n {
				t.Errorf("after reopen: digest %x count %d; want %x %d", d2.Digest(), d2.Count(), dg, n)
			}
			checkAgainst(t, d2, m)
		})
	}
}

func TestApplyEmpty(t *testing.T) {
	d := openTemp(t)
	if err := d.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if d.Count() != 0 {
		t.Errorf("Count = %d", d.Count())
	}
}

// randomUpdates returns n updates that keep the tree consistent (parents
// are directories), drawn from a small name space so that paths collide.
func randomUpdates(r *rand.Rand, m model, n int) []Update {
	names := []string{"a", "b", "c", "a.x", "\xff", "n\nl"}
	var ups []Update
	add := func(u Update) {
		ups = append(ups, u)
		m.apply([]Update{u})
	}
	for len(ups) < n {
		depth := 1 + r.IntN(4)
		p := ""
		for i := 0; i < depth; i++ {
			p = state.Join(p, names[r.IntN(len(names))])
		}
		switch r.IntN(10) {
		case 0, 1, 2:
			add(Update{Path: p, Entry: nil})
			continue
		case 3:
			// Delete an existing path, preferring directories.
			for q, e := range m {
				if e.Kind == state.Dir {
					p = q
					break
				}
			}
			add(Update{Path: p, Entry: nil})
			continue
		}
		// Parents must be directories.
		var chain []string
		for q := state.Parent(p); q != ""; q = state.Parent(q) {
			chain = append(chain, q)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			if e := m[chain[i]]; e == nil || e.Kind != state.Dir {
				add(Update{Path: chain[i], Entry: &state.Entry{Kind: state.Dir, Mode: 0o700 + uint32(r.IntN(0o100))}})
			}
		}
		var e *state.Entry
		switch r.IntN(4) {
		case 0:
			e = &state.Entry{Kind: state.Dir, Mode: 0o700 + uint32(r.IntN(0o100))}
		case 1:
			e = linkE(names[r.IntN(len(names))])
		default:
			e = fileE(int64(r.IntN(4)), byte(r.IntN(4)))
			e.Ino, e.CTime = r.Uint64(), r.Int64()
		}
		add(Update{Path: p, Entry: e})
	}
	return ups
}

func TestApplyDigestProperty(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			d := openTemp(t)
			m := model{}
			for round := 0; round < 12; round++ {
				ref := model{}
				for p, e := range m {
					ref[p] = e
				}
				ups := randomUpdates(r, ref, 1+r.IntN(25))
				if err := d.Apply(ctx, ups); err != nil {
					t.Fatalf("round %d: Apply: %v", round, err)
				}
				m = ref
				checkAgainst(t, d, m)
			}
		})
	}
}

// TestApplyBatchSplits feeds the same updates to two archives in different
// batch splits: their digests and contents must agree.
func TestApplyBatchSplits(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 5; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		ups := randomUpdates(r, model{}, 120)
		one, many := openTemp(t), openTemp(t)
		if err := one.Apply(ctx, ups); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(ups); {
			j := min(len(ups), i+1+r.IntN(9))
			if err := many.Apply(ctx, ups[i:j]); err != nil {
				t.Fatal(err)
			}
			i = j
		}
		if one.Digest() != many.Digest() || one.Count() != many.Count() {
			t.Errorf("seed %d: one batch: %x (%d), split: %x (%d)", seed, one.Digest(), one.Count(), many.Digest(), many.Count())
		}
		m := model{}
		m.apply(ups)
		checkAgainst(t, one, m)
		checkAgainst(t, many, m)
	}
}

func TestQueries(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	ups := []Update{
		{"a", dirE()}, {"a/b", dirE()}, {"a/b/c", fileE(1, 1)}, {"a/z", fileE(1, 2)},
		{"a.txt", fileE(1, 3)}, {"a0", dirE()}, {"a0/q", linkE("x")},
		{"b", dirE()}, {"b/\xff", fileE(1, 4)}, {"b/A", fileE(1, 5)},
	}
	if err := d.Apply(ctx, ups); err != nil {
		t.Fatal(err)
	}
	paths, _, err := d.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "a/b", "a/b/c", "a/z", "a.txt", "a0", "a0/q", "b", "b/A", "b/\xff"}
	if !slices.Equal(paths, want) {
		t.Errorf("All order:\n got %q\nwant %q", paths, want)
	}
	if !slices.IsSortedFunc(paths, state.ComparePaths) {
		t.Errorf("All is not in state.ComparePaths order")
	}

	children := []struct {
		dir  string
		want []string
	}{
		{"", []string{"a", "a.txt", "a0", "b"}},
		{"a", []string{"b", "z"}},
		{"a/b", []string{"c"}},
		{"b", []string{"A", "\xff"}},
		{"a.txt", nil},
		{"missing", nil},
	}
	for _, c := range children {
		got, err := d.Children(ctx, c.dir)
		if err != nil {
			t.Fatalf("Children(%q): %v", c.dir, err)
		}
		var names []string
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		if !slices.Equal(names, c.want) {
			t.Errorf("Children(%q) = %q, want %q", c.dir, names, c.want)
		}
	}

	gets := []struct {
		p    string
		want *state.Entry
	}{
		{"a/b/c", fileE(1, 1)}, {"a0/q", linkE("x")}, {"b/\xff", fileE(1, 4)}, {"a", dirE()},
		{"", nil}, {"nope", nil}, {"a/b/c/d", nil}, {"a/nope", nil},
	}
	for _, g := range gets {
		got, err := d.Get(ctx, g.p)
		if err != nil {
			t.Fatalf("Get(%q): %v", g.p, err)
		}
		if !reflect.DeepEqual(got, g.want) {
			t.Errorf("Get(%q) = %+v, want %+v", g.p, got, g.want)
		}
	}

	counts := []struct {
		p    string
		want int64
	}{
		{"", 10}, {"a", 3}, {"a/b", 1}, {"a/b/c", 0}, {"a0", 1}, {"a.txt", 0}, {"b", 2}, {"missing", 0},
	}
	for _, c := range counts {
		got, err := d.CountBelow(ctx, c.p)
		if err != nil || got != c.want {
			t.Errorf("CountBelow(%q) = %d, %v; want %d", c.p, got, err, c.want)
		}
	}

	var sub []string
	if err := d.Subtree(ctx, "a", func(p string, e *state.Entry) error { sub = append(sub, p); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Slice(sub, func(i, j int) bool { return state.ComparePaths(sub[i], sub[j]) < 0 })
	if !slices.Equal(sub, []string{"a/b", "a/b/c", "a/z"}) {
		t.Errorf("Subtree(a) = %q", sub)
	}
	stop := fmt.Errorf("stop")
	if err := d.Subtree(ctx, "", func(string, *state.Entry) error { return stop }); err != stop {
		t.Errorf("Subtree did not pass on the callback's error: %v", err)
	}
}

func TestDamagedRecord(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	if err := d.Apply(ctx, []Update{{"a", dirE()}, {"a/f", fileE(1, 1)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.db.Exec("UPDATE dirs SET children = x'05ff' WHERE path = ?", []byte("a")); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		run  func() error
	}{
		{"Children", func() error { _, err := d.Children(ctx, "a"); return err }},
		{"Get", func() error { _, err := d.Get(ctx, "a/f"); return err }},
		{"All", func() error { _, _, err := d.All(ctx); return err }},
		{"Apply", func() error { return d.Apply(ctx, []Update{{"a/g", fileE(1, 1)}}) }},
		{"Apply delete", func() error { return d.Apply(ctx, []Update{{"a", nil}}) }},
		{"CountBelow", func() error {
			_, err := d.db.Exec("UPDATE dirs SET children = x'ffffffffffffffffffff01' WHERE path = ?", []byte("a"))
			if err != nil {
				return nil
			}
			_, err = d.CountBelow(ctx, "")
			return err
		}},
	}
	for _, c := range checks {
		err := c.run()
		corruptErr(t, c.name, err, d.Path())
	}
	if d.Count() != 2 {
		t.Errorf("a failed Apply changed Count to %d", d.Count())
	}
}

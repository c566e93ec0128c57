package reconcile

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

// The property tests build random ancestor and side trees over a small
// universe of paths (three names, three levels deep), derive the input the
// scanner would pass (see Path), and check the invariants written at the top
// of reconcile.go on the plan.

// universe lists every path the random trees may hold, in ComparePaths order.
var universe = func() []string {
	var all []string
	var walk func(prefix string, depth int)
	walk = func(prefix string, depth int) {
		if depth == 0 {
			return
		}
		for _, n := range []string{"a", "b", "c"} {
			p := state.Join(prefix, n)
			all = append(all, p)
			walk(p, depth-1)
		}
	}
	walk("", 3)
	slices.SortFunc(all, state.ComparePaths)
	return all
}()

// tree maps paths to entries; a missing path is absent.
type tree map[string]*state.Entry

// randomEntry returns a random state from a small domain, so that two random
// states are often equal or differ in one property only.
func randomEntry(r *rand.Rand, depth int) *state.Entry {
	switch r.IntN(6) {
	case 0:
		return nil
	case 1, 2:
		return file(byte(1+r.IntN(2)), []uint32{0o644, 0o600}[r.IntN(2)], int64(100*(1+r.IntN(3))))
	case 3, 4:
		if depth > 0 {
			return dir([]uint32{0o755, 0o700}[r.IntN(2)])
		}
		return file(byte(1+r.IntN(2)), 0o644, 100)
	}
	return link([]string{"x", "y"}[r.IntN(2)])
}

// randomTree derives a tree from base: each path keeps its base state with
// probability keep and gets a random state otherwise. A path whose parent is
// not a directory is absent.
func randomTree(r *rand.Rand, base tree, keep float64) tree {
	t := tree{}
	for _, p := range universe {
		if parent := state.Parent(p); parent != "" && !isDir(t[parent]) {
			continue
		}
		depth := 2 - countSlashes(p)
		var e *state.Entry
		if r.Float64() < keep {
			e = base[p].Clone()
			if e != nil && e.Kind == state.Dir && depth == 0 {
				e = nil
			}
		} else {
			e = randomEntry(r, depth)
		}
		if e != nil {
			t[p] = e
		}
	}
	return t
}

func countSlashes(p string) int {
	n := 0
	for i := range len(p) {
		if p[i] == '/' {
			n++
		}
	}
	return n
}

// vanished reports whether some directory above p in base is not a
// directory in side: p disappeared with it.
func vanished(p string, base, side tree) bool {
	for q := state.Parent(p); q != ""; q = state.Parent(q) {
		if isDir(base[q]) && !isDir(side[q]) {
			return true
		}
	}
	return false
}

// inputFor builds Reconcile's input as the caller does: every path that
// changed on a side, except below a directory that side deleted, plus a few
// paths where nothing differs.
func inputFor(r *rand.Rand, base, one, two tree) []Path {
	var in []Path
	for _, p := range universe {
		b, o, t := base[p], one[p], two[p]
		d1 := !state.Equal(b, o) && !vanished(p, base, one)
		d2 := !state.Equal(b, t) && !vanished(p, base, two)
		noop := b != nil && state.Equal(b, o) && state.Equal(b, t)
		if d1 || d2 || (noop && r.IntN(10) == 0) {
			in = append(in, Path{Path: p, Base: b, One: o, Two: t})
		}
	}
	return in
}

// randomCase returns random trees and options. About one case in ten has no
// ancestor at all (a first sync).
func randomCase(r *rand.Rand) (base, one, two tree, opts Options) {
	base = tree{}
	if r.IntN(10) != 0 {
		base = randomTree(r, nil, 0)
	}
	one = randomTree(r, base, 0.7)
	two = randomTree(r, base, 0.7)
	if r.IntN(3) == 0 {
		opts = randomOptions(r)
	}
	return base, one, two, opts
}

func randomOptions(r *rand.Rand) Options {
	var o Options
	if r.IntN(4) == 0 {
		o.Force = Side(1 + r.IntN(2))
	}
	o.Prefer = Prefer(r.IntN(5))
	for s := 1; s <= 2; s++ {
		o.NoDeletion[s] = r.IntN(4) == 0
		o.NoUpdate[s] = r.IntN(4) == 0
		o.NoCreation[s] = r.IntN(4) == 0
	}
	return o
}

const propertyRuns = 3000

func TestPropertyCoverage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for run := range propertyRuns {
		base, one, two, opts := randomCase(r)
		in := inputFor(r, base, one, two)
		plan := Reconcile(in, opts)
		if err := checkCoverage(in, plan); err != nil {
			t.Fatalf("run %d: %v\ninput:\n%s", run, err, dumpInput(in))
		}
		if err := checkItems(plan, opts); err != nil {
			t.Fatalf("run %d (options %+v): %v\ninput:\n%s", run, opts, err, dumpInput(in))
		}
	}
}

// checkCoverage checks invariant 2: every input path is covered exactly
// once, or nothing differs on it; items are in input order.
func checkCoverage(in []Path, plan *Plan) error {
	covered := map[string]int{}
	for i, it := range plan.Items {
		if i > 0 && state.ComparePaths(plan.Items[i-1].Path, it.Path) >= 0 {
			return fmt.Errorf("items %q and %q out of order", plan.Items[i-1].Path, it.Path)
		}
		covered[it.Path]++
		for _, d := range it.Sub {
			if !state.IsBelow(d.Path, it.Path) {
				return fmt.Errorf("sub %q of %q is not below it", d.Path, it.Path)
			}
			covered[d.Path]++
		}
	}
	inputs := map[string]bool{}
	for _, p := range in {
		inputs[p.Path] = true
		noop := state.Equal(p.Base, p.One) && state.Equal(p.Base, p.Two)
		switch n := covered[p.Path]; {
		case n > 1:
			return fmt.Errorf("%q covered %d times", p.Path, n)
		case n == 0 && !noop:
			return fmt.Errorf("%q differs but no item covers it", p.Path)
		}
	}
	for p := range covered {
		if !inputs[p] {
			return fmt.Errorf("item for %q, which is not in the input", p)
		}
	}
	return nil
}

// checkItems checks the per-item invariants: Default equals Action, a
// reason exactly for conflicts and skips, TimeOnly only where contents and
// permissions agree, the options obeyed, and, without --force or --prefer,
// nothing changed on a side is deleted or overwritten there.
func checkItems(plan *Plan, opts Options) error {
	for _, it := range plan.Items {
		if it.Default != it.Action {
			return fmt.Errorf("%q: Default %v != Action %v", it.Path, it.Default, it.Action)
		}
		if (it.Reason != "") != (it.Action == Conflict || it.Action == Skip) {
			return fmt.Errorf("%q: action %v with reason %q", it.Path, it.Action, it.Reason)
		}
		if it.TimeOnly && !(state.SameContent(it.One, it.Two) && state.SamePerm(it.One, it.Two)) {
			return fmt.Errorf("%q: TimeOnly set but contents or permissions differ", it.Path)
		}
		if it.Action == Record && !state.SameContent(it.One, it.Two) {
			return fmt.Errorf("%q: Record of two different states", it.Path)
		}
		if opts.Force != None && it.Action == Conflict {
			return fmt.Errorf("%q: conflict under --force", it.Path)
		}
		if opts.Force != None && moves(it.Action) && it.Action != from(opts.Force) {
			return fmt.Errorf("%q: %v under --force %d", it.Path, it.Action, opts.Force)
		}
		if (opts.Prefer == PreferOne || opts.Prefer == PreferTwo) && it.Action == Conflict {
			return fmt.Errorf("%q: conflict under --prefer %d", it.Path, opts.Prefer)
		}
		if err := checkGuards(it, opts); err != nil {
			return err
		}
		if opts.Force == None && opts.Prefer == PreferNone && moves(it.Action) {
			if err := checkNoLoss(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkGuards checks that no propagation does what a --no-* flag forbids on
// its destination, judged on each path the item covers.
func checkGuards(it Item, opts Options) error {
	if !moves(it.Action) {
		return nil
	}
	dest := Two
	if it.Action == TwoToOne {
		dest = One
	}
	all := append([]Path{{Path: it.Path, One: it.One, Two: it.Two}}, it.Sub...)
	for _, p := range all {
		src, dst := p.One, p.Two
		if dest == One {
			src, dst = dst, src
		}
		if state.Equal(src, dst) {
			continue
		}
		switch {
		case opts.NoDeletion[dest] && dst != nil && (src == nil || isDir(dst) && !isDir(src)):
			return fmt.Errorf("%q: deletes %q on side %d despite --no-deletion", it.Path, p.Path, dest)
		case opts.NoCreation[dest] && dst == nil && src != nil:
			return fmt.Errorf("%q: creates %q on side %d despite --no-creation", it.Path, p.Path, dest)
		case opts.NoUpdate[dest] && dst != nil && src != nil:
			return fmt.Errorf("%q: overwrites %q on side %d despite --no-update", it.Path, p.Path, dest)
		}
	}
	return nil
}

// checkNoLoss checks invariant 4: a propagation only replaces, on its
// destination, states that are unchanged there since the ancestor (a touched
// time aside), on the item's path and on every path of its Sub. Carrying a
// time onto a state that already has the source's contents and permissions
// loses nothing.
func checkNoLoss(it Item) error {
	all := append([]Path{{Path: it.Path, Base: it.Base, One: it.One, Two: it.Two}}, it.Sub...)
	for _, p := range all {
		src, dst := p.One, p.Two
		if it.Action == TwoToOne {
			src, dst = dst, src
		}
		if state.Changed(p.Base, dst) && state.Changed(dst, src) {
			return fmt.Errorf("%q (%v) overwrites %q, changed on its destination", it.Path, it.Action, p.Path)
		}
	}
	return nil
}

// swapPaths exchanges the sides of every path.
func swapPaths(in []Path) []Path {
	out := make([]Path, len(in))
	for i, p := range in {
		out[i] = Path{Path: p.Path, Base: p.Base, One: p.Two, Two: p.One}
	}
	return out
}

// swapOptions exchanges the sides named by o.
func swapOptions(o Options) Options {
	s := o
	if o.Force != None {
		s.Force = other(o.Force)
	}
	switch o.Prefer {
	case PreferOne:
		s.Prefer = PreferTwo
	case PreferTwo:
		s.Prefer = PreferOne
	}
	s.NoDeletion[1], s.NoDeletion[2] = o.NoDeletion[2], o.NoDeletion[1]
	s.NoUpdate[1], s.NoUpdate[2] = o.NoUpdate[2], o.NoUpdate[1]
	s.NoCreation[1], s.NoCreation[2] = o.NoCreation[2], o.NoCreation[1]
	return s
}

func swapAction(a Action) Action {
	switch a {
	case OneToTwo:
		return TwoToOne
	case TwoToOne:
		return OneToTwo
	}
	return a
}

func TestPropertySwap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for run := range propertyRuns {
		base, one, two, opts := randomCase(r)
		in := inputFor(r, base, one, two)
		plan := Reconcile(in, opts)
		swapped := Reconcile(swapPaths(in), swapOptions(opts))
		if err := mirrored(plan, swapped); err != nil {
			t.Fatalf("run %d (options %+v): %v\ninput:\n%s", run, opts, err, dumpInput(in))
		}
	}
}

// mirrored reports how b fails to be a with its sides swapped.
func mirrored(a, b *Plan) error {
	if len(a.Items) != len(b.Items) {
		return fmt.Errorf("%d items, %d with sides swapped", len(a.Items), len(b.Items))
	}
	for i := range a.Items {
		x, y := a.Items[i], b.Items[i]
		switch {
		case x.Path != y.Path:
			return fmt.Errorf("item %d: %q, %q swapped", i, x.Path, y.Path)
		case swapAction(x.Action) != y.Action || swapAction(x.Default) != y.Default:
			return fmt.Errorf("%q: %v, %v with sides swapped", x.Path, x.Action, y.Action)
		case x.Base != y.Base || x.One != y.Two || x.Two != y.One:
			return fmt.Errorf("%q: states not swapped", x.Path)
		case x.TimeOnly != y.TimeOnly:
			return fmt.Errorf("%q: TimeOnly %v, %v swapped", x.Path, x.TimeOnly, y.TimeOnly)
		case (x.Reason == "") != (y.Reason == "") || (x.Resolved == "") != (y.Resolved == ""):
			return fmt.Errorf("%q: reasons %q/%q, %q/%q swapped", x.Path, x.Reason, x.Resolved, y.Reason, y.Resolved)
		case !slices.Equal(swapPaths(x.Sub), y.Sub):
			return fmt.Errorf("%q: Sub not swapped", x.Path)
		}
	}
	return nil
}

func TestPropertyIdenticalSidesGiveEmptyPlan(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for run := range propertyRuns {
		base := randomTree(r, nil, 0)
		var in []Path
		for _, p := range universe {
			if e := base[p]; e != nil {
				in = append(in, Path{Path: p, Base: e, One: e.Clone(), Two: e.Clone()})
			}
		}
		opts := randomOptions(r)
		if plan := Reconcile(in, opts); len(plan.Items) != 0 {
			t.Fatalf("run %d (options %+v): %d items for identical sides, first %s", run, opts, len(plan.Items), describe(plan.Items[0]))
		}
	}
}

// TestPropertyConverges carries out every item of a plan made without
// options on copies of both trees, the way the engine does (an item that
// covers a subtree carries the whole subtree of its source), and checks that
// every path not held back by a conflict now agrees on both sides and holds
// the change either side made to it, and that a second reconciliation, against an ancestor that records what agrees,
// plans nothing but the same conflicts.
func TestPropertyConverges(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for run := range propertyRuns {
		base, one, two, _ := randomCase(r)
		in := inputFor(r, base, one, two)
		plan := Reconcile(in, Options{})
		sides := [3]tree{1: clone(one), 2: clone(two)}
		held := map[string]bool{}
		for _, it := range plan.Items {
			switch it.Action {
			case Conflict, Skip:
				held[it.Path] = true
				continue
			case Record:
				continue
			}
			src, dst := sides[1], sides[2]
			if it.Action == TwoToOne {
				src, dst = dst, src
			}
			subtree := isDir(it.One) != isDir(it.Two)
			for _, p := range universe {
				if p == it.Path || subtree && state.IsBelow(p, it.Path) {
					copyPath(dst, src, p)
				}
			}
		}
		newBase := tree{}
		for _, p := range universe {
			if heldAbove(held, p) {
				if e := base[p]; e != nil {
					newBase[p] = e
				}
				continue
			}
			if !state.Equal(sides[1][p], sides[2][p]) {
				t.Fatalf("run %d: %q still differs after the plan\ninput:\n%s", run, p, dumpInput(in))
			}
			if e := sides[1][p]; e != nil {
				newBase[p] = e
			}
		}
		// Nothing a side changed is lost: where it is not held back, a
		// path changed on a side ends with that side's contents.
		for _, p := range universe {
			if heldAbove(held, p) {
				continue
			}
			for _, orig := range []tree{one, two} {
				if state.Changed(base[p], orig[p]) && state.Changed(orig[p], sides[1][p]) {
					t.Fatalf("run %d: the change to %q was lost\ninput:\n%s", run, p, dumpInput(in))
				}
			}
		}
		again := Reconcile(inputFor(r, newBase, sides[1], sides[2]), Options{})
		for _, it := range again.Items {
			if !heldAbove(held, it.Path) {
				t.Fatalf("run %d: second plan has %s, which the first one settled\ninput:\n%s", run, describe(it), dumpInput(in))
			}
		}
	}
}

// heldAbove reports whether p or a directory above it was held back.
func heldAbove(held map[string]bool, p string) bool {
	for q := p; q != ""; q = state.Parent(q) {
		if held[q] {
			return true
		}
	}
	return false
}

func clone(t tree) tree {
	c := tree{}
	for p, e := range t {
		c[p] = e.Clone()
	}
	return c
}

// copyPath makes dst's state at p that of src.
func copyPath(dst, src tree, p string) {
	if e := src[p]; e != nil {
		dst[p] = e.Clone()
	} else {
		delete(dst, p)
	}
}

func dumpInput(in []Path) string {
	s := ""
	for _, p := range in {
		s += fmt.Sprintf("  %-8s base %-22s one %-22s two %s\n", p.Path, show(p.Base), show(p.One), show(p.Two))
	}
	return s
}

func show(e *state.Entry) string {
	if e == nil {
		return "-"
	}
	switch e.Kind {
	case state.File:
		return fmt.Sprintf("file(%d,%04o,%d)", e.Hash[0], e.Mode, e.MTime)
	case state.Dir:
		return fmt.Sprintf("dir(%04o)", e.Mode)
	}
	return fmt.Sprintf("link(%s)", e.Target)
}

// FuzzReconcile lets the fuzzer choose the random generator's seed, and
// checks coverage, the per-item invariants and swap symmetry on the case it
// yields (go test -fuzz=FuzzReconcile ./reconcile/).
func FuzzReconcile(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64) {
		r := rand.New(rand.NewPCG(seed1, seed2))
		base, one, two, opts := randomCase(r)
		in := inputFor(r, base, one, two)
		plan := Reconcile(in, opts)
		if err := checkCoverage(in, plan); err != nil {
			t.Fatalf("%v\ninput:\n%s", err, dumpInput(in))
		}
		if err := checkItems(plan, opts); err != nil {
			t.Fatalf("options %+v: %v\ninput:\n%s", opts, err, dumpInput(in))
		}
		if err := mirrored(plan, Reconcile(swapPaths(in), swapOptions(opts))); err != nil {
			t.Fatalf("options %+v: %v\ninput:\n%s", opts, err, dumpInput(in))
		}
	})
}

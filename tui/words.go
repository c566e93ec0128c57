package tui

import (
	"fmt"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
)

// sideWord describes how a side's state differs from the ancestor (see
// reconcile.Describe).
func sideWord(base, cur *state.Entry) string { return reconcile.Describe(base, cur) }

// side returns the item's state on side s.
func side(it *reconcile.Item, s reconcile.Side) *state.Entry {
	if s == reconcile.One {
		return it.One
	}
	return it.Two
}

// subSide returns a descendant's state on side s.
func subSide(p *reconcile.Path, s reconcile.Side) *state.Entry {
	if s == reconcile.One {
		return p.One
	}
	return p.Two
}

// sideName is how a side is named in messages and flags.
func sideName(s reconcile.Side) string {
	if s == reconcile.One {
		return "side 1"
	}
	return "side 2"
}

// direction returns the source and destination sides of a propagating
// action, and ok=false for any other action.
func direction(a reconcile.Action) (src, dst reconcile.Side, ok bool) {
	switch a {
	case reconcile.OneToTwo:
		return reconcile.One, reconcile.Two, true
	case reconcile.TwoToOne:
		return reconcile.Two, reconcile.One, true
	}
	return reconcile.None, reconcile.None, false
}

// checkAction reports why it cannot be given action a, or nil. An arrow
// means "make the other side like this one", so propagating an absence (a
// deletion) is allowed; propagating nothing onto nothing is not, and
// neither is anything the run's guards (--no-deletion, --no-update,
// --no-creation) forbid on the destination side.
func checkAction(it *reconcile.Item, a reconcile.Action, guards *reconcile.Options) error {
	src, dst, ok := direction(a)
	if !ok {
		return nil
	}
	from, to := side(it, src), side(it, dst)
	if from == nil && to == nil {
		return fmt.Errorf("%s is absent on both sides; there is nothing to propagate", state.Display(it.Path))
	}
	if guards == nil {
		return nil
	}
	switch {
	case from == nil && guards.NoDeletion[dst]:
		return fmt.Errorf("--no-deletion forbids deleting %s on %s", state.Display(it.Path), sideName(dst))
	case to == nil && guards.NoCreation[dst]:
		return fmt.Errorf("--no-creation forbids creating %s on %s", state.Display(it.Path), sideName(dst))
	case from != nil && to != nil && guards.NoUpdate[dst]:
		return fmt.Errorf("--no-update forbids overwriting %s on %s", state.Display(it.Path), sideName(dst))
	}
	return nil
}

// moveBytes returns how many bytes of file contents action a copies for
// it: the source file's size, or the sizes of all files below a directory
// being created or replaced.
func moveBytes(it *reconcile.Item, a reconcile.Action) int64 {
	src, _, ok := direction(a)
	if !ok || it.TimeOnly {
		return 0
	}
	var n int64
	if e := side(it, src); e != nil && e.Kind == state.File && !state.SameContent(e, side(it, 3-src)) {
		n += e.Size
	}
	for i := range it.Sub {
		if e := subSide(&it.Sub[i], src); e != nil && e.Kind == state.File {
			n += e.Size
		}
	}
	return n
}

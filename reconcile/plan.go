package reconcile

import (
	"fmt"

	"github.com/concord-sync/concord/archive/state"
)

// Counts says how many items of a plan have each action.
type Counts struct {
	OneToTwo  int
	TwoToOne  int
	Conflicts int
	Skipped   int
	Recorded  int
}

// Propagations returns the number of items that move something, either way.
func (c Counts) Propagations() int { return c.OneToTwo + c.TwoToOne }

// Counts tallies the items of p by their current Action.
func (p *Plan) Counts() Counts {
	var c Counts
	for i := range p.Items {
		switch p.Items[i].Action {
		case OneToTwo:
			c.OneToTwo++
		case TwoToOne:
			c.TwoToOne++
		case Conflict:
			c.Conflicts++
		case Skip:
			c.Skipped++
		case Record:
			c.Recorded++
		}
	}
	return c
}

// Deletes returns how many entries the plan's items delete on their
// destinations, summing Deletes over the items.
func (p *Plan) Deletes() int {
	n := 0
	for i := range p.Items {
		n += Deletes(&p.Items[i])
	}
	return n
}

// Deletes returns how many entries the item's current Action deletes on its
// destination, for the --max-delete guard: the item's own path and each
// path of its Sub count once when the destination has an entry there and
// the source has none, or when a directory there is replaced by something
// else. Record, Conflict and Skip items delete nothing.
//
// Only the paths given to Reconcile are known here: unchanged descendants
// of a deleted directory are not passed, so they are not counted. A caller
// that wants the whole subtree counts, for each item where RemovesDir is
// true, the archived entries below it.Path that are not in it.Sub.
func Deletes(it *Item) int {
	if !moves(it.Action) {
		return 0
	}
	n := 0
	if ops(endpoints(it.Action, it.One, it.Two))&opDelete != 0 {
		n++
	}
	for _, d := range it.Sub {
		if ops(endpoints(it.Action, d.One, d.Two))&opDelete != 0 {
			n++
		}
	}
	return n
}

// RemovesDir reports whether the item's current Action removes a directory at
// it.Path on its destination (deleting it or replacing it with a file or a
// symlink), and with it everything below.
func RemovesDir(it *Item) bool {
	src, dst := endpoints(it.Action, it.One, it.Two)
	return moves(it.Action) && isDir(dst) && !isDir(src)
}

// Guarded returns the reason ("--no-deletion on side 2") why the options
// forbid carrying out action a on it, or "" when a is allowed. It checks
// the item's own path and every path of its Sub: a propagation deletes
// where the destination has an entry and the source has none (or replaces
// a directory with something else), creates where the destination has
// nothing, and overwrites (updates) where both have different entries.
// Record, Conflict and Skip are always allowed. Reconcile uses it for the
// default plan; a user interface uses it when a person picks a direction.
func Guarded(it *Item, a Action, opts Options) string {
	if !moves(a) {
		return ""
	}
	dest := Two
	if a == TwoToOne {
		dest = One
	}
	o := ops(endpoints(a, it.One, it.Two))
	for _, d := range it.Sub {
		o |= ops(endpoints(a, d.One, d.Two))
	}
	switch {
	case o&opDelete != 0 && opts.NoDeletion[dest]:
		return fmt.Sprintf("--no-deletion on side %d", dest)
	case o&opUpdate != 0 && opts.NoUpdate[dest]:
		return fmt.Sprintf("--no-update on side %d", dest)
	case o&opCreate != 0 && opts.NoCreation[dest]:
		return fmt.Sprintf("--no-creation on side %d", dest)
	}
	return ""
}

// The effects of a propagation on one destination path.
const (
	opDelete = 1 << iota
	opUpdate
	opCreate
)

// ops returns the effects of installing src over dst on one path.
func ops(src, dst *state.Entry) int {
	switch {
	case state.Equal(src, dst):
		return 0
	case src == nil:
		return opDelete
	case dst == nil:
		return opCreate
	case isDir(dst) && !isDir(src):
		return opDelete | opUpdate
	}
	return opUpdate
}

// endpoints returns the source and destination states of one path for
// action a (both nil when a moves nothing).
func endpoints(a Action, one, two *state.Entry) (src, dst *state.Entry) {
	switch a {
	case OneToTwo:
		return one, two
	case TwoToOne:
		return two, one
	}
	return nil, nil
}

// moves reports whether a propagates something.
func moves(a Action) bool { return a == OneToTwo || a == TwoToOne }

// Describe says in Unison's words how a side's current state cur differs
// from the ancestor base: "new file", "new dir", "new link", "changed",
// "deleted", "props" (only permissions or modification time), "unchanged",
// or "" when the path is absent and always was.
func Describe(base, cur *state.Entry) string {
	switch {
	case cur == nil && base == nil:
		return ""
	case cur == nil:
		return "deleted"
	case base == nil || base.Kind != cur.Kind:
		switch cur.Kind {
		case state.Dir:
			return "new dir"
		case state.Symlink:
			return "new link"
		}
		return "new file"
	case !state.SameContent(base, cur):
		return "changed"
	case !state.SamePerm(base, cur) || !state.SameTime(base, cur):
		return "props"
	}
	return "unchanged"
}

package reconcile

import (
	"fmt"

	"github.com/concord-sync/concord/archive/state"
)

// This file holds the reconciler: one pure function from the paths that
// differ (ancestor, side 1, side 2) and the user's options to a plan.
//
// The invariants it keeps, each checked by the tests of this package (the
// table in reconcile_test.go, the random trees in property_test.go):
//
//  1. Reconcile does no I/O and keeps no state: the same input always gives
//     the same plan. It never writes through the entries it is given; the
//     items share those *state.Entry pointers, and each Sub is a fresh copy.
//
//  2. Items come out in the order of the input (state.ComparePaths). Every
//     input path is covered exactly once: it is the Path of one item, it is
//     in the Sub of one item, or nothing differs on it (ancestor, side 1 and
//     side 2 are state.Equal) and it produces nothing.
//
//  3. A path whose two sides are equal in contents and permissions never
//     becomes a conflict. If they differ only in modification time, the
//     newer time is carried to the other side (TimeOnly); if they are
//     state.Equal but differ from the ancestor, the item is a Record, so the
//     archives learn the new state (or forget the path, when both sides
//     deleted it).
//
//  4. Without --force or --prefer, nothing a side changed is deleted or
//     overwritten: a propagation only ever replaces a state that is
//     unchanged from the ancestor on its destination, or carries a newer
//     time onto one that already has the source's contents and permissions,
//     on the item's path and on every path of its Sub. Two different changes
//     to the same path make a Conflict, whose Reason says what each side
//     did. "Changed" is state.Changed: kind, contents, symlink target or
//     permission bits.
//
//  5. A modification time that changed alone is a property, never a
//     change: it propagates on its own (TimeOnly), the newer time wins when
//     both sides touched a file, and it never holds back a change of
//     contents, kind, permissions or a deletion made on the other side (the
//     new contents carry their own time).
//
//  6. A path without an ancestor that exists on one side only is created on
//     the other: a first sync, or a sync after an archive was lost, never
//     deletes anything. If it exists on both sides and differs, it is a
//     Conflict.
//
//  7. A directory on both sides is walked into: its item, if any, is about
//     its own permission bits only, and every path below it stands on its
//     own. Children are never grouped under such a directory.
//
//  8. When one side has a directory and the other does not (it is created,
//     deleted or replaced by something else), a single item covers the
//     whole subtree: every input path below it goes into that item's Sub and
//     gets no item of its own. Deleting or replacing such a directory while
//     the other side changed something below it is a Conflict on the
//     directory, with those changes in Sub. A path below that the other side
//     only touched (a new time) or deleted as well does not count: the
//     deletion loses nothing anyone made.
//
//  9. The options act after the table, in this order: --force sends every
//     difference from its side, conflicts and deletions included; --prefer
//     then settles the remaining conflicts (the conflict's reason moves to
//     Resolved); last, --no-deletion, --no-update and --no-creation turn any
//     propagation that would do such a thing on their side into a Skip with
//     a Reason naming the flag. Default is always equal to Action.
//
//  10. The plan is symmetric: swapping side 1 and side 2 in the input (and
//      in the options) swaps OneToTwo and TwoToOne in every item, and One
//      and Two in every item and in every Sub; nothing else changes but the
//      side numbers in the reasons.

// Reconcile classifies every path of paths (sorted by state.ComparePaths,
// as described on Path) by the SPEC's table, applies opts, and returns the
// plan. It does no I/O; see the invariants at the top of this file.
func Reconcile(paths []Path, opts Options) *Plan {
	plan := &Plan{}
	for i := 0; i < len(paths); {
		p := paths[i]
		j := i + 1
		if isDir(p.One) != isDir(p.Two) {
			// One side has a directory the other lacks: the item covers
			// the subtree.
			for j < len(paths) && state.IsBelow(paths[j].Path, p.Path) {
				j++
			}
		}
		if it, ok := decide(p, paths[i+1:j], opts); ok {
			plan.Items = append(plan.Items, it)
		}
		i = j
	}
	return plan
}

// decide builds the item for p (with sub, the input paths below it when it
// covers a subtree), or reports false when nothing differs on p.
func decide(p Path, sub []Path, opts Options) (Item, bool) {
	it := Item{Path: p.Path, Base: p.Base, One: p.One, Two: p.Two}
	if len(sub) > 0 {
		it.Sub = append([]Path(nil), sub...)
	}
	action, reason, ok := classify(p, sub)
	if !ok {
		return it, false
	}
	it.TimeOnly = timeOnly(p.One, p.Two)

	// --force: every difference goes from the forced side.
	if opts.Force == One || opts.Force == Two {
		if !state.Equal(p.One, p.Two) {
			if action == Conflict {
				it.Resolved = reason
			}
			action, reason = from(opts.Force), ""
		}
	}
	// --prefer: settle what is still a conflict.
	if action == Conflict {
		if side := preferred(opts.Prefer, p); side != None {
			it.Resolved = reason
			action, reason = from(side), ""
		}
	}
	// Guards: forbidden propagations become skips.
	if moves(action) {
		if g := Guarded(&it, action, opts); g != "" {
			it.Held, action, reason = action, Skip, g
		}
	}
	it.Action, it.Default, it.Reason = action, action, reason
	return it, true
}

// classify applies the SPEC's table to one path: it returns the action, the
// reason for a conflict, and false when nothing differs on the path.
func classify(p Path, sub []Path) (Action, string, bool) {
	b, o, t := p.Base, p.One, p.Two
	ch1, ch2 := state.Changed(b, o), state.Changed(b, t)
	switch {
	case !ch1 && !ch2:
		// At most modification times moved.
		t1, t2 := !state.SameTime(b, o), !state.SameTime(b, t)
		switch {
		case !t1 && !t2:
			return 0, "", false
		case state.SameTime(o, t):
			// Both touched the file, to the same time.
			return Record, "", true
		case t1 && !t2:
			return OneToTwo, "", true
		case t2 && !t1:
			return TwoToOne, "", true
		}
		return newer(o, t), "", true
	case ch1 && !ch2:
		if isDir(t) && !isDir(o) {
			if r := changedBelow(Two, sub); r != "" {
				return Conflict, phrase(One, b, o) + ", " + r, true
			}
		}
		return OneToTwo, "", true
	case !ch1 && ch2:
		if isDir(o) && !isDir(t) {
			if r := changedBelow(One, sub); r != "" {
				return Conflict, phrase(Two, b, t) + ", " + r, true
			}
		}
		return TwoToOne, "", true
	}
	// Both sides changed.
	if state.SameContent(o, t) && state.SamePerm(o, t) {
		if state.SameTime(o, t) {
			return Record, "", true
		}
		return newer(o, t), "", true
	}
	return Conflict, conflictReason(b, o, t), true
}

// changedBelow returns "changed below on side s (N paths)" when some path of
// sub changed on side s, or "" otherwise. sub lies below a directory that
// the other side deleted or replaced, so a path counts when side s changed
// it (state.Changed) to something that exists: a touched time alone does not
// hold back the deletion, and neither does a path that side s deleted too.
func changedBelow(s Side, sub []Path) string {
	n := 0
	for _, d := range sub {
		if cur := sideState(d, s); cur != nil && state.Changed(d.Base, cur) {
			n++
		}
	}
	switch n {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf("changed below on side %d (1 path)", s)
	}
	return fmt.Sprintf("changed below on side %d (%d paths)", s, n)
}

// conflictReason says in words how both sides changed a path differently.
func conflictReason(b, o, t *state.Entry) string {
	v1, d1 := change(b, o)
	v2, d2 := change(b, t)
	switch {
	case v1 == "created" && v2 == "created":
		switch {
		case o.Kind != t.Kind:
			return fmt.Sprintf("created on both sides as different kinds (%s on side 1, %s on side 2)", o.Kind, t.Kind)
		case !state.SameContent(o, t):
			return "created on both sides with different contents"
		}
		return fmt.Sprintf("created on both sides with different permissions (%04o on side 1, %04o on side 2)", perm(o), perm(t))
	case v1 != v2:
	case v1 == "modified":
		if state.SameContent(o, t) {
			return fmt.Sprintf("both sides modified, to the same contents with different permissions (%04o on side 1, %04o on side 2)", perm(o), perm(t))
		}
		return "both sides modified"
	case v1 == "permissions changed":
		return fmt.Sprintf("permissions changed on both sides (%04o→%04o on side 1, %04o→%04o on side 2)", perm(b), perm(o), perm(b), perm(t))
	case v1 == "kind changed" && o.Kind == t.Kind:
		what := "contents"
		if state.SameContent(o, t) {
			what = "permissions"
		}
		return fmt.Sprintf("kind changed on both sides (%s→%s), to different %s", b.Kind, o.Kind, what)
	case v1 == "kind changed":
		return fmt.Sprintf("kind changed on both sides (%s→%s on side 1, %s→%s on side 2)", b.Kind, o.Kind, b.Kind, t.Kind)
	}
	return phraseOf(One, v1, d1) + ", " + phraseOf(Two, v2, d2)
}

// change describes how cur differs from base: a verb ("created", "deleted",
// "kind changed", "modified", "permissions changed") and a detail in
// parentheses (or "").
func change(base, cur *state.Entry) (verb, detail string) {
	switch {
	case base == nil && cur == nil:
		return "unchanged", ""
	case base == nil:
		return "created", ""
	case cur == nil:
		return "deleted", ""
	case base.Kind != cur.Kind:
		return "kind changed", fmt.Sprintf("(%s→%s)", base.Kind, cur.Kind)
	case !state.SameContent(base, cur):
		return "modified", ""
	case !state.SamePerm(base, cur):
		return "permissions changed", fmt.Sprintf("(%04o→%04o)", perm(base), perm(cur))
	}
	return "unchanged", ""
}

// phrase describes side s's change, e.g. "kind changed on side 1 (file→dir)".
func phrase(s Side, base, cur *state.Entry) string {
	v, d := change(base, cur)
	return phraseOf(s, v, d)
}

func phraseOf(s Side, verb, detail string) string {
	if detail == "" {
		return fmt.Sprintf("%s on side %d", verb, s)
	}
	return fmt.Sprintf("%s on side %d %s", verb, s, detail)
}

// preferred returns the side --prefer picks for the conflict on p, or None
// when it does not settle it.
func preferred(pr Prefer, p Path) Side {
	switch pr {
	case PreferOne:
		return One
	case PreferTwo:
		return Two
	case PreferNewer, PreferOlder:
		s := newerSide(p.One, p.Two)
		if s == None || pr == PreferNewer {
			return s
		}
		return other(s)
	}
	return None
}

// newerSide returns the side whose state is newer: the existing one when
// the other is absent, else the one with the later modification time; None
// on a tie.
func newerSide(o, t *state.Entry) Side {
	switch {
	case o == nil && t == nil:
		return None
	case t == nil:
		return One
	case o == nil:
		return Two
	case o.MTime > t.MTime:
		return One
	case t.MTime > o.MTime:
		return Two
	}
	return None
}

// newer returns the propagation from the file with the later time; o and t
// are files whose times differ.
func newer(o, t *state.Entry) Action {
	if o.MTime > t.MTime {
		return OneToTwo
	}
	return TwoToOne
}

// timeOnly reports whether o and t differ in their modification time alone.
func timeOnly(o, t *state.Entry) bool {
	return state.SameContent(o, t) && state.SamePerm(o, t) && !state.SameTime(o, t)
}

// from returns the propagation whose source is s.
func from(s Side) Action {
	if s == One {
		return OneToTwo
	}
	return TwoToOne
}

func other(s Side) Side {
	if s == One {
		return Two
	}
	return One
}

// sideState returns p's state on side s.
func sideState(p Path, s Side) *state.Entry {
	if s == One {
		return p.One
	}
	return p.Two
}

func isDir(e *state.Entry) bool { return e != nil && e.Kind == state.Dir }

func perm(e *state.Entry) uint32 {
	if e == nil {
		return 0
	}
	return e.Mode & state.PermMask
}

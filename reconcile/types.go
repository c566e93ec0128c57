package reconcile

import "github.com/concord-sync/concord/archive/state"

// Path is the input for one path: its ancestor (the archived entry both
// sides agree on; nil when there is none or the path did not exist) and its
// current state on each side (nil when absent).
//
// The caller passes every path that changed on either side, or whose
// archives disagree, sorted by state.ComparePaths. A path that is unchanged
// on a side carries the ancestor as that side's state. A directory deleted on
// a side is passed once, without its descendants; descendants that changed on
// the other side are passed as their own Paths.
type Path struct {
	Path string
	Base *state.Entry
	One  *state.Entry
	Two  *state.Entry
}

// Action is what the plan does with an item.
type Action uint8

// The actions of a plan item.
const (
	// Record: both sides already agree; only the archives are updated.
	Record Action = iota
	// OneToTwo propagates side 1's state to side 2.
	OneToTwo
	// TwoToOne propagates side 2's state to side 1.
	TwoToOne
	// Conflict: both sides changed differently; nothing moves until a
	// person (or --prefer) decides.
	Conflict
	// Skip: an action that a guard (--no-deletion, ...) or the user held
	// back; nothing moves.
	Skip
)

// Attempted returns the direction a skipped item would have gone: the
// propagation a guard held back, or the one Reconcile chose before a person
// set the item aside. For any other item it is the item's Action.
func (it *Item) Attempted() Action {
	if it.Action != Skip {
		return it.Action
	}
	switch {
	case it.Held == OneToTwo || it.Held == TwoToOne:
		return it.Held
	case it.Default == OneToTwo || it.Default == TwoToOne:
		return it.Default
	}
	return Skip
}

// String returns the name of a.
func (a Action) String() string {
	switch a {
	case Record:
		return "record"
	case OneToTwo:
		return "1to2"
	case TwoToOne:
		return "2to1"
	case Conflict:
		return "conflict"
	case Skip:
		return "skip"
	}
	return "unknown"
}

// Arrow returns the Unison-style arrow for a: "---->", "<----", "<-?->",
// "-----" (skip) or "=====" (record).
func (a Action) Arrow() string {
	switch a {
	case OneToTwo:
		return "---->"
	case TwoToOne:
		return "<----"
	case Conflict:
		return "<-?->"
	case Skip:
		return "-----"
	}
	return "====="
}

// Item is one entry of a plan: a path (and, when one side is a directory
// the other side lacks, everything below it) and what to do with it.
type Item struct {
	Path string
	Base *state.Entry
	One  *state.Entry
	Two  *state.Entry
	// Action is the current decision; Default is what Reconcile chose, so
	// a user interface can revert a choice.
	Action  Action
	Default Action
	// Reason explains a Conflict or Skip in words ("both sides modified",
	// "--no-deletion on side 2"). Empty for propagations.
	Reason string
	// Held is the propagation (OneToTwo or TwoToOne) that a guard such as
	// --no-deletion turned into this Skip; Record otherwise.
	Held Action
	// Resolved holds the conflict's reason when --prefer or --force turned
	// the conflict into a propagation (which a guard may then have turned
	// into a Skip), so a report can say what was settled without asking.
	// Empty when the table itself chose the action.
	Resolved string
	// TimeOnly is set when the propagation carries only the modification
	// time: contents, kind and permissions already agree.
	TimeOnly bool
	// Sub lists the descendants covered by this item, sorted, when the item
	// creates, deletes or replaces a directory on one side. Each Sub entry
	// carries both sides' state as known from the scans.
	Sub []Path
}

// Changes1 and the like are convenience accessors used by reports.

// Source returns the state that the item's current action installs and
// Dest the state it replaces; both nil for Record, Conflict and Skip.
func (it *Item) Source() *state.Entry {
	switch it.Action {
	case OneToTwo:
		return it.One
	case TwoToOne:
		return it.Two
	}
	return nil
}

// Dest returns the state on the side that the current action overwrites.
func (it *Item) Dest() *state.Entry {
	switch it.Action {
	case OneToTwo:
		return it.Two
	case TwoToOne:
		return it.One
	}
	return nil
}

// Plan is the result of reconciliation: the items in path order.
type Plan struct {
	Items []Item
}

// Side names one of the two roots.
type Side uint8

// The sides. None is the zero value ("no side chosen").
const (
	None Side = 0
	One  Side = 1
	Two  Side = 2
)

// Prefer says how conflicts are resolved without asking.
type Prefer uint8

// The --prefer choices.
const (
	PreferNone Prefer = iota
	PreferOne
	PreferTwo
	PreferNewer
	PreferOlder
)

// Options are the user's policy flags, applied by Reconcile after the
// table has classified every path.
type Options struct {
	Prefer Prefer
	// Force mirrors that side onto the other: every difference goes from it,
	// deletions included, whatever the ancestor says.
	Force Side
	// NoDeletion[s], NoUpdate[s], NoCreation[s] (s = 1 or 2; index 0 is
	// unused) forbid deleting, overwriting or creating on side s; such
	// actions become Skip items with a Reason.
	NoDeletion [3]bool
	NoUpdate   [3]bool
	NoCreation [3]bool
}

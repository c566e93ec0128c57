package report

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
)

// SchemaVersion is the version of the report data model written in the
// JSON "schema_version" field. It changes only when a field changes
// meaning or disappears; new optional fields keep the version.
const SchemaVersion = 1

// The statuses of a report item.
const (
	// StatusConflict: both sides changed differently and nothing moved.
	StatusConflict = "conflict"
	// StatusSkipped: a guard (--no-deletion, ...) or a person held the
	// action back.
	StatusSkipped = "skipped"
	// StatusFailed: the action was tried and failed (an I/O error, a path
	// changed during the sync); nothing was lost.
	StatusFailed = "failed"
)

// Report is everything a conflict report holds: the pair, the run it
// describes and one Item per unresolved path. Every format writes all of
// it.
type Report struct {
	// SchemaVersion is the data model's version; writers set it to the
	// package's SchemaVersion when it is 0.
	SchemaVersion int
	// Generated is when the report was made.
	Generated time.Time
	// Root1 and Root2 are the roots as the user wrote them.
	Root1, Root2 string
	// AllRuns is set when Items gathers every run kept in the history,
	// not just the last one.
	AllRuns bool
	// Run describes the run the report is about (the last one when
	// AllRuns is set).
	Run RunInfo
	// Items lists the unresolved paths, in the order they are written.
	Items []Item
}

// RunInfo summarises one run.
type RunInfo struct {
	Start, End time.Time
	// ExitCode is the run's exit code (SPEC.md: 0 in sync, 1 skipped,
	// 2 failed, 3 fatal).
	ExitCode int
	// DryRun is set when the run changed nothing by request.
	DryRun bool
	// Propagated, Conflicts, Skipped and Failed count the run's items;
	// Bytes is how much file content moved.
	Propagated int
	Conflicts  int
	Skipped    int
	Failed     int
	Bytes      int64
	// Error says why the run stopped before it could finish (exit code
	// 3: a guard, a lock, a missing root); "" for a run that finished.
	Error string
}

// Item is one path that the run left unresolved.
type Item struct {
	// Path is the slash-separated path relative to both roots (raw bytes).
	Path string
	// Status is StatusConflict, StatusSkipped or StatusFailed.
	Status string
	// Action is the plan's action for the item as reconcile names it:
	// "conflict", "skip", "1to2" or "2to1" (the direction that failed or
	// was held back).
	Action string
	// Reason says in words why the item is in the report.
	Reason string
	// FirstSeen is when the item was first reported for this path, and
	// TimesSeen in how many runs (both from the run history; zero when
	// unknown).
	FirstSeen time.Time
	TimesSeen int
	// Base is the state both sides last agreed on (nil: none).
	Base *Side
	// Side1 and Side2 are the states on each side (nil: absent there).
	Side1, Side2 *Side
	// Diff is a unified diff from side 1 to side 2 for text files (see
	// UnifiedDiff); empty when not computed or not text.
	Diff string
}

// Side is the state of a path on one side.
type Side struct {
	// Kind is "file", "dir" or "symlink".
	Kind string
	// Size is a file's length in bytes.
	Size int64
	// MTime is the modification time.
	MTime time.Time
	// Mode holds the permission bits in octal, e.g. "0644" (empty for a
	// symlink).
	Mode string
	// Hash is the BLAKE3-256 of a file's contents or a symlink's target,
	// in lower-case hex (empty for a directory).
	Hash string
	// Target is a symlink's target (raw bytes).
	Target string
}

// NewSide describes an entry for a report; nil (absent) gives nil.
func NewSide(e *state.Entry) *Side {
	if e == nil {
		return nil
	}
	s := &Side{Kind: e.Kind.String()}
	switch e.Kind {
	case state.File:
		s.Size = e.Size
		if !e.Unhashed {
			s.Hash = hex.EncodeToString(e.Hash[:])
		}
	case state.Symlink:
		s.Target = e.Target
		if e.Hash != [32]byte{} {
			s.Hash = hex.EncodeToString(e.Hash[:])
		}
	}
	if e.Kind != state.Symlink {
		s.Mode = fmt.Sprintf("%04o", e.Mode&state.PermMask)
	}
	if e.MTime != 0 {
		s.MTime = time.Unix(0, e.MTime).UTC()
	}
	return s
}

// NewItem describes a plan item with the given status and reason; the
// history fields (FirstSeen, TimesSeen) and Diff are left to the caller.
func NewItem(it *reconcile.Item, status, reason string) Item {
	if reason == "" {
		reason = it.Reason
	}
	return Item{
		Path:   it.Path,
		Status: status,
		Action: it.Attempted().String(),
		Reason: reason,
		Base:   NewSide(it.Base),
		Side1:  NewSide(it.One),
		Side2:  NewSide(it.Two),
	}
}

// Count returns how many items have the given status.
func (r *Report) Count(status string) int {
	n := 0
	for i := range r.Items {
		if r.Items[i].Status == status {
			n++
		}
	}
	return n
}

// version returns the schema version to write.
func (r *Report) version() int {
	if r.SchemaVersion == 0 {
		return SchemaVersion
	}
	return r.SchemaVersion
}

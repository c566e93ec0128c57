package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/remote"
)

// Config is everything one run needs, after the profile and the command
// line have been merged.
type Config struct {
	// Root1 and Root2 are the roots as the user wrote them (a local path or
	// an ssh:// or scp-like remote).
	Root1, Root2 string
	// Options are the reconciliation policy flags.
	Options reconcile.Options
	// Ignore holds gitignore-style patterns, relative to each root.
	Ignore []string
	// DryRun plans and reports but changes nothing on either side.
	DryRun bool
	// MaxDelete is the --max-delete guard: "N" or "P%"; empty means the
	// default (50% when more than 100 entries are archived).
	MaxDelete string
	// BackupDir and MaxBackups keep replaced versions (see --backup-dir).
	BackupDir  string
	MaxBackups int
	// Compress asks for zstd compression on remote links.
	Compress bool
	// Dial opens the endpoint for a root; nil opens local roots only.
	Dial func(ctx context.Context, root string) (remote.Endpoint, error)
	// Log, if set, receives one record per item and per run.
	Log *slog.Logger
	// Version is the concord version, recorded in history.
	Version string
}

// Phase names where a run stands, for progress displays.
type Phase uint8

// The phases of a run.
const (
	PhaseConnect Phase = iota
	PhaseScan
	PhaseReconcile
	PhaseTransfer
	PhaseDone
)

// ScanEvent reports scanning progress for one side.
type ScanEvent struct {
	Side reconcile.Side
	remote.ScanProgress
	// Done is set once that side's scan has finished.
	Done bool
}

// Progress reports transfer progress. It is delivered from one goroutine.
type Progress struct {
	FilesDone, FilesTotal int64
	BytesDone, BytesTotal int64
	// Current is the path being transferred (raw bytes; escape with
	// state.Display before showing it).
	Current string
	// Failed is set when an item has just failed.
	Failed *Outcome
	// Elapsed since the transfer started.
	Elapsed time.Duration
}

// Status is what happened to one plan item.
type Status uint8

// The outcomes of an item.
const (
	// Done: the action was carried out (or only recorded) on both sides.
	Done Status = iota
	// Skipped: a conflict left alone or a guarded or user-skipped action.
	Skipped
	// Failed: an I/O error or a change during the sync; nothing was lost.
	Failed
)

// String names s.
func (s Status) String() string {
	switch s {
	case Done:
		return "done"
	case Skipped:
		return "skipped"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Outcome pairs a plan item with what happened to it.
type Outcome struct {
	Item   *reconcile.Item
	Status Status
	// Err explains a failure; Reason a skip.
	Err    error
	Reason string
}

// Result summarises a finished run.
type Result struct {
	Start, End time.Time
	Root1      string
	Root2      string
	// Outcomes lists every item that was not a pure Record, in path order.
	Outcomes []Outcome
	// Propagated counts items carried out, Skipped those left for a
	// person, Failed those that failed, including the paths a scan could
	// not read (the ScanProblems that are not warnings); Bytes the
	// contents moved.
	Propagated, Skipped, Failed int
	Bytes                       int64
	// ScanProblems lists paths a scan skipped (unreadable, special files).
	ScanProblems []remote.Problem
	DryRun       bool
}

// ExitCode maps the result to SPEC.md's codes: 0 in sync, 1 items skipped,
// 2 items failed.
func (r *Result) ExitCode() int {
	switch {
	case r.Failed > 0:
		return 2
	case r.Skipped > 0:
		return 1
	}
	return 0
}

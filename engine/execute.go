package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/internal/bufpool"
	"github.com/concord-sync/concord/internal/fdlimit"
	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
	"github.com/concord-sync/concord/remote/local"
)

// HookEnv names an environment variable holding a shell command that runs
// after planning and before anything is changed. Tests use it to edit a file
// between scan and propagation.
const HookEnv = "CONCORD_TEST_HOOK_BEFORE_PROPAGATE"

// workers is how many file transfers run at once. Each waits for its
// file's flush to disk at the destination (except a small file bound for
// a remote side, handed over to the link's put batches: see putAsync),
// which many files share, so more
// transfers in flight make bigger, fewer flushes; over a link they also
// keep it busy. With 256, a first sync of 100,000 small files left a
// quarter of the machine idle, every transfer waiting on a flush: 1,024
// took 12% less time over SSH (7.7–8.0 s to 6.6–6.9 s) and 10–15% less
// locally. 4,096 gained nothing more alone, but together with flushes that
// wait longer for their group (remote/local's gather and quiet) they make
// a quarter as many flushes: over SSH 11% less time again (median), locally the
// same or better. The cost is memory, mostly the workers' stacks: the
// client's peak RSS in a remote first sync of 100,000 files went from
// 127–153 MiB to 251–271 MiB (2,048 workers: 169–185 MiB).
const workers = 4096

// workerCount is how many workers Execute runs: workers, or fewer under a
// low limit of open files, as a worker waiting for its flush holds up to
// three descriptors (the source, the new file and its directory) and the
// archives, the link and the scans need some too. With 1,024 workers a
// first sync under `ulimit -n 256` failed every file.
func workerCount() int {
	return int(min(max(fdlimit.Available()/4, 16), workers))
}

// bigFile is the size from which a file transfer takes one of maxBig
// slots: the workers are many so that small files share flushes, but large
// files gain nothing from more than a few at once, and each holds copy
// buffers (and over a link, a window of chunks) and makes the disk seek
// between them.
const (
	bigFile = 1 << 20
	maxBig  = 16
)

// inflightBytes bounds the smaller files in flight by their total size (each
// counted as at least 4 KiB): a file under bigFile is held in memory on its
// way over a link (whole, or a window of chunks), on both sides, and 1,024
// workers with files of 256 KiB would hold 256 MiB. Small files never reach it: 1,024 files of
// 4 KiB are 4 MiB. A variable so that tests can lower it.
var inflightBytes int64 = 64 << 20

// deltaThreshold is the smallest destination file for which a delta
// transfer is tried on a remote link.
const deltaThreshold = 64 << 10

// Signer is implemented by endpoints that can compute the rsync-style
// signature of a file they hold (the destination of a delta transfer).
type Signer interface {
	Signature(ctx context.Context, p string, expect *state.Entry) (*delta.Sig, error)
}

// DeltaReader is implemented by endpoints that can compute, on their side,
// the delta of a file they hold against a signature (the source of a delta
// transfer over a remote link).
type DeltaReader interface {
	ReadDelta(ctx context.Context, p string, expect *state.Entry, sig *delta.Sig, c delta.Confirm) (io.ReadCloser, error)
}

// historian is implemented by endpoints whose archive is on this machine.
type historian interface{ Archive() *archive.DB }

type executor struct {
	s        *Session
	ctx      context.Context
	stopRun  context.CancelFunc
	fatal    error // guarded by mu
	progress func(Progress)
	start    time.Time

	mu       sync.Mutex
	prog     Progress
	lastProg time.Time
	outcomes []Outcome
	res      *Result

	commitMu  sync.Mutex // guards pending and commitErr
	pending   [3][]remote.Record
	commitErr error
	flushMu   sync.Mutex    // held while the archives write
	kick      chan struct{} // wakes the committer early

	jobs    chan func()
	workers sync.WaitGroup
	// async counts the puts handed to an AsyncPutter whose outcome is
	// still to come; asyncSlots bounds them (a slot each) to as many as
	// there are workers, as when each worker waited for its own.
	async      sync.WaitGroup
	asyncSlots chan struct{}
	// big holds a slot per large file being transferred (see bigFile);
	// mem the bytes of the smaller ones (inflightBytes).
	big   chan struct{}
	mem   *semaphore.Weighted
	bytes atomic.Int64
	// finalDirs holds directories created with extra owner permissions
	// that get their real mode once everything below them is written
	// (parents before their children; guarded by mu).
	finalDirs []finalDir
	// creating holds the directories being created, by path (guarded by
	// mu); mkdirs counts their goroutines.
	creating map[string]*dirWait
	mkdirs   sync.WaitGroup
}

// dirWait is a directory being created on the destination: what goes
// inside it waits for it. Creating directories one after another in the
// dispatching goroutine made a first sync over SSH wait for a round trip
// per directory, behind the files already in flight on the same link: 5.9
// s of a 7.1 s first sync of 100,000 files in 1,000 directories, with the
// transfer workers idle for want of work.
type dirWait struct {
	done chan struct{}
	err  error // set before done is closed
}

// parentWait returns the creation of p's parent, if this run creates it.
func (x *executor) parentWait(p string) *dirWait {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.creating[state.Parent(p)]
}

// wait waits for the directory's creation and returns its error (nil
// for a nil dirWait).
func (w *dirWait) wait() error {
	if w == nil {
		return nil
	}
	<-w.done
	return w.err
}

type finalDir struct {
	tr         *tracker
	side       reconcile.Side
	path       string
	want, have *state.Entry
	src        *state.Entry
}

// tracker follows the operations of one plan item.
type tracker struct {
	it        *reconcile.Item
	remaining atomic.Int64
	mu        sync.Mutex
	err       error
}

// Execute carries out every item whose Action is OneToTwo or TwoToOne,
// records what really happened in both archives item by item, and returns
// the outcome of every item. Conflicts and skipped items are left alone.
func (s *Session) Execute(ctx context.Context, progress func(Progress)) (*Result, error) {
	outer := ctx
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	x := &executor{s: s, ctx: ctx, stopRun: stop, progress: progress, start: time.Now()}
	x.res = &Result{Start: x.start, Root1: s.cfg.Root1, Root2: s.cfg.Root2, DryRun: s.cfg.DryRun}
	roots := [3]string{"", s.cfg.Root1, s.cfg.Root2}
	for i := 1; i <= 2; i++ {
		for _, p := range s.scan[i].Skipped {
			// Which side: the same directory unreadable on both sides
			// gave two identical lines.
			p.Err = fmt.Sprintf("%s (side %d, %s)", p.Err, i, roots[i])
			x.res.ScanProblems = append(x.res.ScanProblems, p)
		}
	}
	// A path a scan could not read failed like an item that could not be
	// carried out: it counts among the failures of the summary, the report
	// and the history, not only in the exit code.
	for _, p := range x.res.ScanProblems {
		if !p.Warning {
			x.res.Failed++
		}
	}
	hist, runID := s.beginHistory(ctx, x.start)
	if cmd := os.Getenv(HookEnv); cmd != "" && !s.cfg.DryRun {
		out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("test hook %q: %v: %s", cmd, err, out)
		}
	}
	x.totals()
	if !s.cfg.DryRun {
		x.jobs = make(chan func())
		x.big = make(chan struct{}, maxBig)
		x.mem = semaphore.NewWeighted(inflightBytes)
		n := workerCount()
		x.asyncSlots = make(chan struct{}, n)
		// Many transfers in flight keep the link busy and let many small
		// files share one flush to disk at the destination.
		for range n {
			x.workers.Add(1)
			go func() {
				defer x.workers.Done()
				for j := range x.jobs {
					j()
				}
			}()
		}
		stop := x.startCommitter()
		for i := range s.plan.Items {
			it := &s.plan.Items[i]
			if err := ctx.Err(); err != nil {
				// Interrupted, or an endpoint was lost: what did not run is
				// reported as failed, untouched, for the next run.
				if it.Action != reconcile.Record {
					why := fmt.Errorf("not carried out: the run was interrupted (%w)", err)
					if f := x.fatalErr(); f != nil {
						why = fmt.Errorf("not carried out: %w", f)
					}
					x.outcome(Outcome{Item: it, Status: Failed, Err: why})
				}
				continue
			}
			x.item(it)
		}
		for _, p := range s.forget {
			x.commit(1, p, nil)
			x.commit(2, p, nil)
		}
		close(x.jobs)
		x.workers.Wait()
		x.async.Wait()
		x.mkdirs.Wait()
		x.finishDirs()
		stop()
	} else {
		for i := range s.plan.Items {
			it := &s.plan.Items[i]
			switch it.Action {
			case reconcile.Record:
			case reconcile.Conflict, reconcile.Skip:
				x.outcome(Outcome{Item: it, Status: Skipped, Reason: it.Reason})
			default:
				x.outcome(Outcome{Item: it, Status: Skipped, Reason: "dry run"})
			}
		}
	}
	x.res.End = time.Now()
	slices.SortFunc(x.outcomes, func(a, b Outcome) int { return state.ComparePaths(a.Item.Path, b.Item.Path) })
	x.res.Outcomes = x.outcomes
	x.res.Bytes = x.bytes.Load()
	for _, o := range x.outcomes {
		switch o.Status {
		case Done:
			x.res.Propagated++
		case Skipped:
			x.res.Skipped++
		case Failed:
			x.res.Failed++
		}
	}
	x.report(true)
	s.finishHistory(ctx, hist, runID, x.res)
	if err := x.commitError(); err != nil {
		return x.res, fmt.Errorf("record the run in the archives: %w", err)
	}
	if f := x.fatalErr(); f != nil {
		return x.res, fmt.Errorf("stopped: %w; what was done is recorded, the next run goes on from there", f)
	}
	if err := outer.Err(); err != nil {
		return x.res, fmt.Errorf("interrupted: %w; what was done is recorded, the next run goes on from there", err)
	}
	return x.res, nil
}

// fatalErr returns the error that stopped the run (a lost connection), if
// any.
func (x *executor) fatalErr() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.fatal
}

// totals counts files and bytes to move for progress displays.
func (x *executor) totals() {
	for i := range x.s.plan.Items {
		it := &x.s.plan.Items[i]
		src, dst := it.Source(), it.Dest()
		if src == nil {
			continue
		}
		if src.Kind == state.File && !(dst != nil && state.SameContent(src, dst)) {
			x.prog.FilesTotal++
			x.prog.BytesTotal += src.Size
		}
		side := x.srcSide(it)
		for _, sp := range it.Sub {
			if e := sideOf(sp, side); e != nil && e.Kind == state.File {
				x.prog.FilesTotal++
				x.prog.BytesTotal += e.Size
			}
		}
	}
}

func sideOf(p reconcile.Path, side reconcile.Side) *state.Entry {
	if side == reconcile.One {
		return p.One
	}
	return p.Two
}

func (x *executor) srcSide(it *reconcile.Item) reconcile.Side {
	if it.Action == reconcile.TwoToOne {
		return reconcile.Two
	}
	return reconcile.One
}

func (x *executor) outcome(o Outcome) {
	x.mu.Lock()
	x.outcomes = append(x.outcomes, o)
	x.mu.Unlock()
	if o.Status == Failed {
		x.mu.Lock()
		x.prog.Failed = &o
		x.mu.Unlock()
		x.report(true)
	}
	if l := x.s.cfg.Log; l != nil {
		attrs := []any{slog.String("path", o.Item.Path), slog.String("action", o.Item.Action.String()), slog.String("status", o.Status.String())}
		if o.Reason != "" {
			attrs = append(attrs, slog.String("reason", o.Reason))
		}
		if o.Err != nil {
			attrs = append(attrs, slog.String("error", o.Err.Error()))
		}
		level := slog.LevelInfo
		if o.Status == Failed {
			level = slog.LevelError
		}
		l.Log(x.ctx, level, "item", attrs...)
	}
}

// report calls the progress callback, at most every 100 ms unless forced.
func (x *executor) report(force bool) {
	if x.progress == nil {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	now := time.Now()
	if !force && now.Sub(x.lastProg) < 100*time.Millisecond {
		return
	}
	x.lastProg = now
	p := x.prog
	p.Elapsed = now.Sub(x.start)
	x.prog.Failed = nil
	x.progress(p)
}

func (x *executor) newTracker(it *reconcile.Item) *tracker {
	t := &tracker{it: it}
	t.remaining.Store(1) // released by x.dispatched
	return t
}

func (x *executor) add(t *tracker) { t.remaining.Add(1) }

// done finishes one operation of t; the last one decides the outcome.
func (x *executor) done(t *tracker, err error) {
	if err != nil && errors.Is(err, remote.ErrFatal) {
		// An endpoint is gone (the connection dropped): stop dispatching;
		// the remaining items are reported as not carried out.
		x.mu.Lock()
		if x.fatal == nil {
			x.fatal = err
		}
		x.mu.Unlock()
		x.stopRun()
	}
	if err != nil {
		t.mu.Lock()
		if t.err == nil {
			t.err = err
		}
		t.mu.Unlock()
	}
	if t.remaining.Add(-1) == 0 {
		t.mu.Lock()
		err := t.err
		t.mu.Unlock()
		switch {
		case err != nil && errors.Is(err, remote.ErrBlocked):
			// Something this run cannot move is in the way: running
			// again changes nothing until a person acts, so the item is
			// skipped (exit code 1, in the report) rather than failed.
			x.outcome(Outcome{Item: t.it, Status: Skipped, Reason: err.Error()})
		case err != nil:
			x.outcome(Outcome{Item: t.it, Status: Failed, Err: err})
		default:
			x.outcome(Outcome{Item: t.it, Status: Done})
		}
	}
}

func (x *executor) item(it *reconcile.Item) {
	switch it.Action {
	case reconcile.Record:
		x.commit(1, it.Path, it.One)
		x.commit(2, it.Path, it.Two)
		return
	case reconcile.Conflict, reconcile.Skip:
		x.outcome(Outcome{Item: it, Status: Skipped, Reason: it.Reason})
		return
	}
	t := x.newTracker(it)
	S := x.srcSide(it)
	D := 3 - S
	src, dst := it.Source(), it.Dest()
	x.place(t, S, D, it.Path, src, dst)
	if src != nil && src.Kind == state.Dir && (dst == nil || dst.Kind != state.Dir) {
		x.subtree(t, S, D, it)
	}
	x.done(t, nil)
}

// place makes path p on side D like src (from side S), replacing dst. A
// directory is created empty; its contents are placed by subtree.
func (x *executor) place(t *tracker, S, D reconcile.Side, p string, src, dst *state.Entry) {
	parent := x.parentWait(p)
	switch {
	case src == nil:
		x.structural(t, S, D, remote.Op{Kind: remote.OpRemove, Path: p, Expect: dst}, nil, parent)
	case dst != nil && dst.Kind == src.Kind && state.SameContent(src, dst):
		x.structural(t, S, D, remote.Op{Kind: remote.OpSetMeta, Path: p, Expect: dst, New: src}, src, parent)
	case src.Kind == state.File:
		x.add(t)
		x.jobs <- func() {
			if err := parent.wait(); err != nil {
				x.done(t, err)
				return
			}
			x.put(t, S, D, p, src, dst)
		}
	case src.Kind == state.Symlink:
		x.structural(t, S, D, remote.Op{Kind: remote.OpSymlink, Path: p, Expect: dst, New: src}, src, parent)
	case src.Kind == state.Dir:
		x.mkdir(t, S, D, p, src, dst, parent)
	}
}

// mkdir creates directory p on side D like src, in a goroutine of its own
// once its parent exists: the dispatcher goes on placing what lies below,
// which waits for it (see dirWait).
func (x *executor) mkdir(t *tracker, S, D reconcile.Side, p string, src, dst *state.Entry, parent *dirWait) {
	w := &dirWait{done: make(chan struct{})}
	x.mu.Lock()
	if x.creating == nil {
		x.creating = map[string]*dirWait{}
	}
	x.creating[p] = w
	x.mu.Unlock()
	x.add(t)
	x.mkdirs.Add(1)
	go func() {
		defer x.mkdirs.Done()
		defer close(w.done)
		if w.err = parent.wait(); w.err != nil {
			x.done(t, w.err)
			return
		}
		ent, err := x.apply(D, remote.Op{Kind: remote.OpMkdir, Path: p, Expect: dst, New: src})
		if err != nil {
			w.err = err
			x.done(t, err)
			return
		}
		if ent.Mode&state.PermMask != src.Mode&state.PermMask {
			// finishDirs sets the mode and finishes the operation.
			x.mu.Lock()
			x.finalDirs = append(x.finalDirs, finalDir{tr: t, side: D, path: p, want: src, have: ent, src: src})
			x.mu.Unlock()
			return
		}
		x.commit(D, p, ent)
		x.commit(S, p, src)
		x.done(t, nil)
	}()
}

// subtree places everything below a directory that the item creates.
func (x *executor) subtree(t *tracker, S, D reconcile.Side, it *reconcile.Item) {
	var entries []remote.PathEntry
	if it.Base == nil && x.s.agree {
		// Everything below a directory new on S is new there too: the
		// scan reported all of it.
		for _, sp := range it.Sub {
			if e := sideOf(sp, S); e != nil {
				entries = append(entries, remote.PathEntry{Path: sp.Path, Entry: e})
			}
		}
	} else {
		all, err := x.s.ep[S].List(x.ctx, it.Path)
		if err != nil {
			x.add(t)
			x.done(t, err)
			return
		}
		for _, pe := range all {
			if pe.Path != it.Path {
				entries = append(entries, pe)
			}
		}
	}
	for _, pe := range entries {
		if err := state.ValidatePath(pe.Path); err != nil || !state.IsBelow(pe.Path, it.Path) {
			x.add(t)
			x.done(t, fmt.Errorf("%w: %s", remote.ErrUnsafePath, state.Display(pe.Path)))
			continue
		}
		x.place(t, S, D, pe.Path, pe.Entry, nil)
	}
}

func (x *executor) apply(D reconcile.Side, op remote.Op) (*state.Entry, error) {
	return x.s.ep[D].Apply(x.ctx, op, nil)
}

// structural applies a synchronous operation and records it, once the
// directory it goes into exists.
func (x *executor) structural(t *tracker, S, D reconcile.Side, op remote.Op, src *state.Entry, parent *dirWait) {
	x.add(t)
	if err := parent.wait(); err != nil {
		x.done(t, err)
		return
	}
	ent, err := x.apply(D, op)
	if err == nil {
		x.commit(D, op.Path, ent)
		x.commit(S, op.Path, src)
	}
	x.done(t, err)
}

// put copies a file from S to D: whole, or as a delta against D's old
// version over a remote link.
func (x *executor) put(t *tracker, S, D reconcile.Side, p string, src, dst *state.Entry) {
	from, to := x.s.ep[S], x.s.ep[D]
	if ap, ok := to.(remote.AsyncPutter); ok && src.Size <= ap.MaxAsyncPut() && !wantDelta(from, to, src, dst) {
		x.putAsync(ap, t, S, D, p, src, dst)
		return
	}
	// Without a slot (the run was stopped), the transfer fails at once
	// on the ended context.
	if src.Size >= bigFile {
		select {
		case x.big <- struct{}{}:
			defer func() { <-x.big }()
		case <-x.ctx.Done():
		}
	} else {
		w := min(max(src.Size, 4<<10), inflightBytes)
		if x.mem.Acquire(x.ctx, w) == nil {
			defer x.mem.Release(w)
		}
	}
	x.mu.Lock()
	x.prog.Current = p
	x.mu.Unlock()
	ent, err := x.transfer(S, D, p, src, dst)
	x.putDone(t, S, D, p, src, ent, err)
}

// putDone records a put's outcome: the archives' records when it landed,
// the progress, and the item's operation.
func (x *executor) putDone(t *tracker, S, D reconcile.Side, p string, src, ent *state.Entry, err error) {
	if err == nil {
		x.commit(D, p, ent)
		if src.Unhashed {
			// The scan did not read the new file; the destination
			// hashed what it received, which is what the source held.
			src = src.Clone()
			src.Hash, src.Unhashed = ent.Hash, false
		}
		x.commit(S, p, src)
	}
	x.mu.Lock()
	x.prog.FilesDone++
	x.prog.BytesDone += src.Size
	x.mu.Unlock()
	x.report(false)
	x.done(t, err)
}

// smallBufs holds the contents of small files on their way to an
// AsyncPutter; each is read with one byte more than its size, to see one
// that grew (a file of 4 KiB must not take the next class up). With few
// classes a file of 2 KiB held 8 KiB, and the client of a first sync of
// 100,000 such files 90 MiB more.
var smallBufs = bufpool.New(1<<10, 9<<9, 16<<10, 65<<10)

// putAsync copies a small file from S to D, an AsyncPutter: it reads the
// file whole and hands it over, and the rest of the put (putDone) runs when
// D reports the outcome. The worker goes on at once to its next file
// instead of waiting, with a goroutine per file, for D to write and flush
// this one.
func (x *executor) putAsync(ap remote.AsyncPutter, t *tracker, S, D reconcile.Side, p string, src, dst *state.Entry) {
	w := min(max(src.Size, 4<<10), inflightBytes)
	held := x.mem.Acquire(x.ctx, w) == nil
	slot := false
	select {
	case x.asyncSlots <- struct{}{}:
		slot = true
	case <-x.ctx.Done():
	}
	release := func() {
		if held {
			x.mem.Release(w)
		}
		if slot {
			<-x.asyncSlots
		}
	}
	x.mu.Lock()
	x.prog.Current = p
	x.mu.Unlock()
	buf := smallBufs.Get(int(src.Size) + 1)
	data, err := x.readWhole(S, p, src, buf)
	if err != nil {
		smallBufs.Put(buf)
		release()
		x.putDone(t, S, D, p, src, nil, err)
		return
	}
	x.async.Add(1)
	ap.PutAsync(x.ctx, remote.Op{Kind: remote.OpPut, Path: p, Expect: dst, New: src}, data, func(ent *state.Entry, err error) {
		defer x.async.Done()
		if err == nil {
			x.bytes.Add(int64(len(data)))
		}
		if x.ctx.Err() == nil {
			// Given up on, the put may still be sending data.
			smallBufs.Put(buf)
		}
		release()
		x.putDone(t, S, D, p, src, ent, err)
	})
}

// readWhole reads the file p of side S, which src describes, into buf
// (room for src.Size+1 bytes) as remote.ReadWhole does.
func (x *executor) readWhole(S reconcile.Side, p string, src *state.Entry, buf []byte) ([]byte, error) {
	rc, err := x.s.ep[S].ReadFile(x.ctx, p, src)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return remote.ReadWhole(rc, buf, p, src.Size)
}

func isLocal(ep remote.Endpoint) bool {
	_, ok := ep.(*local.Endpoint)
	return ok
}

// wantDelta says whether a put of src over dst, from one endpoint to the
// other, is tried as a delta first: over a link, when both versions are
// large enough and the source's hash is known.
func wantDelta(from, to remote.Endpoint, src, dst *state.Entry) bool {
	return dst != nil && dst.Kind == state.File && !src.Unhashed && dst.Size >= deltaThreshold && src.Size >= deltaThreshold && !(isLocal(from) && isLocal(to))
}

func (x *executor) transfer(S, D reconcile.Side, p string, src, dst *state.Entry) (*state.Entry, error) {
	from, to := x.s.ep[S], x.s.ep[D]
	op := remote.Op{Kind: remote.OpPut, Path: p, Expect: dst, New: src}
	if wantDelta(from, to, src, dst) {
		if ent, err, ok := x.deltaTransfer(D, op); ok {
			return ent, err
		}
	}
	rc, err := from.ReadFile(x.ctx, p, src)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return x.applyCounted(to, op, rc)
}

// applyCounted applies op with the contents read from rc, and counts the
// bytes read among the run's only if it succeeded: the summary's "(N B)"
// is what was propagated, not what a failed copy read before it failed.
func (x *executor) applyCounted(to remote.Endpoint, op remote.Op, rc io.Reader) (*state.Entry, error) {
	var n atomic.Int64
	ent, err := to.Apply(x.ctx, op, &countReader{r: rc, n: &n})
	if err == nil {
		x.bytes.Add(n.Load())
	}
	return ent, err
}

// deltaTransfer tries an rsync-style transfer to side D; ok is false when
// the endpoints cannot do one (then a whole-file copy follows).
func (x *executor) deltaTransfer(D reconcile.Side, op remote.Op) (*state.Entry, error, bool) {
	from, to := x.s.ep[3-D], x.s.ep[D]
	signer, ok := to.(Signer)
	if !ok {
		return nil, nil, false
	}
	if _, ok := from.(DeltaReader); !ok && !isLocal(from) {
		return nil, nil, false
	}
	ah := x.s.prefetch.take(x.ctx, D, op.Path, op.Expect, op.New)
	if ah.staged || ah.enc != nil {
		// Computed ahead (see precompute) or rebuilt at the destination
		// already (see stage), of the very version the plan sends. The
		// source must still be that version, as a transfer reading it
		// now would check.
		f, err := from.ReadFile(x.ctx, op.Path, op.New)
		if err != nil {
			return nil, err, true
		}
		f.Close()
	}
	// A delta takes the blocks that follow a match on their weak
	// checksums (delta.ConfirmResync): that saves a BLAKE3 pass over the
	// unchanged bulk of the file on the source, and the destination's
	// check of the whole result's hash catches the rare block whose edits
	// cancel out in the weak sums. Such a result is then sent again with
	// every block confirmed (see below).
	confirm := delta.ConfirmResync
	if ah.staged {
		sop := op
		sop.FromStage = true
		ent, err := to.Apply(x.ctx, sop, nil)
		if err == nil {
			stagedDeltas.Add(1)
			x.bytes.Add(ah.sent)
			return ent, nil, true
		}
		if errors.Is(err, remote.ErrFatal) || x.ctx.Err() != nil {
			return nil, err, true
		}
		// Not staged after all, or not this version: send it now. Or
		// staged from a delta that missed a change (or built on a
		// kept signature that was wrong, which the destination then
		// dropped): send it confirming all, against a new signature.
		if errors.Is(err, remote.ErrMismatch) {
			redoneDeltas.Add(1)
			confirm, ah.sig = delta.ConfirmAll, nil
		}
	}
	sig, enc := ah.sig, ah.enc
	if sig == nil {
		var err error
		if sig, err = signer.Signature(x.ctx, op.Path, op.Expect); err != nil {
			return nil, err, true
		}
	}
	op.Delta = true
	ent, err := x.sendDelta(D, op, sig, enc, confirm)
	if err != nil && confirm == delta.ConfirmResync && errors.Is(err, remote.ErrMismatch) && !errors.Is(err, remote.ErrFatal) && x.ctx.Err() == nil {
		// The result did not have the source's hash: a block was taken
		// on a weak checksum that agreed by chance, a signature kept at
		// the destination was wrong (dropped there now, so a new one is
		// computed from the file), or the source changed in a way its
		// stat data do not show (then the second try fails too). A
		// source that changed as usual fails its reader's checks, not
		// this one.
		redoneDeltas.Add(1)
		if sig, err = signer.Signature(x.ctx, op.Path, op.Expect); err != nil {
			return nil, err, true
		}
		ent, err = x.sendDelta(D, op, sig, nil, delta.ConfirmAll)
	}
	return ent, err, true
}

// sendDelta applies op at side D with the delta of the new file against
// sig: enc if one was computed ahead, else one computed now with confirm,
// by the source's side if it is remote, else here.
func (x *executor) sendDelta(D reconcile.Side, op remote.Op, sig *delta.Sig, enc []byte, confirm delta.Confirm) (*state.Entry, error) {
	from, to := x.s.ep[3-D], x.s.ep[D]
	var rc io.ReadCloser
	switch dr, ok := from.(DeltaReader); {
	case enc != nil:
		precomputedDeltas.Add(1)
		rc = io.NopCloser(bytes.NewReader(enc))
	case ok && !isLocal(from):
		var err error
		if rc, err = dr.ReadDelta(x.ctx, op.Path, op.New, sig, confirm); err != nil {
			return nil, err
		}
	default:
		f, err := from.ReadFile(x.ctx, op.Path, op.New)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		rc = delta.NewReader(sig, f, confirm)
	}
	defer rc.Close()
	return x.applyCounted(to, op, rc)
}

// precomputedDeltas, stagedDeltas and redoneDeltas count the transfers
// that sent a delta computed ahead, that installed one staged ahead, and
// that sent a delta a second time with every block confirmed (for tests).
var precomputedDeltas, stagedDeltas, redoneDeltas atomic.Int64

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// finishDirs gives directories created with extra owner permissions their
// real mode, deepest first, once their contents are in place.
func (x *executor) finishDirs() {
	for i := len(x.finalDirs) - 1; i >= 0; i-- {
		f := x.finalDirs[i]
		ent, err := x.apply(f.side, remote.Op{Kind: remote.OpSetMeta, Path: f.path, Expect: f.have, New: f.want})
		if err == nil {
			x.commit(f.side, f.path, ent)
			x.commit(3-f.side, f.path, f.src)
		}
		x.done(f.tr, err)
	}
}

// commit queues an archive record for side; the committer writes queued
// records in batches. A record is queued only once its item landed.
func (x *executor) commit(side reconcile.Side, p string, e *state.Entry) {
	x.commitMu.Lock()
	x.pending[side] = append(x.pending[side], remote.Record{Path: p, Entry: e})
	n := len(x.pending[side])
	x.commitMu.Unlock()
	switch {
	case n >= maxPending:
		// The archives fall behind: wait for them rather than hold
		// ever more records in memory.
		x.flush()
	case n >= commitBatch:
		select {
		case x.kick <- struct{}{}:
		default:
		}
	}
}

// commitBatch is how many queued records wake the committer before its
// next tick; maxPending is how many make a worker wait for a commit.
const (
	commitBatch = 512
	maxPending  = 32 * commitBatch
)

// flush commits the queued records, both sides at once. Workers keep
// queueing meanwhile: only flushMu is held while the archives write (a
// first sync of 20,000 files stalled every worker for each commit when
// the queue's lock was held throughout).
func (x *executor) flush() {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	x.commitMu.Lock()
	recs := x.pending
	x.pending = [3][]remote.Record{}
	x.commitMu.Unlock()
	var errs [3]error
	var wg sync.WaitGroup
	for side := 1; side <= 2; side++ {
		if len(recs[side]) == 0 {
			continue
		}
		wg.Go(func() {
			// Commit even when the run was interrupted: these items
			// landed.
			errs[side] = x.s.ep[side].Commit(context.WithoutCancel(x.ctx), recs[side])
		})
	}
	wg.Wait()
	x.commitMu.Lock()
	defer x.commitMu.Unlock()
	for _, err := range errs {
		if err != nil && x.commitErr == nil {
			x.commitErr = err
		}
	}
}

func (x *executor) commitError() error {
	x.commitMu.Lock()
	defer x.commitMu.Unlock()
	return x.commitErr
}

func (x *executor) startCommitter() func() {
	x.kick = make(chan struct{}, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				x.flush()
				return
			case <-t.C:
				x.flush()
			case <-x.kick:
				x.flush()
			}
		}
	}()
	return func() { close(stop); <-done }
}

// historyDB returns the archive on this machine that keeps run history:
// the local side's, or with two local roots the one of the replica whose id
// sorts first, so that "sync a b" and "sync b a" share one history.
func (s *Session) historyDB() *archive.DB {
	var best *archive.DB
	bestID := ""
	for i := 1; i <= 2; i++ {
		h, ok := s.ep[i].(historian)
		if !ok || h.Archive() == nil {
			continue
		}
		if best == nil || s.info[i].ReplicaID < bestID {
			best, bestID = h.Archive(), s.info[i].ReplicaID
		}
	}
	return best
}

func (s *Session) beginHistory(ctx context.Context, start time.Time) (*archive.DB, int64) {
	db := s.historyDB()
	if db == nil || s.cfg.DryRun {
		return nil, 0
	}
	id, err := db.BeginRun(ctx, archive.Run{Start: start, Root1: s.cfg.Root1, Root2: s.cfg.Root2, DryRun: s.cfg.DryRun})
	if err != nil {
		return nil, 0
	}
	return db, id
}

func (s *Session) finishHistory(ctx context.Context, db *archive.DB, id int64, r *Result) {
	if db == nil {
		return
	}
	run := archive.Run{ID: id, Start: r.Start, End: r.End, Root1: r.Root1, Root2: r.Root2,
		Propagated: r.Propagated, Skipped: r.Skipped, Failed: r.Failed, Bytes: r.Bytes, ExitCode: r.ExitCode(), DryRun: r.DryRun}
	var items []archive.RunItem
	for _, o := range r.Outcomes {
		if o.Status == Done {
			continue
		}
		status := "skipped"
		switch {
		case o.Status == Failed:
			status = "failed"
		case o.Item.Action == reconcile.Conflict:
			status = "conflict"
		}
		reason := o.Reason
		if o.Err != nil {
			reason = o.Err.Error()
		}
		items = append(items, archive.RunItem{Path: o.Item.Path, Status: status, Action: o.Item.Attempted().String(),
			Reason: reason, Side1: o.Item.One, Side2: o.Item.Two})
	}
	for _, p := range r.ScanProblems {
		if !p.Warning {
			items = append(items, archive.RunItem{Path: p.Path, Status: "failed", Action: "scan", Reason: p.Err})
		}
	}
	if err := db.FinishRun(context.WithoutCancel(ctx), run, items); err != nil && s.cfg.Log != nil {
		s.cfg.Log.Error("record run history", slog.String("error", err.Error()))
	}
}

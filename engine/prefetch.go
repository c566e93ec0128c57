package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// prefetchMin is the size from which a changed file's delta signature is
// fetched from the other side while this side's scan hashes the file. A
// 1 GiB file takes about half a second to hash and as long to sign: done
// one after the other, each leaves a core idle.
const prefetchMin = remote.HashingMin

// prefetchParallel bounds the signatures computed at once: each already
// uses every core of the side that computes it.
const prefetchParallel = 2

// prefetchBudget bounds the memory held by signatures fetched and not yet
// used (about 20 bytes per block; a 1 GiB file has 32,768 blocks): a tree
// of many large changed files is signed ahead only this far, and the rest
// when their transfers come.
const prefetchBudget = 32 << 20

// sigBytes estimates the memory of the signature of a file of size bytes.
func sigBytes(size int64) int64 {
	bs := int64(delta.BlockSize(size))
	return (size+bs-1)/bs*int64(unsafe.Sizeof(delta.Block{})) + 256
}

// prefetcher fetches delta signatures ahead of the plan. When one side's
// scan is about to hash a large file whose stat data changed, and the other
// side still has the archived version unchanged, the plan will most likely
// send the file there by delta, and the first thing that needs is the other
// side's signature: the prefetcher asks for it at once, so that the other
// side computes it while this side hashes. The transfer uses it if it was
// computed against the very entry the transfer expects; otherwise (or if
// the plan does something else) it is dropped.
type prefetcher struct {
	s      *Session
	ctx    context.Context
	cancel context.CancelFunc
	// scanned[i] is closed when side i's scan has ended; ok[i] then says
	// whether it succeeded (s.scan[i] holds its reply).
	scanned [3]chan struct{}
	ok      [3]bool
	// changed[i] holds the paths side i's scan reported, built once.
	changed     [3]map[string]bool
	changedOnce [3]sync.Once
	sem         chan struct{}
	wg          sync.WaitGroup

	mu   sync.Mutex
	sigs map[prefetchKey]*prefetched
	held int64 // sigBytes of the entries of sigs
	// staged counts the files being staged or staged and not yet taken by
	// a transfer (see stage): each holds a new version's worth of disk
	// on the destination until it is installed or the session ends.
	staged atomic.Int32
}

// maxStaged bounds the files staged at once: a tree of many large changed
// files would otherwise have new versions of all of them on the
// destination's disk before the first is installed. Past it, deltas are
// computed ahead here (up to maxPrecomputed) or when the transfer comes.
const maxStaged = 4

// reserveStage takes one of the maxStaged places, if one is free.
func (p *prefetcher) reserveStage() bool {
	if p.staged.Add(1) > maxStaged {
		p.staged.Add(-1)
		return false
	}
	return true
}

type prefetchKey struct {
	side reconcile.Side // the side that holds the basis
	path string
}

// prefetched is one signature fetched or being fetched.
type prefetched struct {
	expect *state.Entry  // the basis the signature must be of
	done   chan struct{} // closed when sig and err are set
	sig    *delta.Sig
	err    error
	// enc is the encoded delta of the new file against sig, computed
	// ahead when the new file is local (see precompute), and encOf the
	// file's state it was computed of; nil when not. Both are set under
	// prefetcher.mu, and only while the transfer has not come for the
	// signature (taken): a transfer that finds no delta ready streams its
	// own rather than wait, and stop ends the computation.
	enc   []byte
	encOf *state.Entry
	// staged is set instead of enc when the delta was sent to the
	// destination to be rebuilt there at once (see stage); sent is the
	// bytes that took. staging is set while that goes on.
	staged  bool
	sent    int64
	staging atomic.Bool
	taken   bool
	stop    context.CancelFunc
	// computed is closed when no delta is being computed ahead any more;
	// read counts the bytes of the new file its computation has read.
	computed chan struct{}
	read     atomic.Int64
}

// maxPrecomputed bounds one precomputed delta: a file that changed more
// than that is sent by a delta computed as it goes, as without
// prefetching.
const maxPrecomputed = 16 << 20

// newPrefetcher returns a prefetcher for s, or nil when no signature can be
// useful: a dry run transfers nothing, and without a Dial both roots are
// local, between which files are copied whole. It is made before
// connecting (a scan may begin meanwhile, see speculation); where both
// endpoints turn out local, it fetches nothing.
func newPrefetcher(ctx context.Context, s *Session) *prefetcher {
	if s.cfg.DryRun || s.cfg.Dial == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{s: s, ctx: ctx, cancel: cancel, sem: make(chan struct{}, prefetchParallel), sigs: make(map[prefetchKey]*prefetched)}
	for i := 1; i <= 2; i++ {
		p.scanned[i] = make(chan struct{})
	}
	return p
}

// scanDone records that side i's scan ended (ok: successfully).
func (p *prefetcher) scanDone(i int, ok bool) {
	if p == nil {
		return
	}
	p.ok[i] = ok
	close(p.scanned[i])
}

// hashing is the scan callback of side i: old is the archived entry of a
// file about to be hashed, cur its state now.
func (p *prefetcher) hashing(i int, path string, old, cur *state.Entry) {
	if p == nil || old.Kind != state.File || old.Size < prefetchMin || cur.Size < prefetchMin {
		return
	}
	j := 3 - i
	key := prefetchKey{side: reconcile.Side(j), path: path}
	p.mu.Lock()
	if _, dup := p.sigs[key]; dup || p.held+sigBytes(old.Size) > prefetchBudget {
		p.mu.Unlock()
		return
	}
	pctx, stop := context.WithCancel(p.ctx)
	pf := &prefetched{expect: old, done: make(chan struct{}), stop: stop, computed: make(chan struct{})}
	p.sigs[key] = pf
	p.held += sigBytes(old.Size)
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer stop()
		defer close(pf.computed)
		sigDone := false
		defer func() {
			if !sigDone {
				close(pf.done)
			}
		}()
		pf.err = context.Canceled
		// Only where the other side's scan saw no change at the path is
		// the archived entry still what it holds.
		select {
		case <-p.scanned[j]:
		case <-p.ctx.Done():
			return
		}
		// The scan of side i may have begun while connecting (see
		// speculation); once side j's scan has ended, the connection and
		// the archives are settled.
		signer, ok := p.s.ep[j].(Signer)
		if !ok || !p.s.agree || (isLocal(p.s.ep[1]) && isLocal(p.s.ep[2])) || !p.ok[j] || p.changedOn(j)[path] {
			return
		}
		select {
		case p.sem <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		defer func() { <-p.sem }()
		pf.sig, pf.err = signer.Signature(p.ctx, path, old)
		sigDone = true
		close(pf.done)
		switch {
		case pf.err != nil:
		case isLocal(p.s.ep[i]):
			p.precompute(pctx, pf, i, path, cur)
		case isLocal(p.s.ep[j]) && cur.Size >= stageMin && p.reserveStage():
			p.pull(pctx, pf, i, path, cur)
		}
	}()
}

// stageMin is the size from which a precomputed delta is staged at the
// destination (see stage) rather than held here.
const stageMin = 8 << 20

// precompute computes the delta of the file at path on side i (local),
// whose state is cur, against pf.sig, into pf.enc. It runs while side i's
// scan still hashes that file: with the signature at hand early (a kept
// one is served at once, see local.Endpoint.Signature), reading the file a
// second time on another core takes the delta off the transfer's path, so
// that the destination starts rebuilding the file at once. The file's
// reader checks that it did not change while read; the destination checks
// the result's hash, as for any delta.
func (p *prefetcher) precompute(ctx context.Context, pf *prefetched, i int, path string, cur *state.Entry) {
	rc, err := p.s.ep[i].ReadFile(ctx, path, cur)
	if err != nil {
		return
	}
	defer rc.Close()
	if cur.Size >= stageMin && p.reserveStage() {
		enc := delta.NewReader(pf.sig, ctxReader{ctx, rc, &pf.read}, delta.ConfirmResync)
		p.stage(ctx, pf, 3-i, path, cur, enc)
		enc.Close() // before rc's deferred Close
		return
	}
	w := &capWriter{max: maxPrecomputed}
	if err := delta.WriteDelta(w, pf.sig, ctxReader{ctx, rc, &pf.read}, delta.ConfirmResync); err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pf.taken || p.held+int64(w.buf.Len()) > prefetchBudget {
		return
	}
	p.held += int64(w.buf.Len())
	pf.enc, pf.encOf = w.buf.Bytes(), cur
}

// stage sends enc, the encoded delta of the new file at path (side 3-j's
// version cur) against pf.sig, to side j as an OpPut with Stage: side j
// rebuilds and flushes the file at once, while the scans still run,
// instead of after the plan (a 1 GiB file: both sides busy for a second
// each, one after the other). The transfer then only has it installed
// (OpPut with FromStage), once the plan confirms it and the scan's hash is
// known, which side j checks.
func (p *prefetcher) stage(ctx context.Context, pf *prefetched, j int, path string, cur *state.Entry, enc io.Reader) {
	pf.staging.Store(true)
	stat := cur.Clone()
	stat.Unhashed = true // the scan is hashing it
	var sent atomic.Int64
	_, err := p.s.ep[j].Apply(ctx, remote.Op{Kind: remote.OpPut, Path: path, Expect: pf.expect, New: stat, Delta: true, Stage: true},
		&countReader{r: enc, n: &sent})
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil || pf.taken {
		p.staged.Add(-1)
		return
	}
	pf.staged, pf.encOf, pf.sent = true, cur, sent.Load()
}

// pull is stage for a new file on side i, a remote one, bound for a local
// side: side i computes the delta (read-delta) while its scan hashes the
// file, and this side rebuilds it as it comes.
func (p *prefetcher) pull(ctx context.Context, pf *prefetched, i int, path string, cur *state.Entry) {
	dr, ok := p.s.ep[i].(DeltaReader)
	if !ok {
		p.staged.Add(-1)
		return
	}
	pf.staging.Store(true) // a transfer coming now waits for it
	rc, err := dr.ReadDelta(ctx, path, cur, pf.sig, delta.ConfirmResync)
	if err != nil {
		p.staged.Add(-1)
		return
	}
	defer rc.Close()
	p.stage(ctx, pf, 3-i, path, cur, rc)
}

// ctxReader reads from r until ctx ends, counting the bytes in n.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	n   *atomic.Int64
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	k, err := c.r.Read(b)
	c.n.Add(int64(k))
	return k, err
}

// capWriter collects what is written up to max bytes, and fails beyond.
type capWriter struct {
	buf bytes.Buffer
	max int
}

var errTooBig = errors.New("precomputed delta too large")

func (w *capWriter) Write(b []byte) (int, error) {
	if w.buf.Len()+len(b) > w.max {
		return 0, errTooBig
	}
	return w.buf.Write(b)
}

// changedOn returns the set of paths side i's scan reported; its scan must
// have ended successfully.
func (p *prefetcher) changedOn(i int) map[string]bool {
	p.changedOnce[i].Do(func() {
		m := make(map[string]bool, len(p.s.scan[i].Changes))
		for _, c := range p.s.scan[i].Changes {
			m[c.Path] = true
		}
		p.changed[i] = m
	})
	return p.changed[i]
}

// ahead is what a transfer finds prefetched for its file: the
// destination's signature, and possibly the delta against it computed
// ahead (enc) or staged at the destination already (staged, sent bytes).
type ahead struct {
	sig    *delta.Sig
	enc    []byte
	staged bool
	sent   int64
}

// take returns what was prefetched of path on side: the signature, if one
// was fetched successfully of the entry expect, waiting for it if it is
// still being computed; and the delta against it of the new file src, if
// one was computed or staged ahead of that very file. Each is handed out
// once.
func (p *prefetcher) take(ctx context.Context, side reconcile.Side, path string, expect, src *state.Entry) ahead {
	if p == nil {
		return ahead{}
	}
	key := prefetchKey{side: side, path: path}
	p.mu.Lock()
	pf := p.sigs[key]
	if pf != nil {
		delete(p.sigs, key)
	}
	p.mu.Unlock()
	if pf == nil {
		return ahead{}
	}
	select {
	case <-pf.done:
	case <-ctx.Done():
		pf.stop()
		p.mu.Lock()
		pf.taken = true
		p.held -= sigBytes(pf.expect.Size) + int64(len(pf.enc))
		p.mu.Unlock()
		return ahead{}
	}
	// A delta still being computed is waited for only if it is past
	// half the file: otherwise streaming one from now on finishes sooner
	// than waiting and then sending it (the signature was computed, not
	// kept, and came late). One being staged is always waited for: the
	// destination rebuilds as it comes, so starting again only repeats
	// what was done.
	select {
	case <-pf.computed:
	default:
		if pf.staging.Load() || 2*pf.read.Load() >= src.Size {
			select {
			case <-pf.computed:
			case <-ctx.Done():
			}
		}
	}
	p.mu.Lock()
	pf.taken = true
	enc, encOf, staged, sent := pf.enc, pf.encOf, pf.staged, pf.sent
	p.held -= sigBytes(pf.expect.Size) + int64(len(enc))
	if staged {
		// Installed now, or dropped: either way its place is free
		// (a staged file not installed goes when the session ends).
		p.staged.Add(-1)
	}
	p.mu.Unlock()
	pf.stop()
	if pf.err != nil || !state.Equal(pf.expect, expect) {
		return ahead{}
	}
	if (enc != nil || staged) && state.StatSame(encOf, src) {
		return ahead{sig: pf.sig, enc: enc, staged: staged, sent: sent}
	}
	return ahead{sig: pf.sig}
}

// stop cancels what is still being fetched and waits for it.
func (p *prefetcher) stop() {
	if p == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
}

// scanRequest returns the scan request for side i.
func (p *prefetcher) scanRequest(i int) remote.ScanRequest {
	if p == nil {
		return remote.ScanRequest{}
	}
	return remote.ScanRequest{Hashing: func(path string, old, cur *state.Entry) { p.hashing(i, path, old, cur) }}
}

package remote

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/concord-sync/concord/archive/state"
)

// Gatherer collects the small file puts that many goroutines make at about
// the same time into batches, and sends each batch with one call: a first
// sync of many small files then writes a batch, flushes it to disk once and
// answers once (over a link, one request and one reply). Put blocks until
// its file's result is known; PutAsync returns at once and reports it to a
// function.
type Gatherer struct {
	// Send puts a batch (as BatchPutter.PutBatch does); each batch is sent
	// from a goroutine of its own.
	Send func(ops []Op, contents [][]byte) ([]*state.Entry, []error, error)
	// MaxFiles and MaxBytes bound a batch; Linger is how long a batch
	// waits for more puts to join it.
	MaxFiles, MaxBytes int
	Linger             time.Duration

	mu      sync.Mutex
	pending []*gathered
	running bool
}

type gathered struct {
	ctx     context.Context
	op      Op
	content []byte
	done    func(*state.Entry, error)
	fired   atomic.Bool
}

// finish reports p's result, once: the batch's answer and the end of the
// caller's context race to it.
func (p *gathered) finish(e *state.Entry, err error) {
	if p.fired.CompareAndSwap(false, true) {
		p.done(e, err)
	}
}

// Put adds a put of op with content (the whole file) to the next batch and
// returns its result. When ctx ends first, Put returns ctx's error; the
// file may still be installed (the archives do not record it, and the next
// run finds the same file on both sides).
func (g *Gatherer) Put(ctx context.Context, op Op, content []byte) (*state.Entry, error) {
	type result struct {
		e   *state.Entry
		err error
	}
	ch := make(chan result, 1)
	g.PutAsync(ctx, op, content, func(e *state.Entry, err error) { ch <- result{e, err} })
	r := <-ch
	return r.e, r.err
}

// PutAsync adds a put of op with content (the whole file) to the next batch
// and returns at once; done is called exactly once, from another goroutine,
// with the file's result. Waking goroutines (scheduling, select, channels)
// was 15% of the client's CPU samples in a remote first sync of 100,000
// files, most of it for the goroutine per file that waited here for its
// batch's answer.
//
// When ctx ends first, done is called with ctx's error as soon as it ends
// (a put not yet sent is then dropped from its batch; one already sent may
// still be installed). content must not change until done is called, nor
// after it when ctx had ended: the batch may still be sending it.
func (g *Gatherer) PutAsync(ctx context.Context, op Op, content []byte, done func(*state.Entry, error)) {
	p := &gathered{ctx: ctx, op: op, content: content, done: done}
	g.mu.Lock()
	g.pending = append(g.pending, p)
	start := !g.running
	g.running = true
	g.mu.Unlock()
	if start {
		go g.run()
	}
}

// run sends batches until none is pending.
func (g *Gatherer) run() {
	for {
		deadline := time.Now().Add(g.Linger)
		for {
			g.mu.Lock()
			n := len(g.pending)
			g.mu.Unlock()
			if n >= g.MaxFiles || !time.Now().Before(deadline) {
				break
			}
			time.Sleep(g.Linger / 8)
		}
		g.mu.Lock()
		var batch, dropped []*gathered
		size := 0
		for len(g.pending) > 0 && len(batch) < g.MaxFiles {
			p := g.pending[0]
			if len(batch) > 0 && size+len(p.content) > g.MaxBytes {
				break
			}
			g.pending[0] = nil
			g.pending = g.pending[1:]
			if p.ctx.Err() != nil {
				dropped = append(dropped, p)
				continue
			}
			batch = append(batch, p)
			size += len(p.content)
		}
		last := len(batch) == 0 && len(g.pending) == 0
		if last {
			g.running = false
			g.pending = nil
		}
		g.mu.Unlock()
		// Outside the lock: done is the caller's, and may take its time.
		for _, p := range dropped {
			p.finish(nil, p.ctx.Err())
		}
		if last {
			return
		}
		if len(batch) > 0 {
			go g.send(batch)
		}
	}
}

func (g *Gatherer) send(batch []*gathered) {
	ops := make([]Op, len(batch))
	contents := make([][]byte, len(batch))
	// The puts of one batch nearly always share one context (the run's):
	// watch each distinct one once.
	var stops []func() bool
	var watched []context.Context
	for i, p := range batch {
		ops[i], contents[i] = p.op, p.content
		if p.ctx.Done() != nil && !containsCtx(watched, p.ctx) {
			ctx := p.ctx
			watched = append(watched, ctx)
			stops = append(stops, context.AfterFunc(ctx, func() {
				for _, q := range batch {
					if q.ctx == ctx {
						q.finish(nil, ctx.Err())
					}
				}
			}))
		}
	}
	ents, errs, err := g.Send(ops, contents)
	for _, stop := range stops {
		stop()
	}
	for i, p := range batch {
		switch {
		case err != nil:
			p.finish(nil, err)
		case i >= len(ents) || i >= len(errs):
			p.finish(nil, errShortBatch)
		default:
			p.finish(ents[i], errs[i])
		}
	}
}

func containsCtx(list []context.Context, ctx context.Context) bool {
	for _, c := range list {
		if c == ctx {
			return true
		}
	}
	return false
}

// errShortBatch reports a Send that returned fewer results than files.
var errShortBatch = errors.New("put batch: fewer results than files")

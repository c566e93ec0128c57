package remote

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/concord-sync/concord/archive/state"
)

// Gatherer collects the small file puts that many goroutines make at about
// the same time into batches, and sends each batch with one call: a first
// sync of many small files then writes a batch, flushes it to disk once and
// answers once (over a link, one request and one reply). Put blocks until
// its file's result is known.
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
	op      Op
	content []byte
	done    chan gatherResult
}

type gatherResult struct {
	entry *state.Entry
	err   error
}

// Put adds a put of op with content (the whole file) to the next batch and
// returns its result. When ctx ends first, Put returns ctx's error; the
// file may still be installed (the archives do not record it, and the next
// run finds the same file on both sides).
func (g *Gatherer) Put(ctx context.Context, op Op, content []byte) (*state.Entry, error) {
	p := &gathered{op: op, content: content, done: make(chan gatherResult, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, p)
	start := !g.running
	g.running = true
	g.mu.Unlock()
	if start {
		go g.run()
	}
	select {
	case r := <-p.done:
		return r.entry, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
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
		var batch []*gathered
		size := 0
		for len(g.pending) > 0 && len(batch) < g.MaxFiles {
			p := g.pending[0]
			if len(batch) > 0 && size+len(p.content) > g.MaxBytes {
				break
			}
			batch = append(batch, p)
			size += len(p.content)
			g.pending = g.pending[1:]
		}
		if len(batch) == 0 {
			g.running = false
			g.pending = nil
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		go g.send(batch)
	}
}

func (g *Gatherer) send(batch []*gathered) {
	ops := make([]Op, len(batch))
	contents := make([][]byte, len(batch))
	for i, p := range batch {
		ops[i], contents[i] = p.op, p.content
	}
	ents, errs, err := g.Send(ops, contents)
	for i, p := range batch {
		switch {
		case err != nil:
			p.done <- gatherResult{err: err}
		case i >= len(ents) || i >= len(errs):
			p.done <- gatherResult{err: errShortBatch}
		default:
			p.done <- gatherResult{entry: ents[i], err: errs[i]}
		}
	}
}

// errShortBatch reports a Send that returned fewer results than files.
var errShortBatch = errors.New("put batch: fewer results than files")

package remote_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
)

// TestGatherer puts files from many goroutines at once: they arrive in
// batches within the bounds, every caller gets its own file's result, a
// batch-wide error reaches every file of that batch, and a caller whose
// context ends stops waiting.
func TestGatherer(t *testing.T) {
	var batches, biggest atomic.Int64
	failBatch := atomic.Bool{}
	g := &remote.Gatherer{
		MaxFiles: 8, MaxBytes: 100, Linger: 2 * time.Millisecond,
		Send: func(ops []remote.Op, contents [][]byte) ([]*state.Entry, []error, error) {
			batches.Add(1)
			if n := int64(len(ops)); n > biggest.Load() {
				biggest.Store(n)
			}
			size := 0
			for _, c := range contents {
				size += len(c)
			}
			if len(ops) > 8 || len(ops) > 1 && size > 100 {
				return nil, nil, fmt.Errorf("batch of %d files, %d bytes", len(ops), size)
			}
			if failBatch.Load() {
				return nil, nil, errors.New("link lost")
			}
			ents := make([]*state.Entry, len(ops))
			errs := make([]error, len(ops))
			for i, op := range ops {
				if op.Path == "f13" {
					errs[i] = fmt.Errorf("%s: %w", op.Path, remote.ErrChanged)
					continue
				}
				ents[i] = &state.Entry{Kind: state.File, Size: int64(len(contents[i])), Target: op.Path}
			}
			return ents, errs, nil
		},
	}
	const n = 100
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			p := fmt.Sprintf("f%d", i)
			e, err := g.Put(context.Background(), remote.Op{Kind: remote.OpPut, Path: p}, make([]byte, i%30))
			if err == nil && (e == nil || e.Target != p || e.Size != int64(i%30)) {
				err = fmt.Errorf("got the result %+v", e)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 13 {
			if !errors.Is(err, remote.ErrChanged) {
				t.Errorf("f13: %v, want its own error", err)
			}
		} else if err != nil {
			t.Errorf("f%d: %v", i, err)
		}
	}
	if b := batches.Load(); b >= n/2 || biggest.Load() < 2 {
		t.Errorf("%d files went in %d batches (the largest %d): not gathered", n, b, biggest.Load())
	}

	failBatch.Store(true)
	if _, err := g.Put(context.Background(), remote.Op{Kind: remote.OpPut, Path: "x"}, nil); err == nil || err.Error() != "link lost" {
		t.Errorf("a failed batch gave %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Put(ctx, remote.Op{Kind: remote.OpPut, Path: "y"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with an ended context = %v", err)
	}
}

// TestGathererPutAsync checks PutAsync's promises: each done is called
// exactly once; a put whose context ends while its batch is out hears of it
// at once (not when the batch returns), and the batch's later answer is not
// delivered a second time; a put whose context ended before its batch
// left is not sent at all.
func TestGathererPutAsync(t *testing.T) {
	release := make(chan struct{})
	sent := make(chan []string, 16)
	g := &remote.Gatherer{
		MaxFiles: 4, MaxBytes: 1 << 10, Linger: time.Millisecond,
		Send: func(ops []remote.Op, contents [][]byte) ([]*state.Entry, []error, error) {
			var paths []string
			for _, op := range ops {
				paths = append(paths, op.Path)
			}
			sent <- paths
			if ops[0].Path == "held" {
				<-release
			}
			ents := make([]*state.Entry, len(ops))
			for i, op := range ops {
				ents[i] = &state.Entry{Kind: state.File, Target: op.Path}
			}
			return ents, make([]error, len(ops)), nil
		},
	}
	type result struct {
		path string
		e    *state.Entry
		err  error
	}
	results := make(chan result, 16)
	var calls sync.Map
	put := func(ctx context.Context, p string) {
		g.PutAsync(ctx, remote.Op{Kind: remote.OpPut, Path: p}, []byte(p), func(e *state.Entry, err error) {
			if _, again := calls.LoadOrStore(p, true); again {
				t.Errorf("%s: done called twice", p)
			}
			results <- result{p, e, err}
		})
	}
	wait := func(want string) result {
		t.Helper()
		select {
		case r := <-results:
			if r.path != want {
				t.Fatalf("done for %s, want %s", r.path, want)
			}
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no result for %s", want)
		}
		return result{}
	}

	// A plain put gets its own entry.
	put(context.Background(), "a")
	if r := wait("a"); r.err != nil || r.e == nil || r.e.Target != "a" {
		t.Errorf("a: %+v, %v", r.e, r.err)
	}
	<-sent

	// Its context ends while its batch is out: done hears of it before
	// the batch returns.
	ctx, cancel := context.WithCancel(context.Background())
	put(ctx, "held")
	if got := <-sent; len(got) != 1 || got[0] != "held" {
		t.Fatalf("sent %v, want [held]", got)
	}
	cancel()
	if r := wait("held"); !errors.Is(r.err, context.Canceled) {
		t.Errorf("held: %v, want the context's end", r.err)
	}
	close(release)

	// Ended before its batch leaves: dropped from the batch.
	ended, end := context.WithCancel(context.Background())
	end()
	put(ended, "dropped")
	if r := wait("dropped"); !errors.Is(r.err, context.Canceled) {
		t.Errorf("dropped: %v, want the context's end", r.err)
	}
	put(context.Background(), "after")
	wait("after")
	if len(sent) == 0 {
		t.Error("the put after the dropped one was not sent")
	}
	for len(sent) > 0 {
		if paths := <-sent; len(paths) != 1 || paths[0] != "after" {
			t.Errorf("sent %v, want [after] alone", paths)
		}
	}
	// Nothing more arrives: the held batch's answer was not delivered
	// again (calls would have failed) and nothing else is pending.
	time.Sleep(20 * time.Millisecond)
	select {
	case r := <-results:
		t.Errorf("unexpected result for %s", r.path)
	default:
	}
}

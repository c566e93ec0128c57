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

package local

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/concord-sync/concord/internal/fdlimit/fdlimittest"
	"github.com/concord-sync/concord/remote"
)

// TestConcurrentBatchesLowDescriptorLimit puts files the way a server does
// for a client with many files in flight: many PutBatch calls at once, each
// of files in many directories, under a low limit of open files. Each call
// holds descriptors (its directories and new files) until its flush; none
// may fail for want of descriptors.
func TestConcurrentBatchesLowDescriptorLimit(t *testing.T) {
	const limit = 256
	dirs := map[string]string{}
	const ndirs, batches, per = 64, 16, 64
	for d := range ndirs {
		dirs[fmt.Sprintf("d%02d/", d)] = ""
	}
	f := newFixture(t, dirs, remote.OpenRequest{})
	fdlimittest.Lower(t, limit)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([][]error, batches)
	fails := make([]error, batches)
	for b := range batches {
		wg.Go(func() {
			ops := make([]remote.Op, per)
			contents := make([][]byte, per)
			for i := range per {
				c := fmt.Sprintf("file %d of batch %d", i, b)
				ops[i] = remote.Op{Kind: remote.OpPut, Path: fmt.Sprintf("d%02d/b%02d-%02d", i, b, i), New: fileEntry(c, 0o644, t0)}
				contents[i] = []byte(c)
			}
			_, errs[b], fails[b] = f.e.PutBatch(ctx, ops, contents)
		})
	}
	wg.Wait()
	failed := 0
	var first error
	for b := range batches {
		if fails[b] != nil {
			t.Fatalf("batch %d: %v", b, fails[b])
		}
		for _, err := range errs[b] {
			if err != nil {
				failed++
				first = err
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d files failed under a limit of %d descriptors, e.g. %v", failed, batches*per, limit, first)
	}
}

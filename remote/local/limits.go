package local

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/concord-sync/concord/internal/fdlimit"
)

// descriptorBudget bounds the file descriptors that an endpoint's reads and
// writes hold at once, so that many calls in flight (a server answering a
// client with 1,024 files in flight, each write holding its directory and
// new file until the flush) wait for one another instead of failing with
// "too many open files" under a low limit (ulimit -n 256 in a container or
// a cron job). It is what the limit allows at the first call
// (fdlimit.Available), at least 16.
type descriptorBudget struct {
	once sync.Once
	sem  *semaphore.Weighted
	size int64
}

func (b *descriptorBudget) init() {
	b.size = max(fdlimit.Available(), 16)
	b.sem = semaphore.NewWeighted(b.size)
}

// hold takes n descriptors of the budget (all of it, for a call that needs
// more), waiting while other calls hold them, and returns how many it took,
// for release. (A weight rather than a closure: one is taken per file, and
// a closure per file cost a first sync of 100,000 files 0.14 s of
// allocation and collection.)
func (b *descriptorBudget) hold(ctx context.Context, n int) (int64, error) {
	b.once.Do(b.init)
	w := min(int64(n), b.size)
	if err := b.sem.Acquire(ctx, w); err != nil {
		return 0, err
	}
	return w, nil
}

// release gives back w descriptors taken by hold.
func (b *descriptorBudget) release(w int64) { b.sem.Release(w) }

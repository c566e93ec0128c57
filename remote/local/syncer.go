package local

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// groupSync flushes many newly written files to disk with one syncfs(2)
// instead of one fsync(2) each. Every file must be on disk before it is
// renamed into place (SPEC guarantee 2); with an fsync per file a first sync
// of 20,000 small files spent most of its time waiting on the journal, one
// commit per file. Writers that finish at about the same time now share a
// flush: a caller waits for a syncfs that started after its own writes, and
// the first waiter with none running starts it (leader/follower group
// commit).
type groupSync struct {
	mu sync.Mutex
	// active counts writers between begin and the end of their sync (or
	// abandon); inSync those inside sync.
	active, inSync int
	cond           *sync.Cond
	started        uint64 // generations begun
	completed      uint64 // generations finished
	running        bool
	arrived        time.Time // when the latest writer called sync
	errs           map[uint64]error
}

func newGroupSync() *groupSync {
	g := &groupSync{errs: map[uint64]error{}}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// begin announces a writer that will call sync (or abandon) later, so that
// a flush about to start can wait a moment for it.
func (g *groupSync) begin() {
	g.mu.Lock()
	g.active++
	g.mu.Unlock()
}

// abandon withdraws a writer that will not call sync after all.
func (g *groupSync) abandon() {
	g.mu.Lock()
	g.active--
	g.mu.Unlock()
}

// A flush waits, at most gather, for more writers to join it: while some
// are still writing, or while writers keep arriving (one came within
// quiet). Each syncfs(2) costs a device cache flush (about a millisecond
// here) and holds writers back, so a first sync of 20,000 small files took
// 2.0 s with 1,200 flushes when a flush waited only for writers already
// writing, and 1.6 s with about 100 flushes once it also waited for the
// stream of arrivals to pause; without any flush it takes 1.2 s. With 4,096
// transfers in flight (engine.workers) and a flush waiting up to 100 ms
// for a 5 ms pause, a remote first sync of 100,000 files makes 95 flushes
// instead of 330 and took 11% less time at the median on one machine (two
// file systems, faster in 12 of 13 interleaved pairs of runs, from 0.5%
// slower to 36% faster); more transfers or a longer wait gained
// nothing more. A large file being written does not hold a flush back: it
// is flushed on its own (see flushAlone) and never joins.
const (
	gather = 100 * time.Millisecond
	quiet  = 5 * time.Millisecond
)

// syncfs is unix.Syncfs (a variable for tests).
var syncfs = unix.Syncfs

// sync returns once everything written to fd's file system before the call
// is on disk, or with the error syncfs(2) reported for it (Linux 5.8 and
// later report write-back errors there).
func (g *groupSync) sync(fd int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inSync++
	g.arrived = time.Now()
	defer func() { g.inSync--; g.active-- }()
	need := g.started + 1 // a flush that starts after this call
	for g.completed < need {
		if g.running {
			g.cond.Wait()
			continue
		}
		// Lead the next flush, after letting writers that are still
		// writing catch up (at most gather).
		g.running = true
		deadline := time.Now().Add(gather)
		for (g.active > g.inSync || time.Since(g.arrived) < quiet) && time.Now().Before(deadline) {
			g.mu.Unlock()
			time.Sleep(quiet / 4)
			g.mu.Lock()
		}
		g.started++
		gen := g.started
		g.mu.Unlock()
		err := syncfs(fd)
		g.mu.Lock()
		g.running = false
		g.completed = gen
		if err != nil {
			g.errs[gen] = err
		}
		if len(g.errs) > 64 {
			for k := range g.errs {
				if k+64 < gen {
					delete(g.errs, k)
				}
			}
		}
		g.cond.Broadcast()
	}
	if err, ok := g.errs[need]; ok {
		return err
	}
	return nil
}

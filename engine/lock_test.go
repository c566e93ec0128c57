package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
)

// lockRun is one of two runs whose lock taking lockstepEndpoint
// interleaves.
type lockRun struct {
	other *lockRun
	// opens counts the run's Open calls (they come one after the other).
	opens int
	// firstOpened is closed once the run's first Open has returned,
	// opened once it tries no more locks, returned once its Prepare
	// has returned.
	firstOpened, opened, returned chan struct{}
	openedOnce                    sync.Once
}

func newLockRuns() (*lockRun, *lockRun) {
	var r [2]*lockRun
	for i := range r {
		r[i] = &lockRun{firstOpened: make(chan struct{}), opened: make(chan struct{}), returned: make(chan struct{})}
	}
	r[0].other, r[1].other = r[1], r[0]
	return r[0], r[1]
}

func (r *lockRun) doneOpening() { r.openedOnce.Do(func() { close(r.opened) }) }

// lockstepEndpoint makes two runs take their locks in lockstep: neither
// tries its second lock before the other has tried its first, and neither
// releases a lock before the other has tried all of its own. This is the
// interleaving in which two runs that take the locks in opposite orders
// both fail.
type lockstepEndpoint struct {
	remote.Endpoint
	run *lockRun
}

func (e *lockstepEndpoint) Open(ctx context.Context, req remote.OpenRequest) (remote.OpenReply, error) {
	r := e.run
	r.opens++
	reply, err := e.Endpoint.Open(ctx, req)
	if r.opens == 1 {
		close(r.firstOpened)
		if err != nil {
			r.doneOpening()
		}
		select {
		case <-r.other.firstOpened:
		case <-r.other.returned:
		}
	} else {
		r.doneOpening()
	}
	return reply, err
}

func (e *lockstepEndpoint) Close() error {
	if r := e.run; r.opens > 0 {
		r.doneOpening()
		select {
		case <-r.other.opened:
		case <-r.other.returned:
		}
	}
	return e.Endpoint.Close()
}

// TestOppositeRootOrdersOneRunGoesAhead starts two runs of one pair of
// local roots at once, "sync a b" and "sync b a", taking their locks in
// lockstep: one must go ahead and the other exit 3 (SPEC guarantee 7: a
// second run exits 3). Were each to take the lock of its own first root
// first, both would hold one lock and find the other held.
func TestOppositeRootOrdersOneRunGoesAhead(t *testing.T) {
	p := newPair(t)
	populate(p)
	p.sync(p.config())

	runs := [2]*lockRun{}
	runs[0], runs[1] = newLockRuns()
	cfgs := [2]engine.Config{p.config(), p.config()}
	cfgs[1].Root1, cfgs[1].Root2 = p.root[2], p.root[1]
	var sessions [2]*engine.Session
	var errs [2]error
	var wg sync.WaitGroup
	for k := range cfgs {
		run := runs[k]
		cfgs[k].Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
			return &lockstepEndpoint{Endpoint: local.New(root, local.Options{Version: "test"}), run: run}, nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(run.returned)
			sessions[k], errs[k] = engine.Prepare(context.Background(), cfgs[k], nil)
		}()
	}
	wg.Wait()
	for _, s := range sessions {
		if s != nil {
			defer s.Close()
		}
	}
	for k := range runs {
		if runs[k].opens == 0 {
			t.Fatalf("run %d opened no archive (%v): the test does not test anything", k+1, errs[k])
		}
	}
	switch {
	case errs[0] != nil && errs[1] != nil:
		t.Fatalf("both runs failed: %v; and %v", errs[0], errs[1])
	case errs[0] == nil && errs[1] == nil:
		t.Fatal("both runs went ahead at once")
	}
	for k, err := range errs {
		if err != nil && !errors.Is(err, remote.ErrLocked) {
			t.Errorf("run %d: %v; want a lock held by the other run", k+1, err)
		}
	}
}

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
)

// asyncEndpoint passes for a remote destination that takes small files
// asynchronously, as the wire client does: its PutAsync gathers puts into
// batches for the local endpoint's PutBatch. hold, when set, is called by
// each batch before it is put.
type asyncEndpoint struct {
	*local.Endpoint
	g      *remote.Gatherer
	puts   atomic.Int64
	hold   func()
	sent   atomic.Int64   // files put by batches
	sends  sync.WaitGroup // batches being put
	maxPut int64
}

func newAsyncEndpoint(root string) *asyncEndpoint {
	a := &asyncEndpoint{Endpoint: local.New(root, local.Options{Version: "test"}), maxPut: 64 << 10}
	a.g = &remote.Gatherer{MaxFiles: 16, MaxBytes: 64 << 10, Linger: time.Millisecond,
		Send: func(ops []remote.Op, contents [][]byte) ([]*state.Entry, []error, error) {
			a.sends.Add(1)
			defer a.sends.Done()
			if a.hold != nil {
				a.hold()
			}
			a.sent.Add(int64(len(ops)))
			return a.Endpoint.PutBatch(context.Background(), ops, contents)
		}}
	return a
}

func (a *asyncEndpoint) MaxAsyncPut() int64 { return a.maxPut }

func (a *asyncEndpoint) PutAsync(ctx context.Context, op remote.Op, content []byte, done func(*state.Entry, error)) {
	a.puts.Add(1)
	a.g.PutAsync(ctx, op, content, done)
}

// asyncConfig returns a configuration whose side 2 is an asyncEndpoint
// (set in *ep at each connection).
func (p *pair) asyncConfig(ep **asyncEndpoint) engine.Config {
	cfg := p.config()
	cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
		if root != p.root[2] {
			return local.New(root, local.Options{Version: "test"}), nil
		}
		*ep = newAsyncEndpoint(root)
		return *ep, nil
	}
	return cfg
}

// TestAsyncPuts checks the transfers of small files to a destination that
// takes them asynchronously: every file small enough goes that way and
// lands, larger ones are applied as before, the archives record them all
// (the next run has nothing to do), and a file that changed size or
// contents since the scan fails and is left alone on both sides.
func TestAsyncPuts(t *testing.T) {
	p := newPair(t)
	const n = 300
	for i := range n {
		p.write(1, fmt.Sprintf("d%d/f%03d.txt", i%7, i), strings.Repeat("x", i*13))
	}
	p.write(1, "large.bin", strings.Repeat("L", 100<<10))
	var ep *asyncEndpoint
	res := p.sync(p.asyncConfig(&ep))
	if res.Failed != 0 {
		t.Fatalf("first sync: %d failed: %v", res.Failed, outcomes(res))
	}
	if got := ep.puts.Load(); got != n {
		t.Errorf("%d files went through PutAsync, want the %d small ones", got, n)
	}
	if got := ep.sent.Load(); got != n {
		t.Errorf("%d files were put in batches, want %d", got, n)
	}
	one, two := p.tree(1), p.tree(2)
	for path, v := range one {
		if two[path] != v {
			t.Errorf("%s differs on side 2", path)
		}
	}
	if res := p.sync(p.asyncConfig(&ep)); len(res.Outcomes) != 0 || ep.puts.Load() != 0 {
		t.Errorf("second sync: %v (%d puts), want nothing to do", outcomes(res), ep.puts.Load())
	}

	// Changed after the scan: one grew, one kept its size but not its
	// contents. Both fail; side 2 keeps the versions of the first sync.
	p.write(1, "d0/f000.txt", "new")
	p.write(1, "d1/f001.txt", "abcdefghijklm")
	t.Setenv(engine.HookEnv, fmt.Sprintf("echo grown >> %s && sleep 0.01 && printf ABCDEFGHIJKLM > %s",
		filepath.Join(p.root[1], "d0/f000.txt"), filepath.Join(p.root[1], "d1/f001.txt")))
	res = p.sync(p.asyncConfig(&ep))
	t.Setenv(engine.HookEnv, "")
	if got := outcomes(res); len(got) != 2 || got[0] != "d0/f000.txt 1to2 failed" || got[1] != "d1/f001.txt 1to2 failed" {
		t.Fatalf("outcomes %q, want both files failed", got)
	}
	for _, o := range res.Outcomes {
		if !errors.Is(o.Err, remote.ErrChanged) {
			t.Errorf("%s: %v, want a change since the scan", o.Item.Path, o.Err)
		}
	}
	two = p.tree(2)
	if two["d0/f000.txt"] != "file " || two["d1/f001.txt"] != "file "+strings.Repeat("x", 13) {
		t.Errorf("side 2 changed: %q, %q", two["d0/f000.txt"], two["d1/f001.txt"])
	}
	// The next run propagates them.
	if res := p.sync(p.asyncConfig(&ep)); res.Failed != 0 || len(res.Outcomes) != 2 {
		t.Errorf("after the edits: %v", outcomes(res))
	}
}

// TestAsyncPutsInterrupted stops a run while its asynchronous puts wait
// for their batches: Execute returns (it does not wait for batches that
// never answer), the puts not carried out fail, and the next run
// converges.
func TestAsyncPutsInterrupted(t *testing.T) {
	p := newPair(t)
	for i := range 50 {
		p.write(1, fmt.Sprintf("f%02d", i), fmt.Sprint(i))
	}
	var ep *asyncEndpoint
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := engine.Prepare(ctx, p.asyncConfig(&ep), nil)
	if err != nil {
		t.Fatal(err)
	}
	stuck := make(chan struct{})
	var once atomic.Bool
	ep.hold = func() {
		if once.CompareAndSwap(false, true) {
			cancel() // the run is stopped while its first batch is out
		}
		<-stuck
	}
	done := make(chan struct{})
	var res *engine.Result
	go func() {
		defer close(done)
		res, _ = s.Execute(ctx, nil)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Execute did not return after the run was stopped")
	}
	// The batch that was out answers late, after the run: its file may
	// land, unrecorded.
	close(stuck)
	ep.sends.Wait()
	s.Close()
	if res == nil || res.Failed == 0 {
		t.Fatalf("the stopped run reports %+v, want failures", res)
	}
	for _, o := range res.Outcomes {
		if o.Status == engine.Done {
			continue
		}
		if o.Err == nil || !errors.Is(o.Err, context.Canceled) && !strings.Contains(o.Err.Error(), "interrupted") {
			t.Errorf("%s: %v, want the run's end", o.Item.Path, o.Err)
		}
	}
	ep.hold = nil
	if res := p.sync(p.asyncConfig(&ep)); res.Failed != 0 {
		t.Errorf("the next run: %v", outcomes(res))
	}
	for i := range 50 {
		b, err := os.ReadFile(filepath.Join(p.root[2], fmt.Sprintf("f%02d", i)))
		if err != nil || string(b) != fmt.Sprint(i) {
			t.Errorf("f%02d on side 2: %q, %v", i, b, err)
		}
	}
}

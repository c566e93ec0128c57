package engine_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/internal/fdlimit/fdlimittest"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
)

// readGauge wraps an endpoint and records how many of its files are being
// read at once and their total size, each read held open a moment so that
// reads overlap when nothing bounds them.
type readGauge struct {
	remote.Endpoint
	mu              sync.Mutex
	files, maxFiles int
	bytes, maxBytes int64
	reads           int
}

func (g *readGauge) ReadFile(ctx context.Context, p string, expect *state.Entry) (io.ReadCloser, error) {
	rc, err := g.Endpoint.ReadFile(ctx, p, expect)
	if err != nil {
		return rc, err
	}
	g.mu.Lock()
	g.files++
	g.bytes += expect.Size
	g.reads++
	g.maxFiles = max(g.maxFiles, g.files)
	g.maxBytes = max(g.maxBytes, g.bytes)
	g.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	return &gaugedReader{ReadCloser: rc, g: g, size: expect.Size}, nil
}

type gaugedReader struct {
	io.ReadCloser
	g    *readGauge
	size int64
	once sync.Once
}

func (r *gaugedReader) Close() error {
	r.once.Do(func() {
		r.g.mu.Lock()
		r.g.files--
		r.g.bytes -= r.size
		r.g.mu.Unlock()
	})
	return r.ReadCloser.Close()
}

// gaugedSync syncs p's side 1 (holding n files) to side 2 and returns the
// gauge of side 1's reads.
func gaugedSync(t *testing.T, p *pair, n int) *readGauge {
	t.Helper()
	var g *readGauge
	cfg := p.config()
	cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
		ep := local.New(root, local.Options{Version: "test"})
		if root != p.root[1] {
			return ep, nil
		}
		g = &readGauge{Endpoint: ep}
		return g, nil
	}
	res := p.sync(cfg)
	if res.Failed != 0 {
		t.Fatalf("%d items failed: %v", res.Failed, outcomes(res))
	}
	if g.reads != n {
		t.Fatalf("%d files read, want %d", g.reads, n)
	}
	sameTrees(t, p)
	return g
}

// TestLargeTransfersBounded checks that however many workers the engine
// runs, at most engine.MaxBig large files are copied at once.
func TestLargeTransfersBounded(t *testing.T) {
	p := newPair(t)
	big := make([]byte, engine.BigFile)
	const n = 3 * engine.MaxBig
	for i := range n {
		big[0] = byte(i)
		if err := os.WriteFile(filepath.Join(p.root[1], fmt.Sprintf("big%02d", i)), big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := gaugedSync(t, p, n)
	if g.maxFiles > engine.MaxBig {
		t.Errorf("%d large files read at once; they are bounded to %d", g.maxFiles, engine.MaxBig)
	}
}

// TestInflightBytesBounded checks that files under engine.BigFile are
// bounded by their total size in flight, and that the bound still lets
// several through at once.
func TestInflightBytesBounded(t *testing.T) {
	const size, budget = 64 << 10, 256 << 10
	defer engine.SetInflightBytes(budget)()
	p := newPair(t)
	data := make([]byte, size)
	const n = 40
	for i := range n {
		data[0] = byte(i)
		if err := os.WriteFile(filepath.Join(p.root[1], fmt.Sprintf("f%02d", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := gaugedSync(t, p, n)
	if g.maxBytes > budget {
		t.Errorf("%d bytes of files read at once; the budget is %d", g.maxBytes, budget)
	}
	if g.maxFiles < 2 {
		t.Errorf("only %d file read at a time; the budget allows %d", g.maxFiles, budget/size)
	}
}

// TestLowDescriptorLimit checks that a first sync of many small files
// succeeds under a low limit of open files (a container, a cron job with
// ulimit -n 256): the workers, each holding descriptors while it waits for
// a flush, must not run out of them.
func TestLowDescriptorLimit(t *testing.T) {
	const limit = 256
	fdlimittest.Lower(t, limit)
	p := newPair(t)
	const n = 3000
	for i := range n {
		p.write(1, fmt.Sprintf("d%02d/f%04d", i%30, i), "small file")
	}
	res := p.sync(p.config())
	if res.Failed != 0 {
		t.Fatalf("%d of %d items failed under a limit of %d descriptors: %v", res.Failed, len(res.Outcomes), limit, outcomes(res)[:3])
	}
	sameTrees(t, p)
}

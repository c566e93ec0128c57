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
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
)

// readGauge wraps an endpoint and records how many of its large files are
// being read at once, each read held open a moment so that reads overlap
// when nothing bounds them.
type readGauge struct {
	remote.Endpoint
	mu       sync.Mutex
	cur, max int
	reads    int
}

func (g *readGauge) ReadFile(ctx context.Context, p string, expect *state.Entry) (io.ReadCloser, error) {
	rc, err := g.Endpoint.ReadFile(ctx, p, expect)
	if err != nil || expect.Size < engine.BigFile {
		return rc, err
	}
	g.mu.Lock()
	g.cur++
	g.reads++
	g.max = max(g.max, g.cur)
	g.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	return &gaugedReader{ReadCloser: rc, g: g}, nil
}

type gaugedReader struct {
	io.ReadCloser
	g    *readGauge
	once sync.Once
}

func (r *gaugedReader) Close() error {
	r.once.Do(func() {
		r.g.mu.Lock()
		r.g.cur--
		r.g.mu.Unlock()
	})
	return r.ReadCloser.Close()
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
		t.Fatalf("%d large files read, want %d", g.reads, n)
	}
	if g.max > engine.MaxBig {
		t.Errorf("%d files read at once; large ones are bounded to %d", g.max, engine.MaxBig)
	}
	sameTrees(t, p)
}

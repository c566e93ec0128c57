package torture

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
	"github.com/concord-sync/concord/remote/wire"
)

// evilEP is a malicious peer: a real local endpoint whose scan also
// reports made-up changes and whose ReadFile lies where told to.
type evilEP struct {
	*local.Endpoint
	extra  []remote.Change
	lies   map[string]func() io.ReadCloser
	served atomic.Int64
}

func (v *evilEP) Scan(ctx context.Context, req remote.ScanRequest, progress func(remote.ScanProgress)) (remote.ScanReply, error) {
	r, err := v.Endpoint.Scan(ctx, req, progress)
	if err != nil {
		return r, err
	}
	// A lie is told about a file whose hash the scan claims: new files
	// are reported unread (without a hash) by an honest scan, so claim
	// one for them, as a peer may.
	for i, c := range r.Changes {
		if _, ok := v.lies[c.Path]; ok && c.New != nil && c.New.Unhashed {
			es, err := v.Endpoint.Stat(ctx, []string{c.Path})
			if err != nil {
				return r, err
			}
			r.Changes[i].New = es[0]
		}
	}
	r.Changes = append(r.Changes, v.extra...)
	sort.Slice(r.Changes, func(i, j int) bool { return state.ComparePaths(r.Changes[i].Path, r.Changes[j].Path) < 0 })
	return r, nil
}

func (v *evilEP) ReadFile(ctx context.Context, p string, expect *state.Entry) (io.ReadCloser, error) {
	if lie, ok := v.lies[p]; ok {
		return &counting{r: lie(), n: &v.served}, nil
	}
	return v.Endpoint.ReadFile(ctx, p, expect)
}

type counting struct {
	r io.ReadCloser
	n *atomic.Int64
}

func (c *counting) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}
func (c *counting) Close() error { return c.r.Close() }

// endless is an infinite stream of bytes.
type endless struct{}

func (endless) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = 'A'
	}
	return len(b), nil
}
func (endless) Close() error { return nil }

func fileEntry(content []byte) *state.Entry {
	return &state.Entry{Kind: state.File, Mode: 0o644, Size: int64(len(content)), MTime: time.Now().UnixNano(), Hash: blake3.Sum256(content)}
}

// hostileRun syncs the local directory victim with evil over the wire
// protocol (net.Pipe), driving the engine in this process. It returns the
// result (nil if the run stopped before executing) and the error.
func hostileRun(t *testing.T, victim string, evil *evilEP, stateDir string) (*engine.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	served := make(chan error, 1)
	cfg := engine.Config{Root1: victim, Root2: "evil", Version: "torture",
		Dial: func(ctx context.Context, root string) (remote.Endpoint, error) {
			if root != "evil" {
				return local.New(root, local.Options{StateDir: stateDir, Version: "torture"}), nil
			}
			a, b := net.Pipe()
			go func() { served <- wire.Serve(ctx, b, evil); b.Close() }()
			return wire.NewClient(a, wire.WithVersion("torture")), nil
		}}
	sess, err := engine.Prepare(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	res, err := sess.Execute(ctx, nil)
	sess.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the hostile server did not end after the client closed")
	}
	return res, err
}

// TestHostilePeer: a peer that sends absolute paths, "..", paths through
// symlinks, and lies about sizes and hashes never gets anything written
// outside the root (a sibling directory is watched), the run fails
// cleanly, and what it sends is bounded.
func TestHostilePeer(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) (hook string)
		// fatal: the whole run must stop; else the named items fail.
		fatal  bool
		failed []string
		// heapLimit bounds the heap's growth during the run (default 256 MiB).
		heapLimit int64
	}{
		{name: "absolute path", fatal: true, setup: func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) string {
			p := filepath.Join(sibling, "pwned")
			v.extra = append(v.extra, remote.Change{Path: p, New: fileEntry([]byte("x"))})
			v.lies = map[string]func() io.ReadCloser{p: func() io.ReadCloser { return io.NopCloser(strings.NewReader("x")) }}
			return ""
		}},
		{name: "dot-dot", fatal: true, setup: func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) string {
			v.extra = append(v.extra, remote.Change{Path: "../sibling/pwned", New: fileEntry([]byte("x"))})
			return ""
		}},
		{name: "dot-dot inside", fatal: true, setup: func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) string {
			v.extra = append(v.extra, remote.Change{Path: "a/../../sibling/pwned", New: fileEntry([]byte("x"))})
			return ""
		}},
		{name: "through a symlink", failed: []string{"d/pwned"}, setup: func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) string {
			// The peer claims a new file below d; just before propagation d
			// becomes a symlink to the sibling directory on this side.
			c := []byte("pwned")
			os.MkdirAll(filepath.Join(victim, "d"), 0o755)
			os.MkdirAll(filepath.Join(evilRoot, "d"), 0o755)
			v.extra = append(v.extra, remote.Change{Path: "d/pwned", New: fileEntry(c)})
			v.lies = map[string]func() io.ReadCloser{"d/pwned": func() io.ReadCloser { return io.NopCloser(bytes.NewReader(c)) }}
			return "rm -r " + filepath.Join(victim, "d") + " && ln -s " + sibling + " " + filepath.Join(victim, "d")
		}},
		{name: "endless file", failed: []string{"liar"}, setup: func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) string {
			writeFile(t, evilRoot, "liar", []byte("ten bytes!"))
			v.lies = map[string]func() io.ReadCloser{"liar": func() io.ReadCloser { return endless{} }}
			return ""
		}},
		{name: "wrong hash", failed: []string{"hashliar"}, setup: func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) string {
			writeFile(t, evilRoot, "hashliar", gen("h", 0, 1000))
			v.lies = map[string]func() io.ReadCloser{"hashliar": func() io.ReadCloser { return io.NopCloser(bytes.NewReader(gen("h", 1, 1000))) }}
			return ""
		}},
		{name: "short file", failed: []string{"short"}, setup: func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) string {
			writeFile(t, evilRoot, "short", gen("s", 0, 1<<20))
			v.lies = map[string]func() io.ReadCloser{"short": func() io.ReadCloser { return io.NopCloser(strings.NewReader("short")) }}
			return ""
		}},
		{name: "big file, wrong contents", failed: []string{"big"}, heapLimit: 48 << 20, setup: func(t *testing.T, victim, sibling, evilRoot string, v *evilEP) string {
			// The size is right, the contents are not: 96 MiB stream
			// through, never held whole in memory, and are not installed.
			const size = 96 << 20
			e := fileEntry([]byte("x"))
			e.Size = size
			v.extra = append(v.extra, remote.Change{Path: "big", New: e})
			v.lies = map[string]func() io.ReadCloser{"big": func() io.ReadCloser { return io.NopCloser(io.LimitReader(endless{}, size)) }}
			return ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			victim, sibling, evilRoot := filepath.Join(dir, "victim"), filepath.Join(dir, "sibling"), filepath.Join(dir, "evil")
			for _, d := range []string{victim, sibling, evilRoot} {
				os.MkdirAll(d, 0o755)
			}
			writeFile(t, victim, "keep", []byte("keep"))
			writeFile(t, sibling, "victim-file", []byte("do not touch"))
			v := &evilEP{Endpoint: local.New(evilRoot, local.Options{StateDir: filepath.Join(dir, "evilstate"), Version: "torture"})}
			hook := tc.setup(t, victim, sibling, evilRoot, v)
			t.Setenv(engine.HookEnv, hook)
			peak := heapPeak()
			res, err := hostileRun(t, victim, v, filepath.Join(dir, "state"))
			limit := tc.heapLimit
			if limit == 0 {
				limit = 256 << 20
			}
			if grew := peak(); grew > limit {
				t.Errorf("the heap grew by %d MiB during the run (limit %d MiB)", grew>>20, limit>>20)
			}
			if n := v.served.Load(); n > 64<<20+tc.heapLimit*2 {
				t.Errorf("the client read %d MiB of a lying stream before giving up", n>>20)
			}
			if tc.fatal {
				if err == nil || !engine.IsFatal(err) || !errors.Is(err, remote.ErrUnsafePath) {
					t.Fatalf("want a fatal unsafe-path error, got %v (result %+v)", err, res)
				}
			} else {
				if err != nil || res == nil {
					t.Fatalf("want the run to go on past the bad items, got %v", err)
				}
				failed := map[string]string{}
				for _, o := range res.Outcomes {
					if o.Status == engine.Failed {
						failed[o.Item.Path] = o.Err.Error()
					}
				}
				for _, p := range tc.failed {
					if _, ok := failed[p]; !ok {
						t.Errorf("%s did not fail; failures %v", p, failed)
					}
				}
				t.Logf("failures: %v", failed)
				if b, err := os.ReadFile(filepath.Join(evilRoot, "keep")); err != nil || string(b) != "keep" {
					t.Errorf("the honest part of the run did not go through (%v)", err)
				}
			}
			ents, _ := os.ReadDir(sibling)
			if len(ents) != 1 || ents[0].Name() != "victim-file" {
				t.Fatalf("something was written outside the root: %v", ents)
			}
			if b, _ := os.ReadFile(filepath.Join(sibling, "victim-file")); string(b) != "do not touch" {
				t.Fatal("the sibling's file was changed")
			}
			cur, temps := snapshot(t, victim)
			if len(temps) > 0 {
				t.Fatalf("temporary files left: %q", temps)
			}
			for _, p := range tc.failed {
				if _, ok := cur[p]; ok && p != "d/pwned" {
					t.Fatalf("%s was installed", p)
				}
			}
		})
	}
}

// heapPeak starts sampling the heap and returns a function that stops and
// returns the largest growth seen over the heap at the start.
func heapPeak() func() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	base := int64(m.HeapInuse)
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if g := int64(m.HeapInuse) - base; g > peak.Load() {
				peak.Store(g)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

// TestHostileApply: operations sent over the wire protocol to the real
// local endpoint (what `concord serve` runs) that would go through a
// symlink in the root, or outside it, are refused and touch nothing.
func TestHostileApply(t *testing.T) {
	dir := t.TempDir()
	root, sibling := filepath.Join(dir, "root"), filepath.Join(dir, "sibling")
	os.MkdirAll(root, 0o755)
	writeFile(t, sibling, "victim", []byte("do not touch"))
	os.Symlink(sibling, filepath.Join(root, "link"))
	os.MkdirAll(filepath.Join(root, "real"), 0o755)
	os.Symlink("../../sibling", filepath.Join(root, "real", "up"))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := net.Pipe()
	ep := local.New(root, local.Options{StateDir: filepath.Join(dir, "state"), Version: "torture"})
	done := make(chan error, 1)
	go func() { done <- wire.Serve(ctx, b, ep); b.Close() }()
	cl := wire.NewClient(a, wire.WithVersion("torture"))
	info, err := cl.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Open(ctx, remote.OpenRequest{PeerID: info.ReplicaID + "-peer", PeerRoot: "peer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Scan(ctx, remote.ScanRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	content := []byte("pwned")
	victim := fileEntry([]byte("do not touch"))
	dirEntry := &state.Entry{Kind: state.Dir, Mode: 0o755}
	linkEntry := &state.Entry{Kind: state.Symlink, Target: "/etc"}
	var ops []remote.Op
	for _, p := range []string{"link/new", "real/up/new", "link/victim", "real/up/victim", "../sibling/new", sibling + "/new", "real/../../sibling/new", "link/sub/new"} {
		ops = append(ops,
			remote.Op{Kind: remote.OpPut, Path: p, New: fileEntry(content)},
			remote.Op{Kind: remote.OpMkdir, Path: p, New: dirEntry},
			remote.Op{Kind: remote.OpSymlink, Path: p, New: linkEntry},
			remote.Op{Kind: remote.OpRemove, Path: p, Expect: victim},
			remote.Op{Kind: remote.OpSetMeta, Path: p, Expect: victim, New: &state.Entry{Kind: state.File, Mode: 0o777}},
		)
	}
	for _, op := range ops {
		var r io.Reader
		if op.Kind == remote.OpPut {
			r = bytes.NewReader(content)
		}
		if e, err := cl.Apply(ctx, op, r); err == nil {
			t.Errorf("op %d on %q was accepted: %+v", op.Kind, op.Path, e)
		}
	}
	if err := cl.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	<-done
	ents, _ := os.ReadDir(sibling)
	if len(ents) != 1 || ents[0].Name() != "victim" {
		t.Fatalf("something was written outside the root: %v", ents)
	}
	fi, err := os.Stat(filepath.Join(sibling, "victim"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("the file outside the root was changed: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(filepath.Join(sibling, "victim")); string(b) != "do not touch" {
		t.Fatal("the file outside the root was rewritten")
	}
	t.Logf("%d hostile operations refused", len(ops))
}

package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
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
	"github.com/concord-sync/concord/remote/delta"
	"github.com/concord-sync/concord/remote/delta/deltatest"
	"github.com/concord-sync/concord/remote/local"
)

// signingEndpoint stands for a remote side: it wraps a local endpoint (so
// the engine does not take it for a local one and sends it deltas), signs
// files through it, and counts the signatures asked for.
type signingEndpoint struct {
	remote.Endpoint
	signer     engine.Signer
	signatures atomic.Int64
	signed     chan struct{} // closed at the first signature
	once       sync.Once
}

func (s *signingEndpoint) Signature(ctx context.Context, p string, expect *state.Entry) (*delta.Sig, error) {
	s.signatures.Add(1)
	s.once.Do(func() { close(s.signed) })
	return s.signer.Signature(ctx, p, expect)
}

// waitingEndpoint holds its scan's reply back until a signature was asked
// for (or a timeout passed), so that a test can tell a signature fetched
// during the scan from one fetched by the transfer.
type waitingEndpoint struct {
	remote.Endpoint
	t      *testing.T
	signed func() chan struct{}
	deltas atomic.Int64
}

// ReadDelta computes the delta of a file as a remote source does.
func (w *waitingEndpoint) ReadDelta(ctx context.Context, p string, expect *state.Entry, sig *delta.Sig, c delta.Confirm) (io.ReadCloser, error) {
	w.deltas.Add(1)
	f, err := w.ReadFile(ctx, p, expect)
	if err != nil {
		return nil, err
	}
	return readCloser{delta.NewReader(sig, f, c), f}, nil
}

// readCloser reads from one reader and closes two.
type readCloser struct {
	io.ReadCloser
	also io.Closer
}

func (r readCloser) Close() error {
	r.also.Close()
	return r.ReadCloser.Close()
}

func (w *waitingEndpoint) Scan(ctx context.Context, req remote.ScanRequest, progress func(remote.ScanProgress)) (remote.ScanReply, error) {
	reply, err := w.Endpoint.Scan(ctx, req, progress)
	select {
	case <-w.signed():
	case <-time.After(10 * time.Second):
		w.t.Error("no signature was asked for while side 1 was being scanned")
	}
	return reply, err
}

// signingConfig returns a configuration whose side 2 is a signingEndpoint,
// stored in *ep when dialled, and whose side 1 is a waitingEndpoint, stored
// in *src.
func (p *pair) signingConfig(ep **signingEndpoint, src **waitingEndpoint) engine.Config {
	cfg := p.config()
	sig := &signingEndpoint{signed: make(chan struct{})}
	cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
		l := local.New(root, local.Options{Version: "test"})
		if root != p.root[2] {
			*src = &waitingEndpoint{Endpoint: l, t: p.t, signed: func() chan struct{} { return sig.signed }}
			return *src, nil
		}
		sig.Endpoint, sig.signer = l, l
		*ep = sig
		return sig, nil
	}
	return cfg
}

// TestPrefetchedSignature checks that a large file edited on one side is
// sent by delta with the signature fetched during the scan (asked for once,
// not again by the transfer), and that nothing is fetched for a file both
// sides edited (a conflict, which sends nothing).
func TestPrefetchedSignature(t *testing.T) {
	p := newPair(t)
	big := randomBytes(1, 2, 3<<20)
	p.write(1, "big.bin", string(big))
	p.write(1, "both.bin", string(big))
	p.sync(p.config())

	edited := bytes.Clone(big)
	copy(edited[1<<20:], "an edit in the middle of the file")
	p.write(1, "big.bin", string(edited))
	p.write(1, "both.bin", string(edited[:len(edited)-1]))
	p.write(2, "both.bin", string(edited[:len(edited)-2]))

	var ep *signingEndpoint
	var src *waitingEndpoint
	res := p.sync(p.signingConfig(&ep, &src))
	got := outcomes(res)
	want := []string{"big.bin 1to2 done", "both.bin conflict skipped"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("outcomes %q, want %q", got, want)
	}
	if n := ep.signatures.Load(); n != 1 {
		t.Errorf("side 2 was asked for %d signatures, want 1 (prefetched for big.bin and used by its transfer; none for the conflict)", n)
	}
	if n := src.deltas.Load(); n != 1 {
		t.Errorf("%d deltas were computed, want 1 (big.bin)", n)
	}
	if p.tree(2)["big.bin"] != "file "+string(edited) {
		t.Error("big.bin on side 2 is not the edited version")
	}
}

// TestPrecomputedDelta checks that a large file edited on a local side, bound
// for a remote one, is sent by the delta computed while the scan hashed it,
// and that an edit made after the scan still fails the item and leaves the
// destination alone, as for a delta computed during the transfer.
func TestPrecomputedDelta(t *testing.T) {
	p := newPair(t)
	big := randomBytes(3, 4, 3<<20)
	p.write(1, "big.bin", string(big))
	cfg := p.remoteTwoConfig
	p.sync(cfg())

	edited := bytes.Clone(big)
	copy(edited[1<<20:], "an edit in the middle of the file")
	p.write(1, "big.bin", string(edited))
	before := engine.PrecomputedDeltas()
	// The transfer takes a precomputed delta only if it is ready (else it
	// streams its own): wait for it here.
	res := syncAhead(t, cfg(), func() {})
	if got := outcomes(res); len(got) != 1 || got[0] != "big.bin 1to2 done" {
		t.Fatalf("outcomes %q, want big.bin 1to2 done", got)
	}
	if n := engine.PrecomputedDeltas() - before; n != 1 {
		t.Errorf("%d transfers used a precomputed delta, want 1", n)
	}
	if p.tree(2)["big.bin"] != "file "+string(edited) {
		t.Fatal("big.bin on side 2 is not the edited version")
	}

	// Edited again, and once more after the scan and the delta's
	// computation, before the transfer.
	p.lateEditFails(cfg(), edited, engine.PrecomputedDeltas)
}

// lateEditFails edits big.bin on side 1 (whose version on both sides is
// edited), and once more after what the sync with cfg computes or stages
// ahead is in, before the transfers: the item must fail, side 2 keep
// edited, and ahead (the transfers that used what was done ahead) not move.
func (p *pair) lateEditFails(cfg engine.Config, edited []byte, ahead func() int64) {
	t := p.t
	t.Helper()
	again := bytes.Clone(edited)
	copy(again[2<<20:], "a second edit")
	p.write(1, "big.bin", string(again))
	before := ahead()
	res := syncAhead(t, cfg, func() {
		f, err := os.OpenFile(filepath.Join(p.root[1], "big.bin"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("late edit"), 100)
		f.Close()
	})
	if got := outcomes(res); len(got) != 1 || got[0] != "big.bin 1to2 failed" {
		t.Fatalf("outcomes %q, want big.bin 1to2 failed", got)
	}
	if n := ahead() - before; n != 0 {
		t.Errorf("%d transfers used a delta done ahead of a version edited since", n)
	}
	if p.tree(2)["big.bin"] != "file "+string(edited) {
		t.Error("side 2 changed by a transfer whose source was edited after the scan")
	}
}

// remoteTwoConfig returns a configuration whose side 2 passes for a
// remote one (a signingEndpoint around a local endpoint), so that the
// engine sends it deltas and stages them.
func (p *pair) remoteTwoConfig() engine.Config {
	cfg := p.config()
	cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
		l := local.New(root, local.Options{Version: "test"})
		if root != p.root[2] {
			return l, nil
		}
		return &signingEndpoint{Endpoint: l, signer: l, signed: make(chan struct{})}, nil
	}
	return cfg
}

// remoteOneConfig returns a configuration whose side 1 passes for a
// remote source (a deltaSource around a local endpoint, set in *src at each
// connection), so that the engine pulls its deltas.
func (p *pair) remoteOneConfig(src **deltaSource) engine.Config {
	cfg := p.config()
	cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
		l := local.New(root, local.Options{Version: "test"})
		if root != p.root[1] {
			return l, nil
		}
		*src = &deltaSource{Endpoint: l}
		return *src, nil
	}
	return cfg
}

// syncAhead syncs with cfg once what was computed or staged ahead is in,
// calling between before the transfers.
func syncAhead(t *testing.T, cfg engine.Config, between func()) *engine.Result {
	t.Helper()
	ctx := context.Background()
	s, err := engine.Prepare(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.WaitPrefetch()
	between()
	res, err := s.Execute(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// randomBytes returns n pseudo-random bytes from the seeds.
func randomBytes(seed1, seed2 uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed1, seed2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestStagedDelta checks that a large file (8 MiB and more) edited on a
// local side, bound for a remote one, is rebuilt at the destination while
// the scans run and only installed by the transfer; that an edit made after
// that still fails the item and leaves the destination alone; and that a
// file staged for nothing (the plan does not send it) leaves no temporary
// file behind.
func TestStagedDelta(t *testing.T) {
	p := newPair(t)
	big := randomBytes(5, 6, 9<<20)
	p.write(1, "big.bin", string(big))
	cfg := p.remoteTwoConfig
	p.sync(cfg())
	noTemps := func() {
		t.Helper()
		for path := range p.tree(2) {
			if strings.HasPrefix(filepath.Base(path), ".concord-tmp-") {
				t.Errorf("temporary file left on side 2: %s", path)
			}
		}
	}

	edited := bytes.Clone(big)
	copy(edited[5<<20:], "an edit in the middle of the file")
	p.write(1, "big.bin", string(edited))
	staged, precomputed := engine.StagedDeltas(), engine.PrecomputedDeltas()
	res := syncAhead(t, cfg(), func() {})
	if got := outcomes(res); len(got) != 1 || got[0] != "big.bin 1to2 done" {
		t.Fatalf("outcomes %q, want big.bin 1to2 done", got)
	}
	if n := engine.StagedDeltas() - staged; n != 1 {
		t.Errorf("%d transfers installed a staged delta, want 1", n)
	}
	if n := engine.PrecomputedDeltas() - precomputed; n != 0 {
		t.Errorf("%d transfers sent a precomputed delta of a file that was staged", n)
	}
	if res.Bytes == 0 || res.Bytes > 1<<20 {
		t.Errorf("the run counts %d bytes sent for a staged delta of a 33-byte edit", res.Bytes)
	}
	if p.tree(2)["big.bin"] != "file "+string(edited) {
		t.Fatal("big.bin on side 2 is not the edited version")
	}
	noTemps()

	// Edited again, and once more after the staging, before the transfer:
	// the staged version is not the one the plan sends.
	p.lateEditFails(cfg(), edited, engine.StagedDeltas)
	noTemps()

	// Staged, but side 2 takes no updates: nothing is installed, and the
	// staged file goes when the session ends.
	held := cfg()
	held.Options.NoUpdate[2] = true
	res = syncAhead(t, held, func() {})
	if got := outcomes(res); len(got) != 1 || got[0] != "big.bin skip skipped" {
		t.Fatalf("outcomes %q, want big.bin skip skipped", got)
	}
	if p.tree(2)["big.bin"] != "file "+string(edited) {
		t.Error("side 2 changed under --no-update")
	}
	noTemps()

	// And the next plain run sends it.
	res = p.sync(cfg())
	if got := outcomes(res); len(got) != 1 || got[0] != "big.bin 1to2 done" {
		t.Fatalf("outcomes %q, want big.bin 1to2 done", got)
	}
	if p.tree(1)["big.bin"] != p.tree(2)["big.bin"] {
		t.Error("the sides differ after the last run")
	}
	noTemps()
}

// deltaSource stands for a remote side that computes deltas of its files
// (read-delta) for a local destination.
type deltaSource struct {
	remote.Endpoint
	deltas atomic.Int64
}

func (d *deltaSource) ReadDelta(ctx context.Context, p string, expect *state.Entry, sig *delta.Sig, c delta.Confirm) (io.ReadCloser, error) {
	d.deltas.Add(1)
	f, err := d.ReadFile(ctx, p, expect)
	if err != nil {
		return nil, err
	}
	return readCloser{delta.NewReader(sig, f, c), f}, nil
}

// TestPulledStagedDelta checks the other direction: a large file edited on
// a remote side, bound for a local one, is rebuilt locally from the
// remote's delta while the scans run, and only installed by the transfer.
func TestPulledStagedDelta(t *testing.T) {
	p := newPair(t)
	big := randomBytes(7, 8, 9<<20)
	p.write(1, "big.bin", string(big))
	var src *deltaSource
	cfg := func() engine.Config { return p.remoteOneConfig(&src) }
	p.sync(cfg())
	edited := bytes.Clone(big)
	copy(edited[5<<20:], "an edit in the middle of the file")
	p.write(1, "big.bin", string(edited))
	staged := engine.StagedDeltas()
	res := syncAhead(t, cfg(), func() {})
	if got := outcomes(res); len(got) != 1 || got[0] != "big.bin 1to2 done" {
		t.Fatalf("outcomes %q, want big.bin 1to2 done", got)
	}
	if n := engine.StagedDeltas() - staged; n != 1 {
		t.Errorf("%d transfers installed a staged delta, want 1", n)
	}
	if n := src.deltas.Load(); n != 1 {
		t.Errorf("the remote side computed %d deltas, want 1 (during the scan, none after)", n)
	}
	if p.tree(2)["big.bin"] != "file "+string(edited) {
		t.Fatal("big.bin on side 2 is not the edited version")
	}
	for path := range p.tree(2) {
		if strings.HasPrefix(filepath.Base(path), ".concord-tmp-") {
			t.Errorf("temporary file left on side 2: %s", path)
		}
	}
}

// TestStagedBounded: with more large files changed than maxStaged, only
// that many are staged at the destination at once; the others are sent by
// deltas computed ahead here, and every file arrives.
func TestStagedBounded(t *testing.T) {
	p := newPair(t)
	n := engine.MaxStaged + 2
	name := func(i int) string { return fmt.Sprintf("big%d.bin", i) }
	versions := make([][]byte, n)
	for i := range n {
		versions[i] = randomBytes(9, uint64(i), 9<<20)
		p.write(1, name(i), string(versions[i]))
	}
	p.sync(p.remoteTwoConfig())
	for i := range n {
		copy(versions[i][4<<20:], "an edit in the middle of the file")
		p.write(1, name(i), string(versions[i]))
	}
	staged, precomputed := engine.StagedDeltas(), engine.PrecomputedDeltas()
	res := syncAhead(t, p.remoteTwoConfig(), func() {})
	if res.Propagated != n || res.Failed != 0 {
		t.Fatalf("propagated %d, failed %d; want %d, 0: %q", res.Propagated, res.Failed, n, outcomes(res))
	}
	if got := engine.StagedDeltas() - staged; got != engine.MaxStaged {
		t.Errorf("%d files installed from staging, want %d (the bound)", got, engine.MaxStaged)
	}
	if got := engine.PrecomputedDeltas() - precomputed; got != int64(n-engine.MaxStaged) {
		t.Errorf("%d files sent by deltas computed ahead, want %d (those past the bound)", got, n-engine.MaxStaged)
	}
	tree := p.tree(2)
	for i := range n {
		if tree[name(i)] != "file "+string(versions[i]) {
			t.Errorf("%s on side 2 is not the edited version", name(i))
		}
	}
}

// TestWeakCollisionRedone edits a large file where rsync's weak checksum
// cannot see it (two pairs of bytes moved by one in opposite directions)
// in a block right after unchanged ones, which a first delta takes on the
// weak checksum alone (delta.ConfirmResync): the destination's check of
// the result's hash refuses it, and the engine sends the file again with
// every block confirmed, in the same run, by each way a delta goes.
func TestWeakCollisionRedone(t *testing.T) {
	tests := []struct {
		name string
		size int
		pull bool // side 1 passes for a remote source, side 2 local
	}{
		{"push", 200 << 10, false},
		{"push precomputed", 2 << 20, false},
		{"push staged", 9 << 20, false},
		{"pull", 200 << 10, true},
		{"pull staged", 9 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t)
			big := randomBytes(13, uint64(tt.size), tt.size)
			p.write(1, "big.bin", string(big))
			cfg := p.remoteTwoConfig
			var src *deltaSource
			if tt.pull {
				cfg = func() engine.Config { return p.remoteOneConfig(&src) }
			}
			p.sync(cfg())

			edited := bytes.Clone(big)
			bs := delta.BlockSize(int64(tt.size))
			mid := tt.size / bs / 2 * bs
			if err := deltatest.CollideWeak(edited[mid : mid+bs]); err != nil {
				t.Fatal(err)
			}
			p.write(1, "big.bin", string(edited))
			redone := engine.RedoneDeltas()
			res := syncAhead(t, cfg(), func() {})
			if got := outcomes(res); len(got) != 1 || got[0] != "big.bin 1to2 done" {
				t.Fatalf("outcomes %q, want big.bin 1to2 done", got)
			}
			if p.tree(2)["big.bin"] != "file "+string(edited) {
				t.Fatal("big.bin on side 2 is not the edited version")
			}
			if n := engine.RedoneDeltas() - redone; n != 1 {
				t.Errorf("%d deltas sent again, want 1", n)
			}
			// The first delta (staged or not) and the second: a
			// staged one that failed so is not tried again as it was.
			if src != nil && src.deltas.Load() != 2 {
				t.Errorf("the remote side computed %d deltas, want 2", src.deltas.Load())
			}
		})
	}
}

package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
	"golang.org/x/sys/unix"
)

// farEndpoint stands for a remote side: a local endpoint the engine does
// not take for one.
type farEndpoint struct{ remote.Endpoint }

// farName is how the tests name side 2, as a user names a remote root.
const farName = "ssh://replica.invalid/srv/data"

// farConfig returns a configuration whose side 2 is named farName and
// reached by dial, which returns the directory it leads to (or an error)
// once the engine asked for it.
func (p *pair) farConfig(dial func(ctx context.Context) (string, error)) engine.Config {
	cfg := engine.Config{Root1: p.root[1], Root2: farName, Version: "test"}
	cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
		if root != farName {
			return local.New(root, local.Options{Version: "test"}), nil
		}
		dir, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		return farEndpoint{local.New(dir, local.Options{Version: "test"})}, nil
	}
	return cfg
}

// scanWatch returns a scan progress callback and a channel closed once
// side 1's scan has counted want entries (its last progress report comes
// when it has looked at everything).
func scanWatch(want int64) (func(engine.ScanEvent), chan struct{}) {
	scanned := make(chan struct{})
	closed := false
	return func(ev engine.ScanEvent) {
		if ev.Side == 1 && ev.Entries >= want && !closed {
			closed = true
			close(scanned)
		}
	}, scanned
}

// afterScan returns a dial for farConfig that answers (dir, err) only once
// scanned is closed, or fails the test after 10 s: the engine must scan
// side 1 while side 2 is still connecting.
func afterScan(t *testing.T, scanned chan struct{}, dir string, err error) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		select {
		case <-scanned:
		case <-time.After(10 * time.Second):
			t.Error("side 1 was not scanned while side 2 was connecting")
		}
		return dir, err
	}
}

// syncedFar returns a pair whose side 2 is named farName, synchronized
// once (which leaves the hint), and the configuration that did it.
func syncedFar(t *testing.T) (*pair, engine.Config) {
	t.Helper()
	p := newPair(t)
	populate(p)
	first := p.farConfig(func(context.Context) (string, error) { return p.root[2], nil })
	if _, err := p.syncWith(first, nil); err != nil {
		t.Fatal(err)
	}
	return p, first
}

// syncWith runs a whole sync with a progress callback.
func (p *pair) syncWith(cfg engine.Config, progress func(engine.ScanEvent)) (*engine.Result, error) {
	p.t.Helper()
	ctx := context.Background()
	s, err := engine.Prepare(ctx, cfg, progress)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Execute(ctx, nil)
}

// archivedCTime returns the inode change time side 1's archive of the
// pairing with dir records for rel.
func (p *pair) archivedCTime(dir, rel string) int64 {
	p.t.Helper()
	own, err := archive.ReplicaID(p.stateDir, p.root[1], false)
	if err != nil {
		p.t.Fatal(err)
	}
	peer, err := archive.ReplicaID(p.stateDir, dir, false)
	if err != nil {
		p.t.Fatal(err)
	}
	db, err := archive.Open(archive.ArchivePath(p.stateDir, own, peer), true)
	if err != nil {
		p.t.Fatal(err)
	}
	defer db.Close()
	e, err := db.Get(context.Background(), rel)
	if err != nil || e == nil {
		p.t.Fatalf("archived %s: %v, %v", rel, e, err)
	}
	return e.CTime
}

// touch changes side 1's rel and changes it back (a new inode change
// time, nothing else): the scan then rereads it and records the new stat
// data, a change of the archive that a scan must not make before the
// pairing is confirmed.
func (p *pair) touch(rel string) {
	p.t.Helper()
	full := filepath.Join(p.root[1], rel)
	fi, err := os.Stat(full)
	if err != nil {
		p.t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a ctime the clock can tell apart
	if err := os.Chmod(full, 0o600); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Chmod(full, fi.Mode().Perm()); err != nil {
		p.t.Fatal(err)
	}
}

// ctime returns the inode change time of side 1's rel.
func (p *pair) ctime(rel string) int64 {
	p.t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(p.root[1], rel), &st); err != nil {
		p.t.Fatal(err)
	}
	return st.Ctim.Nano()
}

// TestScanWhileConnecting: once a pairing with a remote root has been
// synchronized, the next run scans the local side while it connects.
func TestScanWhileConnecting(t *testing.T) {
	p, _ := syncedFar(t)
	sameTrees(t, p)

	p.write(1, "f1.txt", "one, edited")
	p.write(2, "new2.txt", "new on two")
	p.touch("f2.txt")
	progress, scanned := scanWatch(int64(len(p.tree(1))))
	cfg := p.farConfig(afterScan(t, scanned, p.root[2], nil))
	res, err := p.syncWith(cfg, progress)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(outcomes(res), "\n")
	want := "f1.txt 1to2 done\nnew2.txt 2to1 done"
	if got != want {
		t.Errorf("outcomes:\n%s\nwant:\n%s", got, want)
	}
	sameTrees(t, p)
	if got, now := p.archivedCTime(p.root[2], "f2.txt"), p.ctime("f2.txt"); got != now {
		t.Errorf("the confirmed scan did not record the new stat data of f2.txt: archived ctime %d, now %d", got, now)
	}
}

// TestScanWhileConnectingWrongGuess: when the remote root leads to another
// replica than last time, the scan begun meanwhile is thrown away unused,
// having changed nothing, and the run is the first sync of the new pair.
func TestScanWhileConnectingWrongGuess(t *testing.T) {
	p, _ := syncedFar(t)
	before := p.archivedCTime(p.root[2], "f2.txt")
	p.touch("f2.txt")

	other, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "elsewhere.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	progress, scanned := scanWatch(int64(len(p.tree(1))))
	cfg := p.farConfig(afterScan(t, scanned, other, nil))
	res, err := p.syncWith(cfg, progress)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Outcomes {
		if o.Status != engine.Done {
			t.Errorf("%s: %v", o.Item.Path, o.Status)
		}
	}
	if _, err := os.Stat(filepath.Join(other, "dir", "sub", "h.txt")); err != nil {
		t.Errorf("the new replica was not given side 1's files: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.root[1], "elsewhere.txt")); err != nil {
		t.Errorf("side 1 was not given the new replica's file: %v", err)
	}
	if got := p.archivedCTime(p.root[2], "f2.txt"); got != before {
		t.Errorf("the scan for the old pairing changed its archive: f2.txt archived with ctime %d, was %d", got, before)
	}

	// The hint follows the new replica: the next run speculates on it.
	p.write(1, "again.txt", "again")
	progress, scanned = scanWatch(int64(len(p.tree(1))))
	cfg = p.farConfig(afterScan(t, scanned, other, nil))
	if _, err := p.syncWith(cfg, progress); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(other, "again.txt")); err != nil {
		t.Error(err)
	}
}

// TestScanWhileConnectingFails: a connection that fails after the local
// side was scanned ends the run with the connection's error; the scan
// changed nothing and left no lock behind.
func TestScanWhileConnectingFails(t *testing.T) {
	p, first := syncedFar(t)
	before := p.archivedCTime(p.root[2], "f2.txt")
	p.touch("f2.txt")
	unreachable := errors.New("cannot connect to replica.invalid: connection refused")
	progress, scanned := scanWatch(int64(len(p.tree(1))))
	cfg := p.farConfig(afterScan(t, scanned, "", engine.Fatal("%v", unreachable)))
	_, err := p.syncWith(cfg, progress)
	if err == nil || !strings.Contains(err.Error(), unreachable.Error()) || !engine.IsFatal(err) {
		t.Fatalf("got %v, want the connection's error", err)
	}
	if strings.Contains(err.Error(), "abandoned") || strings.Contains(err.Error(), "canceled") {
		t.Errorf("the error speaks of the speculation: %v", err)
	}
	if got := p.archivedCTime(p.root[2], "f2.txt"); got != before {
		t.Errorf("a run that could not connect changed the archive: f2.txt archived with ctime %d, was %d", got, before)
	}
	// Nothing held: the next run goes through and records the touch.
	if _, err := p.syncWith(first, nil); err != nil {
		t.Fatalf("after a failed connection: %v", err)
	}
	if got := p.archivedCTime(p.root[2], "f2.txt"); got == before {
		t.Error("the run after did not record the new stat data of f2.txt")
	}
}

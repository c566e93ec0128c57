package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zeebo/blake3"
	"go.uber.org/goleak"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
	"github.com/concord-sync/concord/remote/delta/deltatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pair connects a client to Serve(ep) over an in-memory pipe. The returned
// channel yields Serve's result once the client is closed.
func pair(t *testing.T, ep remote.Endpoint, opts ...Option) (*Client, chan error) {
	t.Helper()
	a, b := net.Pipe()
	served := make(chan error, 1)
	go func() {
		err := Serve(context.Background(), b, ep)
		b.Close()
		served <- err
	}()
	cl := NewClient(a, opts...).(*Client)
	t.Cleanup(func() {
		cl.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve = %v after the client closed cleanly", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after the client closed")
		}
	})
	return cl, served
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func fileEntry(content []byte) *state.Entry {
	return &state.Entry{Kind: state.File, Mode: 0o640, Size: int64(len(content)), MTime: 12345, Hash: blake3.Sum256(content)}
}

func TestRoundTripEveryMethod(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			testRoundTrip(t, compress)
		})
	}
}

func testRoundTrip(t *testing.T, compress bool) {
	ctx := context.Background()
	ep := newFake()
	aEntry := ep.put("a.txt", []byte("hello"))
	ep.put("dir/b", []byte("bee"))
	ep.put("dir/sub/c", bytes.Repeat([]byte("c"), 3*ChunkSize+17))
	ep.mu.Lock()
	ep.tree["dir"] = &state.Entry{Kind: state.Dir, Mode: 0o755}
	ep.tree["dir/sub"] = &state.Entry{Kind: state.Dir, Mode: 0o700}
	ep.mu.Unlock()
	cl, _ := pair(t, ep, WithCompression(compress), WithVersion("v-test"))

	info, err := cl.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (remote.Info{ReplicaID: "replica-1", Host: "fakehost", Root: "/srv/root", Protocol: ProtocolVersion, Version: "test"}); info != want {
		t.Errorf("Hello = %+v, want %+v", info, want)
	}

	req := remote.OpenRequest{PeerID: "peer", PeerRoot: "/x", Ignore: []string{"*.o", "tmp/"}, DryRun: true, BackupDir: ".bak", MaxBackups: 3}
	orep, err := cl.Open(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var wantDigest [32]byte
	copy(wantDigest[:], "peer|/x|"+fmt.Sprint(req.Ignore, req.DryRun, req.BackupDir, req.MaxBackups))
	if orep.PairID != "pair-1" || orep.Digest != wantDigest || orep.Path != "/state/concord/pair-1.db" {
		t.Errorf("Open = %+v", orep)
	}

	var progress []remote.ScanProgress
	srep, err := cl.Scan(ctx, remote.ScanRequest{}, func(p remote.ScanProgress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(srep.Changes) != 5 || srep.Changes[0].Path != "a.txt" || !state.Equal(srep.Changes[0].New, aEntry) || srep.Changes[0].Old != nil {
		t.Errorf("Scan changes = %+v", srep.Changes)
	}
	if len(srep.Skipped) != 1 || srep.Skipped[0] != (remote.Problem{Path: "fifo", Err: "a FIFO, skipped", Warning: true}) {
		t.Errorf("Scan skipped = %+v", srep.Skipped)
	}
	if srep.Entries != 5 || srep.Hashed != 3 || srep.HashedBytes != 300 {
		t.Errorf("Scan counts = %d %d %d", srep.Entries, srep.Hashed, srep.HashedBytes)
	}
	if len(progress) != 1 || progress[0] != (remote.ScanProgress{Entries: 7, Hashed: 3, HashedBytes: 300}) {
		t.Errorf("Scan progress = %+v", progress)
	}

	recs := []remote.Record{{Path: "a.txt", Entry: aEntry}, {Path: "dir", Entry: &state.Entry{Kind: state.Dir, Mode: 0o755}}, {Path: "gone"}}
	if err := cl.Commit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	var listed []string
	err = cl.ArchiveList(ctx, func(p string, e *state.Entry) error {
		listed = append(listed, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(listed, ",") != "a.txt,dir" {
		t.Errorf("ArchiveList = %q", listed)
	}

	st, err := cl.Stat(ctx, []string{"a.txt", "missing", "dir"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3 || !state.StatSame(st[0], aEntry) || st[1] != nil || st[2].Kind != state.Dir {
		t.Errorf("Stat = %+v", st)
	}

	ls, err := cl.List(ctx, "dir")
	if err != nil {
		t.Fatal(err)
	}
	var lsPaths []string
	for _, pe := range ls {
		lsPaths = append(lsPaths, pe.Path)
	}
	if strings.Join(lsPaths, ",") != "dir,dir/b,dir/sub,dir/sub/c" {
		t.Errorf("List = %q", lsPaths)
	}

	// ReadFile of a file of several chunks.
	big := ep.content("dir/sub/c")
	bigEntry, _ := cl.Stat(ctx, []string{"dir/sub/c"})
	rc, err := cl.ReadFile(ctx, "dir/sub/c", bigEntry[0])
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadFile = %d bytes, %v; want %d bytes", len(got), err, len(big))
	}

	// Every kind of Apply.
	content := randBytes(1, 2*ChunkSize+5)
	e, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "new/file", New: fileEntry(content)}, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if e.Size != int64(len(content)) || e.Mode != 0o640 || !bytes.Equal(ep.content("new/file"), content) {
		t.Errorf("Apply put = %+v", e)
	}
	empty, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "empty", New: fileEntry(nil)}, bytes.NewReader(nil))
	if err != nil || empty.Size != 0 {
		t.Errorf("Apply put empty = %+v, %v", empty, err)
	}
	if e, err := cl.Apply(ctx, remote.Op{Kind: remote.OpMkdir, Path: "d2", New: &state.Entry{Kind: state.Dir, Mode: 0o711}}, nil); err != nil || e.Kind != state.Dir || e.Mode != 0o711 {
		t.Errorf("Apply mkdir = %+v, %v", e, err)
	}
	if e, err := cl.Apply(ctx, remote.Op{Kind: remote.OpSymlink, Path: "d2/l", New: &state.Entry{Kind: state.Symlink, Target: "../a.txt"}}, nil); err != nil || e.Target != "../a.txt" {
		t.Errorf("Apply symlink = %+v, %v", e, err)
	}
	if e, err := cl.Apply(ctx, remote.Op{Kind: remote.OpSetMeta, Path: "a.txt", Expect: aEntry, New: &state.Entry{Kind: state.File, Mode: 0o600, MTime: 99}}, nil); err != nil || e.Mode != 0o600 || e.MTime != 99 {
		t.Errorf("Apply setmeta = %+v, %v", e, err)
	}
	dirEntries, _ := cl.Stat(ctx, []string{"dir"})
	if e, err := cl.Apply(ctx, remote.Op{Kind: remote.OpRemove, Path: "dir", Expect: dirEntries[0]}, nil); err != nil || e != nil {
		t.Errorf("Apply remove = %+v, %v", e, err)
	}
	if left, _ := cl.List(ctx, "dir"); len(left) != 0 {
		t.Errorf("after remove, List(dir) = %+v", left)
	}
	// The root may be listed.
	if all, err := cl.List(ctx, ""); err != nil || len(all) == 0 {
		t.Errorf("List(root) = %d entries, %v", len(all), err)
	}

	if err := cl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := cl.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if ep.closed.Load() == 0 {
		t.Error("the server's endpoint was not closed")
	}
	if _, err := cl.Hello(ctx); !errors.Is(err, ErrClosed) || !errors.Is(err, remote.ErrFatal) {
		t.Errorf("Hello after Close = %v, want ErrClosed", err)
	}
}

func TestErrorsKeepTheirClass(t *testing.T) {
	tests := []struct {
		name string
		err  error
		is   []error
	}{
		{"changed", fmt.Errorf("apply x: %w", remote.ErrChanged), []error{remote.ErrChanged}},
		{"locked", fmt.Errorf("lock held by pid 1 on h: %w: %w", remote.ErrLocked, remote.ErrFatal), []error{remote.ErrLocked, remote.ErrFatal}},
		{"fatal", fmt.Errorf("root /srv missing: %w", remote.ErrFatal), []error{remote.ErrFatal}},
		{"unsafe", fmt.Errorf("a/b through symlink: %w", remote.ErrUnsafePath), []error{remote.ErrUnsafePath}},
		{"plain", errors.New("disk full"), nil},
		{"corrupt delta", fmt.Errorf("x: %w", delta.ErrCorrupt), []error{delta.ErrCorrupt}},
	}
	all := []error{remote.ErrChanged, remote.ErrLocked, remote.ErrFatal, remote.ErrUnsafePath, delta.ErrCorrupt}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newFake()
			ep.failWith = tt.err
			cl, _ := pair(t, ep)
			_, err := cl.Hello(context.Background())
			if err == nil || err.Error() != tt.err.Error() {
				t.Fatalf("error text = %v, want %q", err, tt.err.Error())
			}
			for _, sentinel := range all {
				want := slicesContains(tt.is, sentinel)
				if errors.Is(err, sentinel) != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", sentinel, !want, want)
				}
			}
			var pe *PeerError
			if !errors.As(err, &pe) {
				t.Error("error is not a *PeerError")
			}
		})
	}
}

func slicesContains(errs []error, e error) bool {
	for _, x := range errs {
		if x == e {
			return true
		}
	}
	return false
}

func TestReadFileErrors(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	e := ep.put("f", []byte("contents"))
	ch := ep.put("changing", []byte("CHANGING file"))
	cl, _ := pair(t, ep)

	// A stale expectation is refused at open.
	stale := e.Clone()
	stale.Size++
	if _, err := cl.ReadFile(ctx, "f", stale); !errors.Is(err, remote.ErrChanged) {
		t.Errorf("ReadFile with a stale entry = %v, want ErrChanged", err)
	}
	// A file that changes while read fails at its end with ErrChanged.
	rc, err := cl.ReadFile(ctx, "changing", ch)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, remote.ErrChanged) || !strings.Contains(err.Error(), "file changed while read") {
		t.Errorf("reading a changing file = %v, want ErrChanged with the server's text", err)
	}
	// The connection is still good.
	if _, err := cl.Hello(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestServerRefusesUnsafePaths(t *testing.T) {
	ctx := context.Background()
	bad := []string{"../x", "/etc/passwd", "a/../../b", "a\x00b", "a//b", "./a",
		// concord's temporary names, which no scan reports.
		".concord-tmp-1-2-3", "d/.concord-tmp-99999999-1-0", "d/.concord-tmp-4242-17-903211/x"}
	calls := []struct {
		name string
		do   func(cl *Client, p string) error
	}{
		{"apply", func(cl *Client, p string) error {
			_, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: p, New: fileEntry([]byte("x"))}, strings.NewReader("x"))
			return err
		}},
		{"read", func(cl *Client, p string) error { _, err := cl.ReadFile(ctx, p, fileEntry(nil)); return err }},
		{"stat", func(cl *Client, p string) error { _, err := cl.Stat(ctx, []string{"ok", p}); return err }},
		{"list", func(cl *Client, p string) error { _, err := cl.List(ctx, p); return err }},
		{"commit", func(cl *Client, p string) error {
			return cl.Commit(ctx, []remote.Record{{Path: "fine"}, {Path: p}})
		}},
		{"signature", func(cl *Client, p string) error { _, err := cl.Signature(ctx, p, fileEntry([]byte("x"))); return err }},
		{"read-delta", func(cl *Client, p string) error {
			sig, _ := delta.Signature(strings.NewReader("x"), 1)
			_, err := cl.ReadDelta(ctx, p, fileEntry([]byte("x")), sig, delta.ConfirmAll)
			return err
		}},
	}
	ep := newFake()
	cl, _ := pair(t, ep)
	for _, c := range calls {
		for _, p := range bad {
			t.Run(c.name+" "+state.Display(p), func(t *testing.T) {
				before := ep.calls.Load()
				err := c.do(cl, p)
				if !errors.Is(err, remote.ErrUnsafePath) {
					t.Fatalf("= %v, want ErrUnsafePath", err)
				}
				if ep.calls.Load() != before {
					t.Fatal("the endpoint was called with an unsafe path")
				}
			})
		}
	}
}

// TestServerAcceptsUserTempLikeNames: a user's name that starts like
// concord's temporary files without being one is an ordinary path.
func TestServerAcceptsUserTempLikeNames(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	cl, _ := pair(t, ep)
	for _, p := range []string{".concord-tmp-notes", "d/.concord-tmp-dir/k", ".concord-tmp-1-2-3.bak",
		".concord-tmp-99999999", "d/.concord-tmp-01-2-3", ".concord-tmp-1-2-3x/y"} {
		before := ep.calls.Load()
		if _, err := cl.Stat(ctx, []string{p}); err != nil {
			t.Errorf("stat %q: %v", p, err)
		}
		if ep.calls.Load() == before {
			t.Errorf("stat %q: the endpoint was not called", p)
		}
	}
}

func TestConcurrentPipelinedCalls(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	cl, _ := pair(t, ep)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("files/%03d", i)
			content := randBytes(uint64(i), 100+i*50)
			if i%10 == 0 {
				content = randBytes(uint64(i), ChunkSize*2+i)
			}
			e, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: p, New: fileEntry(content)}, bytes.NewReader(content))
			if err != nil {
				errs <- fmt.Errorf("apply %s: %w", p, err)
				return
			}
			rc, err := cl.ReadFile(ctx, p, e)
			if err != nil {
				errs <- fmt.Errorf("read %s: %w", p, err)
				return
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, content) {
				errs <- fmt.Errorf("read %s: %d bytes back of %d, %v", p, len(got), len(content), err)
				return
			}
			if st, err := cl.Stat(ctx, []string{p}); err != nil || !state.StatSame(st[0], e) {
				errs <- fmt.Errorf("stat %s: %v", p, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestManyChangesAndPathsAreBatched(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	ep.scanChanges = 3*maxBatchItems + 5 // more than one frame's worth
	cl, _ := pair(t, ep)
	rep, err := cl.Scan(ctx, remote.ScanRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Changes) != ep.scanChanges || rep.Changes[len(rep.Changes)-1].New.Size != int64(ep.scanChanges-1) {
		t.Fatalf("Scan returned %d changes, want %d in order", len(rep.Changes), ep.scanChanges)
	}
	paths := make([]string, 2*maxBatchItems+3)
	for i := range paths {
		paths[i] = fmt.Sprintf("p/%d", i)
	}
	ep.put("p/7", []byte("x"))
	st, err := cl.Stat(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != len(paths) || st[7] == nil || st[8] != nil {
		t.Fatalf("Stat of %d paths returned %d entries", len(paths), len(st))
	}
	recs := make([]remote.Record, len(paths))
	for i, p := range paths {
		recs[i] = remote.Record{Path: p, Entry: &state.Entry{Kind: state.Dir}}
	}
	if err := cl.Commit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	n := 0
	stop := errors.New("enough")
	err = cl.ArchiveList(ctx, func(string, *state.Entry) error {
		n++
		if n == maxBatchItems+10 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("ArchiveList stopped by its callback = %v, want that callback's error", err)
	}
	// The connection survived the abandoned listing.
	if _, err := cl.Hello(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReadFileFlowControl checks that a server streaming a large file
// stays within a few chunks of what the client has read.
func TestReadFileFlowControl(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	content := randBytes(3, 40*ChunkSize)
	e := ep.put("big", content)
	cl, _ := pair(t, ep)
	rc, err := cl.ReadFile(ctx, "big", e)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := io.CopyN(&got, rc, ChunkSize); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server run ahead if it could
	// Server side: the window, the chunk being assembled, and the
	// writer's queue and buffers; far less than the file.
	if ahead := ep.readBytes.Load(); ahead > (window+4)*ChunkSize {
		t.Fatalf("the server read %d bytes while the client had read %d", ahead, ChunkSize)
	}
	if _, err := io.Copy(&got, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if !bytes.Equal(got.Bytes(), content) {
		t.Fatal("file differs")
	}

	// Closing a reader early cancels the stream on the server.
	rc, err = cl.ReadFile(ctx, "big", e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, rc, 10); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	drainClosed(t, ep, 2)
	if _, err := cl.Hello(ctx); err != nil {
		t.Fatal(err)
	}
}

func drainClosed(t *testing.T, ep *fakeEP, n int) {
	t.Helper()
	for range n {
		select {
		case <-ep.readerClosed:
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not close the endpoint's reader")
		}
	}
}

// TestApplyStreamsContent checks that Apply does not read its content
// ahead of the server.
func TestApplyStreamsContent(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	cl, _ := pair(t, ep)
	content := randBytes(4, 30*ChunkSize)
	src := &countingReader{r: bytes.NewReader(content)}
	if _, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "big", New: fileEntry(content)}, src); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ep.content("big"), content) {
		t.Fatal("file differs")
	}

	// A content reader that fails aborts the put with its error.
	failing := io.MultiReader(bytes.NewReader(content[:3*ChunkSize]), &errReader{fmt.Errorf("source: %w", remote.ErrChanged)})
	_, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "other", New: fileEntry(content)}, failing)
	if !errors.Is(err, remote.ErrChanged) {
		t.Fatalf("Apply with failing content = %v, want ErrChanged", err)
	}
	if ep.content("other") != nil {
		t.Fatal("a failed put installed a file")
	}

	// A put the server refuses at once stops the upload early.
	stale := fileEntry([]byte("nothing like it"))
	src = &countingReader{r: bytes.NewReader(content)}
	_, err = cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "big", Expect: stale, New: fileEntry(content)}, src)
	if !errors.Is(err, remote.ErrChanged) {
		t.Fatalf("Apply over a changed file = %v, want ErrChanged", err)
	}
	if src.n >= int64(len(content)) {
		t.Errorf("the client read all %d bytes of a put the server refused", src.n)
	}
	if _, err := cl.Hello(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestApplySmallFilesInline checks puts of small files, whose contents
// travel in the request frame: every size up to the limit arrives whole,
// and a source that turns out shorter or longer than its entry, or fails,
// installs nothing.
func TestApplySmallFilesInline(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	cl, _ := pair(t, ep)
	for _, size := range []int{0, 1, 4095, inlineMax - 1, inlineMax, inlineMax + 1} {
		content := randBytes(uint64(size), size)
		p := fmt.Sprintf("f%d", size)
		if _, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: p, New: fileEntry(content)}, bytes.NewReader(content)); err != nil {
			t.Fatalf("put of %d bytes: %v", size, err)
		}
		if got := ep.content(p); !bytes.Equal(got, content) {
			t.Fatalf("put of %d bytes installed %d bytes", size, len(got))
		}
	}
	content := []byte("twelve bytes")
	for name, src := range map[string]io.Reader{
		"shorter": bytes.NewReader(content[:5]),
		"longer":  bytes.NewReader(append(content, "and more"...)),
		"failing": io.MultiReader(bytes.NewReader(content[:3]), &errReader{fmt.Errorf("source: %w", remote.ErrChanged)}),
	} {
		_, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: name, New: fileEntry(content)}, src)
		if !errors.Is(err, remote.ErrChanged) {
			t.Errorf("%s source: Apply = %v, want ErrChanged", name, err)
		}
		if ep.content(name) != nil {
			t.Errorf("%s source: a file was installed", name)
		}
	}
	if _, err := cl.Hello(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentSmallPutsBatch puts many small files at once, as the
// engine's workers do: they travel in put-batch requests, every file lands
// with its own entry, and a file whose destination changed fails alone
// while the others of its batch are installed.
func TestConcurrentSmallPutsBatch(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	cl, _ := pair(t, ep)
	ep.put("taken", []byte("a person's file"))
	const n = 300
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			content := randBytes(uint64(i), 100+i*7)
			p := fmt.Sprintf("f%03d", i)
			if i == 150 {
				p = "taken" // expected absent, but there is a file now
			}
			e, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: p, New: fileEntry(content)}, bytes.NewReader(content))
			if err == nil && (e == nil || e.Size != int64(len(content))) {
				err = fmt.Errorf("entry %+v", e)
			}
			if err == nil && !bytes.Equal(ep.content(p), content) {
				err = errors.New("contents differ")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 150 {
			if !errors.Is(err, remote.ErrChanged) {
				t.Errorf("put over a file that appeared = %v, want ErrChanged", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("put %d: %v", i, err)
		}
	}
	if got := string(ep.content("taken")); got != "a person's file" {
		t.Errorf("the file that appeared was replaced by %q", got)
	}
}

// TestPutAsync puts many small files through PutAsync (remote.AsyncPutter)
// from one goroutine, as the engine does: each done reports its own file's
// entry or error, in put-batch requests; a put PutAsync cannot take (too
// large, a delta, contents of another size than the entry) fails through
// done without reaching the server.
func TestPutAsync(t *testing.T) {
	ep := newFake()
	cl, _ := pair(t, ep)
	ep.put("taken", []byte("a person's file"))
	var ap remote.AsyncPutter = cl
	if got := ap.MaxAsyncPut(); got != inlineMax {
		t.Errorf("MaxAsyncPut = %d, want %d", got, inlineMax)
	}
	type result struct {
		e   *state.Entry
		err error
	}
	const n = 200
	results := make([]chan result, n)
	contents := make([][]byte, n)
	for i := range n {
		contents[i] = randBytes(uint64(i), i*31)
		p := fmt.Sprintf("f%03d", i)
		if i == 77 {
			p = "taken"
		}
		results[i] = make(chan result, 1)
		ap.PutAsync(context.Background(), remote.Op{Kind: remote.OpPut, Path: p, New: fileEntry(contents[i])}, contents[i],
			func(e *state.Entry, err error) { results[i] <- result{e, err} })
	}
	for i := range n {
		var r result
		select {
		case r = <-results[i]:
		case <-time.After(10 * time.Second):
			t.Fatalf("no result for put %d", i)
		}
		if i == 77 {
			if !errors.Is(r.err, remote.ErrChanged) {
				t.Errorf("put over a file that appeared = %v, want ErrChanged", r.err)
			}
			continue
		}
		if r.err != nil || r.e == nil || r.e.Size != int64(len(contents[i])) || r.e.Hash != blake3.Sum256(contents[i]) {
			t.Errorf("put %d: %+v, %v", i, r.e, r.err)
		} else if !bytes.Equal(ep.content(fmt.Sprintf("f%03d", i)), contents[i]) {
			t.Errorf("put %d: contents differ", i)
		}
	}
	if got := string(ep.content("taken")); got != "a person's file" {
		t.Errorf("the file that appeared was replaced by %q", got)
	}

	big := randBytes(9, inlineMax+1)
	small := []byte("twelve bytes")
	for name, c := range map[string]struct {
		op      remote.Op
		content []byte
	}{
		"too large": {remote.Op{Kind: remote.OpPut, Path: "big", New: fileEntry(big)}, big},
		"a delta":   {remote.Op{Kind: remote.OpPut, Path: "delta", New: fileEntry(small), Delta: true}, small},
		"staged":    {remote.Op{Kind: remote.OpPut, Path: "staged", New: fileEntry(small), Stage: true}, small},
		"shorter":   {remote.Op{Kind: remote.OpPut, Path: "short", New: fileEntry(small)}, small[:5]},
		"not a put": {remote.Op{Kind: remote.OpMkdir, Path: "dir", New: &state.Entry{Kind: state.Dir, Mode: 0o755}}, nil},
	} {
		ch := make(chan error, 1)
		ap.PutAsync(context.Background(), c.op, c.content, func(_ *state.Entry, err error) { ch <- err })
		if err := <-ch; err == nil {
			t.Errorf("%s: PutAsync succeeded", name)
		}
		if ep.content(c.op.Path) != nil {
			t.Errorf("%s: something was installed", name)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestDeltaOverTheWire(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	old := randBytes(5, 3<<20)
	nw := bytes.Clone(old)
	copy(nw[len(nw)/2:], "a thousand bytes changed in the middle, or thereabouts")
	oldEntry := ep.put("f", old)
	cl, _ := pair(t, ep)

	// Local source, remote destination: signature from the server, delta
	// sent as the content of a put.
	sig, err := cl.Signature(ctx, "f", oldEntry)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Size != int64(len(old)) {
		t.Fatalf("signature of %d bytes, want %d", sig.Size, len(old))
	}
	var encoded bytes.Buffer
	if err := delta.WriteDelta(&encoded, sig, bytes.NewReader(nw), delta.ConfirmAll); err != nil {
		t.Fatal(err)
	}
	if encoded.Len() > 20_000 {
		t.Errorf("delta of a small change is %d bytes", encoded.Len())
	}
	e, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: oldEntry, New: fileEntry(nw), Delta: true}, delta.NewReader(sig, bytes.NewReader(nw), delta.ConfirmAll))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ep.content("f"), nw) {
		t.Fatal("the delta put rebuilt a different file")
	}

	// Remote source, local destination: the server computes the delta
	// against our signature.
	localOld := old
	localSig, err := delta.Signature(bytes.NewReader(localOld), int64(len(localOld)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cl.ReadDelta(ctx, "f", e, localSig, delta.ConfirmAll)
	if err != nil {
		t.Fatal(err)
	}
	var rebuilt bytes.Buffer
	err = delta.ApplyStream(bytes.NewReader(localOld), rc, &rebuilt)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rebuilt.Bytes(), nw) {
		t.Fatal("ReadDelta rebuilt a different file")
	}

	// A stale expectation is refused for both.
	if _, err := cl.Signature(ctx, "f", oldEntry); !errors.Is(err, remote.ErrChanged) {
		t.Errorf("Signature with a stale entry = %v, want ErrChanged", err)
	}
	if _, err := cl.ReadDelta(ctx, "f", oldEntry, localSig, delta.ConfirmAll); !errors.Is(err, remote.ErrChanged) {
		t.Errorf("ReadDelta with a stale entry = %v, want ErrChanged", err)
	}
}

// plainEP hides the fake's Signature method.
type plainEP struct{ remote.Endpoint }

func TestSignatureNeedsSigner(t *testing.T) {
	ep := newFake()
	e := ep.put("f", []byte("x"))
	cl, _ := pair(t, plainEP{ep})
	_, err := cl.Signature(context.Background(), "f", e)
	if err == nil || !strings.Contains(err.Error(), "cannot compute signatures") {
		t.Fatalf("Signature against a plain endpoint = %v", err)
	}
}

func TestCancel(t *testing.T) {
	ep := newFake()
	ep.scanBlock = true
	cl, _ := pair(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := cl.Scan(ctx, remote.ScanRequest{}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Scan past its deadline = %v", err)
	}
	// The server's scan was cancelled too, and the connection still works.
	if _, err := cl.Hello(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCompressionShrinksTraffic(t *testing.T) {
	ctx := context.Background()
	content := bytes.Repeat([]byte("compressible text "), 100_000)
	var counts [2]int64
	for i, compress := range []bool{false, true} {
		ep := newFake()
		a, b := net.Pipe()
		counted := &countingConn{Conn: a}
		served := make(chan error, 1)
		go func() { served <- Serve(ctx, b, ep); b.Close() }()
		cl := NewClient(counted, WithCompression(compress))
		if _, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", New: fileEntry(content)}, bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		if err := <-served; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		counts[i] = counted.written.Load()
	}
	if counts[1]*10 > counts[0] {
		t.Fatalf("compressed traffic %d bytes, uncompressed %d", counts[1], counts[0])
	}
}

type countingConn struct {
	net.Conn
	written atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// TestScanAnnouncesLargeFiles checks that the server passes on, while its
// scan runs, the large files it is about to hash (both old and new at
// least remote.HashingMin), so that the client can fetch ahead what their
// delta needs, and leaves out small ones.
func TestScanAnnouncesLargeFiles(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	big := func(size int64, h byte) *state.Entry {
		return &state.Entry{Kind: state.File, Size: size, Mode: 0o644, MTime: 5, Hash: [32]byte{h}}
	}
	ep.hashing = []remote.Change{
		{Path: "big", Old: big(remote.HashingMin, 1), New: big(2*remote.HashingMin, 2)},
		{Path: "shrunk", Old: big(remote.HashingMin, 3), New: big(remote.HashingMin-1, 4)},
		{Path: "grown", Old: big(10, 5), New: big(remote.HashingMin, 6)},
		{Path: "dir/big2", Old: big(3*remote.HashingMin, 7), New: big(3*remote.HashingMin, 8)},
	}
	cl, _ := pair(t, ep)
	var got []remote.Change
	_, err := cl.Scan(ctx, remote.ScanRequest{Hashing: func(p string, old, cur *state.Entry) {
		got = append(got, remote.Change{Path: p, Old: old, New: cur})
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []remote.Change{ep.hashing[0], ep.hashing[3]}
	if len(got) != len(want) {
		t.Fatalf("announced %+v, want big and dir/big2", got)
	}
	for i := range want {
		if got[i].Path != want[i].Path || !state.Equal(got[i].Old, want[i].Old) || !state.Equal(got[i].New, want[i].New) {
			t.Errorf("announcement %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestReadDeltaConfirm checks that the server computes a read-delta with
// the confirm mode the client asks for: with ConfirmResync a block edited
// where the weak checksum cannot see it, right after unchanged ones, comes
// back as a copy of the old block; with ConfirmAll as the new bytes.
func TestReadDeltaConfirm(t *testing.T) {
	ctx := context.Background()
	ep := newFake()
	old := randBytes(9, 1<<20)
	nw := bytes.Clone(old)
	bs := delta.BlockSize(int64(len(old)))
	if err := deltatest.CollideWeak(nw[100*bs : 101*bs]); err != nil {
		t.Fatal(err)
	}
	e := ep.put("f", nw)
	cl, _ := pair(t, ep)
	sig, err := delta.Signature(bytes.NewReader(old), int64(len(old)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		c    delta.Confirm
		want []byte
	}{{delta.ConfirmAll, nw}, {delta.ConfirmResync, old}} {
		rc, err := cl.ReadDelta(ctx, "f", e, sig, tt.c)
		if err != nil {
			t.Fatal(err)
		}
		var rebuilt bytes.Buffer
		err = delta.ApplyStream(bytes.NewReader(old), rc, &rebuilt)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rebuilt.Bytes(), tt.want) {
			t.Errorf("confirm %d: the delta rebuilt the wrong version", tt.c)
		}
	}
}

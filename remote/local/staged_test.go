package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-sync/concord/remote"
	"golang.org/x/sys/unix"
)

// TestAnonymousFilesBounded checks that anonymous files are counted while
// open and that beyond the limit named temporary files are used instead.
func TestAnonymousFilesBounded(t *testing.T) {
	if noAnonymous.Load() {
		t.Skip("no O_TMPFILE or /proc here: named temporary files are used throughout")
	}
	dirfd, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	oldMax, before := anonMax, anonOpen.Load()
	anonMax = before + 1
	defer func() { anonMax = oldMax }()

	first, err := openAnonymous(dirfd, 0o600)
	if err != nil || first < 0 {
		t.Skipf("O_TMPFILE is not supported here (%v): named temporary files are used", err)
	}
	if second, err := openAnonymous(dirfd, 0o600); err != nil || second >= 0 {
		t.Fatalf("beyond the limit: openAnonymous = %d, %v; want -1 (a named file instead)", second, err)
	}
	if n := anonOpen.Load(); n != before+1 {
		t.Errorf("%d anonymous files counted, want %d", n, before+1)
	}
	staged{fd: first}.discard(dirfd)
	if n := anonOpen.Load(); n != before {
		t.Errorf("after discarding: %d counted, want %d", n, before)
	}
	if again, err := openAnonymous(dirfd, 0o600); err != nil || again < 0 {
		t.Errorf("after one was freed: openAnonymous = %d, %v", again, err)
	} else {
		staged{fd: again}.discard(dirfd)
	}
}

// TestLargeFileFlushedAlone checks that a large file is flushed on its own
// (fsync) instead of sharing a syncfs, which would also wait for every
// other dirty file of the file system, and that a small one shares it.
func TestLargeFileFlushedAlone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, map[string]string{}, remote.OpenRequest{})
	flushes := func() uint64 {
		g := f.e.flusher()
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.completed
	}
	active := func() int {
		g := f.e.flusher()
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.active
	}
	// While the large file is being written (its contents held up half
	// way), no group flush waits for it.
	big := strings.Repeat("x", flushAlone)
	half, resume := make(chan struct{}), make(chan struct{})
	r := io.MultiReader(strings.NewReader(big[:len(big)/2]), readFunc(func(b []byte) (int, error) {
		close(half)
		<-resume
		return 0, io.EOF
	}), strings.NewReader(big[len(big)/2:]))
	errc := make(chan error, 1)
	go func() {
		_, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "big", New: fileEntry(big, 0o644, t0)}, r)
		errc <- err
	}()
	<-half
	if n := active(); n != 0 {
		t.Errorf("a large file being written counts as %d writer(s) a group flush waits for, want 0", n)
	}
	close(resume)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := flushes(); n != 0 {
		t.Errorf("a file of %d bytes took %d group flushes, want its own fsync", len(big), n)
	}
	if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "small", New: fileEntry("small", 0o644, t0)}, strings.NewReader("small")); err != nil {
		t.Fatal(err)
	}
	if n := flushes(); n == 0 {
		t.Error("a small file took no group flush")
	}
	if f.read("big") != big || f.read("small") != "small" {
		t.Error("contents differ")
	}
}

// readFunc is an io.Reader made of a function.
type readFunc func([]byte) (int, error)

func (f readFunc) Read(b []byte) (int, error) { return f(b) }

// TestAnonymousLink links anonymous files both ways: with AT_EMPTY_PATH and
// through /proc (as a process without the privilege the first needs
// does), and refuses a name already taken either way.
func TestAnonymousLink(t *testing.T) {
	if noAnonymous.Load() {
		t.Skip("no O_TMPFILE or /proc here: named temporary files are used throughout")
	}
	defer func(v bool) { noEmptyPath.Store(v) }(noEmptyPath.Load())
	dir := t.TempDir()
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	for _, viaProc := range []bool{false, true} {
		noEmptyPath.Store(viaProc)
		name := fmt.Sprintf("via-proc-%v", viaProc)
		for _, want := range []error{nil, unix.EEXIST} {
			fd, err := openAnonymous(dirfd, 0o600)
			if err != nil || fd < 0 {
				t.Skipf("O_TMPFILE is not supported here (%v)", err)
			}
			st := staged{fd: fd}
			unix.Write(fd, []byte(name))
			if err := st.link(dirfd, name); !errors.Is(err, want) && !(want == nil && err == nil) {
				t.Errorf("%s: link = %v, want %v", name, err, want)
			}
			st.discard(dirfd)
		}
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != name {
			t.Errorf("%s: %q, %v after the link", name, b, err)
		}
	}
}

// TestPutModes checks that new files get exactly their permission bits,
// whether the anonymous file could be created with them (the umask leaves
// them alone) or needed a chmod (bits the umask takes away, set-id and
// sticky bits).
func TestPutModes(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	ctx := context.Background()
	f := newFixture(t, map[string]string{}, remote.OpenRequest{})
	for _, mode := range []uint32{0o644, 0o600, 0o755, 0o666, 0o777, 0o640, 0o4755, 0o1777, 0o000} {
		name := fmt.Sprintf("m%o", mode)
		ent, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: name, New: fileEntry(name, mode, t0)}, strings.NewReader(name))
		if err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
		fi, err := os.Lstat(filepath.Join(f.root, name))
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Lstat(filepath.Join(f.root, name), &st)
		if got := st.Mode & 0o7777; got != mode {
			t.Errorf("%s: mode %o, want %o", name, got, mode)
		}
		if ent.Mode != mode || uint64(ent.Ino) != st.Ino || ent.CTime != st.Ctim.Nano() || ent.Size != fi.Size() {
			t.Errorf("%s: entry %+v does not match the file (mode %o, inode %d, ctime %d)", name, ent, st.Mode&0o7777, st.Ino, st.Ctim.Nano())
		}
	}
}

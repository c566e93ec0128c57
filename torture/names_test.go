package torture

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNamesAndTypes syncs a tree of odd names and file types, locally and
// over SSH, with both roots given through symlinks: non-UTF-8 names,
// newlines and backslashes in names, a 255-byte name, a path about 3,000
// bytes deep, symlink loops (synced as links, never followed), a FIFO and a
// socket (skipped with a warning, never opened: the run must not hang), and
// hard links, which are synced as separate files (documented behaviour:
// concord does not track link identity).
func TestNamesAndTypes(t *testing.T) {
	localAndRemote(t, func(t *testing.T, e *env) {
		dir1, dir2, _, _ := pair(t, e)
		// Both roots are reached through symlinks.
		link1, link2 := filepath.Join(e.dir, "link1"), filepath.Join(e.dir, "link2")
		os.Symlink(dir1, link1)
		os.Symlink(dir2, link2)
		r1, r2 := link1, link2
		if e.srv != nil {
			r2 = e.remoteRoot(link2)
		}
		long := strings.Repeat("n", 255)
		deep := ""
		for i := 0; i < 15; i++ {
			deep = filepath.Join(deep, strings.Repeat(string(rune('a'+i)), 199))
		}
		deep = filepath.Join(deep, "leaf")
		files := []string{"\xff\xfe-latin1-\xe9t\xe9", "new\nline", "back\\slash", "tab\tand space ", long, deep, "hard1", "ctrl-\x1b[31m-red"}
		for _, n := range files {
			writeFile(t, dir1, n, gen(n, 0, 100))
		}
		if len(deep) < 3000 {
			t.Fatalf("the deep path is only %d bytes", len(deep))
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.Link(filepath.Join(dir1, "hard1"), filepath.Join(dir1, "hard2")))
		must(os.Symlink("loop2", filepath.Join(dir1, "loop1")))
		must(os.Symlink("loop1", filepath.Join(dir1, "loop2")))
		must(os.Symlink("self", filepath.Join(dir1, "self")))
		must(os.Symlink("/nonexistent/\xff", filepath.Join(dir1, "dangling")))
		must(syscall.Mkfifo(filepath.Join(dir1, "fifo"), 0o644))
		must(unix.Mknod(filepath.Join(dir1, "sock"), unix.S_IFSOCK|0o644, 0))
		// A FIFO on the destination side too, where the other side has
		// a file of that name: not opened, not replaced.
		writeFile(t, dir1, "pipe-there", []byte("file on side 1"))
		must(syscall.Mkfifo(filepath.Join(dir2, "pipe-there"), 0o644))

		p := e.start(nil, "sync", "--batch", r1, r2)
		r := p.wait(60 * time.Second)
		if r.code == -1 {
			t.Fatalf("the run hung: %s", r)
		}
		t.Logf("%s", r)
		if r.code != 1 || !lineWith(r.stdout, "pipe-there", "skipped", "FIFO, socket or device is there") || strings.Contains(r.stdout, "failed:") {
			t.Errorf("want exit 1 with only pipe-there skipped (a FIFO on side 2 is not replaced by side 1's file), got %s", r)
		}
		for _, n := range []string{"fifo", "sock"} {
			if !lineWith(r.stdout, n, "warning") {
				t.Errorf("%s is not reported as skipped with a warning", n)
			}
		}
		if strings.Contains(r.stdout, "\x1b") || strings.Contains(r.stderr, "\x1b") {
			t.Errorf("a raw escape character reached the output")
		}
		a, _ := snapshot(t, dir1)
		b, tb := snapshot(t, dir2)
		if len(tb) > 0 {
			t.Fatalf("temporary files left: %q", tb)
		}
		for _, n := range []string{"fifo", "sock", "pipe-there"} {
			delete(a, n)
			delete(b, n)
		}
		if d := diffTrees(a, b, 10); len(d) > 0 {
			t.Fatalf("replicas differ:\n%s", strings.Join(d, "\n"))
		}
		if fi, err := os.Lstat(filepath.Join(dir2, "pipe-there")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Errorf("the FIFO on side 2 was replaced (%v)", err)
		}
		var s1, s2 syscall.Stat_t
		syscall.Stat(filepath.Join(dir2, "hard1"), &s1)
		syscall.Stat(filepath.Join(dir2, "hard2"), &s2)
		if s1.Ino == s2.Ino {
			t.Errorf("hard links were kept as links; the documented behaviour is separate files")
		}
		// A second run has nothing to do but skip pipe-there again,
		// and an edit to a non-UTF-8 name on side 2 comes back.
		r = e.sync(r1, r2)
		if r.code != 1 {
			t.Fatalf("second run: %s", r)
		}
		writeFile(t, dir2, files[0], gen(files[0], 1, 100))
		writeFile(t, dir2, deep, gen(deep, 1, 100))
		r = e.sync(r1, r2)
		if b, err := os.ReadFile(filepath.Join(dir1, files[0])); err != nil || sumOf(b) != sumOf(gen(files[0], 1, 100)) {
			t.Fatalf("the edit of a non-UTF-8 name did not come back: %s", r)
		}
		if b, err := os.ReadFile(filepath.Join(dir1, deep)); err != nil || sumOf(b) != sumOf(gen(deep, 1, 100)) {
			t.Fatalf("the edit deep down did not come back: %s", r)
		}
	})
}

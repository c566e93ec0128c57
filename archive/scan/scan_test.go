package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
)

// memArchive is an in-memory Archive: path → entry.
type memArchive map[string]*state.Entry

func (m memArchive) Cursor(_ context.Context, dir string) (archive.Cursor, error) {
	var out []archive.Child
	for p, e := range m {
		if p != "" && state.Parent(p) == dir {
			out = append(out, archive.Child{Name: state.Base(p), Entry: *e})
		}
	}
	return archive.CursorOf(out), nil
}

func (m memArchive) CountBelow(_ context.Context, p string) (int64, error) {
	var n int64
	for q := range m {
		if state.IsBelow(q, p) {
			n++
		}
	}
	return n, nil
}

// record stores what a scan found, as the engine would after a sync.
func (m memArchive) record(res *Result) {
	for _, c := range res.Changes {
		if c.New == nil {
			for q := range m {
				if q == c.Path || state.IsBelow(q, c.Path) {
					delete(m, q)
				}
			}
			continue
		}
		if c.Old != nil && c.Old.Kind == state.Dir && c.New.Kind != state.Dir {
			for q := range m {
				if state.IsBelow(q, c.Path) {
					delete(m, q)
				}
			}
		}
		m[c.Path] = c.New.Clone()
	}
	for _, r := range res.Refresh {
		m[r.Path] = r.Entry.Clone()
	}
}

type node struct {
	path string
	kind string // "file", "dir", "link", "fifo"
	data string // file contents or link target
}

func build(t *testing.T, root string, nodes []node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(root, n.path)
		var err error
		switch n.kind {
		case "file":
			err = os.WriteFile(p, []byte(n.data), 0o644)
		case "dir":
			err = os.Mkdir(p, 0o755)
		case "link":
			err = os.Symlink(n.data, p)
		case "fifo":
			err = unix.Mkfifo(p, 0o644)
		}
		if err != nil {
			t.Fatalf("create %q: %v", n.path, err)
		}
	}
}

func mustScan(t *testing.T, root string, arch Archive, opts Options) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Scan(ctx, root, "", arch, opts)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return res
}

func changePaths(res *Result) []string {
	var out []string
	for _, c := range res.Changes {
		out = append(out, c.Path)
	}
	return out
}

func sortPaths(ps []string) []string {
	ps = slices.Clone(ps)
	sort.Slice(ps, func(i, j int) bool { return state.ComparePaths(ps[i], ps[j]) < 0 })
	return ps
}

func TestScanTree(t *testing.T) {
	root := t.TempDir()
	build(t, root, []node{
		{"a", "dir", ""},
		{"a/f.txt", "file", "hello"},
		{"a/empty", "file", ""},
		{"a/sub", "dir", ""},
		{"a/sub/deep", "file", "deep"},
		{"a.txt", "file", "a dot txt"},
		{"link", "link", "a/f.txt"},
		{"dirlink", "link", "a"},
		{"dangling", "link", "does/not/exist"},
		{"loop1", "link", "loop2"},
		{"loop2", "link", "loop1"},
		{"self", "link", "self"},
		{"fifo", "fifo", ""},
		{"\xff\xfe", "file", "latin"},
		{"new\nline", "file", "nl"},
		{"a/.concord-tmp-1-2-3", "file", "partial"},
		{".concord-tmp-99-4-0", "dir", ""},
		{".concord-tmp-99-4-0/inside", "file", "never reported"},
		// Names with concord's prefix that TempName never makes are a
		// user's, reported like any other.
		{".concord-tmp-notes", "file", "mine"},
		{"a/.concord-tmp-1-2-3.bak", "file", "bak"},
		{".concord-tmp-99", "dir", ""},
		{".concord-tmp-99/k", "file", "k"},
	})
	var progress []remote.ScanProgress
	var pmu sync.Mutex
	res := mustScan(t, root, nil, Options{Workers: 3, Hashers: 2, Progress: func(p remote.ScanProgress) {
		pmu.Lock()
		progress = append(progress, p)
		pmu.Unlock()
	}})

	want := map[string]*state.Entry{
		"a":          {Kind: state.Dir},
		"a/f.txt":    {Kind: state.File, Size: 5, Hash: blake3.Sum256([]byte("hello"))},
		"a/empty":    {Kind: state.File, Size: 0, Hash: blake3.Sum256(nil)},
		"a/sub":      {Kind: state.Dir},
		"a/sub/deep": {Kind: state.File, Size: 4, Hash: blake3.Sum256([]byte("deep"))},
		"a.txt":      {Kind: state.File, Size: 9, Hash: blake3.Sum256([]byte("a dot txt"))},
		"link":       {Kind: state.Symlink, Target: "a/f.txt"},
		"dirlink":    {Kind: state.Symlink, Target: "a"},
		"dangling":   {Kind: state.Symlink, Target: "does/not/exist"},
		"loop1":      {Kind: state.Symlink, Target: "loop2"},
		"loop2":      {Kind: state.Symlink, Target: "loop1"},
		"self":       {Kind: state.Symlink, Target: "self"},
		"\xff\xfe":   {Kind: state.File, Size: 5, Hash: blake3.Sum256([]byte("latin"))},
		"new\nline":  {Kind: state.File, Size: 2, Hash: blake3.Sum256([]byte("nl"))},

		".concord-tmp-notes":       {Kind: state.File, Size: 4, Hash: blake3.Sum256([]byte("mine"))},
		"a/.concord-tmp-1-2-3.bak": {Kind: state.File, Size: 3, Hash: blake3.Sum256([]byte("bak"))},
		".concord-tmp-99":          {Kind: state.Dir},
		".concord-tmp-99/k":        {Kind: state.File, Size: 1, Hash: blake3.Sum256([]byte("k"))},
	}
	got := changePaths(res)
	var wantPaths []string
	for p := range want {
		wantPaths = append(wantPaths, p)
	}
	wantPaths = sortPaths(wantPaths)
	if !slices.Equal(got, wantPaths) {
		t.Fatalf("changes (in order):\n got %q\nwant %q", got, wantPaths)
	}
	for _, c := range res.Changes {
		w := want[c.Path]
		if c.Old != nil || c.New == nil {
			t.Errorf("%q: Old %+v New %+v; want a new path", c.Path, c.Old, c.New)
			continue
		}
		if c.New.Kind != w.Kind || c.New.Size != w.Size || c.New.Target != w.Target {
			t.Errorf("%q: got %+v, want %+v", c.Path, c.New, w)
		}
		if w.Kind == state.File && c.New.Hash != w.Hash {
			t.Errorf("%q: wrong hash", c.Path)
		}
		if w.Kind == state.Symlink && c.New.Hash != blake3.Sum256([]byte(w.Target)) {
			t.Errorf("%q: symlink hash is not the hash of its target", c.Path)
		}
		if c.New.Ino == 0 || c.New.CTime == 0 {
			t.Errorf("%q: no stat data (ino %d ctime %d)", c.Path, c.New.Ino, c.New.CTime)
		}
		if w.Kind == state.File && c.New.Mode != 0o644 {
			t.Errorf("%q: mode %o", c.Path, c.New.Mode)
		}
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Path != "fifo" || !res.Skipped[0].Warning || !strings.Contains(res.Skipped[0].Err, "FIFO") {
		t.Errorf("Skipped = %+v; want one warning for the FIFO", res.Skipped)
	}
	temps := sortPaths(res.Temps)
	if !slices.Equal(temps, []string{".concord-tmp-99-4-0", "a/.concord-tmp-1-2-3"}) {
		t.Errorf("Temps = %q", temps)
	}
	if res.Entries != int64(len(want)) {
		t.Errorf("Entries = %d, want %d", res.Entries, len(want))
	}
	if res.Hashed != 9 || res.HashedBytes != 5+0+4+9+5+2+4+3+1 {
		t.Errorf("Hashed = %d (%d bytes), want 9 files (33 bytes)", res.Hashed, res.HashedBytes)
	}
	pmu.Lock()
	if len(progress) == 0 || progress[len(progress)-1].Entries != res.Entries {
		t.Errorf("progress reports %+v; want a final one with %d entries", progress, res.Entries)
	}
	pmu.Unlock()
}

func TestScanIgnore(t *testing.T) {
	root := t.TempDir()
	build(t, root, []node{
		{"a.o", "file", "x"},
		{"keep.o", "file", "x"},
		{"a.c", "file", "x"},
		{"top", "file", "x"},
		{"build", "dir", ""},
		{"build/out", "file", "x"},
		{"sub", "dir", ""},
		{"sub/x.o", "file", "x"},
		{"sub/keep.o", "file", "x"},
		{"sub/top", "file", "x"},
		{"sub/build", "dir", ""},
		{"sub/build/y", "file", "x"},
		{"other", "dir", ""},
		{"other/build", "file", "a file named build"},
	})
	m, err := NewMatcher([]string{"*.o", "build/", "!keep.o", "/top", "# a comment"})
	if err != nil {
		t.Fatal(err)
	}
	arch := memArchive{
		// Ignored paths that vanished are not reported as deleted.
		"gone.o":       {Kind: state.File, Hash: blake3.Sum256(nil)},
		"build":        {Kind: state.Dir},
		"build/old":    {Kind: state.File},
		"sub":          {Kind: state.Dir, Mode: 0o755},
		"sub/build":    {Kind: state.Dir},
		"sub/lost.o":   {Kind: state.File},
		"sub/vanished": {Kind: state.File},
	}
	res := mustScan(t, root, arch, Options{Ignore: m})
	var got []string
	for _, c := range res.Changes {
		got = append(got, c.Path)
		if strings.HasSuffix(c.Path, ".o") && !strings.HasSuffix(c.Path, "keep.o") {
			t.Errorf("ignored path %q reported", c.Path)
		}
	}
	want := []string{"a.c", "keep.o", "other", "other/build", "sub/keep.o", "sub/top", "sub/vanished"}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
	for _, c := range res.Changes {
		if c.Path == "sub/vanished" && c.New != nil {
			t.Errorf("sub/vanished not reported deleted: %+v", c)
		}
	}
}

func TestNewMatcher(t *testing.T) {
	tests := []struct {
		patterns []string
		ok       bool
	}{
		{nil, true},
		{[]string{"*.o", "!keep.o", "/top", "dir/"}, true},
		{[]string{"# only a comment"}, true},
		{[]string{""}, false},
		{[]string{"  "}, false},
		{[]string{"!"}, false},
		{[]string{"a\x00b"}, false},
	}
	for _, tt := range tests {
		m, err := NewMatcher(tt.patterns)
		if (err == nil) != tt.ok {
			t.Errorf("NewMatcher(%q) = %v; want ok=%v", tt.patterns, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "ignore pattern") {
			t.Errorf("NewMatcher(%q) error %q does not name the pattern", tt.patterns, err)
		}
		if err == nil && len(tt.patterns) == 0 && m.Active() {
			t.Errorf("empty matcher is active")
		}
	}
	var nilM *Matcher
	if nilM.Active() || nilM.Match([]string{"x"}, false) {
		t.Error("a nil Matcher matches")
	}
}

// scanTwice builds a tree, scans it into an archive and returns both.
func scanned(t *testing.T, nodes []node) (string, memArchive) {
	t.Helper()
	root := t.TempDir()
	build(t, root, nodes)
	arch := memArchive{}
	arch.record(mustScan(t, root, nil, Options{}))
	return root, arch
}

var basicTree = []node{
	{"d", "dir", ""},
	{"d/f", "file", "contents"},
	{"d/g", "file", "other contents"},
	{"d/sub", "dir", ""},
	{"d/sub/x", "file", "x"},
	{"d/sub/y", "link", "x"},
	{"top", "file", "top file"},
	{"l", "link", "d"},
}

func TestScanUnchanged(t *testing.T) {
	root := t.TempDir()
	build(t, root, basicTree)
	// A real archive, as the endpoint uses.
	db, err := archive.Open(filepath.Join(t.TempDir(), "ar.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first := mustScan(t, root, db, Options{})
	if len(first.Changes) != len(basicTree) || first.Hashed != 4 {
		t.Fatalf("first scan: %d changes, %d hashed", len(first.Changes), first.Hashed)
	}
	var ups []archive.Update
	for _, c := range first.Changes {
		ups = append(ups, archive.Update{Path: c.Path, Entry: c.New})
	}
	if err := db.Apply(context.Background(), ups); err != nil {
		t.Fatal(err)
	}
	second := mustScan(t, root, db, Options{})
	if len(second.Changes) != 0 || second.Hashed != 0 || second.HashedBytes != 0 || len(second.Refresh) != 0 {
		t.Errorf("second scan: changes %q, hashed %d (%d bytes), refresh %d; want nothing", changePaths(second), second.Hashed, second.HashedBytes, len(second.Refresh))
	}
	if second.Entries != int64(len(basicTree)) {
		t.Errorf("second scan Entries = %d", second.Entries)
	}
}

func TestScanDetectsChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, root string)
		want   []string // changed paths
		hashed int64
		check  func(t *testing.T, res *Result, arch memArchive)
	}{
		{"touch mtime", func(t *testing.T, root string) {
			later := time.Now().Add(time.Hour)
			os.Chtimes(filepath.Join(root, "d/f"), later, later)
		}, []string{"d/f"}, 1, func(t *testing.T, res *Result, arch memArchive) {
			c := res.Changes[0]
			if c.New.Hash != arch["d/f"].Hash || c.New.MTime == arch["d/f"].MTime {
				t.Errorf("touched file: %+v", c.New)
			}
		}},
		{"same size, mtime restored, new ctime", func(t *testing.T, root string) {
			p := filepath.Join(root, "d/f")
			fi, _ := os.Stat(p)
			time.Sleep(20 * time.Millisecond) // let the ctime clock tick
			if err := os.WriteFile(p, []byte("CONTENTS"), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}, []string{"d/f"}, 1, func(t *testing.T, res *Result, arch memArchive) {
			c := res.Changes[0]
			if c.New.Hash != blake3.Sum256([]byte("CONTENTS")) || c.New.MTime != arch["d/f"].MTime || c.New.Size != arch["d/f"].Size {
				t.Errorf("content change not seen: %+v", c.New)
			}
		}},
		{"ctime only (chown to same owner)", func(t *testing.T, root string) {
			time.Sleep(20 * time.Millisecond)
			p := filepath.Join(root, "d/g")
			os.Chown(p, os.Getuid(), os.Getgid())
		}, nil, 1, func(t *testing.T, res *Result, arch memArchive) {
			if len(res.Refresh) != 1 || res.Refresh[0].Path != "d/g" {
				t.Errorf("Refresh = %+v; want d/g with its new ctime", res.Refresh)
			} else if res.Refresh[0].Entry.CTime == arch["d/g"].CTime {
				t.Errorf("Refresh carries the old ctime")
			}
		}},
		{"chmod", func(t *testing.T, root string) {
			os.Chmod(filepath.Join(root, "d/sub"), 0o700)
		}, []string{"d/sub"}, 0, nil},
		{"symlink retargeted", func(t *testing.T, root string) {
			p := filepath.Join(root, "d/sub/y")
			os.Remove(p)
			os.Symlink("elsewhere", p)
		}, []string{"d/sub/y"}, 0, nil},
		{"deleted directory reported once", func(t *testing.T, root string) {
			os.RemoveAll(filepath.Join(root, "d"))
		}, []string{"d"}, 0, func(t *testing.T, res *Result, arch memArchive) {
			c := res.Changes[0]
			if c.New != nil || c.Old == nil || c.Old.Kind != state.Dir || c.Below != 5 {
				t.Errorf("deleted directory: Old %+v New %+v Below %d; want Below 5", c.Old, c.New, c.Below)
			}
		}},
		{"directory replaced by a file", func(t *testing.T, root string) {
			os.RemoveAll(filepath.Join(root, "d/sub"))
			os.WriteFile(filepath.Join(root, "d/sub"), []byte("now a file"), 0o644)
		}, []string{"d/sub"}, 1, func(t *testing.T, res *Result, arch memArchive) {
			c := res.Changes[0]
			if c.New == nil || c.New.Kind != state.File || c.Below != 2 {
				t.Errorf("dir→file: New %+v Below %d; want a file and Below 2", c.New, c.Below)
			}
		}},
		{"directory replaced by a symlink to it", func(t *testing.T, root string) {
			os.Rename(filepath.Join(root, "d"), filepath.Join(root, "moved"))
			os.Symlink("moved", filepath.Join(root, "d"))
		}, []string{"d", "moved", "moved/f", "moved/g", "moved/sub", "moved/sub/x", "moved/sub/y"}, 3, func(t *testing.T, res *Result, arch memArchive) {
			c := res.Changes[0]
			if c.New == nil || c.New.Kind != state.Symlink || c.New.Target != "moved" || c.Below != 5 {
				t.Errorf("dir→symlink: New %+v Below %d; want a symlink and Below 5", c.New, c.Below)
			}
		}},
		{"file replaced by a directory", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "top"))
			os.Mkdir(filepath.Join(root, "top"), 0o755)
			os.WriteFile(filepath.Join(root, "top/inner"), []byte("i"), 0o644)
		}, []string{"top", "top/inner"}, 1, nil},
		{"deleted file and symlink", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "d/sub/x"))
			os.Remove(filepath.Join(root, "l"))
		}, []string{"d/sub/x", "l"}, 0, func(t *testing.T, res *Result, arch memArchive) {
			for _, c := range res.Changes {
				if c.New != nil || c.Below != 0 {
					t.Errorf("%q: New %+v Below %d", c.Path, c.New, c.Below)
				}
			}
		}},
		{"new file in an unchanged directory", func(t *testing.T, root string) {
			os.WriteFile(filepath.Join(root, "d/sub/new"), []byte("n"), 0o600)
		}, []string{"d/sub/new"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, arch := scanned(t, basicTree)
			tt.change(t, root)
			res := mustScan(t, root, arch, Options{})
			if got := changePaths(res); !slices.Equal(got, tt.want) {
				t.Fatalf("changes = %q, want %q", got, tt.want)
			}
			if res.Hashed != tt.hashed {
				t.Errorf("Hashed = %d, want %d", res.Hashed, tt.hashed)
			}
			for _, c := range res.Changes {
				if want := arch[c.Path]; !state.Equal(c.Old, want) {
					t.Errorf("%q: Old %+v, archive has %+v", c.Path, c.Old, want)
				}
			}
			if tt.check != nil {
				tt.check(t, res, arch)
			}
			// Recording the result makes the next scan quiet.
			arch.record(res)
			if again := mustScan(t, root, arch, Options{}); len(again.Changes) != 0 || again.Hashed != 0 {
				t.Errorf("scan after recording: changes %q hashed %d", changePaths(again), again.Hashed)
			}
		})
	}
}

func TestScanSubtreeAll(t *testing.T) {
	root, arch := scanned(t, basicTree)
	ctx := context.Background()
	tests := []struct {
		sub  string
		want []string
	}{
		{"d", []string{"d", "d/f", "d/g", "d/sub", "d/sub/x", "d/sub/y"}},
		{"d/sub", []string{"d/sub", "d/sub/x", "d/sub/y"}},
		{"top", []string{"top"}},
		{"l", []string{"l"}},
		{"missing", nil},
		{"d/missing/below", nil},
	}
	for _, tt := range tests {
		res, err := Scan(ctx, root, tt.sub, arch, Options{All: true})
		if err != nil {
			t.Fatalf("Scan(%q): %v", tt.sub, err)
		}
		var got []string
		for _, pe := range res.All {
			got = append(got, pe.Path)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Scan(%q, All) = %q, want %q", tt.sub, got, tt.want)
		}
		if len(res.Changes) != 0 {
			t.Errorf("Scan(%q): unchanged tree reports %q", tt.sub, changePaths(res))
		}
	}
	// A subtree through a symlink is refused, not followed.
	if _, err := Scan(ctx, root, "l/sub", arch, Options{All: true}); err == nil {
		t.Error("Scan below a symlink succeeded")
	}
}

func TestScanCancelled(t *testing.T) {
	root := t.TempDir()
	build(t, root, basicTree)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Scan(ctx, root, "", nil, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Scan with a cancelled context = %v", err)
	}
	if _, err := Scan(context.Background(), filepath.Join(root, "nope"), "", nil, Options{}); err == nil {
		t.Error("Scan of a missing root succeeded")
	}
}

// TestScanFileChangingWhileHashed appends to a large file while it is being
// scanned: the scan must either report it as a problem or report a hash
// that matches a consistent prefix of the file, never a torn read.
func TestScanFileChangingWhileHashed(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "growing")
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < 8; i++ {
		f.Write(chunk)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := []byte("z")
		for {
			select {
			case <-stop:
				return
			default:
				f.Write(b)
			}
		}
	}()
	res := mustScan(t, root, nil, Options{})
	close(stop)
	<-done
	final, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range res.Skipped {
		if pr.Path == "growing" {
			if !strings.Contains(pr.Err, "changing") || pr.Warning {
				t.Errorf("problem %+v", pr)
			}
			if len(res.Changes) != 0 {
				t.Errorf("a file reported as a problem is also a change: %+v", res.Changes)
			}
			return
		}
	}
	if len(res.Changes) != 1 {
		t.Fatalf("changes %+v, problems %+v", res.Changes, res.Skipped)
	}
	c := res.Changes[0]
	if c.New.Size > int64(len(final)) || blake3.Sum256(final[:c.New.Size]) != c.New.Hash {
		t.Errorf("reported hash does not match the file's first %d bytes: a torn read", c.New.Size)
	}
}

func TestHashAt(t *testing.T) {
	root := t.TempDir()
	build(t, root, []node{{"f", "file", "data"}, {"fifo", "fifo", ""}, {"l", "link", "f"}, {"d", "dir", ""}})
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// A buffer smaller than the file takes several reads; a larger one
	// one read and no hasher.
	for _, size := range []int{3, 4, 64} {
		h, st, n, err := HashAt(fd, "f", make([]byte, size))
		if err != nil || n != 4 || h != blake3.Sum256([]byte("data")) || st.Size != 4 {
			t.Errorf("buffer of %d bytes: HashAt(f) = %x, %d, %v", size, h, n, err)
		}
	}
	buf := make([]byte, 3)
	for _, name := range []string{"fifo", "l", "d", "missing"} {
		done := make(chan error, 1)
		go func() { _, _, _, err := HashAt(fd, name, buf); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("HashAt(%s) succeeded", name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("HashAt(%s) blocked", name)
		}
	}
	if target, err := Readlinkat(fd, "l"); err != nil || target != "f" {
		t.Errorf("Readlinkat = %q, %v", target, err)
	}
	long := strings.Repeat("x/", 1000)
	os.Symlink(long, filepath.Join(root, "long"))
	if target, err := Readlinkat(fd, "long"); err != nil || target != long {
		t.Errorf("Readlinkat of a %d-byte target = %d bytes, %v", len(long), len(target), err)
	}
}

func TestOpenDirAt(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	build(t, root, []node{
		{"a", "dir", ""},
		{"a/b", "dir", ""},
		{"file", "file", "x"},
		{"link", "link", "a"},
		{"a/uplink", "link", ".."},
		{"out", "link", outside},
	})
	os.Mkdir(filepath.Join(outside, "secret"), 0o755)
	rel, _ := filepath.Rel(root, outside)
	tests := []struct {
		rel string
		ok  bool
	}{
		{"", true},
		{"a", true},
		{"a/b", true},
		{"link", false},
		{"link/b", false},
		{"a/uplink", false},
		{"a/uplink/a", false},
		{"out", false},
		{"out/secret", false},
		{"..", false},
		{"a/../..", false},
		{"a/../../" + filepath.Base(root), false},
		{rel, false},
		{rel + "/secret", false},
		{outside, false},
		{"/", false},
		{"file", false},
		{"missing", false},
	}
	for _, mode := range []string{"openat2", "component walk"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "component walk" {
				prev := openat2Missing.Load()
				openat2Missing.Store(true)
				defer openat2Missing.Store(prev)
			}
			rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(rootfd)
			for _, tt := range tests {
				fd, err := OpenDirAt(rootfd, tt.rel)
				if err == nil {
					var st unix.Stat_t
					unix.Fstat(fd, &st)
					unix.Close(fd)
					if !tt.ok {
						t.Errorf("OpenDirAt(%q) opened a directory (inode %d)", tt.rel, st.Ino)
					}
					continue
				}
				if tt.ok {
					t.Errorf("OpenDirAt(%q) = %v", tt.rel, err)
				}
				var pe *os.PathError
				if !errors.As(err, &pe) {
					t.Errorf("OpenDirAt(%q) error %v is not a PathError", tt.rel, err)
				}
			}
			// OpenFileAt: the same rules for the file at the end.
			for _, ft := range []struct {
				rel string
				ok  bool
			}{{"file", true}, {"link", false}, {"a/uplink/file", false}, {"out/secret", false}, {"../" + filepath.Base(root) + "/file", false}, {"missing", false}} {
				fd, err := OpenFileAt(rootfd, ft.rel)
				if err == nil {
					unix.Close(fd)
				}
				if (err == nil) != ft.ok {
					t.Errorf("OpenFileAt(%q) = %v, want success %v", ft.rel, err, ft.ok)
				}
			}
			fd, err := OpenDir(root, "a/b")
			if err != nil {
				t.Errorf("OpenDir(a/b): %v", err)
			} else {
				unix.Close(fd)
			}
			if _, err := OpenDir(root, "link"); err == nil {
				t.Error("OpenDir through a symlink succeeded")
			}
		})
	}
}

// TestScanUnreadableDirectory checks that a directory the scanner cannot
// read is a problem, never a deletion of what the archive holds below it.
// Root reads any directory, so as root the scan runs in a child process
// under the unprivileged user "nobody".
func TestScanUnreadableDirectory(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	os.Mkdir(root, 0o755)
	build(t, root, []node{
		{"open", "dir", ""},
		{"open/f", "file", "f"},
		{"locked", "dir", ""},
		{"locked/a", "file", "a"},
		{"locked/sub", "dir", ""},
		{"locked/sub/b", "file", "b"},
	})
	arch := memArchive{}
	arch.record(mustScan(t, root, nil, Options{}))
	if err := os.Chmod(filepath.Join(root, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(root, "locked"), 0o755)
	// The permission change itself is archived: only the unreadable
	// contents are left to report.
	arch["locked"].Mode = 0

	var res *Result
	if os.Geteuid() != 0 {
		res = mustScan(t, root, arch, Options{})
	} else {
		res = scanAsNobody(t, base, root, arch)
	}
	if len(res.Changes) != 0 {
		t.Errorf("unreadable directory produced changes %q", changePaths(res))
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Path != "locked" || res.Skipped[0].Warning || !strings.Contains(res.Skipped[0].Err, "permission denied") {
		t.Errorf("Skipped = %+v; want one failure for locked", res.Skipped)
	}
}

const childEnv = "CONCORD_SCAN_TEST_CHILD"

// scanAsNobody runs the scan of root against arch in a copy of the test
// binary running as user and group 65534.
func scanAsNobody(t *testing.T, base, root string, arch memArchive) *Result {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary to run as nobody: %v", err)
	}
	bin := filepath.Join(base, "scan.test")
	if err := copyFile(self, bin); err != nil {
		t.Skipf("cannot copy the test binary: %v", err)
	}
	// Every directory down to the tree must be searchable by nobody.
	for d := base; d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			if !strings.HasPrefix(d, os.TempDir()) || d == os.TempDir() {
				t.Skipf("%s is not searchable by nobody", d)
			}
			os.Chmod(d, fi.Mode().Perm()|0o005)
		}
	}
	input, _ := json.Marshal(arch)
	archFile := filepath.Join(base, "arch.json")
	os.WriteFile(archFile, input, 0o644)
	cmd := exec.Command(bin, "-test.run=^TestScanChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+root, childEnv+"_ARCHIVE="+archFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child scan as nobody: %v\n%s", err, out)
	}
	_, js, ok := strings.Cut(string(out), "RESULT:")
	if !ok {
		t.Fatalf("child printed no result:\n%s", out)
	}
	js, _, _ = strings.Cut(js, "\n")
	var res Result
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatalf("child result: %v\n%s", err, out)
	}
	return &res
}

// TestScanChild is the child side of scanAsNobody; it does nothing in a
// normal test run.
func TestScanChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("only run as a child of TestScanUnreadableDirectory")
	}
	root, archFile := spec, os.Getenv(childEnv+"_ARCHIVE")
	b, err := os.ReadFile(archFile)
	if err != nil {
		t.Fatal(err)
	}
	arch := memArchive{}
	if err := json.Unmarshal(b, &arch); err != nil {
		t.Fatal(err)
	}
	res := mustScan(t, root, arch, Options{})
	out, _ := json.Marshal(res)
	fmt.Printf("RESULT:%s\n", out)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// FuzzMatcher compiles arbitrary ignore patterns (they come from profiles
// and the command line) and matches arbitrary paths: it must never panic.
func FuzzMatcher(f *testing.F) {
	f.Add("*.o", "a/b.o", false)
	f.Add("!keep.o", "keep.o", false)
	f.Add("/top", "top", true)
	f.Add("build/", "x/build", true)
	f.Add("**/x/**", "a/x/b", false)
	f.Add("[a-", "a", false)
	f.Add("\\", "\\", false)
	f.Fuzz(func(t *testing.T, pattern, path string, isDir bool) {
		m, err := NewMatcher(strings.Split(pattern, "\n"))
		if err != nil {
			return
		}
		m.Match(strings.Split(path, "/"), isDir)
	})
}

// TestScanManyFilesOneWorker scans a directory with more files than the
// hash queue holds, with one directory worker and one hasher.
func TestScanManyFilesOneWorker(t *testing.T) {
	root := t.TempDir()
	var nodes []node
	for i := 0; i < 700; i++ {
		nodes = append(nodes, node{fmt.Sprintf("f%03d", i), "file", fmt.Sprint(i)})
	}
	nodes = append(nodes, node{"sub", "dir", ""}, node{"sub/x", "file", "x"})
	build(t, root, nodes)
	done := make(chan *Result, 1)
	go func() {
		res, err := Scan(context.Background(), root, "", nil, Options{Workers: 1, Hashers: 1})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	select {
	case res := <-done:
		if res != nil && (len(res.Changes) != 702 || res.Hashed != 701) {
			t.Errorf("%d changes, %d hashed; want 702 and 701", len(res.Changes), res.Hashed)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("scan with one worker and one hasher did not finish")
	}
}

// TestReadsKeepAtime checks that reading a file to hash it (HashAt) or to
// copy it (OpenFileAt) leaves its access time as it was, where a plain read
// on this file system updates it.
func TestReadsKeepAtime(t *testing.T) {
	dir := t.TempDir()
	old := time.Unix(1_000_000_000, 0)
	for _, n := range []string{"plain", "hashed", "opened"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte("contents of "+n), 0o644); err != nil {
			t.Fatal(err)
		}
		// An access time older than the modification time: relatime,
		// the usual mount option, updates it on the next read.
		if err := os.Chtimes(p, old, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	atime := func(n string) time.Time {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, n), &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Atim.Unix())
	}
	if _, err := os.ReadFile(filepath.Join(dir, "plain")); err != nil {
		t.Fatal(err)
	}
	if atime("plain").Equal(old) {
		t.Skip("a plain read does not update access times on this file system (mounted noatime?)")
	}
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rootfd)
	if _, _, _, err := HashAt(rootfd, "hashed", make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	fd, err := OpenFileAt(rootfd, "opened")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(RawFile(fd)); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	for _, n := range []string{"hashed", "opened"} {
		if got := atime(n); !got.Equal(old) {
			t.Errorf("%s: access time %v after the read, want %v kept", n, got, old)
		}
	}
}

package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

const peerID = "0123456789abcdef0123456789abcdef"

type fixture struct {
	t     *testing.T
	root  string
	state string
	opts  Options
	e     *Endpoint
}

// newFixture creates a root holding files (path → contents; a trailing
// slash makes a directory, "->target" a symlink), opens an endpoint on it
// with extra open options, scans it and commits the scan so that the
// archive matches the tree.
func newFixture(t *testing.T, files map[string]string, req remote.OpenRequest) *fixture {
	t.Helper()
	return newFixtureWith(t, files, req, Options{})
}

// newFixtureWith is newFixture with an endpoint opened with opts (StateDir
// and Version are set here).
func newFixtureWith(t *testing.T, files map[string]string, req remote.OpenRequest, opts Options) *fixture {
	t.Helper()
	return newFixtureAt(t, t.TempDir(), files, req, opts)
}

// newFixtureAt is newFixtureWith with its root at root, an empty
// directory.
func newFixtureAt(t *testing.T, root string, files map[string]string, req remote.OpenRequest, opts Options) *fixture {
	t.Helper()
	f := &fixture{t: t, root: root, state: t.TempDir(), opts: opts}
	t.Setenv("XDG_STATE_HOME", f.state)
	writeTree(t, f.root, files)
	f.e = f.open(req)
	f.commitScan()
	return f
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int {
		return state.ComparePaths(strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/"))
	})
	for _, p := range paths {
		c := files[p]
		full := filepath.Join(root, p)
		var err error
		switch {
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(c, "->"):
			err = os.Symlink(c[2:], full)
		default:
			err = os.WriteFile(full, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) open(req remote.OpenRequest) *Endpoint {
	f.t.Helper()
	opts := f.opts
	opts.StateDir, opts.Version = filepath.Join(f.state, "concord"), "test"
	e := New(f.root, opts)
	ctx := context.Background()
	if _, err := e.Hello(ctx); err != nil {
		f.t.Fatalf("Hello: %v", err)
	}
	if req.PeerID == "" {
		req.PeerID = peerID
	}
	if _, err := e.Open(ctx, req); err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	f.t.Cleanup(func() { e.Close() })
	return e
}

// commitScan scans and records every change in the archive.
func (f *fixture) commitScan() remote.ScanReply {
	f.t.Helper()
	rep, err := f.e.Scan(context.Background(), remote.ScanRequest{}, nil)
	if err != nil {
		f.t.Fatalf("Scan: %v", err)
	}
	commitChanges(f.t, f.e, f.root, rep)
	return rep
}

// commitChanges records a scan's changes in e's archive, as the engine
// would after a sync: new files the scan left unread are hashed first
// (the archive takes only hashed entries).
func commitChanges(t *testing.T, e *Endpoint, root string, rep remote.ScanReply) {
	t.Helper()
	ctx := context.Background()
	var recs []remote.Record
	for _, c := range rep.Changes {
		ent := c.New
		if ent != nil && ent.Unhashed {
			if c.Old != nil {
				t.Fatalf("Scan left %s unread though the archive records it", c.Path)
			}
			es, err := e.Stat(ctx, []string{c.Path})
			if err != nil {
				t.Fatalf("Stat(%q): %v", c.Path, err)
			}
			ent = es[0]
			b, _ := os.ReadFile(filepath.Join(root, c.Path))
			if ent == nil || ent.Unhashed || ent.Hash != blake3.Sum256(b) {
				t.Fatalf("Stat(%s) = %+v after the scan left it unread", c.Path, ent)
			}
		}
		recs = append(recs, remote.Record{Path: c.Path, Entry: ent})
	}
	if err := e.Commit(ctx, recs); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// entry returns the current state of p as the endpoint sees it.
func (f *fixture) entry(p string) *state.Entry {
	f.t.Helper()
	es, err := f.e.Stat(context.Background(), []string{p})
	if err != nil {
		f.t.Fatalf("Stat(%q): %v", p, err)
	}
	return es[0]
}

func (f *fixture) read(p string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.root, p))
	if err != nil {
		f.t.Fatalf("read %q: %v", p, err)
	}
	return string(b)
}

// temps lists concord temporary files anywhere below dir.
func temps(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && scan.IsTemp(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func fileEntry(contents string, mode uint32, mtime time.Time) *state.Entry {
	return &state.Entry{Kind: state.File, Mode: mode, Size: int64(len(contents)), MTime: mtime.UnixNano(), Hash: blake3.Sum256([]byte(contents))}
}

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)

func TestHelloAndOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	stateDir := filepath.Join(t.TempDir(), "concord")
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "real"), 0o755)
	os.Symlink("real", filepath.Join(dir, "alias"))

	for _, bad := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "file")} {
		_, err := New(bad, Options{StateDir: stateDir}).Hello(ctx)
		if !errors.Is(err, remote.ErrFatal) || !strings.Contains(err.Error(), bad) {
			t.Errorf("Hello(%s) = %v; want ErrFatal naming the root", bad, err)
		}
	}
	e1 := New(filepath.Join(dir, "alias"), Options{StateDir: stateDir, Version: "v9"})
	info, err := e1.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	if info.Root != filepath.Join(dir, "real") || info.Version != "v9" || info.Protocol != Protocol || len(info.ReplicaID) != 32 {
		t.Errorf("Hello through a symlinked root = %+v", info)
	}
	e2 := New(filepath.Join(dir, "real"), Options{StateDir: stateDir})
	info2, err := e2.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if info2.ReplicaID != info.ReplicaID {
		t.Errorf("the same directory by two names has ids %s and %s", info.ReplicaID, info2.ReplicaID)
	}
	if _, err := e1.Open(ctx, remote.OpenRequest{PeerID: info.ReplicaID}); !errors.Is(err, remote.ErrFatal) || !strings.Contains(err.Error(), "same directory") {
		t.Errorf("Open with itself as peer = %v", err)
	}
	if _, err := New(dir, Options{StateDir: stateDir}).Open(ctx, remote.OpenRequest{PeerID: peerID}); !errors.Is(err, remote.ErrFatal) {
		t.Errorf("Open before Hello = %v", err)
	}
	if _, err := e1.Open(ctx, remote.OpenRequest{PeerID: peerID, Ignore: []string{"  "}}); !errors.Is(err, remote.ErrFatal) {
		t.Errorf("Open with an empty ignore pattern = %v", err)
	}
}

func TestOpenTwiceIsLocked(t *testing.T) {
	f := newFixture(t, map[string]string{"a": "a"}, remote.OpenRequest{})
	ctx := context.Background()
	second := New(f.root, Options{StateDir: filepath.Join(f.state, "concord")})
	if _, err := second.Hello(ctx); err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_, err := second.Open(ctx, remote.OpenRequest{PeerID: peerID})
	if !errors.Is(err, remote.ErrLocked) || !errors.Is(err, remote.ErrFatal) {
		t.Fatalf("second Open = %v; want ErrLocked", err)
	}
	if host, _ := os.Hostname(); !strings.Contains(err.Error(), host) {
		t.Errorf("lock error %q does not name the holder's host", err)
	}
	// A dry run does not take the lock.
	dry := New(f.root, Options{StateDir: filepath.Join(f.state, "concord")})
	dry.Hello(ctx)
	defer dry.Close()
	rep, err := dry.Open(ctx, remote.OpenRequest{PeerID: peerID, DryRun: true})
	if err != nil {
		t.Fatalf("dry-run Open while locked: %v", err)
	}
	if rep.Entries != 1 {
		t.Errorf("dry-run Open sees %d entries, want 1", rep.Entries)
	}
	if _, err := dry.Apply(ctx, remote.Op{Kind: remote.OpMkdir, Path: "x", New: &state.Entry{Kind: state.Dir, Mode: 0o755}}, nil); err == nil {
		t.Error("Apply in a dry run succeeded")
	}
	// Closing releases the lock; Close twice is safe.
	if err := f.e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := second.Open(ctx, remote.OpenRequest{PeerID: peerID}); err != nil {
		t.Errorf("Open after the holder closed: %v", err)
	}
}

func TestScanCommitStatList(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, map[string]string{"d/": "", "d/a": "aa", "d/l": "->a", "top": "t"}, remote.OpenRequest{})
	if rep := f.commitScan(); len(rep.Changes) != 0 || rep.Hashed != 0 {
		t.Errorf("scan after commit: %+v", rep)
	}
	es, err := f.e.Stat(ctx, []string{"d/a", "d/l", "d", "missing", "d/a/below", "top"})
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Kind != state.File || es[0].Hash != blake3.Sum256([]byte("aa")) || es[1].Target != "a" || es[2].Kind != state.Dir ||
		es[3] != nil || es[4] != nil || es[5].Size != 1 {
		t.Errorf("Stat = %+v", es)
	}
	// A file changed behind the archive's back is re-read.
	os.WriteFile(filepath.Join(f.root, "top"), []byte("changed"), 0o644)
	if e := f.entry("top"); e.Hash != blake3.Sum256([]byte("changed")) {
		t.Errorf("Stat of a changed file returns the archived hash")
	}
	list, err := f.e.List(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, pe := range list {
		paths = append(paths, pe.Path)
	}
	if !slices.Equal(paths, []string{"d", "d/a", "d/l"}) {
		t.Errorf("List(d) = %q", paths)
	}
	var all []string
	f.e.ArchiveList(ctx, func(p string, _ *state.Entry) error { all = append(all, p); return nil })
	if !slices.Equal(all, []string{"d", "d/a", "d/l", "top"}) {
		t.Errorf("ArchiveList = %q", all)
	}
}

// TestStatManyPaths asks for hundreds of paths at once, as the engine does
// for files both sides created: every answer lands at its own index, new
// files after a scan are hashed (and one edited since the scan shows its
// new contents), and absent paths and paths through a symlink are nil.
func TestStatManyPaths(t *testing.T) {
	ctx := context.Background()
	tree := map[string]string{"link": "->d0"}
	var paths []string
	want := map[string]string{}
	for d := range 5 {
		tree[fmt.Sprintf("d%d/", d)] = ""
		for i := range 70 {
			p := fmt.Sprintf("d%d/f%03d", d, i)
			tree[p] = "contents of " + p
			want[p] = tree[p]
			paths = append(paths, p)
		}
		paths = append(paths, fmt.Sprintf("d%d/missing", d))
	}
	paths = append(paths, "link/f000", "nodir/f")
	// The archive starts empty; the files come after, so they are new.
	f := newFixture(t, map[string]string{}, remote.OpenRequest{})
	writeTree(t, f.root, tree)
	rep, err := f.e.Scan(ctx, remote.ScanRequest{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	unread := 0
	for _, c := range rep.Changes {
		if c.New != nil && c.New.Unhashed {
			unread++
		}
	}
	if unread != len(want) {
		t.Errorf("the scan left %d files unread, want the %d new ones", unread, len(want))
	}
	os.WriteFile(filepath.Join(f.root, "d3/f010"), []byte("edited after the scan"), 0o644)
	want["d3/f010"] = "edited after the scan"
	es, err := f.e.Stat(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		w, ok := want[p]
		switch {
		case !ok && es[i] != nil:
			t.Errorf("Stat(%s) = %+v, want nil", p, es[i])
		case ok && (es[i] == nil || es[i].Unhashed || es[i].Hash != blake3.Sum256([]byte(w)) || es[i].Size != int64(len(w))):
			t.Errorf("Stat(%s) = %+v, want the hash of %q", p, es[i], w)
		}
	}
}

// TestPutBatch installs several files in one call: each gets its own entry
// or error (a file that appeared, a missing parent, a path through a
// symlink, contents that do not match), the others land, and no temporary
// file is left.
func TestPutBatch(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, map[string]string{"d/": "", "d/x": "x", "link": "->d"}, remote.OpenRequest{})
	type put struct {
		path, contents string
		state          *state.Entry
		wantErr        error
	}
	puts := []put{
		{"a", "first", fileEntry("first", 0o644, t0), nil},
		{"d/b", "second", fileEntry("second", 0o600, t0), nil},
		{"d/x", "over x", fileEntry("over x", 0o644, t0), remote.ErrChanged},
		{"nodir/c", "c", fileEntry("c", 0o644, t0), remote.ErrChanged},
		{"link/c", "c", fileEntry("c", 0o644, t0), remote.ErrUnsafePath},
		{"d/liar", "not what the hash says", fileEntry("something else entirely", 0o644, t0), remote.ErrChanged},
		{"d/unhashed", "new, unread", &state.Entry{Kind: state.File, Mode: 0o644, Size: 11, MTime: t0.UnixNano(), Unhashed: true}, nil},
	}
	ops := make([]remote.Op, len(puts))
	contents := make([][]byte, len(puts))
	for i, p := range puts {
		ops[i] = remote.Op{Kind: remote.OpPut, Path: p.path, New: p.state}
		contents[i] = []byte(p.contents)
	}
	ents, errs, err := f.e.PutBatch(ctx, ops, contents)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range puts {
		if p.wantErr != nil {
			if !errors.Is(errs[i], p.wantErr) {
				t.Errorf("%s: error %v, want %v", p.path, errs[i], p.wantErr)
			}
			continue
		}
		if errs[i] != nil {
			t.Errorf("%s: %v", p.path, errs[i])
			continue
		}
		if got := f.read(p.path); got != p.contents {
			t.Errorf("%s holds %q", p.path, got)
		}
		if ents[i] == nil || ents[i].Unhashed || ents[i].Hash != blake3.Sum256([]byte(p.contents)) {
			t.Errorf("%s: entry %+v", p.path, ents[i])
		}
		if now := f.entry(p.path); !state.StatSame(now, ents[i]) {
			t.Errorf("%s: Stat after the put = %+v, PutBatch returned %+v", p.path, now, ents[i])
		}
	}
	if f.read("d/x") != "x" {
		t.Errorf("d/x was replaced")
	}
	if tmp := temps(t, f.root); len(tmp) != 0 {
		t.Errorf("temporary files left: %q", tmp)
	}
}

func TestScanRemovesDeadTemps(t *testing.T) {
	f := newFixture(t, map[string]string{"d/": ""}, remote.OpenRequest{})
	dead := filepath.Join(f.root, "d", scan.TempPrefix+"99999999-1-1")
	deadDir := filepath.Join(f.root, scan.TempPrefix+"99999998-1-1")
	mine := filepath.Join(f.root, "d", tempName())
	os.WriteFile(dead, []byte("x"), 0o600)
	os.Mkdir(deadDir, 0o700)
	os.WriteFile(mine, []byte("x"), 0o600)
	// A user's names with the prefix, that concord never makes: files and
	// directories like any other, reported and kept.
	users := []string{"d/" + scan.TempPrefix + "notes", scan.TempPrefix + "99999997-1-1.bak",
		scan.TempPrefix + "dir", scan.TempPrefix + "dir/" + scan.TempPrefix + "x", scan.TempPrefix + "99999996"}
	os.WriteFile(filepath.Join(f.root, users[0]), []byte("my notes"), 0o600)
	os.WriteFile(filepath.Join(f.root, users[1]), []byte("backup"), 0o600)
	os.Mkdir(filepath.Join(f.root, users[2]), 0o700)
	os.WriteFile(filepath.Join(f.root, users[3]), []byte("k"), 0o600)
	os.Mkdir(filepath.Join(f.root, users[4]), 0o700)
	rep := f.commitScan()
	var reported []string
	for _, c := range rep.Changes {
		reported = append(reported, c.Path)
	}
	slices.Sort(reported)
	if want := slices.Sorted(slices.Values(users)); !slices.Equal(reported, want) {
		t.Errorf("changes %q, want the user's files %q (and no temporary file)", reported, want)
	}
	for _, u := range users {
		if _, err := os.Lstat(filepath.Join(f.root, u)); err != nil {
			t.Errorf("the user's %s was taken for a temporary file: %v", u, err)
		}
	}
	for _, p := range []string{dead, deadDir} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale temporary %s not removed: %v", p, err)
		}
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a live process's temporary file was removed: %v", err)
	}
}

func TestPut(t *testing.T) {
	ctx := context.Background()
	tree := map[string]string{"old": "old contents", "d/": "", "d/x": "x", "d/sub/": "", "d/sub/y": "y", "d/l": "->x", "link": "->d"}
	tests := []struct {
		name     string
		path     string
		contents string // streamed
		newState func(f *fixture) *state.Entry
		expect   func(f *fixture) *state.Entry
		before   func(f *fixture) // after the scan, before Apply
		during   func(f *fixture) // while the contents are being read
		wantErr  error
		want     string // contents at path afterwards
	}{
		{name: "create", path: "new", contents: "fresh",
			newState: func(*fixture) *state.Entry { return fileEntry("fresh", 0o640, t0) },
			expect:   func(*fixture) *state.Entry { return nil }, want: "fresh"},
		{name: "create in a subdirectory", path: "d/sub/new", contents: "deep",
			newState: func(*fixture) *state.Entry { return fileEntry("deep", 0o600, t0) },
			expect:   func(*fixture) *state.Entry { return nil }, want: "deep"},
		{name: "replace", path: "old", contents: "replacement",
			newState: func(*fixture) *state.Entry { return fileEntry("replacement", 0o644, t0) },
			expect:   func(f *fixture) *state.Entry { return f.entry("old") }, want: "replacement"},
		{name: "replace a symlink", path: "d/l", contents: "was a link",
			newState: func(*fixture) *state.Entry { return fileEntry("was a link", 0o644, t0) },
			expect:   func(f *fixture) *state.Entry { return f.entry("d/l") }, want: "was a link"},
		{name: "replace a directory tree", path: "d", contents: "now a file",
			newState: func(*fixture) *state.Entry { return fileEntry("now a file", 0o644, t0) },
			expect:   func(f *fixture) *state.Entry { return f.entry("d") }, want: "now a file"},
		{name: "expected absent but exists", path: "old", contents: "x",
			newState: func(*fixture) *state.Entry { return fileEntry("x", 0o644, t0) },
			expect:   func(*fixture) *state.Entry { return nil }, wantErr: remote.ErrChanged, want: "old contents"},
		{name: "file created while the contents were in flight", path: "new", contents: "mine",
			newState: func(*fixture) *state.Entry { return fileEntry("mine", 0o644, t0) },
			expect:   func(*fixture) *state.Entry { return nil },
			during: func(f *fixture) {
				os.WriteFile(filepath.Join(f.root, "new"), []byte("a person's file"), 0o644)
			}, wantErr: remote.ErrChanged, want: "a person's file"},
		{name: "destination modified after the scan", path: "old", contents: "new",
			newState: func(*fixture) *state.Entry { return fileEntry("new", 0o644, t0) },
			expect:   func(f *fixture) *state.Entry { return f.entry("old") },
			before: func(f *fixture) {
				os.WriteFile(filepath.Join(f.root, "old"), []byte("edited by a person"), 0o644)
			}, wantErr: remote.ErrChanged, want: "edited by a person"},
		{name: "destination deleted after the scan", path: "old", contents: "new",
			newState: func(*fixture) *state.Entry { return fileEntry("new", 0o644, t0) },
			expect:   func(f *fixture) *state.Entry { return f.entry("old") },
			before:   func(f *fixture) { os.Remove(filepath.Join(f.root, "old")) },
			wantErr:  remote.ErrChanged},
		{name: "content does not match the hash", path: "old", contents: "abd",
			newState: func(*fixture) *state.Entry { return fileEntry("abc", 0o644, t0) },
			expect:   func(f *fixture) *state.Entry { return f.entry("old") }, wantErr: remote.ErrChanged, want: "old contents"},
		{name: "content shorter than the size", path: "new", contents: "ab",
			newState: func(*fixture) *state.Entry { return fileEntry("abc", 0o644, t0) },
			expect:   func(*fixture) *state.Entry { return nil }, wantErr: remote.ErrChanged},
		{name: "file added inside the directory being replaced", path: "d", contents: "f",
			newState: func(*fixture) *state.Entry { return fileEntry("f", 0o644, t0) },
			expect:   func(f *fixture) *state.Entry { return f.entry("d") },
			before: func(f *fixture) {
				os.WriteFile(filepath.Join(f.root, "d/sub/added"), []byte("new work"), 0o644)
			}, wantErr: remote.ErrChanged},
		{name: "parent directory missing", path: "nodir/f", contents: "f",
			newState: func(*fixture) *state.Entry { return fileEntry("f", 0o644, t0) },
			expect:   func(*fixture) *state.Entry { return nil }, wantErr: remote.ErrChanged},
		{name: "through a symlinked directory", path: "link/x", contents: "f",
			newState: func(*fixture) *state.Entry { return fileEntry("f", 0o644, t0) },
			expect:   func(*fixture) *state.Entry { return nil }, wantErr: remote.ErrUnsafePath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tree, remote.OpenRequest{})
			expect := tt.expect(f)
			newState := tt.newState(f)
			if tt.before != nil {
				tt.before(f)
			}
			beforeD := listTree(t, filepath.Join(f.root, "d"))
			var content io.Reader = strings.NewReader(tt.contents)
			if tt.during != nil {
				var once sync.Once
				content = &hookReader{r: content, hook: func() { once.Do(func() { tt.during(f) }) }}
			}
			got, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: tt.path, Expect: expect, New: newState}, content)
			if tmp := temps(t, f.root); len(tmp) != 0 {
				t.Errorf("temporary files left: %q", tmp)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Apply = %v, %v; want %v", got, err, tt.wantErr)
				}
				if tt.want != "" && f.read(tt.path) != tt.want {
					t.Errorf("destination changed to %q", f.read(tt.path))
				}
				if afterD := listTree(t, filepath.Join(f.root, "d")); tt.path == "d" && !slices.Equal(beforeD, afterD) {
					t.Errorf("refused put changed the tree: %q → %q", beforeD, afterD)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if s := f.read(tt.path); s != tt.want {
				t.Errorf("contents %q, want %q", s, tt.want)
			}
			fi, _ := os.Lstat(filepath.Join(f.root, tt.path))
			if fi.Mode().Perm() != os.FileMode(newState.Mode) || !fi.ModTime().Equal(t0) {
				t.Errorf("installed with mode %o mtime %v; want %o %v", fi.Mode().Perm(), fi.ModTime(), newState.Mode, t0)
			}
			if got == nil || !state.Equal(got, newState) || got.Ino == 0 || got.CTime == 0 {
				t.Errorf("Apply returned %+v; want %+v with this side's stat data", got, newState)
			}
			// The returned entry is what a scan now sees.
			if now := f.entry(tt.path); !state.StatSame(now, got) || now.Hash != got.Hash {
				t.Errorf("Stat after put = %+v, Apply returned %+v", now, got)
			}
		})
	}
}

func listTree(t *testing.T, dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	tree := map[string]string{"f": "f", "l": "->f", "d/": "", "d/a": "a", "d/s/": "", "d/s/b": "b", "d/s/t/": "", "d/s/t/c": "c", "d/s/ln": "->b"}
	tests := []struct {
		name    string
		path    string
		before  func(f *fixture)
		wantErr error
		gone    bool
	}{
		{name: "file", path: "f", gone: true},
		{name: "symlink", path: "l", gone: true},
		{name: "tree", path: "d", gone: true},
		{name: "subtree", path: "d/s", gone: true},
		{name: "file inside changed", path: "d", before: func(f *fixture) {
			time.Sleep(10 * time.Millisecond)
			os.WriteFile(filepath.Join(f.root, "d/s/t/c"), []byte("C"), 0o644)
		}, wantErr: remote.ErrChanged},
		{name: "extra file appeared", path: "d", before: func(f *fixture) {
			os.WriteFile(filepath.Join(f.root, "d/s/t/extra"), []byte("new"), 0o644)
		}, wantErr: remote.ErrChanged},
		{name: "extra directory appeared", path: "d", before: func(f *fixture) {
			os.Mkdir(filepath.Join(f.root, "d/new"), 0o755)
		}, wantErr: remote.ErrChanged},
		{name: "symlink inside retargeted", path: "d", before: func(f *fixture) {
			os.Remove(filepath.Join(f.root, "d/s/ln"))
			os.Symlink("elsewhere", filepath.Join(f.root, "d/s/ln"))
		}, wantErr: remote.ErrChanged},
		{name: "a dead run's temporary file inside", path: "d", before: func(f *fixture) {
			os.WriteFile(filepath.Join(f.root, "d/s", scan.TempPrefix+"99999999-1-1"), []byte("partial"), 0o600)
		}, gone: true},
		{name: "this run's temporary file inside", path: "d", before: func(f *fixture) {
			os.WriteFile(filepath.Join(f.root, "d/s", tempName()), []byte("partial"), 0o600)
		}, wantErr: remote.ErrChanged},
		{name: "a user's file named like a temporary appeared", path: "d", before: func(f *fixture) {
			os.WriteFile(filepath.Join(f.root, "d/s", scan.TempPrefix+"notes"), []byte("my notes"), 0o644)
		}, wantErr: remote.ErrChanged},
		{name: "a user's file named like a dead run's temporary appeared", path: "d", before: func(f *fixture) {
			os.WriteFile(filepath.Join(f.root, "d/s", scan.TempPrefix+"99999999-1-1.bak"), []byte("my notes"), 0o644)
		}, wantErr: remote.ErrChanged},
		{name: "file changed after the scan", path: "f", before: func(f *fixture) {
			os.WriteFile(filepath.Join(f.root, "f"), []byte("edited"), 0o644)
		}, wantErr: remote.ErrChanged},
		{name: "directory replaced by a file", path: "d/s", before: func(f *fixture) {
			os.RemoveAll(filepath.Join(f.root, "d/s"))
			os.WriteFile(filepath.Join(f.root, "d/s"), nil, 0o644)
		}, wantErr: remote.ErrChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tree, remote.OpenRequest{})
			expect := f.entry(tt.path)
			if tt.before != nil {
				tt.before(f)
			}
			before := listTree(t, f.root)
			got, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpRemove, Path: tt.path, Expect: expect}, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Apply = %v; want %v", err, tt.wantErr)
				}
				if after := listTree(t, f.root); !slices.Equal(before, after) {
					t.Errorf("a refused removal removed something:\nbefore %q\nafter  %q", before, after)
				}
				return
			}
			if err != nil || got != nil {
				t.Fatalf("Apply = %+v, %v", got, err)
			}
			if _, err := os.Lstat(filepath.Join(f.root, tt.path)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s still there: %v", tt.path, err)
			}
		})
	}
	// Removing what is already absent, as expected, is a no-op.
	f := newFixture(t, tree, remote.OpenRequest{})
	for _, p := range []string{"never", "nodir/never"} {
		if got, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpRemove, Path: p}, nil); err != nil || got != nil {
			t.Errorf("remove absent %s = %v, %v", p, got, err)
		}
	}
}

// TestRemoveAfterScanChanges removes a tree whose contents changed before
// the scan: the scan's view, not the stale archive, is what must match.
func TestRemoveAfterScanChanges(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, map[string]string{"d/": "", "d/a": "a", "d/gone": "g"}, remote.OpenRequest{})
	os.WriteFile(filepath.Join(f.root, "d/a"), []byte("changed before the scan"), 0o644)
	os.WriteFile(filepath.Join(f.root, "d/new"), []byte("new"), 0o644)
	os.Remove(filepath.Join(f.root, "d/gone"))
	if _, err := f.e.Scan(ctx, remote.ScanRequest{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpRemove, Path: "d", Expect: f.entry("d")}, nil); err != nil {
		t.Fatalf("remove a tree the scan saw: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(f.root, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("d still there")
	}
}

func TestMkdirSymlinkSetMeta(t *testing.T) {
	ctx := context.Background()
	tree := map[string]string{"f": "file", "d/": "", "d/x": "x", "l": "->f"}
	tests := []struct {
		name    string
		op      func(f *fixture) remote.Op
		wantErr error
		check   func(t *testing.T, f *fixture, got *state.Entry)
	}{
		{name: "mkdir", op: func(f *fixture) remote.Op {
			return remote.Op{Kind: remote.OpMkdir, Path: "new", New: &state.Entry{Kind: state.Dir, Mode: 0o750}}
		}, check: func(t *testing.T, f *fixture, got *state.Entry) {
			fi, err := os.Lstat(filepath.Join(f.root, "new"))
			if err != nil || !fi.IsDir() || got.Kind != state.Dir {
				t.Errorf("mkdir: %v %v", fi, err)
			}
		}},
		{name: "mkdir over a file", op: func(f *fixture) remote.Op {
			return remote.Op{Kind: remote.OpMkdir, Path: "f", Expect: f.entry("f"), New: &state.Entry{Kind: state.Dir, Mode: 0o755}}
		}, check: func(t *testing.T, f *fixture, got *state.Entry) {
			if fi, err := os.Lstat(filepath.Join(f.root, "f")); err != nil || !fi.IsDir() {
				t.Errorf("f is not a directory: %v", err)
			}
		}},
		{name: "mkdir where something appeared", op: func(f *fixture) remote.Op {
			os.Mkdir(filepath.Join(f.root, "late"), 0o755)
			return remote.Op{Kind: remote.OpMkdir, Path: "late", New: &state.Entry{Kind: state.Dir, Mode: 0o755}}
		}, wantErr: remote.ErrChanged},
		{name: "symlink", op: func(f *fixture) remote.Op {
			return remote.Op{Kind: remote.OpSymlink, Path: "d/ln", New: &state.Entry{Kind: state.Symlink, Target: "../f"}}
		}, check: func(t *testing.T, f *fixture, got *state.Entry) {
			if target, err := os.Readlink(filepath.Join(f.root, "d/ln")); err != nil || target != "../f" {
				t.Errorf("symlink target %q, %v", target, err)
			}
			if got.Target != "../f" || got.Hash != blake3.Sum256([]byte("../f")) {
				t.Errorf("returned %+v", got)
			}
		}},
		{name: "symlink replacing a file", op: func(f *fixture) remote.Op {
			return remote.Op{Kind: remote.OpSymlink, Path: "f", Expect: f.entry("f"), New: &state.Entry{Kind: state.Symlink, Target: "d"}}
		}, check: func(t *testing.T, f *fixture, got *state.Entry) {
			if target, _ := os.Readlink(filepath.Join(f.root, "f")); target != "d" {
				t.Errorf("target %q", target)
			}
		}},
		{name: "symlink retarget", op: func(f *fixture) remote.Op {
			return remote.Op{Kind: remote.OpSymlink, Path: "l", Expect: f.entry("l"), New: &state.Entry{Kind: state.Symlink, Target: "\xffodd"}}
		}, check: func(t *testing.T, f *fixture, got *state.Entry) {
			if target, _ := os.Readlink(filepath.Join(f.root, "l")); target != "\xffodd" {
				t.Errorf("target %q", target)
			}
		}},
		{name: "symlink replacing a directory tree", op: func(f *fixture) remote.Op {
			return remote.Op{Kind: remote.OpSymlink, Path: "d", Expect: f.entry("d"), New: &state.Entry{Kind: state.Symlink, Target: "f"}}
		}, check: func(t *testing.T, f *fixture, got *state.Entry) {
			if target, _ := os.Readlink(filepath.Join(f.root, "d")); target != "f" {
				t.Errorf("target %q", target)
			}
		}},
		{name: "set meta of a file", op: func(f *fixture) remote.Op {
			want := f.entry("f").Clone()
			want.Mode, want.MTime = 0o600, t0.UnixNano()
			return remote.Op{Kind: remote.OpSetMeta, Path: "f", Expect: f.entry("f"), New: want}
		}, check: func(t *testing.T, f *fixture, got *state.Entry) {
			fi, _ := os.Lstat(filepath.Join(f.root, "f"))
			if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(t0) || f.read("f") != "file" {
				t.Errorf("after set meta: %v %v %q", fi.Mode(), fi.ModTime(), f.read("f"))
			}
			if got.Mode != 0o600 || got.MTime != t0.UnixNano() || got.Hash != blake3.Sum256([]byte("file")) {
				t.Errorf("returned %+v", got)
			}
		}},
		{name: "set meta of a directory", op: func(f *fixture) remote.Op {
			return remote.Op{Kind: remote.OpSetMeta, Path: "d", Expect: f.entry("d"), New: &state.Entry{Kind: state.Dir, Mode: 0o700}}
		}, check: func(t *testing.T, f *fixture, got *state.Entry) {
			if fi, _ := os.Lstat(filepath.Join(f.root, "d")); fi.Mode().Perm() != 0o700 {
				t.Errorf("mode %v", fi.Mode())
			}
		}},
		{name: "set meta of a file changed after the scan", op: func(f *fixture) remote.Op {
			exp := f.entry("f")
			os.WriteFile(filepath.Join(f.root, "f"), []byte("other"), 0o644)
			return remote.Op{Kind: remote.OpSetMeta, Path: "f", Expect: exp, New: &state.Entry{Kind: state.File, Mode: 0o600}}
		}, wantErr: remote.ErrChanged},
		{name: "no new state", op: func(f *fixture) remote.Op {
			return remote.Op{Kind: remote.OpMkdir, Path: "x"}
		}, wantErr: errors.New("no new state")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tree, remote.OpenRequest{})
			op := tt.op(f)
			got, err := f.e.Apply(ctx, op, nil)
			if tmp := temps(t, f.root); len(tmp) != 0 {
				t.Errorf("temporary files left: %q", tmp)
			}
			if tt.wantErr != nil {
				if err == nil || (!errors.Is(err, tt.wantErr) && !strings.Contains(err.Error(), tt.wantErr.Error())) {
					t.Fatalf("Apply = %+v, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !state.SameContent(got, op.New) || !state.SamePerm(got, op.New) {
				t.Errorf("returned %+v, asked for %+v", got, op.New)
			}
			tt.check(t, f, got)
		})
	}
}

func TestUnsafePaths(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	os.Mkdir(filepath.Join(outside, "inner"), 0o755)
	f := newFixture(t, map[string]string{"d/": "", "d/f": "f", "out": "->" + outside, "d/up": "->.."}, remote.OpenRequest{})
	rel, _ := filepath.Rel(f.root, outside)
	paths := []string{
		"", "/abs", outside + "/x", "../x", "d/../../x", rel + "/x", "d//f", "./x", "d/.",
		"a\x00b", "out/x", "out/inner/x", "d/up/out/x",
	}
	newFile := fileEntry("evil", 0o644, t0)
	ops := []remote.Op{
		{Kind: remote.OpPut, New: newFile},
		{Kind: remote.OpMkdir, New: &state.Entry{Kind: state.Dir, Mode: 0o755}},
		{Kind: remote.OpSymlink, New: &state.Entry{Kind: state.Symlink, Target: "/etc/passwd"}},
		{Kind: remote.OpRemove, Expect: &state.Entry{Kind: state.Dir}},
		{Kind: remote.OpSetMeta, Expect: &state.Entry{Kind: state.Dir}, New: &state.Entry{Kind: state.Dir, Mode: 0o777}},
	}
	for _, p := range paths {
		for _, op := range ops {
			op.Path = p
			_, err := f.e.Apply(ctx, op, strings.NewReader("evil"))
			if !errors.Is(err, remote.ErrUnsafePath) {
				t.Errorf("Apply(kind %d, %q) = %v; want ErrUnsafePath", op.Kind, p, err)
			}
		}
		if _, err := f.e.ReadFile(ctx, p, nil); err == nil {
			t.Errorf("ReadFile(%q) succeeded", p)
		}
		if _, err := f.e.List(ctx, p); p != "out/x" && p != "out/inner/x" && p != "d/up/out/x" && !errors.Is(err, remote.ErrUnsafePath) {
			t.Errorf("List(%q) = %v; want ErrUnsafePath", p, err)
		}
		if es, err := f.e.Stat(ctx, []string{p}); err == nil && es[0] != nil {
			t.Errorf("Stat(%q) = %+v, looked through", p, es[0])
		}
	}
	if got := listTree(t, outside); !slices.Equal(got, []string{outside, filepath.Join(outside, "inner")}) {
		t.Errorf("something was written outside the root: %q", got)
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() == 0o777 {
		t.Errorf("outside directory's mode was changed")
	}
}

func TestReadFile(t *testing.T) {
	ctx := context.Background()
	big := strings.Repeat("0123456789", 100_000)
	f := newFixture(t, map[string]string{"small": "hello", "big": big, "l": "->small", "d/": ""}, remote.OpenRequest{})

	r, err := f.e.ReadFile(ctx, "small", f.entry("small"))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "hello" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	r.Close()

	// Modified between open and end of file.
	r, err = f.e.ReadFile(ctx, "big", f.entry("big"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(f.root, "big"), []byte(big[:500_000]+"X"+big[500_001:]), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(r)
	r.Close()
	if !errors.Is(err, remote.ErrChanged) {
		t.Errorf("read of a file modified while read = %v; want ErrChanged", err)
	}

	// Appended to while being read.
	f2 := newFixture(t, map[string]string{"log": big}, remote.OpenRequest{})
	r, err = f2.e.ReadFile(ctx, "log", f2.entry("log"))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(r, buf)
	af, _ := os.OpenFile(filepath.Join(f2.root, "log"), os.O_APPEND|os.O_WRONLY, 0)
	af.WriteString("more")
	af.Close()
	_, err = io.ReadAll(r)
	r.Close()
	if !errors.Is(err, remote.ErrChanged) {
		t.Errorf("read of a file appended to while read = %v; want ErrChanged", err)
	}

	stale := f.entry("small")
	os.WriteFile(filepath.Join(f.root, "small"), []byte("HELLO, longer"), 0o644)
	tests := []struct {
		name   string
		path   string
		expect *state.Entry
	}{
		{"modified before open", "small", stale},
		{"missing", "missing", fileEntry("x", 0o644, t0)},
		{"symlink", "l", fileEntry("hello", 0o644, t0)},
		{"missing directory", "nodir/x", fileEntry("x", 0o644, t0)},
	}
	for _, tt := range tests {
		if _, err := f.e.ReadFile(ctx, tt.path, tt.expect); !errors.Is(err, remote.ErrChanged) {
			t.Errorf("%s: ReadFile = %v; want ErrChanged", tt.name, err)
		}
	}
}

func TestBackups(t *testing.T) {
	ctx := context.Background()
	outside := filepath.Join(t.TempDir(), "backups")
	tests := []struct {
		name      string
		backupDir string
		dir       func(f *fixture) string
		max       int
	}{
		{"inside the root", ".backups", func(f *fixture) string { return filepath.Join(f.root, ".backups") }, 2},
		{"outside the root", outside, func(*fixture) string { return outside }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, map[string]string{"d/": "", "d/f": "version 0", "d/gone": "to be removed", "t/": "", "t/x": "in a tree"}, remote.OpenRequest{BackupDir: tt.backupDir, MaxBackups: tt.max})
			bdir := tt.dir(f)
			for i := 1; i <= 4; i++ {
				contents := "version " + string(rune('0'+i))
				if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "d/f", Expect: f.entry("d/f"), New: fileEntry(contents, 0o644, t0.Add(time.Duration(i)*time.Second))}, strings.NewReader(contents)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond) // distinct time stamps
			}
			if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpRemove, Path: "d/gone", Expect: f.entry("d/gone")}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpRemove, Path: "t", Expect: f.entry("t")}, nil); err != nil {
				t.Fatal(err)
			}
			kept := backupsOf(t, filepath.Join(bdir, "d"), "f.")
			wantN := 4
			if tt.max > 0 {
				wantN = tt.max
			}
			if len(kept) != wantN {
				t.Fatalf("%d backups of d/f kept: %q; want %d", len(kept), kept, wantN)
			}
			// The newest backups are kept, each the version it replaced.
			for i, name := range kept {
				version := 4 - len(kept) + i
				b, _ := os.ReadFile(filepath.Join(bdir, "d", name))
				if want := "version " + string(rune('0'+version)); string(b) != want {
					t.Errorf("backup %s holds %q, want %q", name, b, want)
				}
				if _, err := time.Parse("20060102T150405.000000000Z", strings.TrimPrefix(name, "f.")); err != nil {
					t.Errorf("backup name %s has no time stamp: %v", name, err)
				}
			}
			for _, p := range []struct{ dir, prefix, want string }{{"d", "gone.", "to be removed"}, {"t", "x.", "in a tree"}} {
				got := backupsOf(t, filepath.Join(bdir, p.dir), p.prefix)
				if len(got) != 1 {
					t.Errorf("removed file %s/%s: backups %q", p.dir, p.prefix, got)
					continue
				}
				if b, _ := os.ReadFile(filepath.Join(bdir, p.dir, got[0])); string(b) != p.want {
					t.Errorf("backup of removed file holds %q", b)
				}
			}
			if f.read("d/f") != "version 4" {
				t.Errorf("d/f = %q", f.read("d/f"))
			}
			// A backup directory inside the root is never synchronized.
			if rep := f.commitScan(); tt.backupDir == ".backups" {
				for _, c := range rep.Changes {
					if strings.HasPrefix(c.Path, ".backups") {
						t.Errorf("backup directory reported: %q", c.Path)
					}
				}
			}
		})
	}
	f := newFixture(t, nil, remote.OpenRequest{})
	if err := f.e.setBackup(".", 0); !errors.Is(err, remote.ErrFatal) {
		t.Errorf("backup directory = root: %v", err)
	}
}

func backupsOf(t *testing.T, dir, prefix string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read backup directory: %v", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestPutDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	old := bytes.Repeat([]byte("old"), 100_000)                               // 300 kB
	big := append(bytes.Clone(old), bytes.Repeat([]byte("new!"), 500_000)...) // 2.3 MB
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprint("delta=", delta), func(t *testing.T) {
			ctx := context.Background()
			root := t.TempDir()
			if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=1m"); err != nil {
				t.Skipf("cannot mount a 1 MiB tmpfs on %s: %v", root, err)
			}
			t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
			if err := os.WriteFile(filepath.Join(root, "f"), old, 0o644); err != nil {
				t.Fatal(err)
			}
			stateHome := t.TempDir()
			t.Setenv("XDG_STATE_HOME", stateHome)
			f := &fixture{t: t, root: root, state: stateHome}
			f.e = f.open(remote.OpenRequest{})
			f.commitScan()
			expect := f.entry("f")
			var content io.Reader = bytes.NewReader(big)
			if delta {
				content = deltaOf(t, f, "f", expect, big)
			}
			_, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: expect, Delta: delta,
				New: &state.Entry{Kind: state.File, Mode: 0o644, Size: int64(len(big)), MTime: t0.UnixNano(), Hash: blake3.Sum256(big)}}, content)
			if err == nil {
				t.Fatal("a 2 MB put on a 1 MiB disk succeeded")
			}
			if !errors.Is(err, unix.ENOSPC) {
				t.Errorf("error %q does not wrap ENOSPC", err)
			}
			if !strings.Contains(err.Error(), "disk is full") || !strings.Contains(err.Error(), "old version is intact") {
				t.Errorf("error %q; want it to say the disk is full and the old version is intact", err)
			}
			if b, _ := os.ReadFile(filepath.Join(root, "f")); !bytes.Equal(b, old) {
				t.Errorf("old file damaged: %d bytes", len(b))
			}
			if tmp := temps(t, root); len(tmp) != 0 {
				t.Errorf("temporary files left: %q", tmp)
			}
		})
	}
}

// deltaOf returns the delta stream that turns the file at p into newText.
func deltaOf(t *testing.T, f *fixture, p string, expect *state.Entry, newText []byte) io.Reader {
	t.Helper()
	sig, err := f.e.Signature(context.Background(), p, expect)
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	if err := delta.WriteDelta(&enc, sig, bytes.NewReader(newText), delta.ConfirmAll); err != nil {
		t.Fatal(err)
	}
	return &enc
}

func TestGroupSync(t *testing.T) {
	g := newGroupSync()
	fd, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		go func() { errs <- g.sync(fd) }()
	}
	for i := 0; i < 16; i++ {
		if err := <-errs; err != nil {
			t.Errorf("sync: %v", err)
		}
	}
	g.mu.Lock()
	completed, running := g.completed, g.running
	g.mu.Unlock()
	if completed == 0 || completed > 16 || running {
		t.Errorf("after 16 syncs: %d flushes, running %v", completed, running)
	}
	if err := g.sync(-1); err == nil {
		t.Error("sync of a bad descriptor succeeded")
	}
}

func TestTempOwnerDead(t *testing.T) {
	tests := []struct {
		name string
		dead bool
	}{
		{tempName(), false},
		{scan.TempPrefix + "99999999-1-1", true},
		{scan.TempPrefix + "1-1-1", false}, // init is alive
		// Not concord's names, so never leftovers, whatever they hold
		// where concord's pid would be.
		{scan.TempPrefix + "x", false},
		{scan.TempPrefix, false},
		{scan.TempPrefix + "notes", false},
		{scan.TempPrefix + "99999999", false},
		{scan.TempPrefix + "99999999-1-1.bak", false},
		{scan.TempPrefix + "099999999-1-1", false},
		{scan.TempPrefix + "5f5e0ff-1-1", false},
		{scan.TempPrefix + "5F5E0FF-1-1", false},
		{".CONCORD-TMP-99999999-1-1", false},
	}
	for _, tt := range tests {
		if got := tempOwnerDead(unix.AT_FDCWD, tt.name); got != tt.dead {
			t.Errorf("tempOwnerDead(%q) = %v, want %v", tt.name, got, tt.dead)
		}
	}
	if a, b := tempName(), tempName(); a == b || !scan.IsTemp(a) {
		t.Errorf("tempName: %q %q", a, b)
	}
}

func TestPutDelta(t *testing.T) {
	ctx := context.Background()
	base := strings.Repeat("block of old text that stays the same\n", 4000)
	next := base[:50_000] + "an inserted line\n" + base[50_000:]
	tests := []struct {
		name    string
		newText string // what the delta builds
		claim   string // what op.New claims
		before  func(f *fixture)
		wantErr error
	}{
		{name: "applies", newText: next, claim: next},
		{name: "result does not match the hash", newText: next, claim: next + "x", wantErr: remote.ErrChanged},
		{name: "basis changed after the signature", newText: next, claim: next, before: func(f *fixture) {
			os.WriteFile(filepath.Join(f.root, "f"), []byte(base+"edited"), 0o644)
		}, wantErr: remote.ErrChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, map[string]string{"f": base}, remote.OpenRequest{})
			expect := f.entry("f")
			enc := f.deltaTo("f", expect, tt.newText)
			if enc.Len() >= len(tt.newText)/2 {
				t.Errorf("delta of a small insertion is %d bytes for a %d-byte file", enc.Len(), len(tt.newText))
			}
			if tt.before != nil {
				tt.before(f)
			}
			was := f.read("f")
			_, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: expect, New: fileEntry(tt.claim, 0o644, t0), Delta: true}, enc)
			if tmp := temps(t, f.root); len(tmp) != 0 {
				t.Errorf("temporary files left: %q", tmp)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Apply = %v; want %v", err, tt.wantErr)
				}
				if f.read("f") != was {
					t.Errorf("destination changed by a refused delta")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.read("f") != next {
				t.Errorf("delta result differs from the new version")
			}
		})
	}
	f := newFixture(t, map[string]string{"f": "x"}, remote.OpenRequest{})
	stale := f.entry("f")
	os.WriteFile(filepath.Join(f.root, "f"), []byte("changed"), 0o644)
	if _, err := f.e.Signature(ctx, "f", stale); !errors.Is(err, remote.ErrChanged) {
		t.Errorf("Signature of a changed file = %v; want ErrChanged", err)
	}
	if _, err := f.e.Signature(ctx, "../f", nil); err == nil {
		t.Error("Signature of ../f succeeded")
	}
}

// TestConcurrentApply runs many puts, mkdirs and removals at once, as the
// engine does, so the race detector can see them.
func TestConcurrentApply(t *testing.T) {
	ctx := context.Background()
	files := map[string]string{"d/": ""}
	for i := 0; i < 16; i++ {
		files[fmt.Sprintf("d/old%02d", i)] = fmt.Sprint("old ", i)
	}
	f := newFixture(t, files, remote.OpenRequest{BackupDir: filepath.Join(t.TempDir(), "bk"), MaxBackups: 1})
	expects := map[string]*state.Entry{}
	for p := range files {
		expects[p] = f.entry(strings.TrimSuffix(p, "/"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 16; i++ {
		wg.Add(3)
		go func() {
			defer wg.Done()
			c := fmt.Sprint("new file ", i)
			_, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: fmt.Sprintf("d/new%02d", i), New: fileEntry(c, 0o644, t0)}, strings.NewReader(c))
			errs <- err
		}()
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("d/old%02d", i)
			c := fmt.Sprint("replaced ", i)
			_, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: p, Expect: expects[p], New: fileEntry(c, 0o600, t0)}, strings.NewReader(c))
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpMkdir, Path: fmt.Sprintf("d/dir%02d", i), New: &state.Entry{Kind: state.Dir, Mode: 0o755}}, nil)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := 0; i < 16; i++ {
		if got := f.read(fmt.Sprintf("d/old%02d", i)); got != fmt.Sprint("replaced ", i) {
			t.Errorf("d/old%02d = %q", i, got)
		}
		if got := f.read(fmt.Sprintf("d/new%02d", i)); got != fmt.Sprint("new file ", i) {
			t.Errorf("d/new%02d = %q", i, got)
		}
	}
	if tmp := temps(t, f.root); len(tmp) != 0 {
		t.Errorf("temporary files left: %q", tmp)
	}
}

// TestBackupOtherFilesystem keeps backups on another file system, where a
// hard link is impossible and the file must be copied.
func TestBackupOtherFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	bdir := t.TempDir()
	if err := unix.Mount("tmpfs", bdir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", bdir, err)
	}
	t.Cleanup(func() { unix.Unmount(bdir, unix.MNT_DETACH) })
	ctx := context.Background()
	f := newFixture(t, map[string]string{"f": "original"}, remote.OpenRequest{BackupDir: bdir})
	if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: f.entry("f"), New: fileEntry("second", 0o644, t0)}, strings.NewReader("second")); err != nil {
		t.Fatal(err)
	}
	kept := backupsOf(t, bdir, "f.")
	if len(kept) != 1 {
		t.Fatalf("backups %q", kept)
	}
	if b, _ := os.ReadFile(filepath.Join(bdir, kept[0])); string(b) != "original" {
		t.Errorf("backup holds %q", b)
	}
	fi, _ := os.Stat(filepath.Join(bdir, kept[0]))
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("copied backup has mode %v, want the original's 0644", fi.Mode().Perm())
	}
}

// watchingReader streams contents in small pieces and, before each piece,
// records what a reader of the destination would see.
type watchingReader struct {
	r    io.Reader
	dest string
	seen []string
}

func (w *watchingReader) Read(b []byte) (int, error) {
	c, err := os.ReadFile(w.dest)
	if err != nil {
		w.seen = append(w.seen, "<"+err.Error()+">")
	} else {
		w.seen = append(w.seen, string(c))
	}
	if len(b) > 7 {
		b = b[:7]
	}
	return w.r.Read(b)
}

// TestPutIsAtomic checks that while a put streams its contents, the
// destination shows only the old version (or nothing), never a partial
// new one, and that the temporary file lives beside the destination.
func TestPutIsAtomic(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, map[string]string{"d/": "", "d/f": "the old version"}, remote.OpenRequest{})
	newText := strings.Repeat("new contents ", 20)
	defer noAnonymous.Store(noAnonymous.Load())
	for _, tt := range []struct {
		path   string
		expect *state.Entry
		old    string
		// anonymous: a new file is written to an O_TMPFILE file, which
		// no directory listing shows; otherwise (and for a replaced
		// file) to a named temporary file.
		anonymous bool
	}{{"d/f", f.entry("d/f"), "the old version", false}, {"d/created", nil, "", true}, {"d/created-named", nil, "", false}} {
		noAnonymous.Store(!tt.anonymous)
		w := &watchingReader{r: strings.NewReader(newText), dest: filepath.Join(f.root, tt.path)}
		var tempsSeen []string
		w2 := &hookReader{r: w, hook: func() { tempsSeen = append(tempsSeen, temps(t, filepath.Join(f.root, "d"))...) }}
		if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: tt.path, Expect: tt.expect, New: fileEntry(newText, 0o644, t0)}, w2); err != nil {
			t.Fatal(err)
		}
		if len(w.seen) < 10 {
			t.Fatalf("only %d reads observed", len(w.seen))
		}
		for _, s := range w.seen {
			if tt.old != "" && s != tt.old || tt.old == "" && !strings.Contains(s, "no such file") {
				t.Fatalf("%s: during the put a reader saw %q", tt.path, s)
			}
		}
		if len(tempsSeen) == 0 && !tt.anonymous {
			t.Errorf("%s: no temporary file seen in the destination directory during the put", tt.path)
		}
		if len(tempsSeen) != 0 && tt.anonymous {
			t.Errorf("%s: temporary files %q seen, want the new file written anonymously", tt.path, tempsSeen)
		}
		if f.read(tt.path) != newText {
			t.Errorf("%s: final contents %q", tt.path, f.read(tt.path))
		}
		if n := anonOpen.Load(); n != 0 {
			t.Errorf("%s: %d anonymous files still counted open after the put", tt.path, n)
		}
	}
}

type hookReader struct {
	r    io.Reader
	hook func()
}

func (h *hookReader) Read(b []byte) (int, error) {
	h.hook()
	return h.r.Read(b)
}

// TestBackupDirNamedThroughSymlink names the backup directory inside the
// root through the symlink the root was given by: it must still be
// recognised as inside the root and never synchronized.
func TestBackupDirNamedThroughSymlink(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o755)
	os.WriteFile(filepath.Join(real, "f"), []byte("one"), 0o644)
	alias := filepath.Join(base, "alias")
	os.Symlink(real, alias)
	tests := []struct {
		name, backupDir string
		exists          bool
	}{
		{"relative", ".bk", false},
		{"absolute through the symlink, missing", filepath.Join(alias, ".bk"), false},
		{"absolute through the symlink, existing", filepath.Join(alias, ".bk"), true},
		{"deeper, missing", filepath.Join(alias, "keep", "bk"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(filepath.Join(real, ".bk"))
			os.RemoveAll(filepath.Join(real, "keep"))
			if tt.exists {
				os.Mkdir(filepath.Join(real, ".bk"), 0o700)
			}
			e := New(alias, Options{StateDir: t.TempDir()})
			if _, err := e.Hello(ctx); err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if _, err := e.Open(ctx, remote.OpenRequest{PeerID: peerID, BackupDir: tt.backupDir}); err != nil {
				t.Fatal(err)
			}
			rep, err := e.Scan(ctx, remote.ScanRequest{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			commitChanges(t, e, real, rep)
			es, _ := e.Stat(ctx, []string{"f"})
			if _, err := e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: es[0], New: fileEntry("two", 0o644, t0)}, strings.NewReader("two")); err != nil {
				t.Fatal(err)
			}
			rep, err = e.Scan(ctx, remote.ScanRequest{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range rep.Changes {
				// The backup directory's parent is an ordinary new directory.
				if c.Path != "f" && c.Path != "keep" {
					t.Errorf("backup directory synchronized: %q", c.Path)
				}
			}
		})
	}
}

// TestBackupDirWithGlobCharacters names backup directories with characters
// special in ignore patterns: exactly the backup directory is left out of
// the scan, never a user's directory that the name happens to match.
func TestBackupDirWithGlobCharacters(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		backupDir string
		want      []string // changes of a first scan
	}{
		{"bk[1]", []string{"bk1", "bkfoo"}},
		{"bk*", []string{"bk1", "bkfoo"}},
		{"bk?", []string{"bk1", "bkfoo"}},
		{`bk\x`, []string{"bk1", "bkfoo"}},
		{"bk ", []string{"bk1", "bkfoo"}},
		{"#bk", []string{"bk1", "bkfoo"}},
		{"!bk", []string{"bk1", "bkfoo"}},
		{"a/b[c]/d", []string{"a", "a/b[c]", "bk1", "bkfoo"}},
	}
	for _, tt := range tests {
		t.Run(tt.backupDir, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, map[string]string{tt.backupDir + "/": "", tt.backupDir + "/f.20240101T000000.000000000Z": "old", "bk1/": "", "bkfoo/": ""})
			e := New(root, Options{StateDir: t.TempDir()})
			if _, err := e.Hello(ctx); err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			if _, err := e.Open(ctx, remote.OpenRequest{PeerID: peerID, BackupDir: tt.backupDir}); err != nil {
				t.Fatal(err)
			}
			rep, err := e.Scan(ctx, remote.ScanRequest{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range rep.Changes {
				got = append(got, c.Path)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("changes %q, want %q", got, tt.want)
			}
		})
	}
}

// TestGroupSyncCovers checks the promise of groupSync.sync under load:
// each of many writers, arriving at random moments, returns only once a
// flush that started after its call has ended, and the writers share
// flushes. The flushes are counted, not made.
func TestGroupSyncCovers(t *testing.T) {
	var seq atomic.Int64
	type span struct{ start, end int64 }
	var mu sync.Mutex
	var flushes []span
	old := syncfs
	syncfs = func(int) error {
		s := seq.Add(1)
		time.Sleep(200 * time.Microsecond)
		mu.Lock()
		flushes = append(flushes, span{s, seq.Add(1)})
		mu.Unlock()
		return nil
	}
	defer func() { syncfs = old }()

	g := newGroupSync()
	const writers, rounds = 64, 20
	calls := make([][]span, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range rounds {
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				g.begin()
				time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond) // writing
				in := seq.Add(1)
				if err := g.sync(-1); err != nil {
					t.Errorf("sync: %v", err)
				}
				calls[w] = append(calls[w], span{in, seq.Add(1)})
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("writers still waiting after 20 s: a lost wake-up")
	}
	mu.Lock()
	defer mu.Unlock()
	for w, cs := range calls {
		for _, c := range cs {
			covered := false
			for _, f := range flushes {
				if f.start > c.start && f.end < c.end {
					covered = true
					break
				}
			}
			if !covered {
				t.Fatalf("writer %d: a sync from %d to %d returned without a flush that started after it began", w, c.start, c.end)
			}
		}
	}
	if n := len(flushes); n == 0 || n >= writers*rounds/2 {
		t.Errorf("%d syncs made %d flushes: not shared", writers*rounds, n)
	}
	t.Logf("%d syncs, %d flushes", writers*rounds, len(flushes))
}

// TestGroupSyncHandsOverTheLead checks the writers that call sync while a
// flush runs, and after which nobody calls: one of them must lead the
// flush they need once the running one ends.
func TestGroupSyncHandsOverTheLead(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int64
	old := syncfs
	syncfs = func(int) error {
		if n.Add(1) == 1 {
			<-release // the first flush runs until the others wait
		}
		return nil
	}
	defer func() { syncfs = old }()
	g := newGroupSync()
	first := make(chan error, 1)
	go func() { first <- g.sync(-1) }()
	for n.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	later := make(chan error, 3)
	for range 3 {
		go func() { later <- g.sync(-1) }()
	}
	for {
		g.mu.Lock()
		waiting := g.inSync
		g.mu.Unlock()
		if waiting == 4 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	timeout := time.After(10 * time.Second)
	for i := range 4 {
		select {
		case err := <-first:
			if err != nil {
				t.Fatal(err)
			}
		case err := <-later:
			if err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("%d of 4 syncs returned: the writers that came during the first flush got no flush of their own", i)
		}
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d flushes, want 2 (the first, then one for the three that came during it)", got)
	}
}

func TestDirWriteErr(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "p")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		err  error
		want string
	}{
		{ro, unix.EACCES, "create temporary file for p/z: permission denied: its directory p is read-only (mode 0555): make it writable (chmod u+w) for changes to reach it"},
		{ro, unix.ENOSPC, "create temporary file for p/z: no space left on device"},
		{dir, unix.EACCES, "create temporary file for p/z: permission denied"},
	} {
		fd, err := unix.Open(tc.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := dirWriteErr(fd, "create temporary file for", "p/z", tc.err)
		unix.Close(fd)
		if got.Error() != tc.want || !errors.Is(got, tc.err) {
			t.Errorf("dirWriteErr(%s, %v) = %q, want %q wrapping the error", tc.dir, tc.err, got, tc.want)
		}
	}
}

package engine_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
)

// pair is two local roots with their own state directory.
type pair struct {
	t          *testing.T
	root       [3]string // index 1 and 2
	stateDir   string
	dialCounts [3]*countingEndpoint
}

func newPair(t *testing.T) *pair {
	t.Helper()
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	p := &pair{t: t}
	for i := 1; i <= 2; i++ {
		d, err := filepath.EvalSymlinks(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		p.root[i] = d
	}
	dir, err := archive.StateDir()
	if err != nil {
		t.Fatal(err)
	}
	p.stateDir = dir
	return p
}

func (p *pair) write(side int, rel, content string) {
	p.t.Helper()
	full := filepath.Join(p.root[side], filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *pair) remove(side int, rel string) {
	p.t.Helper()
	if err := os.RemoveAll(filepath.Join(p.root[side], filepath.FromSlash(rel))); err != nil {
		p.t.Fatal(err)
	}
}

func (p *pair) config() engine.Config {
	return engine.Config{Root1: p.root[1], Root2: p.root[2], Version: "test"}
}

// sync runs Prepare and Execute with cfg and returns the result.
func (p *pair) sync(cfg engine.Config) *engine.Result {
	p.t.Helper()
	ctx := context.Background()
	s, err := engine.Prepare(ctx, cfg, nil)
	if err != nil {
		p.t.Fatalf("Prepare: %v", err)
	}
	defer s.Close()
	res, err := s.Execute(ctx, nil)
	if err != nil {
		p.t.Fatalf("Execute: %v", err)
	}
	return res
}

// tree lists every path below side's root with its kind and contents.
func (p *pair) tree(side int) map[string]string {
	p.t.Helper()
	m := map[string]string{}
	root := p.root[side]
	err := filepath.Walk(root, func(path string, fi os.FileInfo, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case fi.IsDir():
			m[rel] = "dir"
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			m[rel] = "file " + string(b)
		}
		return nil
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return m
}

// archivePath returns side's archive file for the pair.
func (p *pair) archivePath(side int) string {
	p.t.Helper()
	var id [3]string
	for i := 1; i <= 2; i++ {
		got, err := archive.ReplicaID(p.stateDir, p.root[i], false)
		if err != nil || got == "" {
			p.t.Fatalf("replica id of %s: %q, %v", p.root[i], got, err)
		}
		id[i] = got
	}
	return archive.ArchivePath(p.stateDir, id[side], id[3-side])
}

// dropArchive deletes side's archive, as when it is lost or moved aside.
func (p *pair) dropArchive(side int) {
	p.t.Helper()
	path := p.archivePath(side)
	if _, err := os.Stat(path); err != nil {
		p.t.Fatalf("archive of side %d: %v", side, err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
			p.t.Fatal(err)
		}
	}
}

func sameTrees(t *testing.T, p *pair) {
	t.Helper()
	a, b := p.tree(1), p.tree(2)
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: side 1 has %q, side 2 %q", k, v, b[k])
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s: only on side 2 (%q)", k, v)
		}
	}
}

func outcomes(res *engine.Result) []string {
	var out []string
	for _, o := range res.Outcomes {
		out = append(out, o.Item.Path+" "+o.Item.Action.String()+" "+o.Status.String())
	}
	sort.Strings(out)
	return out
}

// countingEndpoint wraps an endpoint and counts ArchiveList calls.
type countingEndpoint struct {
	remote.Endpoint
	lists atomic.Int64
}

func (c *countingEndpoint) ArchiveList(ctx context.Context, fn func(string, *state.Entry) error) error {
	c.lists.Add(1)
	return c.Endpoint.ArchiveList(ctx, fn)
}

// countingConfig returns a configuration whose endpoints count ArchiveList
// calls; p.dialCounts holds them after Prepare.
func (p *pair) countingConfig() engine.Config {
	cfg := p.config()
	cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
		c := &countingEndpoint{Endpoint: local.New(root, local.Options{Version: "test"})}
		for i := 1; i <= 2; i++ {
			if root == p.root[i] {
				p.dialCounts[i] = c
			}
		}
		return c, nil
	}
	return cfg
}

func populate(p *pair) {
	p.write(1, "f1.txt", "one")
	p.write(1, "f2.txt", "two")
	p.write(1, "dir/g.txt", "g")
	p.write(1, "dir/sub/h.txt", "h")
	p.write(2, "only2.txt", "from two")
}

// TestArchivesDisagree checks that a lost archive on one side (or both)
// leaves no ancestor: the next run deletes nothing (a deletion on the side
// whose archive survived is undone by propagating the creation), edits on
// one side become conflicts rather than overwrites, and the pair converges:
// the run after that has nothing to do.
func TestArchivesDisagree(t *testing.T) {
	tests := []struct {
		name string
		drop []int
		// change edits the trees after the archive is lost.
		change func(p *pair)
		// want lists the outcomes of the run after the loss.
		want []string
		// check runs after that run.
		check func(t *testing.T, p *pair)
	}{
		{
			name:   "side 2 lost, nothing changed",
			drop:   []int{2},
			change: func(p *pair) {},
			want:   nil,
		},
		{
			name:   "side 1 lost, nothing changed",
			drop:   []int{1},
			change: func(p *pair) {},
			want:   nil,
		},
		{
			name:   "both lost, nothing changed",
			drop:   []int{1, 2},
			change: func(p *pair) {},
			want:   nil,
		},
		{
			name: "side 2 lost, side 1 deleted a file and a directory",
			drop: []int{2},
			change: func(p *pair) {
				p.remove(1, "f1.txt")
				p.remove(1, "dir")
			},
			want: []string{"dir 2to1 done", "f1.txt 2to1 done"},
			check: func(t *testing.T, p *pair) {
				if got := p.tree(1)["dir/sub/h.txt"]; got != "file h" {
					t.Errorf("dir/sub/h.txt on side 1 = %q, want it restored", got)
				}
			},
		},
		{
			name: "side 1 lost, side 1 deleted a file",
			drop: []int{1},
			change: func(p *pair) {
				p.remove(1, "f2.txt")
			},
			want: []string{"f2.txt 2to1 done"},
		},
		{
			name: "side 1 lost, side 2 deleted a file",
			drop: []int{1},
			change: func(p *pair) {
				p.remove(2, "dir/g.txt")
			},
			want: []string{"dir/g.txt 1to2 done"},
		},
		{
			name: "side 2 lost, side 1 edited a file",
			drop: []int{2},
			change: func(p *pair) {
				p.write(1, "f1.txt", "edited")
			},
			want: []string{"f1.txt conflict skipped"},
			check: func(t *testing.T, p *pair) {
				if got := p.tree(2)["f1.txt"]; got != "file one" {
					t.Errorf("f1.txt on side 2 = %q, want it left alone", got)
				}
				// Resolved by hand, the same contents on both sides
				// (different times): one run settles the times.
				p.write(2, "f1.txt", "edited")
				if res := p.sync(p.config()); res.ExitCode() != 0 {
					t.Errorf("run after resolving: exit %d, %v", res.ExitCode(), outcomes(res))
				}
			},
		},
		{
			name: "side 2 lost, side 2 created a file",
			drop: []int{2},
			change: func(p *pair) {
				p.write(2, "new.txt", "new")
			},
			want: []string{"new.txt 2to1 done"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			populate(p)
			if res := p.sync(p.config()); res.ExitCode() != 0 {
				t.Fatalf("first sync: exit %d: %v", res.ExitCode(), outcomes(res))
			}
			before := p.tree(1)
			for _, side := range tc.drop {
				p.dropArchive(side)
			}
			tc.change(p)
			res := p.sync(p.config())
			got := outcomes(res)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("outcomes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			// Nothing that existed before the loss is missing anywhere:
			// what one side deleted came back from the other.
			for side := 1; side <= 2; side++ {
				now := p.tree(side)
				for k := range before {
					if _, ok := now[k]; !ok {
						t.Errorf("%s was deleted on side %d", k, side)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, p)
			}
			// The pair converges: the next run agrees and has nothing to do.
			res = p.sync(p.config())
			if res.ExitCode() != 0 || len(res.Outcomes) != 0 {
				t.Errorf("run after recovery: exit %d, outcomes %v; want 0 and none", res.ExitCode(), outcomes(res))
			}
			sameTrees(t, p)
			cfg := p.countingConfig()
			s, err := engine.Prepare(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if n := len(s.Plan().Items); n != 0 {
				t.Errorf("converged pair still plans %d items", n)
			}
			for i := 1; i <= 2; i++ {
				if n := p.dialCounts[i].lists.Load(); n != 0 {
					t.Errorf("side %d archive listed %d times after convergence; the digests should agree", i, n)
				}
			}
		})
	}
}

// TestDigestFastPath checks that when both archives agree (same pair, same
// digest) Prepare does not list either archive, and that it does once they
// disagree.
func TestDigestFastPath(t *testing.T) {
	p := newPair(t)
	populate(p)
	p.sync(p.config())

	prepare := func() *engine.Session {
		t.Helper()
		s, err := engine.Prepare(context.Background(), p.countingConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	lists := func() (int64, int64) { return p.dialCounts[1].lists.Load(), p.dialCounts[2].lists.Load() }

	s := prepare()
	if a, b := lists(); a != 0 || b != 0 {
		t.Errorf("agreeing archives listed %d and %d times, want 0", a, b)
	}
	if n := len(s.Plan().Items); n != 0 {
		t.Errorf("in-sync pair plans %d items", n)
	}
	s.Close()

	// A change on one side still goes through the fast path.
	p.write(1, "f1.txt", "changed")
	s = prepare()
	if a, b := lists(); a != 0 || b != 0 {
		t.Errorf("agreeing archives with a change listed %d and %d times, want 0", a, b)
	}
	if items := s.Plan().Items; len(items) != 1 || items[0].Path != "f1.txt" || items[0].Action != reconcile.OneToTwo {
		t.Errorf("plan = %+v, want f1.txt 1->2", items)
	}
	s.Close()

	// Deleted on both sides while the archives agree: the archives forget
	// it on both sides and still agree afterwards.
	p.sync(p.config())
	p.remove(1, "f2.txt")
	p.remove(2, "f2.txt")
	if res := p.sync(p.config()); res.ExitCode() != 0 || len(res.Outcomes) != 0 {
		t.Errorf("both-deleted run: exit %d, outcomes %v; want 0 and none", res.ExitCode(), outcomes(res))
	}
	s = prepare()
	if a, b := lists(); a != 0 || b != 0 {
		t.Errorf("after a deletion on both sides the archives were listed %d and %d times, want 0", a, b)
	}
	s.Close()

	// A lost archive makes them disagree: both are listed, path by path.
	p.write(1, "f1.txt", "changed again")
	p.dropArchive(2)
	s = prepare()
	if a, b := lists(); a != 1 || b != 1 {
		t.Errorf("disagreeing archives listed %d and %d times, want 1 each", a, b)
	}
	// With no ancestor, the edited file is a conflict; the others, equal on
	// both sides, are only recorded.
	var conflicts []string
	for _, it := range s.Plan().Items {
		switch it.Action {
		case reconcile.Conflict:
			conflicts = append(conflicts, it.Path)
		case reconcile.Record:
		default:
			t.Errorf("%s: %v, want only records and one conflict", it.Path, it.Action)
		}
	}
	if strings.Join(conflicts, ",") != "f1.txt" {
		t.Errorf("conflicts = %v, want [f1.txt]", conflicts)
	}
}

// TestMaxDeleteCountsDirectoryContents checks that --max-delete counts a
// deleted directory with everything below it, in either direction, and
// that Prepare refuses (fatal, nothing changed) above the limit and passes
// at it.
func TestMaxDeleteCountsDirectoryContents(t *testing.T) {
	tests := []struct {
		name      string
		maxDelete string
		side      int // the side where the directory is deleted
		wantFatal bool
	}{
		{"count below", "6", 1, true},
		{"count equal", "7", 1, false},
		{"count below other way", "6", 2, true},
		{"count equal other way", "7", 2, false},
		// 7 of 10 archived entries (dir, dir/sub, 5 files below, 3 at top).
		{"percent below", "60%", 1, true},
		{"percent equal", "70%", 1, false},
		{"zero", "0", 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			for _, f := range []string{"dir/a", "dir/b", "dir/c", "dir/sub/d", "dir/sub/e", "top1", "top2", "top3"} {
				p.write(1, f, f)
			}
			p.sync(p.config())
			p.remove(tc.side, "dir")
			cfg := p.config()
			cfg.MaxDelete = tc.maxDelete
			s, err := engine.Prepare(context.Background(), cfg, nil)
			if tc.wantFatal {
				if err == nil {
					s.Close()
					t.Fatalf("Prepare passed, want the guard to refuse deleting 7 entries")
				}
				if !engine.IsFatal(err) {
					t.Errorf("error %v is not fatal", err)
				}
				if !strings.Contains(err.Error(), "would delete 7 entries") {
					t.Errorf("error %q does not count 7 entries", err)
				}
				// Nothing changed: the directory is still on the other side.
				if got := p.tree(3 - tc.side)["dir/sub/e"]; got != "file dir/sub/e" {
					t.Errorf("dir/sub/e on side %d = %q after a refused run", 3-tc.side, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			defer s.Close()
			res, err := s.Execute(context.Background(), nil)
			if err != nil || res.ExitCode() != 0 {
				t.Fatalf("Execute: exit %d, %v", res.ExitCode(), err)
			}
			if _, ok := p.tree(3 - tc.side)["dir"]; ok {
				t.Errorf("dir still on side %d", 3-tc.side)
			}
		})
	}
}

// TestDefaultMaxDelete checks the default guard: above 100 archived
// entries, deleting more than half is refused; at most 100, never.
func TestDefaultMaxDelete(t *testing.T) {
	tests := []struct {
		name      string
		files     int // files in dir/, plus keep.txt and dir itself
		wantFatal bool
	}{
		{"small tree", 97, false}, // 99 entries archived
		{"large tree", 120, true}, // 122 entries archived, 121 deleted
		{"just above", 100, true}, // 102 entries archived, 101 deleted
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			p.write(1, "keep.txt", "keep")
			for i := 0; i < tc.files; i++ {
				p.write(1, "dir/f"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "x")
			}
			p.sync(p.config())
			p.remove(2, "dir")
			s, err := engine.Prepare(context.Background(), p.config(), nil)
			if tc.wantFatal != (err != nil) {
				t.Fatalf("Prepare error %v, want fatal %v", err, tc.wantFatal)
			}
			if err == nil {
				s.Close()
			} else if !engine.IsFatal(err) || !strings.Contains(err.Error(), "default limit") {
				t.Errorf("error %q: want a fatal error naming the default limit", err)
			}
		})
	}
}

// TestMaxDeleteCountsForcedNewDirectory checks that a directory created on
// one side and removed by --force from the other counts with everything
// below it, though none of it was ever archived.
func TestMaxDeleteCountsForcedNewDirectory(t *testing.T) {
	for _, tc := range []struct {
		maxDelete string
		wantFatal bool
	}{{"5", true}, {"6", false}} {
		t.Run(tc.maxDelete, func(t *testing.T) {
			p := newPair(t)
			p.write(1, "keep.txt", "keep")
			p.sync(p.config())
			for _, f := range []string{"new/a", "new/sub/b", "new/sub/c", "new/sub/d"} {
				p.write(2, f, f)
			}
			cfg := p.config()
			cfg.MaxDelete = tc.maxDelete
			cfg.Options.Force = reconcile.One
			s, err := engine.Prepare(context.Background(), cfg, nil)
			if tc.wantFatal {
				if err == nil {
					s.Close()
					t.Fatal("Prepare passed, want the guard to refuse deleting 6 entries")
				}
				if !strings.Contains(err.Error(), "would delete 6 entries") {
					t.Errorf("error %q does not count 6 entries", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			defer s.Close()
			if res, err := s.Execute(context.Background(), nil); err != nil || res.ExitCode() != 0 {
				t.Fatalf("Execute: %v", err)
			}
			sameTrees(t, p)
		})
	}
}

// droppingEndpoint wraps an endpoint and forgets every archive record it is
// asked to commit, as when a run dies after one side's commit and before
// the other's.
type droppingEndpoint struct {
	remote.Endpoint
	dropped atomic.Int64
}

func (d *droppingEndpoint) Commit(ctx context.Context, recs []remote.Record) error {
	d.dropped.Add(int64(len(recs)))
	return nil
}

// TestCommitOnOneSideOnly checks guarantee 3 for a run whose changes landed
// on both sides but were recorded in only one archive: the next normal run
// finds nothing to do but record (no conflict, no deletion, no failure) and
// the run after that agrees at once.
func TestCommitOnOneSideOnly(t *testing.T) {
	for _, lost := range []int{1, 2} {
		t.Run("side "+string(rune('0'+lost))+" loses its records", func(t *testing.T) {
			p := newPair(t)
			populate(p)
			p.sync(p.config())

			p.write(1, "f1.txt", "edited on 1")
			p.write(2, "f2.txt", "edited on 2")
			p.remove(1, "dir/g.txt")
			p.remove(2, "dir/sub")
			p.write(1, "new1/x.txt", "new on 1")
			p.write(2, "new2.txt", "new on 2")
			var drop *droppingEndpoint
			cfg := p.config()
			cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
				ep := remote.Endpoint(local.New(root, local.Options{Version: "test"}))
				if root == p.root[lost] {
					drop = &droppingEndpoint{Endpoint: ep}
					ep = drop
				}
				return ep, nil
			}
			res := p.sync(cfg)
			if res.ExitCode() != 0 {
				t.Fatalf("interrupted run: exit %d: %v", res.ExitCode(), outcomes(res))
			}
			if drop.dropped.Load() == 0 {
				t.Fatal("no record was dropped: the test does not test anything")
			}
			sameTrees(t, p)
			want := p.tree(1)

			res = p.sync(p.config())
			if res.ExitCode() != 0 || len(res.Outcomes) != 0 {
				t.Errorf("run after the one-sided commit: exit %d, outcomes %v; want only records", res.ExitCode(), outcomes(res))
			}
			for side := 1; side <= 2; side++ {
				got := p.tree(side)
				if len(got) != len(want) {
					t.Errorf("side %d has %d paths after recovery, want %d", side, len(got), len(want))
				}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("side %d: %s = %q, want %q", side, k, got[k], v)
					}
				}
			}
			s, err := engine.Prepare(context.Background(), p.config(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if n := len(s.Plan().Items); n != 0 {
				t.Errorf("recovered pair still plans %d items", n)
			}
		})
	}
}

// TestArchivesAgreeAgain checks that after the archives disagreed (a run
// recorded on one side only, or an archive lost), one normal run brings
// them back into agreement, so that later runs take the digest fast path
// again, including for paths deleted on both sides meanwhile (SPEC:
// "deleted | deleted: the archive forgets it").
func TestArchivesAgreeAgain(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *pair) engine.Config
	}{
		{"one-sided commit of deletions on both sides", func(p *pair) engine.Config {
			p.remove(1, "dir/g.txt")
			p.remove(2, "dir/sub")
			cfg := p.config()
			cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
				ep := remote.Endpoint(local.New(root, local.Options{Version: "test"}))
				if root == p.root[2] {
					ep = &droppingEndpoint{Endpoint: ep}
				}
				return ep, nil
			}
			return cfg
		}},
		{"lost archive, then the same file deleted on both sides", func(p *pair) engine.Config {
			p.dropArchive(2)
			p.remove(1, "f1.txt")
			p.remove(2, "f1.txt")
			// Counted: the archives disagree from the start of this run.
			return p.countingConfig()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			populate(p)
			p.sync(p.config())
			// counted is how often the archives were listed in full
			// (their digests disagreed) in runs with countingConfig.
			p.dialCounts = [3]*countingEndpoint{}
			counted := func() int64 {
				var n int64
				for _, c := range p.dialCounts[1:] {
					if c != nil {
						n += c.lists.Load()
					}
				}
				return n
			}
			p.sync(tc.setup(p))
			disagreed := counted()
			// plan plans a run with countingConfig and returns counted.
			plan := func() int64 {
				s, err := engine.Prepare(context.Background(), p.countingConfig(), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				return counted()
			}
			if disagreed == 0 {
				disagreed = plan()
			}
			if disagreed == 0 {
				t.Fatal("the archives never disagreed: the test tests nothing")
			}
			p.sync(p.config())
			if n := plan(); n != 0 {
				t.Errorf("archives listed %d times after recovery; the digests should agree", n)
			}
		})
	}
}

// TestProgressTotals checks that transfer progress counts every file to
// copy, including those below a new directory, and ends complete.
func TestProgressTotals(t *testing.T) {
	p := newPair(t)
	p.write(1, "keep.txt", "k")
	p.sync(p.config())
	p.write(1, "a.txt", "1")
	p.write(1, "new/b.txt", strings.Repeat("b", 10))
	p.write(2, "new2/sub/c.txt", strings.Repeat("c", 100))
	s, err := engine.Prepare(context.Background(), p.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var last engine.Progress
	calls := 0
	res, err := s.Execute(context.Background(), func(pr engine.Progress) {
		calls++
		last = pr
	})
	if err != nil || res.ExitCode() != 0 {
		t.Fatalf("Execute: exit %d, %v", res.ExitCode(), err)
	}
	if calls == 0 {
		t.Fatal("progress was never reported")
	}
	if last.FilesTotal != 3 || last.BytesTotal != 111 {
		t.Errorf("totals = %d files, %d bytes; want 3 files, 111 bytes", last.FilesTotal, last.BytesTotal)
	}
	if last.FilesDone != last.FilesTotal || last.BytesDone != last.BytesTotal {
		t.Errorf("final progress %d/%d files, %d/%d bytes; want complete", last.FilesDone, last.FilesTotal, last.BytesDone, last.BytesTotal)
	}
	if res.Bytes != 111 {
		t.Errorf("Result.Bytes = %d, want 111", res.Bytes)
	}
	sameTrees(t, p)
}

// TestDryRun checks that a dry run reports every action as skipped with
// the reason "dry run", exits 1, and changes neither tree nor archive.
func TestDryRun(t *testing.T) {
	p := newPair(t)
	populate(p)
	p.sync(p.config())
	p.write(1, "f1.txt", "edited")
	p.remove(2, "dir")
	p.write(2, "new.txt", "new")
	before1, before2 := p.tree(1), p.tree(2)
	cfg := p.config()
	cfg.DryRun = true
	for run := 0; run < 2; run++ {
		res := p.sync(cfg)
		if !res.DryRun || res.ExitCode() != 1 || res.Propagated != 0 {
			t.Errorf("dry run %d: DryRun %v, exit %d, propagated %d; want true, 1, 0", run, res.DryRun, res.ExitCode(), res.Propagated)
		}
		want := []string{"dir 2to1 skipped", "f1.txt 1to2 skipped", "new.txt 2to1 skipped"}
		if got := outcomes(res); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("dry run %d outcomes %v, want %v", run, got, want)
		}
		for _, o := range res.Outcomes {
			if o.Reason != "dry run" {
				t.Errorf("%s: reason %q, want \"dry run\"", o.Item.Path, o.Reason)
			}
		}
	}
	for side, before := range map[int]map[string]string{1: before1, 2: before2} {
		after := p.tree(side)
		if len(after) != len(before) {
			t.Errorf("side %d: %d paths after the dry runs, %d before", side, len(after), len(before))
		}
		for k, v := range before {
			if after[k] != v {
				t.Errorf("side %d: %s changed from %q to %q", side, k, v, after[k])
			}
		}
	}
	// The real run still has all the work to do.
	res := p.sync(p.config())
	if res.Propagated != 3 || res.ExitCode() != 0 {
		t.Errorf("real run after dry runs: propagated %d, exit %d; want 3, 0", res.Propagated, res.ExitCode())
	}
	sameTrees(t, p)
}

// TestNewFilesReadOnce checks how a first sync treats files the scans left
// unread (new to their archive): the copy hashes them and both archives
// record the right BLAKE3; where both sides created the same path the
// engine asks for the hashes, so identical files are no conflict and
// different ones are a conflict with both hashes known.
func TestNewFilesReadOnce(t *testing.T) {
	p := newPair(t)
	populate(p)
	p.write(1, "same.txt", "identical")
	p.write(2, "same.txt", "identical")
	p.write(1, "differ.txt", "one's version")
	p.write(2, "differ.txt", "two's version, longer")
	ctx := context.Background()
	s, err := engine.Prepare(ctx, p.config(), nil)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	s1, s2 := s.ScanReplies()
	if s1.Hashed != 0 || s2.Hashed != 0 {
		t.Errorf("the first scans read %d and %d files; new files should be left unread", s1.Hashed, s2.Hashed)
	}
	var sawConflict bool
	for _, it := range s.Plan().Items {
		switch it.Path {
		case "same.txt":
			// Same contents: recorded, or only the newer mtime carried
			// over; never a conflict.
			if it.Action == reconcile.Conflict || it.One.Unhashed || it.Two.Unhashed || it.One.Hash != it.Two.Hash {
				t.Errorf("same.txt: %v with %+v / %+v; want no conflict, both hashed", it.Action, it.One, it.Two)
			}
		case "differ.txt":
			sawConflict = true
			if it.Action != reconcile.Conflict || it.One.Unhashed || it.Two.Unhashed ||
				it.One.Hash != blake3.Sum256([]byte("one's version")) || it.Two.Hash != blake3.Sum256([]byte("two's version, longer")) {
				t.Errorf("differ.txt: %v with %+v / %+v; want a conflict with both hashes", it.Action, it.One, it.Two)
			}
		}
	}
	if !sawConflict {
		t.Error("no plan item for differ.txt")
	}
	if _, err := s.Execute(ctx, nil); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	s.Close()
	for side := 1; side <= 2; side++ {
		db, err := archive.Open(p.archivePath(side), true)
		if err != nil {
			t.Fatal(err)
		}
		paths, entries, err := db.All(ctx)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		files := 0
		for i, e := range entries {
			if e.Kind != state.File {
				continue
			}
			files++
			b, err := os.ReadFile(filepath.Join(p.root[side], filepath.FromSlash(paths[i])))
			if err != nil {
				t.Fatal(err)
			}
			if e.Unhashed || e.Hash != blake3.Sum256(b) {
				t.Errorf("side %d archives %s with hash %x, its contents hash to %x", side, paths[i], e.Hash[:6], blake3.Sum256(b))
			}
		}
		if files != 6 {
			t.Errorf("side %d archives %d files, want 6 (differ.txt stays a conflict)", side, files)
		}
	}
	// The next run reads nothing and has nothing to do but the conflict.
	res := p.sync(p.config())
	if res.Propagated != 0 {
		t.Errorf("second run propagated %d items: %q", res.Propagated, outcomes(res))
	}
}

// problemEndpoint adds a path its scan could not read (or, with warning, a
// special file it skipped) to every scan reply.
type problemEndpoint struct {
	remote.Endpoint
	warning bool
}

func (e *problemEndpoint) Scan(ctx context.Context, req remote.ScanRequest, progress func(remote.ScanProgress)) (remote.ScanReply, error) {
	r, err := e.Endpoint.Scan(ctx, req, progress)
	r.Skipped = append(r.Skipped, remote.Problem{Path: "locked", Err: "cannot read directory: permission denied", Warning: e.warning})
	return r, err
}

// TestScanFailuresCount checks that a path a scan could not read counts
// as a failed item in the result (summary, report, history), not only in
// the exit code, and that a warning (a FIFO skipped on purpose) does not.
func TestScanFailuresCount(t *testing.T) {
	for _, warning := range []bool{false, true} {
		p := newPair(t)
		p.write(1, "f.txt", "f")
		cfg := p.config()
		cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
			ep := remote.Endpoint(local.New(root, local.Options{Version: "test"}))
			if root == p.root[2] {
				ep = &problemEndpoint{Endpoint: ep, warning: warning}
			}
			return ep, nil
		}
		res := p.sync(cfg)
		wantFailed, wantCode := 1, 2
		if warning {
			wantFailed, wantCode = 0, 0
		}
		if res.Failed != wantFailed || res.ExitCode() != wantCode || res.Propagated != 1 {
			t.Errorf("warning=%v: failed %d, exit %d, propagated %d; want %d, %d, 1", warning, res.Failed, res.ExitCode(), res.Propagated, wantFailed, wantCode)
		}
		want := "cannot read directory: permission denied (side 2, " + p.root[2] + ")"
		if len(res.ScanProblems) != 1 || res.ScanProblems[0].Err != want {
			t.Errorf("scan problems %+v; want one saying %q", res.ScanProblems, want)
		}
	}
}

// failingPut reads every file it is sent to the end, then fails the put.
type failingPut struct{ remote.Endpoint }

func (f *failingPut) Apply(ctx context.Context, op remote.Op, content io.Reader) (*state.Entry, error) {
	if op.Kind == remote.OpPut && content != nil {
		io.Copy(io.Discard, content)
		return nil, errors.New("disk on fire")
	}
	return f.Endpoint.Apply(ctx, op, content)
}

// TestBytesOnlyOfPropagated checks that the run's byte count is of the
// files propagated, not of a copy that failed after reading its source.
func TestBytesOnlyOfPropagated(t *testing.T) {
	p := newPair(t)
	p.write(1, "f.txt", strings.Repeat("x", 1000))
	cfg := p.config()
	cfg.Dial = func(ctx context.Context, root string) (remote.Endpoint, error) {
		ep := remote.Endpoint(local.New(root, local.Options{Version: "test"}))
		if root == p.root[2] {
			ep = &failingPut{ep}
		}
		return ep, nil
	}
	res := p.sync(cfg)
	if res.Failed != 1 || res.Bytes != 0 {
		t.Errorf("failed %d, bytes %d; want 1 failed and 0 bytes", res.Failed, res.Bytes)
	}
	res = p.sync(p.config())
	if res.Propagated != 1 || res.Bytes != 1000 {
		t.Errorf("after the failure: propagated %d, bytes %d; want 1 and 1000", res.Propagated, res.Bytes)
	}
}

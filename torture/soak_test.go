package torture

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// soak is the state of a soak test: two replicas edited at random.
type soak struct {
	t          *testing.T
	e          *env
	rng        *rand.Rand
	dir1, dir2 string
	r1, r2     string
	round      int
	seq        int
	conflicts  map[string]bool // reported by the last run
	synced     tree            // what both sides last agreed on
	stats      map[string]int
}

var soakDirs = []string{"", "a", "b", "a/c", "a/c/d", "e"}

// randPath returns a path from a small universe, so that edits collide.
func (s *soak) randPath() string {
	return filepath.Join(soakDirs[s.rng.IntN(len(soakDirs))], fmt.Sprintf("f%d", s.rng.IntN(6)))
}

// files lists the regular files and directories of a replica.
func (s *soak) list(dir string) (files, dirs []string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel := p[len(dir)+1:]
		if d.IsDir() {
			dirs = append(dirs, rel)
		} else if d.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	return files, dirs
}

// write puts a new, unique version at rel on a side.
func (s *soak) write(dir, rel string) bool {
	p := filepath.Join(dir, rel)
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return false
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false // a file where a directory should be
	}
	s.seq++
	b := []byte(fmt.Sprintf("%s #%d round %d %s\n", rel, s.seq, s.round, strings.Repeat("x", s.rng.IntN(3000))))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return false
	}
	s.stats["write"]++
	return true
}

// edit makes a few random changes on one side.
func (s *soak) edit(dir string, shared string) {
	files, dirs := s.list(dir)
	if shared != "" {
		s.write(dir, shared)
	}
	for n := 1 + s.rng.IntN(5); n > 0; n-- {
		switch op := s.rng.IntN(10); {
		case op < 3 || len(files) == 0:
			s.write(dir, s.randPath())
		case op == 3:
			f := files[s.rng.IntN(len(files))]
			if os.Remove(filepath.Join(dir, f)) == nil {
				s.stats["delete"]++
			}
		case op == 4:
			f := files[s.rng.IntN(len(files))]
			modes := []fs.FileMode{0o600, 0o644, 0o755, 0o640}
			if os.Chmod(filepath.Join(dir, f), modes[s.rng.IntN(len(modes))]) == nil {
				s.stats["chmod"]++
			}
		case op == 5:
			f, to := files[s.rng.IntN(len(files))], s.randPath()
			if _, err := os.Lstat(filepath.Join(dir, to)); err == nil {
				break
			}
			if fi, err := os.Stat(filepath.Dir(filepath.Join(dir, to))); err != nil || !fi.IsDir() {
				break
			}
			if os.Rename(filepath.Join(dir, f), filepath.Join(dir, to)) == nil {
				s.stats["rename"]++
			}
		case op == 6:
			d := soakDirs[1+s.rng.IntN(len(soakDirs)-1)]
			if os.MkdirAll(filepath.Join(dir, d), 0o755) == nil {
				s.stats["mkdir"]++
			}
		case op == 7 && len(dirs) > 0:
			d := dirs[s.rng.IntN(len(dirs))]
			if s.rng.IntN(3) == 0 {
				if os.RemoveAll(filepath.Join(dir, d)) == nil {
					s.stats["rm -r"]++
				}
			} else if os.Remove(filepath.Join(dir, d)) == nil {
				s.stats["rmdir"]++
			}
		case op == 8 && len(files) > 0:
			s.write(dir, files[s.rng.IntN(len(files))])
		case op == 9 && len(s.conflicts) > 0:
			// Settle a conflict by hand: the same contents on both sides.
			for p := range s.conflicts {
				src := filepath.Join(s.dir1, p)
				if b, err := os.ReadFile(src); err == nil {
					dst := filepath.Join(s.dir2, p)
					if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
						break
					}
					if os.MkdirAll(filepath.Dir(dst), 0o755) == nil && os.WriteFile(dst, b, 0o644) == nil {
						os.Chmod(src, 0o644)
						os.Chmod(dst, 0o644)
						s.stats["settle"]++
					}
				}
				break
			}
		}
	}
}

// under reports whether p is q or lies below it.
func under(p, q string) bool { return p == q || strings.HasPrefix(p, q+"/") }

// doneLines returns the paths of the items a run's standard output lists
// as carried out.
func doneLines(stdout string) []string {
	var out []string
	for _, line := range strings.Split(stdout, "\n") {
		if !strings.Contains(line, "---->") && !strings.Contains(line, "<----") {
			continue
		}
		if strings.Contains(line, "  [skipped") || strings.Contains(line, "  [failed") {
			continue
		}
		out = append(out, line[strings.LastIndex(line, "  ")+2:])
	}
	return out
}

func (s *soak) step() {
	t := s.t
	shared := ""
	if s.rng.IntN(3) == 0 {
		shared = s.randPath() // edited on both sides: a conflict unless equal
	}
	s.edit(s.dir1, shared)
	s.edit(s.dir2, shared)
	pre1, _ := snapshot(t, s.dir1)
	pre2, _ := snapshot(t, s.dir2)
	rep := filepath.Join(s.e.dir, "report.json")
	os.Remove(rep)
	r := s.e.sync(s.r1, s.r2, "--report", rep)
	if r.code != 0 && r.code != 1 {
		t.Fatalf("round %d: want exit 0 or 1, got %s", s.round, r)
	}
	rp := readReport(t, rep)
	if rp.Run.Failed > 0 {
		t.Fatalf("round %d: failed items with no concurrent edit: %s", s.round, r)
	}
	held := map[string]bool{}
	s.conflicts = map[string]bool{}
	for _, it := range rp.Items {
		held[it.Path] = true
		if it.Status == "conflict" {
			s.conflicts[it.Path] = true
		}
	}
	if (r.code == 0) != (len(rp.Items) == 0) {
		t.Fatalf("round %d: exit %d with %d reported items", s.round, r.code, len(rp.Items))
	}
	s.stats["conflicts"] += len(s.conflicts)
	post1, temps1 := snapshot(t, s.dir1)
	post2, temps2 := snapshot(t, s.dir2)
	if len(temps1)+len(temps2) > 0 {
		t.Fatalf("round %d: temporary files left: %q %q", s.round, temps1, temps2)
	}
	// The replicas agree everywhere except where the run held items back.
	heldAbove := func(p string) bool {
		for q := range held {
			if under(p, q) {
				return true
			}
		}
		return false
	}
	var bad []string
	for _, p := range append(keys(post1), keys(post2)...) {
		if post1[p] != post2[p] && !heldAbove(p) {
			bad = append(bad, fmt.Sprintf("%q: %v vs %v", p, post1[p], post2[p]))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Fatalf("round %d: the replicas differ outside the reported conflicts %v:\n%s\n%s", s.round, keys2(held), strings.Join(bad, "\n"), r)
	}
	// No version was lost: every file either side held before the run is
	// somewhere after it, unless it was the agreed version and the run
	// reports carrying the other side's change over it.
	present := map[string]bool{}
	for _, tr := range []tree{post1, post2} {
		for _, n := range tr {
			if n.kind == 'f' {
				present[n.sum] = true
			}
		}
	}
	done := doneLines(r.stdout)
	for side, pre := range []tree{pre1, pre2} {
		for p, n := range pre {
			if n.kind != 'f' || present[n.sum] {
				continue
			}
			superseded := false
			if old, ok := s.synced[p]; ok && old.sum == n.sum {
				for _, d := range done {
					if under(p, d) {
						superseded = true
					}
				}
			}
			if !superseded {
				t.Fatalf("round %d: the version of %q on side %d (%.12s) is lost\n%s", s.round, p, side+1, n.sum, r)
			}
		}
	}
	for p, n := range post1 {
		if post2[p] == n {
			s.synced[p] = n
		}
	}
	for p := range s.synced {
		if _, ok1 := post1[p]; !ok1 {
			if _, ok2 := post2[p]; !ok2 {
				delete(s.synced, p)
			}
		}
	}
}

func keys(m tree) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func keys2(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSoak runs rounds of random edits on both sides (creations,
// modifications, deletions, permission changes, renames, new and removed
// directories, sometimes the same file on both sides) with a sync after
// each, checking every time that the replicas agree except on the items
// the run reported and that no version was lost.
func TestSoak(t *testing.T) {
	localAndRemote(t, func(t *testing.T, e *env) {
		s := &soak{t: t, e: e, rng: seed(t), synced: tree{}, stats: map[string]int{}}
		s.dir1, s.dir2, s.r1, s.r2 = pair(t, e)
		for s.round = 0; s.round < *flagSoak; s.round++ {
			s.step()
		}
		t.Logf("%s: %d rounds: %v", t.Name(), *flagSoak, s.stats)
	})
}

package torture

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEditDuringScan: a file rewritten in place, again and again, while the
// sync runs is never installed torn on the other side; its item fails
// (exit 2) and the next run, once it is quiet, picks it up.
func TestEditDuringScan(t *testing.T) {
	e := newEnv(t)
	dir1, dir2, r1, r2 := pair(t, e)
	const size = 4 << 20
	for i := 0; i < 300; i++ {
		name := fmt.Sprintf("d%d/f%03d", i%10, i)
		writeFile(t, dir1, name, gen(name, 0, 2000))
	}
	versions := map[string]bool{}
	var contents [][]byte
	for v := 0; v < 4; v++ {
		b := gen("hot", v, size)
		contents = append(contents, b)
		versions[sumOf(b)] = true
	}
	writeFile(t, dir1, "hot", contents[0])
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	var writes int
	go func() {
		defer wg.Done()
		for v := 1; !stop.Load(); v++ {
			// In place, not atomically: the file is torn most of the time.
			f, err := os.OpenFile(filepath.Join(dir1, "hot"), os.O_WRONLY, 0)
			if err != nil {
				return
			}
			b := contents[v%len(contents)]
			for off := 0; off < len(b); off += 256 << 10 {
				f.WriteAt(b[off:off+256<<10], int64(off))
			}
			f.Close()
			writes++
		}
	}()
	r := e.sync(r1, r2)
	stop.Store(true)
	wg.Wait()
	t.Logf("%s: %d rewrites during the run", t.Name(), writes)
	if r.code != 2 || !lineWith(r.stdout, "hot", "failed") {
		t.Fatalf("want exit 2 with hot failed, got %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(dir2, "hot")); err == nil && !versions[sumOf(b)] {
		t.Fatal("hot was installed torn on side 2")
	}
	e.mustSync(0, r1, r2)
	assertSame(t, dir1, dir2)
}

// TestEditBeforePropagate: files edited between the scan and the
// propagation (by the test hook) are neither overwritten nor deleted, nor
// copied in their unscanned state: their items fail, and the next run sees
// the edits (a conflict where both sides changed).
func TestEditBeforePropagate(t *testing.T) {
	localAndRemote(t, func(t *testing.T, e *env) {
		dir1, dir2, r1, r2 := pair(t, e)
		for _, n := range []string{"a", "b", "c", "d"} {
			writeFile(t, dir1, n, gen(n, 0, 5000))
		}
		e.mustSync(0, r1, r2)
		writeFile(t, dir1, "a", gen("a", 1, 5000)) // to copy 1 → 2
		writeFile(t, dir2, "b", gen("b", 1, 5000)) // to copy 2 → 1
		os.Remove(filepath.Join(dir1, "c"))        // to delete on 2
		writeFile(t, dir1, "d", gen("d", 1, 5000)) // copied normally
		hookA, hookB, hookC := gen("a", 9, 4000), gen("b", 9, 4000), gen("c", 9, 4000)
		writeFile(t, e.dir, "hookA", hookA)
		writeFile(t, e.dir, "hookB", hookB)
		writeFile(t, e.dir, "hookC", hookC)
		// The source of a, the destination of b and the file c about
		// to be deleted are all edited after the scan.
		hook := fmt.Sprintf("cat %s/hookA > %s/a; cat %s/hookB > %s/b; cat %s/hookC > %s/c", e.dir, dir1, e.dir, dir1, e.dir, dir2)
		p := e.start([]string{"CONCORD_TEST_HOOK_BEFORE_PROPAGATE=" + hook}, "sync", "--batch", r1, r2)
		r := p.wait(time.Minute)
		if r.code != 2 {
			t.Fatalf("want exit 2, got %s", r)
		}
		for _, n := range []string{"a", "b", "c"} {
			if !lineWith(r.stdout, "  "+n+"  [failed", "changed") {
				t.Errorf("%s is not reported as failed, changed during the sync:\n%s", n, r.stdout)
			}
		}
		check := func(path string, want []byte) {
			t.Helper()
			b, err := os.ReadFile(path)
			if err != nil || sumOf(b) != sumOf(want) {
				t.Errorf("%s: not the expected contents (%v)", path, err)
			}
		}
		check(filepath.Join(dir1, "b"), hookB) // not overwritten
		check(filepath.Join(dir2, "c"), hookC) // not deleted
		check(filepath.Join(dir2, "a"), gen("a", 0, 5000))
		check(filepath.Join(dir2, "d"), gen("d", 1, 5000))
		rep := filepath.Join(e.dir, "r.json")
		r = e.mustSync(1, r1, r2, "--report", rep)
		conflicts := map[string]bool{}
		for _, it := range readReport(t, rep).Items {
			if it.Status == "conflict" {
				conflicts[it.Path] = true
			}
		}
		if len(conflicts) != 2 || !conflicts["b"] || !conflicts["c"] {
			t.Fatalf("the next run: want conflicts on b and c, got %v\n%s", conflicts, r)
		}
		check(filepath.Join(dir2, "a"), hookA) // picked up
	})
}

// TestAppendDuringTransfer: a big source file appended to while it is
// copied is not installed; its item fails and the next run copies it.
func TestAppendDuringTransfer(t *testing.T) {
	localAndRemote(t, func(t *testing.T, e *env) {
		dir1, dir2, r1, r2 := pair(t, e)
		writeFile(t, dir1, "small", []byte("x"))
		e.mustSync(0, r1, r2)
		big := gen("grow", 0, 24<<20)
		writeFile(t, dir1, "grow", big)
		marker := filepath.Join(e.dir, "marker")
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		appends := 0
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := os.Stat(marker); err == nil {
					break
				}
				time.Sleep(time.Millisecond)
			}
			f, err := os.OpenFile(filepath.Join(dir1, "grow"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return
			}
			defer f.Close()
			for !stop.Load() && appends < 2000 {
				f.Write([]byte("appended while being copied\n"))
				appends++
				time.Sleep(2 * time.Millisecond)
			}
		}()
		r := e.start([]string{"CONCORD_TEST_HOOK_BEFORE_PROPAGATE=touch " + marker + "; sleep 0.05"}, "sync", "--batch", r1, r2).wait(time.Minute)
		stop.Store(true)
		wg.Wait()
		t.Logf("%s: %d appends", t.Name(), appends)
		if r.code != 2 || !lineWith(r.stdout, "grow", "failed") {
			t.Fatalf("want exit 2 with grow failed, got %s", r)
		}
		if _, err := os.Stat(filepath.Join(dir2, "grow")); err == nil {
			t.Fatal("grow was installed although it changed while copied")
		}
		if _, temps := snapshot(t, dir2); len(temps) > 0 {
			t.Fatalf("temporary files left: %q", temps)
		}
		if e.srv != nil {
			e.waitNoServe(t, 10*time.Second)
		}
		r = e.mustSync(0, r1, r2)
		if !strings.Contains(r.stdout, "grow") {
			t.Fatalf("the next run did not copy grow: %s", r)
		}
		assertSame(t, dir1, dir2)
	})
}

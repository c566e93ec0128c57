package torture

import (
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concord-sync/concord/internal/sshdtest"
)

// copyFile copies src to dst (for saving archives).
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// saveArchive keeps a copy of an archive (with its SQLite journal files,
// if any) and returns a function putting it back.
func saveArchive(t testing.TB, db string) (restore func()) {
	t.Helper()
	dir := t.TempDir()
	var saved []string
	for _, suf := range []string{"", "-wal", "-shm"} {
		if _, err := os.Stat(db + suf); err == nil {
			copyFile(t, db+suf, filepath.Join(dir, "x"+suf))
			saved = append(saved, suf)
		}
	}
	return func() {
		for _, suf := range []string{"-wal", "-shm"} {
			os.Remove(db + suf)
		}
		for _, suf := range saved {
			copyFile(t, filepath.Join(dir, "x"+suf), db+suf)
		}
	}
}

// pair sets up two replicas in e, the second over SSH when remote.
func pair(t *testing.T, e *env) (dir1, dir2, r1, r2 string) {
	dir1, dir2 = filepath.Join(e.dir, "one"), filepath.Join(e.dir, "two")
	for _, d := range []string{dir1, dir2} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r1, r2 = dir1, dir2
	if e.srv != nil {
		r2 = e.remoteRoot(dir2)
	}
	return
}

// TestArchiveCommitInterrupted: a run that stopped between the two sides'
// archive commits (simulated by putting one side's archive back as it was
// before the run) is followed by a run that converges with no spurious
// conflict and no deletion.
func TestArchiveCommitInterrupted(t *testing.T) {
	localAndRemote(t, func(t *testing.T, e *env) {
		dir1, dir2, r1, r2 := pair(t, e)
		for i := 0; i < 60; i++ {
			name := fmt.Sprintf("d%d/f%02d", i%4, i)
			writeFile(t, dir1, name, gen(name, 0, 100+i))
		}
		e.mustSync(0, r1, r2)
		for side := 0; side < 2; side++ {
			var db string
			if e.srv != nil && side == 1 {
				db = archives(t, filepath.Join(e.srv.RemoteHome, ".local", "state"))[0]
			} else {
				db = archives(t, e.state)[side]
			}
			restore := saveArchive(t, db)
			v := 10 * (side + 1)
			for i := 0; i < 5; i++ {
				a, b := fmt.Sprintf("d%d/f%02d", i%4, i+v), fmt.Sprintf("d%d/f%02d", i%4, i+v+5)
				writeFile(t, dir1, a, gen(a, v, 200))
				writeFile(t, dir2, b, gen(b, v, 200))
				os.Remove(filepath.Join(dir1, fmt.Sprintf("d%d/f%02d", i%4, i+v+30)))
				writeFile(t, dir2, fmt.Sprintf("new%d/g%d", side, i), gen("g", i, 50))
			}
			e.mustSync(0, r1, r2)
			want := assertSame(t, dir1, dir2)
			restore()
			r := e.mustSync(0, r1, r2)
			if strings.Contains(r.stdout, "deleted") {
				t.Fatalf("the run after the interrupted commit deleted something: %s", r)
			}
			got := assertSame(t, dir1, dir2)
			if d := diffTrees(want, got, 10); len(d) > 0 {
				t.Fatalf("the run after the interrupted commit changed the replicas:\n%s", strings.Join(d, "\n"))
			}
			// Later edits on both sides propagate without a conflict.
			writeFile(t, dir1, "d0/f00", gen("d0/f00", 100+side, 90))
			writeFile(t, dir2, "d1/f01", gen("d1/f01", 100+side, 90))
			e.mustSync(0, r1, r2)
			assertSame(t, dir1, dir2)
		}
	})
}

// TestDiskFull: the destination's disk fills up while a file is written:
// that item fails saying so, the old file stays, no temporary file is
// left, the rest of the run goes through, exit 2; once there is room the
// next run converges. The destination is local, then a remote root, whose
// small files travel in put batches and share flushes.
func TestDiskFull(t *testing.T) { localAndRemote(t, testDiskFull) }

func testDiskFull(t *testing.T, e *env) {
	dir1, dir2, r1, r2 := pair(t, e)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir2).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v: %s); the injected write errors of remote/local's tests stand in", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir2).Run() })
	old := gen("big.bin", 0, 512<<10)
	writeFile(t, dir1, "big.bin", old)
	for i := 0; i < 5; i++ {
		writeFile(t, dir1, fmt.Sprintf("s%d", i), gen("s", i, 1000))
	}
	e.mustSync(0, r1, r2)

	writeFile(t, dir1, "big.bin", gen("big.bin", 1, 3<<20))
	for i := 0; i < 5; i++ {
		writeFile(t, dir2, fmt.Sprintf("o%d", i), gen("o", i, 1000))
	}
	rep := filepath.Join(e.dir, "r.json")
	r := e.mustSync(2, r1, r2, "--report", rep)
	rp := readReport(t, rep)
	if len(rp.Items) != 1 || rp.Items[0].Path != "big.bin" || rp.Items[0].Status != "failed" || !strings.Contains(rp.Items[0].Reason, "disk is full") {
		t.Fatalf("want one failed item big.bin saying the disk is full; report %+v\n%s", rp.Items, r)
	}
	if b, err := os.ReadFile(filepath.Join(dir2, "big.bin")); err != nil || sumOf(b) != sumOf(old) {
		t.Fatalf("the old big.bin is not intact on the full disk (%v)", err)
	}
	if _, temps := snapshot(t, dir2); len(temps) > 0 {
		t.Fatalf("temporary files left on the full disk: %q", temps)
	}
	for i := 0; i < 5; i++ {
		if _, err := os.Stat(filepath.Join(dir1, fmt.Sprintf("o%d", i))); err != nil {
			t.Fatalf("the rest of the run did not go through: %v", err)
		}
	}
	if out, err := exec.Command("mount", "-o", "remount,size=16m", dir2).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	e.mustSync(0, r1, r2)
	assertSame(t, dir1, dir2)
}

// TestDiskFullManySmallFiles: many new small files, more than the
// destination's disk holds, travel together (over a link, in put batches
// that share a flush): those that do not fit fail saying the disk is full,
// the others land whole, no temporary file is left, exit 2; once there is
// room the next run converges.
func TestDiskFullManySmallFiles(t *testing.T) {
	localAndRemote(t, func(t *testing.T, e *env) {
		dir1, dir2, r1, r2 := pair(t, e)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir2).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a small tmpfs to fill (%v: %s)", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", dir2).Run() })
		const n = 400 // 1.6 MB of 4 KiB files into 1 MiB
		for i := 0; i < n; i++ {
			writeFile(t, dir1, fmt.Sprintf("f%03d", i), gen("f", i, 4<<10))
		}
		rep := filepath.Join(e.dir, "r.json")
		r := e.mustSync(2, r1, r2, "--report", rep)
		rp := readReport(t, rep)
		failed := 0
		for _, it := range rp.Items {
			if it.Status == "failed" {
				failed++
				if !strings.Contains(it.Reason, "disk is full") {
					t.Errorf("%s failed, but not saying the disk is full: %s", it.Path, it.Reason)
				}
			}
		}
		if failed == 0 || failed == n {
			t.Fatalf("want some of the %d files to fail for want of room and others to land, got %d failed\n%s", n, failed, r)
		}
		cur, temps := snapshot(t, dir2)
		if len(temps) > 0 {
			t.Fatalf("temporary files left on the full disk: %q", temps)
		}
		landed := 0
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("f%03d", i)
			if got, ok := cur[name]; ok {
				landed++
				if got.sum != sumOf(gen("f", i, 4<<10)) {
					t.Fatalf("%s landed torn on the full disk", name)
				}
			}
		}
		if landed+failed != n {
			t.Fatalf("%d files landed and %d failed, of %d", landed, failed, n)
		}
		t.Logf("%d landed, %d failed: %s", landed, failed, r)
		if out, err := exec.Command("mount", "-o", "remount,size=16m", dir2).CombinedOutput(); err != nil {
			t.Fatalf("grow the tmpfs: %v: %s", err, out)
		}
		e.mustSync(0, r1, r2)
		assertSame(t, dir1, dir2)
	})
}

// nobody is the unprivileged user the permission tests run concord as.
const nobody = 65534

// TestPermissionDenied runs concord as an unprivileged user on trees it
// owns, with an unreadable file and directory on one side and a read-only
// directory on the other: each is reported as failed, exit 2, the rest is
// synced, nothing below the unreadable directory is deleted on the other
// side; once the permissions are back the next run converges.
func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run concord as another user (and root ignores permissions)")
	}
	wrap := []string{"setpriv", "--reuid=" + strconv.Itoa(nobody), "--regid=" + strconv.Itoa(nobody), "--clear-groups", "--"}
	if out, err := exec.Command(wrap[0], append(wrap[1:], "true")...).CombinedOutput(); err != nil {
		t.Skipf("cannot switch to uid %d with setpriv: %v: %s", nobody, err, out)
	}
	base, err := os.MkdirTemp("", "torture-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			os.Chmod(p, 0o755)
			return nil
		})
		os.RemoveAll(base)
	})
	os.Chmod(base, 0o755)
	e := &env{t: t, dir: base, home: filepath.Join(base, "home"), state: filepath.Join(base, "state"), wrap: wrap}
	dir1, dir2 := filepath.Join(base, "one"), filepath.Join(base, "two")
	for _, d := range []string{e.home, e.state, dir1, dir2} {
		os.MkdirAll(d, 0o755)
	}
	for _, n := range []string{"a", "b", "c", "secret", "locked/x", "locked/y", "ro/z"} {
		writeFile(t, dir1, n, gen(n, 0, 300))
	}
	chown := func() {
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			return os.Lchown(p, nobody, nobody)
		})
	}
	os.Chmod(filepath.Join(dir1, "secret"), 0o600)
	os.Chmod(filepath.Join(dir1, "locked"), 0o700)
	chown()
	e.mustSync(0, dir1, dir2)

	writeFile(t, dir1, "a", gen("a", 1, 300))
	writeFile(t, dir2, "c", gen("c", 1, 300))
	writeFile(t, dir1, "secret", gen("secret", 1, 300))
	writeFile(t, dir1, "locked/x", gen("locked/x", 1, 300))
	writeFile(t, dir1, "ro/new", gen("ro/new", 1, 300))
	os.Chmod(filepath.Join(dir1, "secret"), 0o600)
	chown()
	// Taken away by ownership, not by mode: a mode change is a property
	// that would itself propagate.
	for _, p := range []string{filepath.Join(dir1, "secret"), filepath.Join(dir1, "locked"), filepath.Join(dir2, "ro")} {
		os.Lchown(p, 0, 0)
	}
	r := e.mustSync(2, dir1, dir2)
	for _, n := range []string{"secret", "locked", "ro/new"} {
		if !lineWith(r.stdout, n, "failed", "permission denied") {
			t.Errorf("%s is not reported as failed with permission denied:\n%s", n, r)
		}
	}
	for side, c := range map[string]string{filepath.Join(dir2, "a"): "a", filepath.Join(dir1, "c"): "c"} {
		if b, err := os.ReadFile(side); err != nil || sumOf(b) != sumOf(gen(c, 1, 300)) {
			t.Errorf("%s was not synced past the permission errors (%v)", side, err)
		}
	}
	for _, n := range []string{"locked/x", "locked/y", "secret"} {
		if b, err := os.ReadFile(filepath.Join(dir2, n)); err != nil || sumOf(b) != sumOf(gen(n, 0, 300)) {
			t.Errorf("%s on side 2 was touched although side 1's copy is unreadable (%v)", n, err)
		}
	}
	chown()
	e.mustSync(0, dir1, dir2)
	assertSame(t, dir1, dir2)
}

// lineWith reports whether some line of out mentions every word
// (case-insensitively).
func lineWith(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, w := range words {
			if !strings.Contains(strings.ToLower(line), strings.ToLower(w)) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// TestSSHDropped: the SSH connection is cut in the middle of the transfer
// (its sshd process killed): the client exits non-zero at once with a
// clear message, and the next run converges.
func TestSSHDropped(t *testing.T) {
	e := newEnv(t).withRemote(sshdtest.Config{})
	dir1, dir2, r1, r2 := pair(t, e)
	for i := 0; i < 40; i++ {
		name := fmt.Sprintf("f%02d", i)
		writeFile(t, dir1, name, gen(name, 0, 1<<20))
	}
	// Cut the connection as soon as the first file has landed on the
	// remote side (a fixed delay lost the race on an idle machine; new
	// files are written anonymously, so no temporary file shows before).
	hook := fmt.Sprintf("(i=0; until ls %s/f?? >/dev/null 2>&1 || [ $i -ge 3000 ]; do sleep 0.005; i=$((i+1)); done; pkill -KILL -P %d) </dev/null >/dev/null 2>&1 &",
		dir2, e.sshdPid(t))
	p := e.start([]string{"CONCORD_TEST_HOOK_BEFORE_PROPAGATE=" + hook}, "sync", "--batch", r1, r2)
	r := p.wait(time.Minute)
	if r.code == 0 {
		t.Skipf("the transfer ended before the connection could be cut: %s", r)
	}
	if r.code == -1 {
		t.Fatalf("the run whose connection was cut: want a non-zero exit, got %s", r)
	}
	if r.took > 20*time.Second {
		t.Fatalf("the client took %s to give up on a dead connection", r.took)
	}
	if !strings.Contains(r.stderr, "concord:") || !strings.Contains(strings.ToLower(r.stderr), "connection") {
		t.Fatalf("no clear message about the lost connection: %s", r)
	}
	t.Logf("connection cut: %s", r)
	cur, _ := snapshot(t, dir2)
	for p, n := range cur {
		if n.kind == 'f' && n.sum != sumOf(gen(p, 0, 1<<20)) {
			t.Fatalf("%s is torn on the remote side", p)
		}
	}
	e.waitNoServe(t, 10*time.Second)
	e.mustSync(0, r1, r2)
	assertSame(t, dir1, dir2)
}

// TestArchiveDamaged: an archive database with garbage in its middle, or
// cut to half its size, stops the run with exit 3 and a message saying to
// move it aside, changing nothing; once it is moved aside, the next run
// converges without deleting anything: a path deleted on one side since
// the last sync is brought back, and one changed on one side is a
// conflict, as in a first sync.
func TestArchiveDamaged(t *testing.T) {
	e := newEnv(t)
	dir1, dir2, r1, r2 := pair(t, e)
	for i := 0; i < 400; i++ {
		name := fmt.Sprintf("d%02d/f%03d", i%20, i)
		writeFile(t, dir1, name, gen(name, 0, 64))
	}
	e.mustSync(0, r1, r2)
	os.Remove(filepath.Join(dir1, "d07/f007"))
	writeFile(t, dir2, "d01/f001", gen("d01/f001", 1, 64))
	before1, _ := snapshot(t, dir1)
	before2, _ := snapshot(t, dir2)
	db := archives(t, e.state)[0]
	restore := saveArchive(t, db)
	damage := map[string]func(){
		"garbage in the middle": func() {
			fi, _ := os.Stat(db)
			f, err := os.OpenFile(db, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			junk := make([]byte, min(fi.Size()/3, 32<<10))
			rand.Read(junk)
			f.WriteAt(junk, fi.Size()/2)
			f.Close()
		},
		"truncated to half": func() {
			fi, _ := os.Stat(db)
			os.Truncate(db, fi.Size()/2)
		},
	}
	for _, name := range []string{"garbage in the middle", "truncated to half"} {
		restore()
		damage[name]()
		r := e.sync(r1, r2)
		if r.code != 3 || !strings.Contains(r.stderr, "Move it aside") || !strings.Contains(r.stderr, filepath.Base(db)) {
			t.Errorf("archive %s: want exit 3 and a message to move %s aside, got %s", name, filepath.Base(db), r)
		}
		after1, _ := snapshot(t, dir1)
		after2, _ := snapshot(t, dir2)
		if d := append(diffTrees(before1, after1, 5), diffTrees(before2, after2, 5)...); len(d) > 0 {
			t.Fatalf("archive %s: the run changed the replicas:\n%s", name, strings.Join(d, "\n"))
		}
	}
	for _, suf := range []string{"", "-wal", "-shm"} {
		os.Rename(db+suf, db+suf+".damaged")
	}
	rep := filepath.Join(e.dir, "r.json")
	r := e.mustSync(1, r1, r2, "--report", rep)
	if rp := readReport(t, rep); len(rp.Items) != 1 || rp.Items[0].Path != "d01/f001" || rp.Items[0].Status != "conflict" {
		t.Fatalf("want one conflict on d01/f001, got %+v\n%s", rp.Items, r)
	}
	got, _ := snapshot(t, dir1)
	for p := range before2 {
		if _, ok := got[p]; !ok {
			t.Fatalf("%s was deleted after the damaged archive was moved aside: %s", p, r)
		}
	}
	if _, ok := got["d07/f007"]; !ok {
		t.Fatalf("the file deleted on one side was not brought back by the first sync after the archive was moved aside")
	}
}

// TestServeCleansUpWhenClientDies: when the client dies in the middle of a
// transfer from the remote side, the remote concord serve sees its
// connection end and stops cleanly: its pair lock is released (not left
// for a later run to find stale). The client kills itself right after
// writing its third temporary file (CONCORD_TEST_KILL_AT), while the
// server is still sending the other 37 files. (Waiting for a temporary
// file to show up in the directory never saw one: new files are written
// unnamed, O_TMPFILE, and the test was always skipped.)
func TestServeCleansUpWhenClientDies(t *testing.T) {
	e := newEnv(t).withRemote(sshdtest.Config{})
	dir1, dir2, r1, r2 := pair(t, e)
	const files = 40
	for i := 0; i < files; i++ {
		name := fmt.Sprintf("f%02d", i)
		writeFile(t, dir2, name, gen(name, 0, 1<<20))
	}
	p := e.start([]string{"CONCORD_TEST_KILL_AT=put:3"}, "sync", "--batch", r1, r2)
	var serves []int
	sawLock := false // the test below means something only if so
	done := make(chan result, 1)
	go func() { done <- p.wait(time.Minute) }()
	var r result
	for waiting := true; waiting; {
		select {
		case r = <-done:
			waiting = false
		case <-time.After(time.Millisecond):
			for _, pid := range e.serveProcs() {
				if !slices.Contains(serves, pid) {
					serves = append(serves, pid)
				}
			}
			if l, _ := filepath.Glob(filepath.Join(e.remoteState(), "*.lock")); len(l) > 0 {
				sawLock = true
			}
		}
	}
	if !r.killed {
		t.Fatalf("the client was not killed by its third put: %s", r)
	}
	if got, _ := snapshot(t, dir1); len(got) >= files {
		t.Fatalf("the client died after the transfer (%d files arrived), not in it", len(got))
	}
	if len(serves) == 0 || !sawLock {
		t.Fatalf("no concord serve (%v) or none holding its lock (%v) was seen during the run", serves, sawLock)
	}
	e.waitNoServe(t, 10*time.Second)
	locks, _ := filepath.Glob(filepath.Join(e.remoteState(), "*.lock"))
	if len(locks) > 0 {
		// How the server ended, where it is a zombie nobody reaped: the
		// last field of /proc/PID/stat is its wait status.
		var ends []string
		for _, pid := range serves {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
				f := strings.Fields(string(b))
				ends = append(ends, fmt.Sprintf("pid %d wait status %s", pid, f[len(f)-1]))
			}
		}
		t.Fatalf("concord serve did not release its lock %q when its client died (wait status of the server: %v; 13 is SIGPIPE)", locks, ends)
	}
}

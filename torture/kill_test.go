package torture

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/concord-sync/concord/internal/sshdtest"
)

// killFixture is a pair of replicas filled with a few thousand files, and
// the bookkeeping to edit them and check what a killed run left.
type killFixture struct {
	t          *testing.T
	e          *env
	rng        *rand.Rand
	dir1, dir2 string // the replicas on this machine
	r1, r2     string // the roots as concord is given them
	killR2     string // if set, the second root for the runs to be killed
	version    map[string]int
	files      []string // the files both sides agree on
	bigs       []string
	est        time.Duration // how long a kill round's run takes, roughly
	rounds     int
	kills      int
}

func newKillFixture(t *testing.T, e *env, nfiles int) *killFixture {
	f := &killFixture{t: t, e: e, rng: seed(t), version: map[string]int{}, est: time.Second}
	f.dir1 = filepath.Join(e.dir, "one")
	f.dir2 = filepath.Join(e.dir, "two")
	os.MkdirAll(f.dir1, 0o755)
	os.MkdirAll(f.dir2, 0o755)
	f.r1, f.r2 = f.dir1, f.dir2
	if e.srv != nil {
		f.r2 = e.remoteRoot(f.dir2)
	}
	total := 0
	for i := 0; i < nfiles; i++ {
		name := fmt.Sprintf("d%02d/s%d/f%04d", i%40, i%3, i)
		size := 512 + f.rng.IntN(16<<10)
		if i%500 == 7 {
			size = bigSize(f.rng)
			f.bigs = append(f.bigs, name)
		}
		total += size
		writeFile(t, f.dir1, name, gen(name, 0, size))
		f.files = append(f.files, name)
	}
	t.Logf("tree: %d files, %d MiB, %d big", nfiles, total>>20, len(f.bigs))
	return f
}

// bigSize returns the size of a big file: from 1 MiB, where the engine
// fetches a delta signature during the scan, to 11 MiB, past 8 MiB, where
// it also stages the file's delta at a remote destination during the scan
// (so that kills land in staging too).
func bigSize(rng *rand.Rand) int { return 1<<20 + rng.IntN(10<<20) }

// edit changes the replicas for a round: on side 1 it modifies, creates and
// deletes files and rewrites a big one; on side 2 it modifies other files.
// No path is changed on both sides, so the round has no conflict.
func (f *killFixture) edit(n1, n2 int) {
	touched := map[string]bool{}
	pick := func() string {
		for {
			p := f.files[f.rng.IntN(len(f.files))]
			if !touched[p] {
				touched[p] = true
				return p
			}
		}
	}
	put := func(dir, p string, size int) {
		f.version[p]++
		writeFile(f.t, dir, p, gen(p, f.version[p], size))
	}
	for i := 0; i < n1; i++ {
		put(f.dir1, pick(), 256+f.rng.IntN(24<<10))
	}
	for i := 0; i < n2; i++ {
		put(f.dir2, pick(), 256+f.rng.IntN(24<<10))
	}
	if len(f.bigs) > 0 {
		b := f.bigs[f.rng.IntN(len(f.bigs))]
		if !touched[b] {
			touched[b] = true
			put(f.dir1, b, bigSize(f.rng))
		}
	}
	for i := 0; i < n1/5; i++ {
		p := pick()
		if slices.Contains(f.bigs, p) {
			continue
		}
		if err := os.Remove(filepath.Join(f.dir1, p)); err != nil {
			f.t.Fatal(err)
		}
	}
	for i := 0; i < n1/5; i++ {
		p := fmt.Sprintf("new%02d/r%d/g%d", f.rng.IntN(50), f.rounds, i)
		put(f.dir1, p, 256+f.rng.IntN(8<<10))
	}
}

// expect returns what an uninterrupted run would leave on both sides: side
// 1's tree with side 2's changes over it.
func expect(pre1, pre2, synced tree) tree {
	final := tree{}
	for p, n := range pre1 {
		final[p] = n
	}
	for p, n := range pre2 {
		if old, ok := synced[p]; !ok || old != n {
			final[p] = n // changed on side 2
		}
	}
	return final
}

// checkTorn fails on any file of cur that is neither its version before
// the run (pre) nor the one the run was to install (final).
func checkTorn(t *testing.T, side int, cur, pre, final tree) {
	t.Helper()
	var bad []string
	for p, n := range cur {
		if n.kind == 'd' {
			continue
		}
		a, inPre := pre[p]
		b, inFinal := final[p]
		if (inPre && a == n) || (inFinal && b == n) {
			continue
		}
		bad = append(bad, fmt.Sprintf("%q is %v; before %v (%v), expected %v (%v)", p, n, a, inPre, b, inFinal))
	}
	for p, n := range pre {
		if _, ok := cur[p]; !ok && n.kind == 'f' {
			if _, ok := final[p]; ok {
				bad = append(bad, fmt.Sprintf("%q vanished", p))
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		if len(bad) > 10 {
			bad = bad[:10]
		}
		t.Fatalf("side %d after the kill holds a torn or unexpected file:\n%s", side, strings.Join(bad, "\n"))
	}
}

// settle runs a normal sync after a kill and checks that the replicas are
// identical, equal to what an uninterrupted run leaves, and free of
// temporary files; then an edit on each side must propagate without a
// conflict.
func (f *killFixture) settle(final tree) {
	t := f.t
	if f.e.srv != nil {
		f.e.waitNoServe(t, 10*time.Second)
	}
	r := f.e.sync(f.r1, f.r2)
	if r.code != 0 {
		t.Fatalf("round %d: the run after the kill: want exit 0, got %s%s", f.rounds, r, lockHolder(r.stderr))
	}
	got := assertSame(t, f.dir1, f.dir2)
	if d := diffTrees(got, final, 10); len(d) > 0 {
		t.Fatalf("round %d: the replicas are not what an uninterrupted run leaves:\n%s", f.rounds, strings.Join(d, "\n"))
	}
	// An edit on each side propagates, with no conflict.
	a, b := f.files[f.rng.IntN(len(f.files))], f.files[f.rng.IntN(len(f.files))]
	for a == b || got[a].kind != 'f' || got[b].kind != 'f' {
		a, b = f.files[f.rng.IntN(len(f.files))], f.files[f.rng.IntN(len(f.files))]
	}
	f.version[a]++
	f.version[b]++
	ca, cb := gen(a, f.version[a], 300), gen(b, f.version[b], 301)
	writeFile(t, f.dir1, a, ca)
	writeFile(t, f.dir2, b, cb)
	if f.e.srv != nil {
		f.e.waitNoServe(t, 10*time.Second)
	}
	r = f.e.sync(f.r1, f.r2)
	if r.code != 0 || strings.Contains(r.stdout, "conflict") && !strings.Contains(r.stdout, "(0 conflict(s))") {
		t.Fatalf("round %d: edits after the recovery: want exit 0 and no conflict, got %s", f.rounds, r)
	}
	got = assertSame(t, f.dir1, f.dir2)
	if got[a].sum != sumOf(ca) || got[b].sum != sumOf(cb) {
		t.Fatalf("round %d: the edits after the recovery did not propagate", f.rounds)
	}
	// Refresh the list of files both sides agree on.
	f.files = f.files[:0]
	for p, n := range got {
		if n.kind == 'f' {
			f.files = append(f.files, p)
		}
	}
	sort.Strings(f.files)
	var bigs []string
	for _, p := range f.bigs {
		if got[p].kind == 'f' {
			bigs = append(bigs, p)
		}
	}
	f.bigs = bigs
}

// lockHolder describes the process named in a "lock held by process N"
// message, if it still runs.
func lockHolder(stderr string) string {
	_, rest, ok := strings.Cut(stderr, "lock held by process ")
	if !ok {
		return ""
	}
	pid, _, _ := strings.Cut(rest, " ")
	cmd, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil {
		return "\n(the lock holder " + pid + " is gone)"
	}
	st, _ := os.ReadFile("/proc/" + pid + "/stat")
	return fmt.Sprintf("\n(the lock holder %s runs %q, stat %q)", pid, strings.ReplaceAll(string(cmd), "\x00", " "), st)
}

// killer chooses how a round's run is interrupted.
type killer func(f *killFixture, p *proc, delay time.Duration) (killed bool)

// killClient sends SIGKILL to the concord client.
func killClient(f *killFixture, p *proc, delay time.Duration) bool {
	if delay >= time.Hour {
		return false // the run kills itself (CONCORD_TEST_KILL_AT)
	}
	time.AfterFunc(delay, func() { p.cmd.Process.Signal(syscall.SIGKILL) })
	return false // decided by the exit status
}

// killServe sends SIGKILL to the remote concord serve.
func killServe(f *killFixture, p *proc, delay time.Duration) bool {
	deadline := time.Now().Add(10 * time.Second)
	for len(f.e.serveProcs()) == 0 && alive(p.cmd.Process.Pid) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(delay * 3 / 4)
	pids := f.e.serveProcs()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(pids) > 0
}

// killServeHook relies on CONCORD_TEST_KILL_AT=put:N set in the remote
// sessions: concord serve kills itself right after writing its Nth
// temporary file.
func killServeHook(f *killFixture, p *proc, delay time.Duration) bool { return true }

// namesLostServer reports whether out (lower case) names the server on
// host that died: "concord serve on HOST" for the copy the client
// installed, "concord serve (PATH in the remote path) on HOST" for one it
// found in the remote PATH.
func namesLostServer(out, host string) bool {
	re := regexp.MustCompile(`concord serve (\([^)]*\) )?on ` + regexp.QuoteMeta(strings.ToLower(host)))
	return re.MatchString(out)
}

// killRounds runs rounds of edit, sync, kill at a random moment, check.
func (f *killFixture) killRounds(rounds int, kill killer) {
	t := f.t
	synced := tree{}
	for f.rounds = 0; f.rounds < rounds; f.rounds++ {
		if f.rounds > 0 {
			f.edit(120, 40)
		}
		pre1, _ := snapshot(t, f.dir1)
		pre2, _ := snapshot(t, f.dir2)
		final := expect(pre1, pre2, synced)
		delay := time.Duration(f.rng.Float64() * 0.95 * float64(f.est))
		var extra []string
		if f.e.srv == nil && f.rng.IntN(4) == 0 {
			// Kill inside a put, right after a temporary file is written.
			extra = append(extra, fmt.Sprintf("CONCORD_TEST_KILL_AT=put:%d", 1+f.rng.IntN(150)))
			delay = time.Hour
		}
		r2 := f.r2
		if f.killR2 != "" {
			r2 = f.killR2
		}
		p := f.e.start(extra, "sync", "--batch", f.r1, r2)
		killedServe := kill(f, p, delay)
		r := p.wait(2 * time.Minute)
		switch {
		case r.killed || killedServe:
			if killedServe && !r.killed {
				if r.code == 0 {
					// The server was killed after it had done its part,
					// or (killed by its own hook) not at all.
					break
				}
				f.kills++
				if r.took-delay > 15*time.Second {
					t.Fatalf("round %d: the client took %s to notice its server's death", f.rounds, r.took-delay)
				}
				// Either the run stops with a message, or the items it
				// could not finish fail naming the lost server.
				out := strings.ToLower(r.stdout + r.stderr)
				if !strings.Contains(out, "connection") && !namesLostServer(out, f.e.alias) {
					t.Fatalf("round %d: the client said nothing clear when its server died: %s", f.rounds, r)
				}
			} else {
				f.kills++
			}
		case r.code == 0:
			f.est = r.took
		default:
			t.Fatalf("round %d: unkilled run failed: %s", f.rounds, r)
		}
		cur1, _ := snapshot(t, f.dir1)
		cur2, _ := snapshot(t, f.dir2)
		checkTorn(t, 1, cur1, pre1, final)
		checkTorn(t, 2, cur2, pre2, final)
		f.settle(final)
		synced, _ = snapshot(t, f.dir1)
	}
	t.Logf("%s: %d rounds, %d runs killed and recovered from", t.Name(), rounds, f.kills)
}

func TestKillClientLocal(t *testing.T) {
	e := newEnv(t)
	f := newKillFixture(t, e, *flagFiles)
	f.killRounds(*flagKills, killClient)
}

func TestKillClientRemote(t *testing.T) {
	e := newEnv(t).withRemote(sshdtest.Config{})
	f := newKillFixture(t, e, *flagFiles)
	f.killRounds(max(2, *flagKills/2), killClient)
}

// TestKillServeInPut: concord serve kills itself right after writing the
// 40th temporary file of a run. The kill runs go through a second sshd
// whose sessions carry CONCORD_TEST_KILL_AT and share the first one's
// remote HOME (so the same archive and installed concord); the runs that
// must finish go through the first.
func TestKillServeInPut(t *testing.T) {
	e := newEnv(t).withRemote(sshdtest.Config{})
	k := sshdtest.StartConfig(t, sshdtest.Config{Env: map[string]string{"HOME": e.srv.RemoteHome, "CONCORD_TEST_KILL_AT": "put:40"}})
	e.srv.WriteHome(t, e.home, e.alias, k.ConfigBlock("torture-kill"))
	f := newKillFixture(t, e, *flagFiles)
	f.killR2 = "ssh://torture-kill" + f.dir2
	f.killRounds(max(2, *flagKills/4), killServeHook)
	if f.kills == 0 {
		t.Fatal("concord serve never killed itself: does CONCORD_TEST_KILL_AT reach it?")
	}
}

func TestKillServe(t *testing.T) {
	e := newEnv(t).withRemote(sshdtest.Config{})
	f := newKillFixture(t, e, *flagFiles)
	f.killRounds(max(2, *flagKills/2), killServe)
	if f.kills == 0 {
		// Each round kills the server at a random moment of the run; a
		// test that never found one to kill proved nothing.
		t.Fatalf("no concord serve was killed in %d rounds: does serveProcs find the server?", f.rounds)
	}
}

func TestNamesLostServer(t *testing.T) {
	for _, tt := range []struct {
		out  string
		want bool
	}{
		{"read from the remote: concord serve on torture (127.0.0.1:4) was killed by signal kill", true},
		{"concord serve (/usr/local/bin/concord in the remote path) on torture (127.0.0.1:4) ended", true},
		{"concord serve on elsewhere (127.0.0.1:4) ended", false},
		{"context canceled", false},
	} {
		if got := namesLostServer(tt.out, "torture"); got != tt.want {
			t.Errorf("namesLostServer(%q) = %v, want %v", tt.out, got, tt.want)
		}
	}
}

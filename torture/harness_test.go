package torture

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/internal/sshdtest"
)

var (
	flagKills = flag.Int("kills", 12, "kill rounds of the local kill test (the remote ones run half as many)")
	flagSoak  = flag.Int("soak", 20, "rounds of the soak tests")
	flagSeed  = flag.Uint64("seed", 0, "random seed (0: from the clock; the seed is logged)")
	flagFiles = flag.Int("files", 2000, "files in the kill tests' tree")
)

// concordBin is the concord binary built for this test run.
var concordBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "torture-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "torture:", err)
		os.Exit(1)
	}
	// Readable by everyone: the permission tests run it as nobody.
	os.Chmod(dir, 0o755)
	concordBin = filepath.Join(dir, "concord")
	build := exec.Command("go", "build", "-o", concordBin, "github.com/concord-sync/concord/cmd/concord")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "torture: build concord:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// seed returns the random seed for a test, logging it so a failure can be
// replayed with -seed.
func seed(t *testing.T) *rand.Rand {
	s := *flagSeed
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -args -seed=%d)", s, s)
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// env is a client environment: its own HOME (with ~/.ssh when a remote is
// set up), XDG_STATE_HOME and XDG_CONFIG_HOME.
type env struct {
	t     *testing.T
	dir   string
	home  string
	state string
	extra []string
	srv   *sshdtest.Server
	alias string
	// wrap, if set, runs concord through this command (setpriv ...).
	wrap []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, home: filepath.Join(dir, "home"), state: filepath.Join(dir, "state")}
	for _, d := range []string{e.home, e.state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// localAndRemote runs f twice, as the subtests "local" (two local roots)
// and "remote" (the second root reached through a throwaway sshd).
func localAndRemote(t *testing.T, f func(t *testing.T, e *env)) {
	for _, remote := range []bool{false, true} {
		t.Run(map[bool]string{false: "local", true: "remote"}[remote], func(t *testing.T) {
			e := newEnv(t)
			if remote {
				e.withRemote(sshdtest.Config{})
			}
			f(t, e)
		})
	}
}

// withRemote starts an sshd for e and writes e's ~/.ssh for it.
func (e *env) withRemote(cfg sshdtest.Config) *env {
	e.t.Helper()
	e.srv = sshdtest.StartConfig(e.t, cfg)
	e.alias = "torture"
	e.srv.WriteHome(e.t, e.home, e.alias, "")
	return e
}

// remoteRoot returns the ssh:// root reaching the local directory dir
// through e's sshd.
func (e *env) remoteRoot(dir string) string {
	return "ssh://" + e.alias + dir
}

// remoteState is the remote concord's state directory.
func (e *env) remoteState() string {
	return filepath.Join(e.srv.RemoteHome, ".local", "state", "concord")
}

func (e *env) environ() []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.home,
		"XDG_STATE_HOME=" + e.state,
		"XDG_CONFIG_HOME=" + filepath.Join(e.dir, "config"),
		"NO_COLOR=1",
		"TMPDIR=" + os.TempDir(),
	}, e.extra...)
}

// result is what one concord run did.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
	killed         bool // ended by SIGKILL
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout:\n%s\nstderr:\n%s", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// proc is a concord run in progress.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	start          time.Time
}

// start starts concord with args and env's environment plus extra.
func (e *env) start(extra []string, args ...string) *proc {
	e.t.Helper()
	p := &proc{cmd: exec.Command(concordBin, args...)}
	if len(e.wrap) > 0 {
		p.cmd = exec.Command(e.wrap[0], append(append(e.wrap[1:], concordBin), args...)...)
	}
	p.cmd.Env = append(e.environ(), extra...)
	p.cmd.Dir = e.dir
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("start concord: %v", err)
	}
	return p
}

// wait waits for the run, killing it after limit.
func (p *proc) wait(limit time.Duration) result {
	timer := time.AfterFunc(limit, func() { p.cmd.Process.Kill() })
	err := p.cmd.Wait()
	timedOut := !timer.Stop()
	r := result{stdout: p.stdout.String(), stderr: p.stderr.String(), took: time.Since(p.start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		}
	case err != nil:
		r.code = -1
		r.stderr += "\n" + err.Error()
	}
	if timedOut {
		r.code = -1
		r.stderr += fmt.Sprintf("\n(torture: killed after %s: the run hung)", limit)
	}
	return r
}

// run runs concord to its end (at most two minutes).
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.start(nil, args...).wait(2 * time.Minute)
}

// sync runs `concord sync --batch` on the two roots with extra flags.
func (e *env) sync(r1, r2 string, flags ...string) result {
	e.t.Helper()
	return e.run(append(append([]string{"sync", "--batch"}, flags...), r1, r2)...)
}

// mustSync runs a sync and fails the test unless it exits with want.
func (e *env) mustSync(want int, r1, r2 string, flags ...string) result {
	e.t.Helper()
	r := e.sync(r1, r2, flags...)
	if r.code != want {
		e.t.Fatalf("concord sync %s %s: want exit %d, got %s", r1, r2, want, r)
	}
	return r
}

// node is one entry of a tree snapshot.
type node struct {
	kind   byte // 'f', 'd', 'l', or 'o' for other types
	perm   fs.FileMode
	sum    string // file contents' hash
	target string // symlink target
}

func (n node) String() string {
	switch n.kind {
	case 'f':
		return fmt.Sprintf("file %v %.12s", n.perm, n.sum)
	case 'l':
		return "link -> " + strconv.Quote(n.target)
	case 'd':
		return fmt.Sprintf("dir %v", n.perm)
	}
	return "other"
}

// tree is a snapshot: relative path → node.
type tree map[string]node

// hasher hashes file contents, remembering sums by stat data so that
// snapshots of big trees stay cheap.
type hasher struct {
	mu    sync.Mutex
	cache map[string]statKey
}

type statKey struct {
	ino, size, mtime, ctime int64
	sum                     string
}

var sums = &hasher{cache: map[string]statKey{}}

func (h *hasher) sum(path string, st *syscall.Stat_t) (string, error) {
	k := statKey{int64(st.Ino), st.Size, st.Mtim.Nano(), st.Ctim.Nano(), ""}
	h.mu.Lock()
	c, ok := h.cache[path]
	h.mu.Unlock()
	if ok && c.ino == k.ino && c.size == k.size && c.mtime == k.mtime && c.ctime == k.ctime {
		return c.sum, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	k.sum = sumOf(b)
	h.mu.Lock()
	h.cache[path] = k
	h.mu.Unlock()
	return k.sum, nil
}

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:16])
}

// isTemp reports whether name is a concord temporary file (a user's file
// that merely starts the same way is not).
func isTemp(name string) bool { return scan.IsTemp(name) }

// snapshot walks root (not following symlinks) and returns its entries and
// the concord temporary files found in it.
func snapshot(t testing.TB, root string) (tree, []string) {
	t.Helper()
	out := tree{}
	var temps []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			// Unreadable entries are described by what Lstat says.
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if p == root {
			return nil
		}
		rel := p[len(root)+1:]
		if isTemp(d.Name()) {
			temps = append(temps, rel)
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return nil // gone meanwhile
		}
		n := node{perm: fs.FileMode(st.Mode & 0o7777)}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			n.kind = 'f'
			s, err := sums.sum(p, &st)
			if err != nil {
				n.sum = "unreadable: " + err.Error()
			}
			if err == nil {
				n.sum = s
			}
		case syscall.S_IFDIR:
			n.kind = 'd'
		case syscall.S_IFLNK:
			n.kind = 'l'
			n.perm = 0
			n.target, _ = os.Readlink(p)
		default:
			n.kind = 'o'
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return out, temps
}

// diffTrees lists the paths on which a and b differ (at most max of them).
func diffTrees(a, b tree, max int) []string {
	var out []string
	for p, na := range a {
		nb, ok := b[p]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%q only on side 1 (%v)", p, na))
		case na != nb:
			out = append(out, fmt.Sprintf("%q: %v vs %v", p, na, nb))
		}
	}
	for p, nb := range b {
		if _, ok := a[p]; !ok {
			out = append(out, fmt.Sprintf("%q only on side 2 (%v)", p, nb))
		}
	}
	sort.Strings(out)
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("... and %d more", len(out)-max))
	}
	return out
}

// assertSame fails unless the trees at r1 and r2 are identical and hold
// no temporary file.
func assertSame(t testing.TB, r1, r2 string) tree {
	t.Helper()
	a, ta := snapshot(t, r1)
	b, tb := snapshot(t, r2)
	if len(ta)+len(tb) > 0 {
		t.Fatalf("temporary files left: %q %q", ta, tb)
	}
	if d := diffTrees(a, b, 10); len(d) > 0 {
		t.Fatalf("replicas differ:\n%s", strings.Join(d, "\n"))
	}
	return a
}

// gen makes file contents: deterministic for (name, version), size bytes.
func gen(name string, version, size int) []byte {
	seed := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d", name, version)))
	var s [32]byte
	copy(s[:], seed[:])
	r := rand.NewChaCha8(s)
	b := make([]byte, size)
	r.Read(b)
	head := fmt.Sprintf("%s v%d\n", name, version)
	copy(b, head)
	return b
}

// writeFile writes b at root/rel, creating parent directories.
func writeFile(t testing.TB, root, rel string, b []byte) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// reportFile is the part of a --report FILE.json the tests read.
type reportFile struct {
	Run struct {
		ExitCode  int `json:"exit_code"`
		Conflicts int `json:"conflicts"`
		Failed    int `json:"failed"`
	} `json:"run"`
	Items []struct {
		Path    string  `json:"path"`
		PathB64 *string `json:"path_b64"`
		Status  string  `json:"status"`
		Action  string  `json:"action"`
		Reason  string  `json:"reason"`
	} `json:"items"`
}

func readReport(t testing.TB, file string) *reportFile {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	var r reportFile
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("decode report %s: %v", file, err)
	}
	return &r
}

// processes returns the pids of processes whose command line contains
// every one of words (read from /proc).
func processes(words ...string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cl := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		ok := len(cl) > 0
		for _, w := range words {
			if !strings.Contains(cl, w) {
				ok = false
			}
		}
		if ok {
			pids = append(pids, pid)
		}
	}
	return pids
}

// serveProcs returns the pids of the remote `concord serve` processes of
// e's sshd (the binary the bootstrap installed under its remote home).
func (e *env) serveProcs() []int {
	return processes(filepath.Join(e.srv.RemoteHome, ".cache", "concord"), " serve ")
}

// waitNoServe waits until no remote concord serve of e runs (a killed
// client's server notices the lost connection and exits, releasing its
// lock).
func (e *env) waitNoServe(t testing.TB, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for len(e.serveProcs()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("concord serve still running %s after its client died: pids %v", limit, e.serveProcs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether the process pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// sshdPid returns the pid of e's listening sshd.
func (e *env) sshdPid(t testing.TB) int {
	b, err := os.ReadFile(filepath.Join(e.srv.Dir, "sshd.pid"))
	if err != nil {
		t.Fatalf("sshd pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("sshd pid: %v", err)
	}
	return pid
}

// archives returns the archive files in a state directory.
func archives(t testing.TB, stateDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(stateDir, "concord", "ar-*.db"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

package archive

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// lockHolderEnv, when set, makes the test binary a helper process that
// holds the flock of the lock file it names (see holdFlock).
const lockHolderEnv = "CONCORD_TEST_LOCK_HOLDER"

// TestMain runs the tests, or, with lockHolderEnv set, the helper process
// of holdFlock: it takes the flock of that file (without writing to it),
// says "locked" on its standard output and holds the flock until its
// standard input ends.
func TestMain(m *testing.M) {
	path := os.Getenv(lockHolderEnv)
	if path == "" {
		os.Exit(m.Run())
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, "flock %s: %v\n", path, err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// holdFlock starts a helper process that holds the flock of the lock file
// at path until the test ends.
func holdFlock(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the helper process: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper process did not take the flock of %s: %q, %v", path, line, err)
	}
}

// liveChild starts a process unrelated to concord (a sleep) that runs until
// the test ends, and returns its pid.
func liveChild(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// TestAcquireLockFlockDecides checks that on this host the flock, not the
// pid in the file, says whether a lock is held: a lock file naming a live
// process that is not a concord run (as when its pid was reused after a
// reboot) is taken over when nobody holds its flock, and a lock whose
// flock another process holds is refused whatever pid the file names.
func TestAcquireLockFlockDecides(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pid     func(t *testing.T) int
		flocked bool // another process holds the flock
	}{
		{"live parent, flock free", func(*testing.T) int { return os.Getppid() }, false},
		{"live child, flock free", liveChild, false},
		{"dead pid, flock free", func(*testing.T) int { return deadPid }, false},
		{"live child, flock held", liveChild, true},
		{"dead pid, flock held", func(*testing.T) int { return deadPid }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := tt.pid(t)
			if pid != deadPid && !alive(pid) {
				t.Fatalf("process %d should be alive", pid)
			}
			path := filepath.Join(t.TempDir(), "ar.lock")
			existing := fmt.Sprintf("%d %s\n", pid, host)
			if err := os.WriteFile(path, []byte(existing), 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.flocked {
				holdFlock(t, path)
			}
			l, err := AcquireLock(path)
			if !tt.flocked {
				if err != nil {
					t.Fatalf("a lock whose flock is free must be taken over: %v", err)
				}
				defer l.Release()
				b, _ := os.ReadFile(path)
				if want := fmt.Sprintf("%d %s\n", os.Getpid(), host); string(b) != want {
					t.Errorf("lock file holds %q after the takeover, want %q", b, want)
				}
				return
			}
			if err == nil {
				l.Release()
				t.Fatal("AcquireLock took a lock whose flock another process holds")
			}
			if !errors.Is(err, ErrLockHeld) {
				t.Fatalf("AcquireLock = %v; want an error wrapping ErrLockHeld", err)
			}
			for _, m := range []string{strconv.Itoa(pid), "this host", "wait for it", "remove the lock file " + path} {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not say %q", err, m)
				}
			}
			if b, _ := os.ReadFile(path); string(b) != existing {
				t.Errorf("a refused AcquireLock changed the lock file to %q", b)
			}
		})
	}
}

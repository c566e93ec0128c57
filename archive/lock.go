package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Lock is a held pair lock: a file holding the owner's pid and host name,
// on which the owner also holds an flock(2) for as long as it runs. The
// flock makes taking the lock (and taking over a stale one) atomic between
// processes; the pid and host in the file name the holder in messages and
// let a lock written by a process that no longer runs (same host) be taken
// over.
type Lock struct {
	path string
	f    *os.File
}

// ErrLockHeld is wrapped by AcquireLock when another live run holds it.
var ErrLockHeld = errors.New("lock held")

// AcquireLock takes the lock at path.
func AcquireLock(path string) (*Lock, error) {
	host, _ := os.Hostname()
	me := fmt.Sprintf("%d %s\n", os.Getpid(), host)
	for attempt := 0; attempt < 5; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create lock %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			b, _ := os.ReadFile(path)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, heldErr(path, string(b), host)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The file may have been released and removed between our open
		// and our flock: then we hold a lock on a name nobody sees.
		var a, b unix.Stat_t
		if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil || a.Ino != b.Ino || a.Dev != b.Dev {
			f.Close()
			continue
		}
		content, err := io.ReadAll(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read lock %s: %w", path, err)
		}
		if len(strings.TrimSpace(string(content))) > 0 {
			pid, holder, ok := parseLock(string(content))
			if !ok || holder != host || alive(pid) {
				f.Close()
				return nil, heldErr(path, string(content), host)
			}
			// Stale: its process is gone. Take it over.
		}
		if err := writeLock(f, me); err != nil {
			f.Close()
			return nil, fmt.Errorf("write lock %s: %w", path, err)
		}
		return &Lock{path: path, f: f}, nil
	}
	return nil, fmt.Errorf("%w: lock file %s keeps changing; another run is starting", ErrLockHeld, path)
}

func writeLock(f *os.File, me string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(me), 0); err != nil {
		return err
	}
	return f.Sync()
}

// heldErr says who holds the lock at path, from its contents.
func heldErr(path, content, host string) error {
	pid, holder, ok := parseLock(content)
	switch {
	case !ok && strings.TrimSpace(content) == "":
		return fmt.Errorf("%w by another run that is just starting (lock file %s)", ErrLockHeld, path)
	case !ok:
		return fmt.Errorf("%w: lock file %s is unreadable (%q); if no concord is running, remove it", ErrLockHeld, path, strings.TrimSpace(content))
	case holder != host:
		return fmt.Errorf("%w by process %d on host %s (lock file %s); if that run is gone, remove the file", ErrLockHeld, pid, holder, path)
	}
	return fmt.Errorf("%w by process %d on this host (%s); wait for it to finish (lock file %s)", ErrLockHeld, pid, holder, path)
}

func parseLock(s string) (int, string, bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, "", false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return 0, "", false
	}
	return pid, f[1], true
}

// alive reports whether process pid runs. A zombie (a process that has
// exited but that nobody has reaped yet, as happens to an orphaned
// `concord serve` under a container init that does not reap) is dead: it
// can hold no lock.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return !Zombie(pid)
}

// ProcessAlive reports whether process pid runs on this host (a zombie
// does not).
func ProcessAlive(pid int) bool { return alive(pid) }

// Zombie reports whether /proc says pid has exited and awaits its reaping
// (false where /proc is unavailable).
func Zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself hold parentheses and spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// Release removes the lock file and drops the flock. It is safe to call on
// nil and twice.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	cerr := l.f.Close()
	l.f = nil
	return errors.Join(err, cerr)
}

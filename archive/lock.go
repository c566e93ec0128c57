package archive

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Lock is a held pair lock: a file holding the owner's pid and host name,
// created exclusively. A lock whose process is dead (same host) is stale and
// is taken over.
type Lock struct {
	path string
}

// ErrLockHeld is wrapped by AcquireLock when another live run holds it.
var ErrLockHeld = errors.New("lock held")

// AcquireLock takes the lock at path.
func AcquireLock(path string) (*Lock, error) {
	host, _ := os.Hostname()
	me := fmt.Sprintf("%d %s\n", os.Getpid(), host)
	for attempt := 0; attempt < 3; attempt++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, werr := f.WriteString(me)
			cerr := f.Close()
			if werr != nil || cerr != nil {
				os.Remove(path)
				return nil, fmt.Errorf("write lock %s: %w", path, errors.Join(werr, cerr))
			}
			return &Lock{path: path}, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create lock %s: %w", path, err)
		}
		b, rerr := os.ReadFile(path)
		if errors.Is(rerr, os.ErrNotExist) {
			continue // released meanwhile
		}
		pid, holder, ok := parseLock(string(b))
		if ok && holder == host && !alive(pid) {
			// Stale: its process is gone. Take it over.
			os.Remove(path)
			continue
		}
		if !ok {
			return nil, fmt.Errorf("%w: lock file %s is unreadable (%q); if no concord is running, remove it", ErrLockHeld, path, strings.TrimSpace(string(b)))
		}
		if holder != host {
			return nil, fmt.Errorf("%w by process %d on host %s (lock file %s); if that run is gone, remove the file", ErrLockHeld, pid, holder, path)
		}
		return nil, fmt.Errorf("%w by process %d on this host (%s); wait for it to finish (lock file %s)", ErrLockHeld, pid, holder, path)
	}
	return nil, fmt.Errorf("%w: lock file %s keeps changing; another run is starting", ErrLockHeld, path)
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
	return !zombie(pid)
}

// zombie reports whether /proc says pid has exited and awaits its reaping
// (false where /proc is unavailable).
func zombie(pid int) bool {
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

// Release removes the lock file. It is safe to call on nil and twice.
func (l *Lock) Release() error {
	if l == nil || l.path == "" {
		return nil
	}
	err := os.Remove(l.path)
	l.path = ""
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

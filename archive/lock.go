package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is a held pair lock: a file holding the owner's pid and host name,
// on which the owner also holds an flock(2) for as long as it runs. The
// flock decides who holds the lock on this host and makes taking it (and
// taking over a stale one) atomic between processes; the pid and host in
// the file name the holder in messages, and the host tells a lock of this
// host, whose flock can be trusted, from one of another host, whose flock
// cannot.
type Lock struct {
	path string
	f    *os.File
}

// ErrLockHeld is wrapped by AcquireLock when another live run holds it.
var ErrLockHeld = errors.New("lock held")

// AcquireLock takes the lock at path.
//
// A lock whose flock is held is held: its holder is a live concord (the
// descriptor is not inherited across exec). A lock whose flock is free and
// whose file names this host is stale and taken over, whether or not the
// process it names is alive: a concord that runs holds the flock for its
// whole run, so the named process has exited (a crash, a kill -9, a reboot)
// and its pid, if alive, now belongs to an unrelated process, as is common
// after a reboot, when the same services start again with the same pids.
// The pid is not consulted at all, so a zombie holder (exited, not reaped)
// is stale too.
//
// A lock naming another host is never taken over: its file may lie on a
// file system shared between hosts, where an flock taken on one host need
// not be seen on another (NFS mounted with nolock or local_lock, some FUSE
// file systems), so a free flock proves nothing about a run there, and a
// pid of another host cannot be checked from here.
//
// Older versions: every concord since the lock became an flock holds it in
// the same way and writes the same "PID HOST" line, so a lock file left by
// one of them (a crash before an upgrade) is taken over like our own.
// Development builds from before that (never released) created the file
// exclusively and held no flock; a run of such a build still going on would
// be taken over. Keeping the pid rule for files that lack some marker
// would not help: no lock file written so far carries one, so every lock
// left behind with a reused pid would stay stuck, which is what this rule
// fixes.
//
// File systems without flock (ENOLCK on NFS without a lock daemon,
// EOPNOTSUPP or ENOSYS on some FUSE and SMB mounts): AcquireLock fails, as
// it always has, with an error naming the file and what to do, rather than
// fall back to the pid alone. Without the flock two runs starting together
// could both find the lock free, and a reused pid could not be told from a
// live holder, so the run would be guarded by a lock that does not hold.
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
			return nil, fmt.Errorf("lock %s: %w (concord needs flock(2) in its state directory: set XDG_STATE_HOME to a directory on a local file system)", path, err)
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
			_, holder, ok := parseLock(string(content))
			if !ok || holder != host {
				f.Close()
				return nil, heldErr(path, string(content), host)
			}
			// Stale: we hold its flock, so the run that wrote it has
			// ended, whatever process now has its pid. Take it over.
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
	return fmt.Errorf("%w by process %d on this host (%s); wait for it to finish, or, if you are sure that no run of this pair is going on, remove the lock file %s", ErrLockHeld, pid, holder, path)
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

// ProcessStart returns when process pid started, as /proc tells (false
// where it cannot). /proc gives the start in clock ticks after boot and the
// boot time in whole seconds, so the result may be up to a second early,
// never late.
func ProcessStart(pid int) (time.Time, bool) {
	f := procStat(pid) // f[0] is field 3, the state; starttime is field 22
	if len(f) < 20 {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil || ticks < 0 {
		return time.Time{}, false
	}
	boot, ok := bootTime()
	if !ok {
		return time.Time{}, false
	}
	return boot.Add(time.Duration(ticks) * time.Second / userHZ), true
}

// userHZ is the unit of /proc's process times (USER_HZ, sysconf's
// _SC_CLK_TCK): 100 on every architecture Go runs Linux on.
const userHZ = 100

// bootTime returns the boot time from /proc/stat's btime line.
func bootTime() (time.Time, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}

// Zombie reports whether /proc says pid has exited and awaits its reaping
// (false where /proc is unavailable).
func Zombie(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && f[0] == "Z"
}

// procStat returns the fields of /proc/PID/stat that follow the command
// name, the state first (nil where /proc cannot tell). The command name is
// in parentheses and may itself hold parentheses and spaces, so the fields
// start after the last ')'.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
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

package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
)

var tempSeq atomic.Uint64

// tempName returns a fresh temporary file name. It carries the pid so that a
// later run can tell a dead run's leftovers from a live one's.
func tempName() string {
	b := make([]byte, 0, len(scan.TempPrefix)+32)
	b = append(b, scan.TempPrefix...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, tempSeq.Add(1), 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, unixNano()%1e6, 10)
	return string(b)
}

// pid is this process's id, asked once (os.Getpid is a system call).
var pid = os.Getpid()

// tempOwnerDead reports whether the temporary file name belongs to a process
// that no longer runs on this host.
func tempOwnerDead(name string) bool {
	rest := name[len(scan.TempPrefix):]
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	pid, err := strconv.Atoi(rest[:i])
	if err != nil || pid <= 0 {
		return true
	}
	if pid == os.Getpid() {
		return false
	}
	return !archive.ProcessAlive(pid)
}

// lstatAt returns the entry at name in dirfd (nil if absent), without hash
// or target.
func lstatAt(dirfd int, name string) (*state.Entry, *unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	e, ok := scan.EntryFromStat(&st)
	if !ok {
		return nil, &st, errSpecial
	}
	return e, &st, nil
}

// errSpecial is lstatAt's error for a FIFO, socket or device.
var errSpecial = errors.New("is a special file (FIFO, socket or device)")

// matches reports whether cur (fresh lstat data) is still what expect
// describes. Directories match by kind (their contents are checked one by
// one when they are removed); files and symlinks by full stat data.
func matches(expect, cur *state.Entry) bool {
	if expect == nil || cur == nil {
		return expect == nil && cur == nil
	}
	if expect.Kind != cur.Kind {
		return false
	}
	if cur.Kind == state.Dir {
		return true
	}
	return state.StatSame(expect, cur)
}

func pathErr(op, p string, err error) error {
	return &fs.PathError{Op: op, Path: state.Display(p), Err: err}
}

// dirWriteErr is pathErr for a write into the directory dirfd of p that
// the system refused: when that directory has no write permission for its
// owner (a read-only directory, whose mode a sync carries to the other
// side), it says so and what to do, since "permission denied" alone sends
// a person looking at the file.
func dirWriteErr(dirfd int, op, p string, err error) error {
	var st unix.Stat_t
	if !errors.Is(err, unix.EACCES) || unix.Fstat(dirfd, &st) != nil || st.Mode&0o200 != 0 {
		return pathErr(op, p, err)
	}
	dir := state.Parent(p)
	if dir == "" {
		dir = "."
	}
	return fmt.Errorf("%w: its directory %s is read-only (mode %04o): make it writable (chmod u+w) for changes to reach it", pathErr(op, p, err), state.Display(dir), st.Mode&0o7777)
}

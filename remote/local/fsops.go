package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
)

var tempSeq atomic.Uint64

// tempName returns a fresh temporary file name (see scan.TempName). It
// carries the pid so that a later run can tell a dead run's leftovers from a
// live one's.
func tempName() string {
	return scan.TempName(pid, tempSeq.Add(1), unixNano())
}

// pid is this process's id, asked once (os.Getpid is a system call).
var pid = os.Getpid()

// tempOwnerDead reports whether name, in the directory dirfd, is one of
// concord's temporary files (scan.IsTemp) written by a process that no
// longer runs on this host, so a leftover to remove. It is false for any
// other name, however much it looks like one: such a file is a user's.
//
// A pid that runs may have been reused since the file was written (after a
// reboot, or by this very process): a process that started after the file
// last changed did not write it. The change time is the one to compare: a
// temporary file takes its modification time from its source, and nothing
// sets a change time back.
func tempOwnerDead(dirfd int, name string) bool {
	owner, ok := scan.TempOwner(name)
	if !ok {
		return false
	}
	if owner != pid && !archive.ProcessAlive(owner) {
		return true
	}
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	return startedAfter(owner, time.Unix(st.Ctim.Unix()))
}

// startedAfter reports whether process pid started clearly (by
// tempReuseSlack) after t, so that it cannot have written a file that last
// changed at t.
func startedAfter(pid int, t time.Time) bool {
	start, ok := archive.ProcessStart(pid)
	return ok && start.After(t.Add(tempReuseSlack))
}

// tempReuseSlack is how much later than a temporary file's change time its
// owner's pid must have started for the file to count as another
// process's. It is generous because the change time comes from the file
// server's clock on a network file system: should a skewed clock make a
// live run's file look like another's, the run that loses it fails that
// item (nothing is lost, the next run redoes it). A reused pid typically
// follows a reboot, hours later.
var tempReuseSlack = 10 * time.Minute

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

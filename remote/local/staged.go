package local

import (
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/internal/fdlimit"
)

// staged is a file written and flushed-to-be, waiting to be installed at
// its path: either a named temporary file (.concord-tmp-…) in the
// destination directory, renamed into place, or, for a file that is new
// at its path, an anonymous one (open(2) with O_TMPFILE) held open and
// given its name with linkat(2) once flushed.
//
// Why the anonymous file: it costs the file system one directory entry
// (the final one) instead of three changes (create the temporary name,
// rename it, drop it), which measured 20–35% less time to create 20,000
// files here, the heart of a first sync; and a run killed mid-write leaves
// nothing behind, not even a temporary file for the next run to clean up.
// linkat refuses an existing name, which is the re-check (guarantee 1) a
// new file needs, as renameat2's RENAME_NOREPLACE is for a named one.
type staged struct {
	tmp string // the named temporary file; "" for an anonymous one
	fd  int    // the anonymous file, open; -1 for a named one
	// flushed: the file was flushed on its own (a large one, see
	// flushAlone), so it needs no share of a group flush.
	flushed bool
	// sig is the encoded delta signature of the contents, when a delta
	// wrote them and it could be derived (see delta.Resigner).
	sig []byte
}

// flushAlone is the size from which a file is flushed on its own with
// fsync(2) rather than by a grouped syncfs(2): syncfs writes out every
// dirty file of the file system, other programs' too, which a large file
// need not wait for (measured: 6.8 s instead of 2.5–4 s for the 1 GiB delta
// right after other tools had left 2 GiB unflushed), while its own fsync
// finds little left thanks to the early write-back.
const flushAlone = 8 << 20

// anonymous reports whether s is an O_TMPFILE file.
func (s staged) anonymous() bool { return s.fd >= 0 }

// discard removes a staged file that will not be installed.
func (s staged) discard(dirfd int) {
	if s.anonymous() {
		s.close() // the last reference: the kernel frees it
		return
	}
	unix.Unlinkat(dirfd, s.tmp, 0)
}

// close closes an anonymous file (linked or to be freed).
func (s staged) close() {
	unix.Close(s.fd)
	anonOpen.Add(-1)
}

// link gives the anonymous file s its name in dirfd; it fails with EEXIST
// when something is there. linkat with AT_EMPTY_PATH would need a
// capability, so it goes through /proc/self/fd, as open(2) suggests.
func (s staged) link(dirfd int, name string) error {
	if !noEmptyPath.Load() {
		err := unix.Linkat(s.fd, "", dirfd, name, unix.AT_EMPTY_PATH)
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
			return err
		}
		// Without CAP_DAC_READ_SEARCH (older kernels ask for it even
		// for a file the caller made) the kernel says ENOENT; or the
		// directory is gone, which the /proc route will say again.
		if err := linkProc(s.fd, dirfd, name); err != nil {
			return err
		}
		noEmptyPath.Store(true)
		return nil
	}
	return linkProc(s.fd, dirfd, name)
}

// linkProc links the anonymous file fd as name through /proc/self/fd, which
// needs no privilege but costs a lookup through /proc.
func linkProc(fd, dirfd int, name string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
}

// noEmptyPath is set once linkat(2) with AT_EMPTY_PATH was refused and
// /proc worked: this process lacks the privilege, so later links go
// through /proc at once. The empty path saves a /proc lookup per file,
// about 3 µs (a tenth of a small file's cost at the destination).
var noEmptyPath atomic.Bool

// noAnonymous is set once anonymous files turned out not to work here (a
// kernel or file system without O_TMPFILE, no /proc): named temporary files
// are used from then on.
var noAnonymous atomic.Bool

// anonOpen counts the anonymous files open, each held until its flush;
// beyond anonMax (a quarter of what the open-files limit allows, at most
// 4,096) files take named temporary files, which are closed before their
// flush, so that many files in flight never exhaust the descriptors.
var (
	anonOpen atomic.Int64
	anonMax  int64 = 4096
)

func init() {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		noAnonymous.Store(true)
	}
	anonMax = min(fdlimit.Available()/4, 4096)
}

// openAnonymous opens an anonymous file in dirfd with permissions mode
// (less the umask), or returns -1 when named temporary files must do (and
// an error only for a failure that a named file would meet as well). No
// one can open it by a name before it is linked, so it may carry its final
// permissions from the start.
func openAnonymous(dirfd int, mode uint32) (int, error) {
	if noAnonymous.Load() {
		return -1, nil
	}
	if anonOpen.Add(1) > anonMax {
		anonOpen.Add(-1)
		return -1, nil
	}
	fd, err := unix.Openat(dirfd, ".", unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, mode)
	if err != nil {
		anonOpen.Add(-1)
	}
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT):
		// No O_TMPFILE here (EISDIR: a kernel that takes it for
		// O_DIRECTORY; EOPNOTSUPP: the file system lacks it).
		noAnonymous.Store(true)
		return -1, nil
	case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
		// Anonymous files stay open until their flush: when descriptors
		// run short, this one takes a named file, closed before it.
		return -1, nil
	}
	return -1, err
}

// futimens sets the access and modification times of the open file fd
// (utimensat(2) with a null path, which x/sys/unix does not offer).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

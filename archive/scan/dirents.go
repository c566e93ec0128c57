package scan

import (
	"bytes"
	"errors"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// direntBuf is the size of a worker's getdents buffer.
const direntBuf = 32 << 10

// errDirent reports a directory record the kernel should never produce.
var errDirent = errors.New("malformed directory entry from getdents")

// dirScratch is a scan worker's reusable space for listing directories.
type dirScratch struct {
	buf   []byte // getdents records
	arena []byte // the names, end to end
	ends  []int
	names []string
	nb    []byte // a name to stat, NUL-terminated (lstatAt)
}

func newDirScratch() *dirScratch { return &dirScratch{buf: make([]byte, direntBuf)} }

// readNames lists the directory open as fd, sorted by name, without "."
// and "..". The slice is sc's, valid until its next use; the names share
// one string of their own.
//
// It reads the kernel's records itself rather than through
// os.File.Readdirnames, which took a dup of the descriptor, a new 8 KiB
// buffer and a string per name for every directory: 7.5 MB for the 1,000
// directories of a 100,000-file tree, a sixth of what a no-change scan
// allocated.
func readNames(fd int, sc *dirScratch) ([]string, error) {
	arena, ends := sc.arena[:0], sc.ends[:0]
	for {
		n, err := unix.Getdents(fd, sc.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		if arena, ends, err = parseDirents(sc.buf[:n], arena, ends); err != nil {
			return nil, err
		}
	}
	sc.arena, sc.ends = arena, ends
	all := string(arena)
	names := sc.names[:0]
	start := 0
	for _, end := range ends {
		names = append(names, all[start:end])
		start = end
	}
	slices.Sort(names)
	sc.names = names
	return names, nil
}

// parseDirents appends the names of the linux_dirent64 records in b to
// arena, and the end of each to ends: u64 inode, s64 offset, u16 record
// length, u8 type, then the NUL-terminated name, the same on every 64-bit
// and 32-bit Linux.
func parseDirents(b, arena []byte, ends []int) ([]byte, []int, error) {
	const nameOff = 19
	for len(b) > 0 {
		if len(b) < nameOff+1 {
			return arena, ends, errDirent
		}
		reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
		if reclen < nameOff+1 || reclen > len(b) {
			return arena, ends, errDirent
		}
		name := b[nameOff:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		b = b[reclen:]
		if len(name) == 0 || string(name) == "." || string(name) == ".." {
			continue
		}
		arena = append(arena, name...)
		ends = append(ends, len(arena))
	}
	return arena, ends, nil
}

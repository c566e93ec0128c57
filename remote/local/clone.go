package local

import (
	"errors"
	"fmt"
	"io"

	"github.com/concord-sync/concord/archive/scan"
	"golang.org/x/sys/unix"
)

// cloneOut is what a delta is rebuilt into: the temporary file (through
// earlyWriteback) and the hash of its contents, counting the bytes. Where
// the file system can share blocks between files (XFS, btrfs, and others
// with FICLONERANGE) it is a delta.Cloner: ranges of the basis that stay
// in place are cloned into the new file rather than read and written, so
// that a 1 GiB file with 1,000 bytes changed costs neither a copy of the
// rest nor its write-back to disk, and no disk space beyond the change.
//
// The hash still covers every byte: a cloned range is read from the basis
// (where it is most likely in the page cache; the new file's clone of it
// is not) right after the clone. Should the basis be written to in
// between, its change time moves, and the re-check before the rename
// (guarantee 1) refuses the new file; so the hash checked against the
// sender's is that of the file installed.
type cloneOut struct {
	f      *earlyWriteback
	h      hashWriter
	basis  int   // descriptor of the basis
	n      int64 // bytes of the new file so far
	align  int64 // alignment of clones; 0: no cloning
	cloned int64 // bytes cloned
}

// cloneDisabled turns cloning off (tests compare with and without).
var cloneDisabled = false

// newCloneOut returns the output for a delta rebuilt into f (opened for
// writing) from the basis open at basis, hashing into h.
func newCloneOut(f *earlyWriteback, h hashWriter, basis int) *cloneOut {
	c := &cloneOut{f: f, h: h, basis: basis}
	var st unix.Stat_t
	// Clones must be aligned to the file system's block, which the
	// preferred I/O size is a multiple of. Whether the file system can
	// clone at all shows at the first attempt.
	if !cloneDisabled && unix.Fstat(int(f.f), &st) == nil && st.Blksize >= 512 && st.Blksize&(st.Blksize-1) == 0 {
		c.align = int64(st.Blksize)
	}
	return c
}

// Write writes b to the file and the hash.
func (c *cloneOut) Write(b []byte) (int, error) {
	n, err := c.f.Write(b)
	c.h.Write(b[:n])
	c.n += int64(n)
	return n, err
}

// fillingOut is a cloneOut whose hash runs on a goroutine of its own (a
// large file, see newHashWriter). It is a delta.Filler: the basis is read
// straight into one of the hash's buffers, written to the file from there
// and handed over, rather than read into the Patcher's buffer and copied
// into the hash's (that copy was a tenth of the destination's CPU time for
// a 1 GiB file changed in one place).
type fillingOut struct {
	*cloneOut
	p *pipeHasher
}

// Fill implements delta.Filler.
func (o fillingOut) Fill(read func(b []byte) (int, error)) (int, error) {
	var werr error
	k, err := o.p.fill(func(b []byte) (int, error) {
		k, err := read(b)
		if err != nil {
			return 0, err
		}
		k, werr = o.f.Write(b[:k])
		return k, nil
	})
	o.n += int64(k)
	if err == nil {
		err = werr
	}
	return k, err
}

// CloneAlign implements delta.Cloner.
func (c *cloneOut) CloneAlign() int64 { return c.align }

// Clone implements delta.Cloner: it clones the n bytes of the basis at off
// to the same offset of the new file, which ends there, and hashes them. A
// file system that cannot clone turns cloning off for the rest of the file
// (false); a full disk or an I/O error is an error.
func (c *cloneOut) Clone(off, n int64) (bool, error) {
	fd := int(c.f.f)
	err := unix.IoctlFileCloneRange(fd, &unix.FileCloneRange{
		Src_fd:      int64(c.basis),
		Src_offset:  uint64(off),
		Src_length:  uint64(n),
		Dest_offset: uint64(off),
	})
	switch {
	case err == nil:
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT), errors.Is(err, unix.EIO):
		return false, fmt.Errorf("%w: %w", errWrite, err)
	default:
		// EOPNOTSUPP (ext4, tmpfs), EXDEV, EINVAL (an alignment the
		// file system wants otherwise), ENOTTY: copy instead.
		c.align = 0
		return false, nil
	}
	// Writes go on after the clone.
	if _, err := unix.Seek(fd, off+n, io.SeekStart); err != nil {
		return false, fmt.Errorf("%w: seek after clone: %w", errWrite, err)
	}
	c.f.off += n
	c.f.started = c.f.off // nothing of it to write back
	if err := c.hashBasis(off, n); err != nil {
		return false, err
	}
	c.n += n
	c.cloned += n
	return true, nil
}

// hashBasis hands the n bytes of the basis at off, just cloned, to the
// hash.
func (c *cloneOut) hashBasis(off, n int64) error {
	f := scan.RawFile(c.basis)
	var buf []byte
	for done := int64(0); done < n; {
		want := n - done
		read := func(b []byte) (int, error) {
			return f.ReadAt(b[:min(int64(len(b)), want)], off+done)
		}
		var k int
		var err error
		if p, ok := c.h.(*pipeHasher); ok {
			k, err = p.fill(read) // straight into a buffer of the hash
		} else {
			if buf == nil {
				buf = getCopyBuf(n)
				defer putCopyBuf(buf)
			}
			k, err = read(buf)
			c.h.Write(buf[:k])
		}
		if err == io.EOF && k > 0 {
			err = nil
		}
		if err == nil && k == 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("read the %d bytes cloned from offset %d of the old version: %w", n, off, err)
		}
		done += int64(k)
	}
	return nil
}

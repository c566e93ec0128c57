package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/internal/bufpool"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

func hashString(s string) [32]byte { return blake3.Sum256([]byte(s)) }

// Apply carries out one operation on this side.
func (e *Endpoint) Apply(ctx context.Context, op remote.Op, content io.Reader) (*state.Entry, error) {
	if e.dryRun {
		return nil, fmt.Errorf("apply %s: dry run", state.Display(op.Path))
	}
	if err := state.ValidatePath(op.Path); err != nil {
		return nil, fmt.Errorf("%w: %v", remote.ErrUnsafePath, err)
	}
	if op.New == nil && op.Kind != remote.OpRemove {
		return nil, fmt.Errorf("apply %s: no new state given", state.Display(op.Path))
	}
	if op.FromStage {
		// Used up whatever happens, also when a check below fails.
		defer e.dropPrebuilt(op.Path)
	}
	// The directory, the new file and, for a delta, the old one.
	held, err := e.fds.hold(ctx, 3)
	if err != nil {
		return nil, err
	}
	defer e.fds.release(held)
	dirfd, err := e.parentDir(op)
	if err != nil {
		if op.Kind == remote.OpRemove && op.Expect == nil && errors.Is(err, remote.ErrChanged) {
			return nil, nil
		}
		return nil, err
	}
	defer unix.Close(dirfd)
	name := state.Base(op.Path)
	// A new file (nothing expected) is checked by the rename itself, which
	// refuses to replace anything (put).
	if op.Kind != remote.OpPut || op.Expect != nil {
		if err := e.recheck(dirfd, op.Path, op.Expect); err != nil {
			return nil, err
		}
	}
	switch op.Kind {
	case remote.OpPut:
		switch {
		case op.Stage:
			return nil, e.prebuild(dirfd, op, content)
		case op.FromStage:
			return e.installPrebuilt(ctx, dirfd, op, content)
		}
		return e.put(ctx, dirfd, op, content)
	case remote.OpMkdir:
		if err := e.replaceWith(ctx, dirfd, op.Path, op.Expect, func(tmp string) error {
			return unix.Mkdirat(dirfd, tmp, (op.New.Mode&state.PermMask)|0o700)
		}); err != nil {
			return nil, err
		}
		return e.installed(dirfd, op.Path, op.New)
	case remote.OpSymlink:
		if err := e.replaceWith(ctx, dirfd, op.Path, op.Expect, func(tmp string) error {
			return unix.Symlinkat(op.New.Target, dirfd, tmp)
		}); err != nil {
			return nil, err
		}
		return e.installed(dirfd, op.Path, op.New)
	case remote.OpRemove:
		if op.Expect == nil {
			return nil, nil
		}
		if err := e.removeChecked(ctx, dirfd, op.Path, op.Expect); err != nil {
			return nil, err
		}
		return nil, nil
	case remote.OpSetMeta:
		if op.Expect == nil {
			return nil, changedErr(op.Path, "it is gone")
		}
		if op.Expect.Kind != state.Symlink {
			if err := unix.Fchmodat(dirfd, name, op.New.Mode&state.PermMask, 0); err != nil {
				return nil, pathErr("chmod", op.Path, err)
			}
		}
		if op.Expect.Kind == state.File {
			ts := []unix.Timespec{unix.NsecToTimespec(op.New.MTime), unix.NsecToTimespec(op.New.MTime)}
			if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return nil, pathErr("set times of", op.Path, err)
			}
		}
		want := op.Expect.Clone()
		want.Mode = op.New.Mode
		if want.Kind == state.File {
			want.MTime = op.New.MTime
		}
		return e.installed(dirfd, op.Path, want)
	}
	return nil, fmt.Errorf("apply %s: unknown operation %d", state.Display(op.Path), op.Kind)
}

// recheck verifies that the path is still what the scan saw (guarantee 1).
func (e *Endpoint) recheck(dirfd int, p string, expect *state.Entry) error {
	expect = e.localView(p, expect)
	cur, _, err := lstatAt(dirfd, state.Base(p))
	if err != nil {
		return specialErr(p, err)
	}
	if !matches(expect, cur) {
		switch {
		case expect == nil:
			return changedErr(p, "it appeared after the scan")
		case cur == nil:
			return changedErr(p, "it was deleted after the scan")
		}
		return changedErr(p, "it was modified after the scan")
	}
	return nil
}

// localView returns what this side's last scan saw at p when it describes
// the same state as expect, so that host-local stat data (inode, ctime) are
// compared with this host's own, whoever built expect; otherwise expect.
func (e *Endpoint) localView(p string, expect *state.Entry) *state.Entry {
	if expect == nil {
		return nil
	}
	e.scanMu.Lock()
	v, scanned := e.scanned[p]
	e.scanMu.Unlock()
	if !scanned && e.db != nil {
		v, _ = e.db.Get(context.Background(), p)
	}
	if v != nil && state.Equal(v, expect) {
		return v
	}
	return expect
}

// installed returns the entry now at p with this side's stat data and the
// hash and target from want.
func (e *Endpoint) installed(dirfd int, p string, want *state.Entry) (*state.Entry, error) {
	cur, _, err := lstatAt(dirfd, state.Base(p))
	if err != nil || cur == nil {
		if err == nil {
			err = os.ErrNotExist
		}
		return nil, pathErr("stat", p, err)
	}
	cur.Hash = want.Hash
	cur.Target = want.Target
	if cur.Kind == state.Symlink {
		cur.Hash = hashString(cur.Target)
	}
	return cur, nil
}

// installedFd is installed for a file just linked into place from the
// descriptor fd: its stat data without a lookup by name.
func installedFd(fd int, p string, want *state.Entry) (*state.Entry, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, pathErr("stat", p, err)
	}
	cur, _ := scan.EntryFromStat(&st)
	if cur == nil || cur.Kind != state.File {
		return nil, pathErr("stat", p, os.ErrNotExist)
	}
	cur.Hash = want.Hash
	return cur, nil
}

// put writes a file: a temporary file in the destination directory, checked
// against the expected hash, flushed, then renamed into place.
func (e *Endpoint) put(ctx context.Context, dirfd int, op remote.Op, content io.Reader) (*state.Entry, error) {
	g := e.flusher()
	// A large file is flushed on its own (see flushAlone): a group flush
	// starting meanwhile must not wait for it to be written.
	grouped := op.New == nil || op.New.Size < flushAlone
	if grouped {
		g.begin()
	}
	st, want, err := e.writeTemp(dirfd, op, content)
	if err != nil {
		if grouped {
			g.abandon()
		}
		return nil, err
	}
	if st.flushed {
		if grouped {
			g.abandon()
		}
	} else {
		if !grouped {
			g.begin() // not reached: writeTemp wrote op.New.Size bytes
		}
		if err := g.sync(dirfd); err != nil {
			st.discard(dirfd)
			return nil, e.writeErr(op.Path, err)
		}
	}
	ent, err := e.install(ctx, dirfd, op, st, want)
	if err == nil && st.sig != nil && ent != nil {
		e.sigs.wrote(op.Path, ent, st.sig)
	}
	return ent, err
}

// hasPerm reports whether the file fd, an anonymous one created with its
// permissions perm, really has them: the umask or a default ACL of the
// directory may have taken some away. An fstat is cheaper than the chmod
// it saves for nearly every file of a first sync.
func hasPerm(fd int, anonymous bool, perm uint32) bool {
	if !anonymous || perm&^0o777 != 0 {
		return false
	}
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&state.PermMask == perm
}

// resigner returns a Resigner deriving the signature of the file a delta
// against basis (the file now at op.Path) is about to write, when this run
// handed out the signature of that very file; and whether that signature
// came from the archive.
func (e *Endpoint) resigner(basis int, op remote.Op) (*delta.Resigner, bool) {
	b, ok := e.sigs.takeBasis(op.Path)
	if !ok || op.New == nil {
		return nil, false
	}
	var st unix.Stat_t
	if unix.Fstat(basis, &st) != nil {
		return nil, false
	}
	if cur, _ := scan.EntryFromStat(&st); cur == nil || !state.StatSame(b.ent, cur) {
		return nil, false
	}
	return delta.NewResigner(b.sig, op.New.Size), b.cached
}

// PutBatch installs many files as Apply would install each (OpPut, whole
// contents given), writing them all first and then sharing one flush to
// disk before renaming each into place. Each file gets its entry or its
// error; the last error is for the batch as a whole. The wire server uses
// it for the small files a client sends in one request.
func (e *Endpoint) PutBatch(ctx context.Context, ops []remote.Op, contents [][]byte) ([]*state.Entry, []error, error) {
	if e.dryRun {
		return nil, nil, fmt.Errorf("put %d files: dry run", len(ops))
	}
	if len(contents) != len(ops) {
		return nil, nil, fmt.Errorf("put %d files with %d contents", len(ops), len(contents))
	}
	// Each file's directory (shared within the batch) and new file stay
	// open until the flush.
	parents := map[string]bool{}
	for _, op := range ops {
		parents[state.Parent(op.Path)] = true
	}
	held, err := e.fds.hold(ctx, len(parents)+len(ops))
	if err != nil {
		return nil, nil, err
	}
	defer e.fds.release(held)
	ents := make([]*state.Entry, len(ops))
	errs := make([]error, len(ops))
	dirs := map[string]int{}
	defer func() {
		for _, fd := range dirs {
			unix.Close(fd)
		}
	}()
	type written struct {
		i     int
		dirfd int
		st    staged
		want  *state.Entry
	}
	var done []written
	g := e.flusher()
	g.begin()
	for i, op := range ops {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if err := state.ValidatePath(op.Path); err != nil {
			errs[i] = fmt.Errorf("%w: %v", remote.ErrUnsafePath, err)
			continue
		}
		if op.Kind != remote.OpPut || op.Delta || op.New == nil {
			errs[i] = fmt.Errorf("put %s: only whole files can be put in a batch", state.Display(op.Path))
			continue
		}
		parent := state.Parent(op.Path)
		dirfd, ok := dirs[parent]
		if !ok {
			fd, err := e.parentDir(op)
			if err != nil {
				errs[i] = err
				continue
			}
			dirs[parent], dirfd = fd, fd
		}
		if op.Expect != nil {
			if err := e.recheck(dirfd, op.Path, op.Expect); err != nil {
				errs[i] = err
				continue
			}
		}
		st, want, err := e.writeTemp(dirfd, op, bytes.NewReader(contents[i]))
		if err != nil {
			errs[i] = err
			continue
		}
		done = append(done, written{i, dirfd, st, want})
	}
	if len(done) == 0 {
		g.abandon()
		return ents, errs, nil
	}
	if err := g.sync(done[0].dirfd); err != nil {
		for _, w := range done {
			w.st.discard(w.dirfd)
			errs[w.i] = e.writeErr(ops[w.i].Path, err)
		}
		return ents, errs, nil
	}
	for _, w := range done {
		ents[w.i], errs[w.i] = e.install(ctx, w.dirfd, ops[w.i], w.st, w.want)
	}
	return ents, errs, nil
}

// parentDir opens the directory op.Path goes into.
func (e *Endpoint) parentDir(op remote.Op) (int, error) {
	dirfd, err := e.openDir(state.Parent(op.Path))
	switch {
	case err == nil:
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
		return -1, fmt.Errorf("%w: %s: a parent directory is a symlink or not a directory", remote.ErrUnsafePath, state.Display(op.Path))
	case errors.Is(err, unix.ENOENT):
		return -1, changedErr(op.Path, "its parent directory is missing")
	default:
		// Permissions, or descriptors run out: say so, not "missing".
		return -1, pathErr("open the directory of", op.Path, err)
	}
	return dirfd, nil
}

// writeTemp writes op's new contents to a temporary file in dirfd (see
// staged: an anonymous one for a file new at its path, where possible),
// checks them (size, and hash when the source gave one), sets their
// permissions and time, and returns the staged file and the entry to
// install (with the hash of what was written). On error nothing is left
// behind.
func (e *Endpoint) writeTemp(dirfd int, op remote.Op, content io.Reader) (staged, *state.Entry, error) {
	w, err := e.fillTemp(dirfd, op, content)
	if err != nil {
		return staged{fd: -1}, nil, err
	}
	return e.finishTemp(dirfd, op, w)
}

// filled is a temporary file fillTemp wrote, open at fd.
type filled struct {
	st      staged
	fd      int
	f       *earlyWriteback
	n       int64    // bytes written
	sum     [32]byte // their hash
	sig     []byte   // their encoded delta signature, if derived
	sigKept bool     // a delta built them on a signature kept in the archive
}

// discard closes and removes the temporary file.
func (w *filled) discard(dirfd int) {
	if !w.st.anonymous() {
		w.f.Close()
	}
	w.st.discard(dirfd)
}

// fillTemp creates the temporary file for op in dirfd and writes op's
// contents (or, for a delta, the file they rebuild) to it, hashing them.
// It checks nothing against op.New. On error nothing is left behind.
func (e *Endpoint) fillTemp(dirfd int, op remote.Op, content io.Reader) (w filled, err error) {
	name := state.Base(op.Path)
	w.st.fd = -1
	fd := -1
	perm := op.New.Mode & state.PermMask
	if op.Expect == nil {
		createMode := uint32(0o600)
		if perm&^0o777 == 0 {
			createMode = perm
		}
		if fd, err = openAnonymous(dirfd, createMode); err != nil {
			return w, dirWriteErr(dirfd, "create temporary file for", op.Path, err)
		}
	}
	if fd >= 0 {
		w.st.fd = fd
	} else {
		w.st.tmp = tempName()
		fd, err = unix.Openat(dirfd, w.st.tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return filled{st: staged{fd: -1}}, dirWriteErr(dirfd, "create temporary file for", op.Path, err)
		}
	}
	w.fd = fd
	w.f = &earlyWriteback{f: scan.RawFile(fd)}
	defer func() {
		if err != nil {
			w.discard(dirfd)
		}
	}()
	size := op.New.Size
	h, stopHash := newHashWriter(size)
	defer stopHash()
	var resign *delta.Resigner
	// A large file sent whole is signed on its way to disk (on a goroutine
	// of its own), so that a delta against it next time needs no pass over
	// it.
	var signer *delta.SigWriter
	var signPipe *pipeWriter
	if e.opts.KeepSigs && !op.Delta && content != nil && size >= archive.SigMinSize {
		signer = delta.NewSigWriter(size)
		signPipe = newPipeWriter(signer)
		defer signPipe.stop()
	}
	if op.Delta {
		basis, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return w, changedErr(op.Path, "the old version for the delta is gone")
		}
		bf := scan.RawFile(basis)
		resign, w.sigKept = e.resigner(basis, op)
		out := newCloneOut(w.f, h, basis)
		var dst io.Writer = out
		if p, ok := h.(*pipeHasher); ok {
			dst = fillingOut{out, p}
		}
		err = delta.ApplyStreamResign(bf, content, dst, resign)
		bf.Close()
		w.n = out.n
		e.cloned.Add(out.cloned)
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return w, e.writeErr(op.Path, err)
		}
		if err != nil {
			return w, fmt.Errorf("apply delta to %s: %w", state.Display(op.Path), err)
		}
	} else if content != nil {
		if w.n, err = copyHashed(w.f, h, signPipe, content, size); err != nil {
			if errors.Is(err, errWrite) {
				return w, e.writeErr(op.Path, err)
			}
			return w, err
		}
	}
	e.testKill("put")
	h.Sum(w.sum[:0])
	var sig *delta.Sig
	switch {
	case resign != nil:
		sig, _ = resign.Sig()
	case signer != nil:
		signPipe.stop()
		sig, _ = signer.Sig()
	}
	if sig != nil {
		var b bytes.Buffer
		if sig.Encode(&b) == nil {
			w.sig = b.Bytes()
		}
	}
	return w, nil
}

// finishTemp checks the file fillTemp wrote against op.New (its size, and
// its hash when the source gave one), sets its permissions and time,
// flushes a large one, and returns it staged with the entry to install. On
// error the file is removed.
func (e *Endpoint) finishTemp(dirfd int, op remote.Op, w filled) (st staged, want *state.Entry, err error) {
	closed := false
	defer func() {
		switch {
		case err == nil:
		case closed:
			w.st.discard(dirfd)
		default:
			w.discard(dirfd)
		}
	}()
	st = w.st
	// A file sent unhashed (new, not read by the scan) gets the hash of
	// what was written; the reader checked the source's stat data at the
	// end, so these are the contents the scan saw.
	if w.n != op.New.Size || (!op.New.Unhashed && w.sum != op.New.Hash) {
		if w.sigKept && e.db != nil {
			// Most likely the source changed; but should the kept
			// signature be what is wrong, the next run (or the
			// engine's second try) must not build on it again.
			e.db.DropSig(context.Background(), op.Path)
		}
		if w.n != op.New.Size {
			return st, nil, changedErr(op.Path, "the source changed while it was copied")
		}
		return st, nil, mismatchErr(op.Path)
	}
	st.sig = w.sig
	want = op.New
	if want.Unhashed || want.Hash != w.sum {
		want = want.Clone()
		want.Hash, want.Unhashed = w.sum, false
	}
	perm := op.New.Mode & state.PermMask
	if !hasPerm(w.fd, st.anonymous(), perm) {
		if err := unix.Fchmod(w.fd, perm); err != nil {
			return st, nil, pathErr("chmod", op.Path, err)
		}
	}
	ts := [2]unix.Timespec{unix.NsecToTimespec(op.New.MTime), unix.NsecToTimespec(op.New.MTime)}
	if err := futimens(w.fd, &ts); err != nil {
		return st, nil, pathErr("set times of", op.Path, err)
	}
	if w.n >= flushAlone {
		if err := unix.Fsync(w.fd); err != nil {
			return st, nil, e.writeErr(op.Path, err)
		}
		st.flushed = true
	}
	if st.anonymous() {
		// It lives only while open: the descriptor is kept for the link.
		return st, want, nil
	}
	// Close before the flush: many writers waiting for one flush then
	// hold no descriptor of their own.
	closed = true
	if err := w.f.Close(); err != nil {
		return st, nil, e.writeErr(op.Path, err)
	}
	return st, want, nil
}

// install moves the flushed staged file into place at op.Path (a link for
// an anonymous file, a rename for a named one), re-checking the
// destination first (guarantee 1), and returns the entry now there. On
// error the staged file is removed.
func (e *Endpoint) install(ctx context.Context, dirfd int, op remote.Op, st staged, want *state.Entry) (ent *state.Entry, err error) {
	name := state.Base(op.Path)
	defer func() {
		switch {
		case err != nil:
			st.discard(dirfd)
		case st.anonymous():
			st.close() // linked: it lives on under its name
		}
	}()
	if op.Expect == nil {
		// Nothing was there: linkat, or renameat2 with
		// RENAME_NOREPLACE, checks that and installs in one step, with no
		// window for a file made meanwhile to be overwritten. File
		// systems without RENAME_NOREPLACE (EINVAL) get the check and
		// rename below.
		var err error
		if st.anonymous() {
			err = st.link(dirfd, name)
		} else {
			err = unix.Renameat2(dirfd, st.tmp, dirfd, name, unix.RENAME_NOREPLACE)
		}
		switch {
		case err == nil && st.anonymous():
			return installedFd(st.fd, op.Path, want)
		case err == nil:
			return e.installed(dirfd, op.Path, want)
		case errors.Is(err, unix.EEXIST):
			// Say what is there (a FIFO the scan skipped, a new file).
			if err := e.recheck(dirfd, op.Path, nil); err != nil {
				return nil, err
			}
			return nil, changedErr(op.Path, "it appeared after the scan")
		case st.anonymous():
			// /proc missing or refusing the link: later files take
			// named temporary files.
			noAnonymous.Store(true)
			return nil, pathErr("link into place", op.Path, err)
		case !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS):
			return nil, pathErr("rename into place", op.Path, err)
		}
	}
	// Check again just before replacing: the destination may have been
	// edited while the contents were in flight.
	if err := e.recheck(dirfd, op.Path, op.Expect); err != nil {
		return nil, err
	}
	if err := e.clearFor(ctx, dirfd, op.Path, op.Expect); err != nil {
		return nil, err
	}
	if err := unix.Renameat(dirfd, st.tmp, dirfd, name); err != nil {
		return nil, pathErr("rename into place", op.Path, err)
	}
	// Once renamed, the temporary name is gone: removing it on an error
	// below finds nothing.
	return e.installed(dirfd, op.Path, want)
}

// earlyWriteback writes a file and starts its write-back to disk every
// writebackEvery bytes (sync_file_range(2), SYNC_FILE_RANGE_WRITE), so that a
// large file is mostly on disk by the time the flush before its rename
// comes: the disk works while the rest is still arriving. Small files never
// reach the threshold and cost nothing more.
type earlyWriteback struct {
	f       scan.RawFile
	off     int64 // bytes written
	started int64 // bytes whose write-back was started
}

const writebackEvery = 8 << 20

func (w *earlyWriteback) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.off += int64(n)
	if err == nil && w.off-w.started >= writebackEvery {
		// Advice only: an error here shows again at the flush.
		unix.SyncFileRange(int(w.f), w.started, w.off-w.started, unix.SYNC_FILE_RANGE_WRITE)
		w.started = w.off
	}
	return n, err
}

func (w *earlyWriteback) Close() error { return w.f.Close() }

// errWrite marks a failure to write the destination (as opposed to one
// reading the contents).
var errWrite = errors.New("write")

// copyHashed copies content, of about size bytes, to f, the hash h and, if
// not nil, the signature's pipe sign, and returns the number of bytes
// copied. Where the hash runs on a goroutine of its own (a large file),
// content is read straight into one of its buffers and handed over from
// there; otherwise through a pooled buffer. A write error wraps errWrite; a
// read error is returned as the reader gave it (the source changed, the
// link dropped).
func copyHashed(f io.Writer, h hashWriter, sign *pipeWriter, content io.Reader, size int64) (int64, error) {
	var buf []byte
	p, piped := h.(*pipeHasher)
	if !piped {
		buf = getCopyBuf(size)
		defer putCopyBuf(buf)
	}
	var n int64
	var werr error
	copied := func(b []byte) {
		if _, werr = f.Write(b); werr == nil && sign != nil {
			sign.Write(b)
		}
	}
	for {
		var k int
		var rerr error
		if piped {
			k, rerr = p.fill(func(b []byte) (int, error) {
				k, err := content.Read(b)
				if k > 0 {
					copied(b[:k])
				}
				return k, err
			})
		} else if k, rerr = content.Read(buf); k > 0 {
			copied(buf[:k])
			h.Write(buf[:k])
		}
		if werr != nil {
			return n, fmt.Errorf("%w: %w", errWrite, werr)
		}
		n += int64(k)
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func (e *Endpoint) writeErr(p string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("write %s: the disk is full (%w); the old version is intact, free some space and run again", state.Display(p), err)
	}
	return pathErr("write", p, err)
}

// replaceWith creates a new object under a temporary name with create, then
// moves it into place over what expect describes.
func (e *Endpoint) replaceWith(ctx context.Context, dirfd int, p string, expect *state.Entry, create func(tmp string) error) error {
	name := state.Base(p)
	if expect == nil {
		if err := create(name); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return changedErr(p, "it appeared after the scan")
			}
			return pathErr("create", p, err)
		}
		return nil
	}
	tmp := tempName()
	if err := create(tmp); err != nil {
		return pathErr("create", p, err)
	}
	cleanup := func() {
		if unix.Unlinkat(dirfd, tmp, unix.AT_REMOVEDIR) != nil {
			unix.Unlinkat(dirfd, tmp, 0)
		}
	}
	var st unix.Stat_t
	newIsDir := unix.Fstatat(dirfd, tmp, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	if err := e.recheck(dirfd, p, expect); err != nil {
		cleanup()
		return err
	}
	if err := e.clearFor(ctx, dirfd, p, expect); err != nil {
		cleanup()
		return err
	}
	if newIsDir && expect.Kind != state.Dir {
		// rename(2) cannot put a directory over a file: remove the file
		// (checked and backed up just above) first.
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			cleanup()
			return pathErr("remove", p, err)
		}
	}
	if err := unix.Renameat(dirfd, tmp, dirfd, name); err != nil {
		cleanup()
		return pathErr("rename into place", p, err)
	}
	return nil
}

// Copy buffers are recycled: a first sync of many small files otherwise
// allocates one per file and spends its time collecting them. They come in
// powers of two from 4 KiB to 256 KiB, the smallest that holds the file and
// one byte more (the read that finds its end): a buffer is held while its
// write waits, and when writes wait on a slow disk every worker holds one.
// With one 256 KiB size for all, a first sync of 100,000 files of 4 KiB or
// less on a slow machine held 55 MiB of them (live heap 190 MiB, RSS 415
// MiB); with every write delayed 5 ms, a live heap of 127 MiB and 283 MiB
// of RSS, against 31 and 142 MiB with buffers of 8 KiB for such files.
const copyBufMax = 256 << 10

var copyBufs = bufpool.New(4<<10, 8<<10, 16<<10, 32<<10, 64<<10, 128<<10, copyBufMax)

// getCopyBuf returns a buffer for copying contents of size bytes (negative:
// unknown), its whole capacity usable.
func getCopyBuf(size int64) []byte {
	n := copyBufMax
	if size >= 0 && size < copyBufMax {
		n = int(size) + 1
	}
	b := copyBufs.Get(n)
	return b[:cap(b)]
}

// putCopyBuf recycles a buffer from getCopyBuf.
func putCopyBuf(b []byte) { copyBufs.Put(b) }

// testKill kills this process at the Nth operation of the named kind when
// CONCORD_TEST_KILL_AT=kind:N is set, to test recovery from a crash.
func (e *Endpoint) testKill(kind string) {
	spec := os.Getenv("CONCORD_TEST_KILL_AT")
	if spec == "" {
		return
	}
	k, num, _ := strings.Cut(spec, ":")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || k != kind {
		return
	}
	e.putMu.Lock()
	e.putCount++
	c := e.putCount
	e.putMu.Unlock()
	if c == n {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

// clearFor makes room for a new object at p: a directory there is removed
// (after checking its contents), a file is backed up if asked. Files and
// symlinks are otherwise replaced by the rename itself.
func (e *Endpoint) clearFor(ctx context.Context, dirfd int, p string, expect *state.Entry) error {
	if expect == nil {
		return nil
	}
	if expect.Kind == state.Dir {
		return e.removeChecked(ctx, dirfd, p, expect)
	}
	if expect.Kind == state.File {
		return e.backupFile(dirfd, p)
	}
	return nil
}

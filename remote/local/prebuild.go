package local

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
)

// prebuilt is a file that an OpPut with Stage built ahead of the plan,
// flushed and waiting under its temporary name in its path's directory for
// the OpPut with FromStage that installs it.
type prebuilt struct {
	expect  *state.Entry // the basis it was built from, as the stage gave it
	tmp     string
	n       int64
	sum     [32]byte
	sig     []byte
	sigKept bool
}

// prebuild carries out an OpPut with Stage: it rebuilds the file the delta
// content describes into a temporary file, flushes it, and keeps it for
// installPrebuilt. A second stage of the same path replaces the first.
func (e *Endpoint) prebuild(dirfd int, op remote.Op, content io.Reader) error {
	if !op.Delta || op.Expect == nil || op.Expect.Kind != state.File {
		return fmt.Errorf("stage %s: only a delta against a file there can be staged", state.Display(op.Path))
	}
	e.dropPrebuilt(op.Path)
	w, err := e.fillTemp(dirfd, op, content)
	if err != nil {
		return err
	}
	// The flush is what staging is for: the disk writes while the
	// scans and the plan go on.
	if err := unix.Fsync(w.fd); err != nil {
		w.discard(dirfd)
		return e.writeErr(op.Path, err)
	}
	if err := w.f.Close(); err != nil {
		w.st.discard(dirfd)
		return e.writeErr(op.Path, err)
	}
	pb := &prebuilt{expect: op.Expect, tmp: w.st.tmp, n: w.n, sum: w.sum, sig: w.sig, sigKept: w.sigKept}
	e.preMu.Lock()
	if e.preClosed {
		// Close came while this was built (the run ended without
		// the plan sending it) and removed what was staged before:
		// nothing will install or remove this one.
		e.preMu.Unlock()
		unix.Unlinkat(dirfd, pb.tmp, 0)
		return fmt.Errorf("stage %s: the endpoint was closed meanwhile", state.Display(op.Path))
	}
	if e.pre == nil {
		e.pre = make(map[string]*prebuilt)
	}
	e.pre[op.Path] = pb
	e.preMu.Unlock()
	return nil
}

// installPrebuilt carries out an OpPut with FromStage: the file staged for
// op.Path, built from op.Expect, is checked against op.New (size and hash),
// given its permissions and time, and renamed into place after the usual
// re-check. Whatever happens, the staged file is used up.
func (e *Endpoint) installPrebuilt(ctx context.Context, dirfd int, op remote.Op, content io.Reader) (*state.Entry, error) {
	if content != nil {
		io.Copy(io.Discard, content)
	}
	e.preMu.Lock()
	pb := e.pre[op.Path]
	delete(e.pre, op.Path)
	e.preMu.Unlock()
	if pb == nil {
		return nil, fmt.Errorf("install %s: nothing was staged for it", state.Display(op.Path))
	}
	if !state.Equal(pb.expect, op.Expect) {
		unix.Unlinkat(dirfd, pb.tmp, 0)
		return nil, fmt.Errorf("install %s: it was staged from another version", state.Display(op.Path))
	}
	fd, err := unix.Openat(dirfd, pb.tmp, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Unlinkat(dirfd, pb.tmp, 0)
		return nil, pathErr("open the file staged for", op.Path, err)
	}
	w := filled{st: staged{tmp: pb.tmp, fd: -1}, fd: fd, f: &earlyWriteback{f: scan.RawFile(fd)},
		n: pb.n, sum: pb.sum, sig: pb.sig, sigKept: pb.sigKept}
	st, want, err := e.finishTemp(dirfd, op, w)
	if err != nil {
		return nil, err
	}
	ent, err := e.install(ctx, dirfd, op, st, want)
	if err == nil && st.sig != nil && ent != nil {
		e.sigs.wrote(op.Path, ent, st.sig)
	}
	return ent, err
}

// dropPrebuilt removes the file staged for p, if any.
func (e *Endpoint) dropPrebuilt(p string) {
	e.preMu.Lock()
	pb := e.pre[p]
	delete(e.pre, p)
	e.preMu.Unlock()
	if pb != nil {
		e.removeTemp(p, pb.tmp)
	}
}

// dropAllPrebuilt removes every staged file not installed (at Close); a
// stage still being built is removed when it is done.
func (e *Endpoint) dropAllPrebuilt() {
	e.preMu.Lock()
	pre := e.pre
	e.pre = nil
	e.preClosed = true
	e.preMu.Unlock()
	for p, pb := range pre {
		e.removeTemp(p, pb.tmp)
	}
}

// removeTemp removes the temporary file tmp in p's directory.
func (e *Endpoint) removeTemp(p, tmp string) {
	if fd, err := e.openDir(state.Parent(p)); err == nil {
		unix.Unlinkat(fd, tmp, 0)
		unix.Close(fd)
	}
}

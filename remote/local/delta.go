package local

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote/delta"
)

// applyDelta rebuilds a file from its old version and a delta stream.
func applyDelta(basis io.ReaderAt, encoded io.Reader, out io.Writer) error {
	return delta.ApplyStream(basis, encoded, out)
}

// Signature returns the rsync-style block signature of the file at p,
// which must still match expect; the sender uses it to send only what
// differs.
func (e *Endpoint) Signature(ctx context.Context, p string, expect *state.Entry) (*delta.Sig, error) {
	if err := state.ValidatePath(p); err != nil {
		return nil, fmt.Errorf("signature of %s: %w", state.Display(p), err)
	}
	dirfd, err := e.openDir(state.Parent(p))
	if err != nil {
		return nil, changedErr(p, "its directory is gone")
	}
	defer unix.Close(dirfd)
	fd, err := unix.Openat(dirfd, state.Base(p), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, changedErr(p, "it is gone")
	}
	f := os.NewFile(uintptr(fd), state.Base(p))
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, pathErr("stat", p, err)
	}
	cur, _ := scan.EntryFromStat(&st)
	if expect = e.localView(p, expect); expect != nil && !matches(expect, cur) {
		return nil, changedErr(p, "it was modified after the scan")
	}
	return delta.Signature(f, st.Size)
}

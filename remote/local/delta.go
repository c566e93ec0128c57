package local

import (
	"context"
	"io"

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
	held, err := e.fds.hold(ctx, 1)
	if err != nil {
		return nil, err
	}
	defer e.fds.release(held)
	f, st, err := e.openChecked(p, expect)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return delta.Signature(f, st.Size)
}

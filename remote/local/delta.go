package local

import "io"

// applyDelta rebuilds a file from its old version and a delta stream.
func applyDelta(basis io.ReaderAt, delta io.Reader, out io.Writer) error {
	return errDeltaUnavailable
}

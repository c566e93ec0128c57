package remote

import (
	"fmt"
	"io"

	"github.com/concord-sync/concord/archive/state"
)

// ReadWhole reads the whole contents of the small file p, whose scan saw
// size bytes, from content (nil: none) into buf, which has room for size+1
// bytes: one byte more shows a file that grew. It returns the contents; a
// file of another size than the scan saw has changed since (ErrChanged).
func ReadWhole(content io.Reader, buf []byte, p string, size int64) ([]byte, error) {
	data := buf[:size+1]
	n := 0
	if content != nil {
		var err error
		n, err = io.ReadFull(content, data)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return nil, fmt.Errorf("read the contents for %s: %w", state.Display(p), err)
		}
	}
	if int64(n) != size {
		return nil, fmt.Errorf("read the contents for %s: %d bytes, the scan saw %d: %w", state.Display(p), n, size, ErrChanged)
	}
	return data[:n], nil
}

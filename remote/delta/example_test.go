package delta_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/concord-sync/concord/remote/delta"
)

// A whole delta transfer: the destination signs its old file, the source
// encodes the delta of its new file, and the destination rebuilds it.
func Example() {
	old := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 1000))
	nw := bytes.Replace(old, []byte("lazy dog\nthe quick"), []byte("lazy cat\nthe quick"), 1)

	// Destination.
	sig, err := delta.Signature(bytes.NewReader(old), int64(len(old)))
	if err != nil {
		panic(err)
	}
	// Source.
	var encoded bytes.Buffer
	if err := delta.WriteDelta(&encoded, sig, bytes.NewReader(nw), delta.ConfirmAll); err != nil {
		panic(err)
	}
	// Destination.
	var rebuilt bytes.Buffer
	if err := delta.ApplyStream(bytes.NewReader(old), &encoded, &rebuilt); err != nil {
		panic(err)
	}
	fmt.Println(bytes.Equal(rebuilt.Bytes(), nw), encoded.Len() < len(nw)/4)
	// Output: true true
}

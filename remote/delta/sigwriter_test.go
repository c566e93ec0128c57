package delta

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSigWriter checks that signing a file as it is written, in pieces of
// any size, gives exactly what Signature reads from it, and that a file of
// the wrong length is refused.
func TestSigWriter(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	sizes := []int{0, 1, MinBlockSize - 1, MinBlockSize, MinBlockSize + 1, 5*MinBlockSize + 17, 3<<20 + 5}
	for _, size := range sizes {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		want, err := Signature(bytes.NewReader(data), int64(size))
		if err != nil {
			t.Fatal(err)
		}
		for _, piece := range []int{1, 7, MinBlockSize, BlockSize(int64(size)), 100_003, 0} {
			w := NewSigWriter(int64(size))
			for p := data; len(p) > 0; {
				k := piece
				if k == 0 { // random pieces
					k = 1 + r.IntN(3*BlockSize(int64(size)))
				}
				k = min(k, len(p))
				if n, err := w.Write(p[:k]); n != k || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				p = p[k:]
			}
			got, err := w.Sig()
			if err != nil {
				t.Fatalf("size %d, pieces of %d: %v", size, piece, err)
			}
			if got.BlockSize != want.BlockSize || got.Size != want.Size || !slices.Equal(got.Blocks, want.Blocks) {
				t.Fatalf("size %d, pieces of %d: signature differs from Signature's", size, piece)
			}
		}
		if size == 0 {
			continue
		}
		short := NewSigWriter(int64(size))
		short.Write(data[:size-1])
		if _, err := short.Sig(); err == nil {
			t.Errorf("size %d: a file one byte short was signed", size)
		}
		long := NewSigWriter(int64(size))
		long.Write(data)
		long.Write([]byte{0})
		if _, err := long.Sig(); err == nil {
			t.Errorf("size %d: a file one byte long was signed", size)
		}
	}
}

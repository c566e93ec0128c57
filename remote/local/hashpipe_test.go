package local

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/zeebo/blake3"
)

// TestPipeHasher checks that the hash computed on the side equals BLAKE3 of
// what was written, whatever the sizes of the writes, and that stopping it
// twice or without a Sum is harmless.
func TestPipeHasher(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3*pipeBufs*pipeBufSize+12345)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	want := blake3.Sum256(data)
	for _, step := range []int{1 << 10, pipeBufSize - 1, pipeBufSize, 3*pipeBufSize + 7, len(data)} {
		p := newPipeHasher()
		for rest := data; len(rest) > 0; {
			n := min(step, len(rest))
			if k, err := p.Write(rest[:n]); k != n || err != nil {
				t.Fatalf("Write(%d bytes) = %d, %v", n, k, err)
			}
			rest = rest[n:]
		}
		if got := p.Sum(nil); !bytes.Equal(got, want[:]) {
			t.Errorf("writes of %d bytes: hash %x, want %x", step, got, want)
		}
		p.stop()
	}
	newPipeHasher().stop()
}

// TestNewHashWriter checks the choice between a plain and a piped hash.
func TestNewHashWriter(t *testing.T) {
	small, stop := newHashWriter(pipeHashMin - 1)
	stop()
	if _, ok := small.(*blake3.Hasher); !ok {
		t.Errorf("a file below pipeHashMin got a %T, want a plain hasher", small)
	}
	big, stop := newHashWriter(pipeHashMin)
	defer stop()
	if _, ok := big.(*pipeHasher); !ok {
		t.Errorf("a file of pipeHashMin bytes got a %T, want a pipeHasher", big)
	}
}

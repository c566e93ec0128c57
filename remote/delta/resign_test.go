package delta

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// TestResigner checks that the signature a Resigner derives while a delta is
// applied is the one Signature computes of the new file, and that blocks
// the delta leaves in place are taken over rather than hashed again.
func TestResigner(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	base := randBytes(r, 1_000_003) // block size 2048, a short last block
	bs := BlockSize(int64(len(base)))
	blocks := int(numBlocks(int64(len(base)), bs))
	mid := len(base) / 2
	changed := bytes.Clone(base)
	copy(changed[mid:], randBytes(r, 1000))
	atEnd := bytes.Clone(base)
	copy(atEnd[len(atEnd)-10:], "0123456789")

	tests := []struct {
		name    string
		new     []byte
		minKept int  // blocks the Resigner must take over from the basis
		gaveUp  bool // more than a quarter of the file to hash
	}{
		{"identical", base, blocks - 1, false}, // all but the short last block
		{"1000 bytes changed in the middle", changed, blocks - 3, false},
		{"last bytes changed", atEnd, blocks - 1, false},
		{"inserted three quarters in", cat(base[:3*mid/2], []byte("xyz"), base[3*mid/2:]), 3*mid/2/bs - 1, false},
		{"inserted in the middle", cat(base[:mid], []byte("xyz"), base[mid:]), 0, true},
		{"deleted in the middle", cat(base[:mid], base[mid+777:]), 0, true},
		{"appended", cat(base, []byte("tail")), blocks - 1, false},
		{"truncated", base[:len(base)-3000], blocks - 3, false},
		{"shifted by one", base[1:], 0, true},
		{"unrelated", randBytes(r, 999_000), 0, true},
		{"blocks swapped", cat(base[bs:2*bs], base[:bs], base[2*bs:]), blocks - 3, false},
	}
	for _, tt := range tests {
		for _, lend := range []int{0, 3000} {
			t.Run(fmt.Sprintf("%s/lend=%d", tt.name, lend), func(t *testing.T) {
				resign(t, base, tt.new, tt.minKept, tt.gaveUp, lend)
			})
		}
	}
}

// resign applies the delta of nw against base with a Resigner, into an
// output that lends the Patcher buffers of lend bytes (see Filler; 0: a
// plain buffer), and checks the result and the derived signature.
func resign(t *testing.T, base, nw []byte, minKept int, gaveUp bool, lend int) {
	t.Helper()
	sig, err := Signature(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	rs := NewResigner(sig, int64(len(nw)))
	if rs == nil {
		t.Fatalf("no Resigner for %d bytes (block size %d, basis %d)", len(nw), BlockSize(int64(len(nw))), sig.BlockSize)
	}
	var enc bytes.Buffer
	if err := WriteDelta(&enc, sig, bytes.NewReader(nw), ConfirmAll); err != nil {
		t.Fatal(err)
	}
	out := &fillBuffer{size: lend}
	var w io.Writer = &out.Buffer
	if lend > 0 {
		w = out
	}
	if err := ApplyStreamResign(bytes.NewReader(base), &enc, w, rs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), nw) {
		t.Fatal("rebuilt file differs")
	}
	if lend > 0 && !gaveUp && out.fills == 0 {
		t.Fatal("the Patcher copied blocks without filling the output's buffers")
	}
	got, err := rs.Sig()
	if gaveUp {
		if err == nil {
			t.Fatal("Sig succeeded after more than a quarter of the file was hashed")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := Signature(bytes.NewReader(nw), int64(len(nw)))
	if err != nil {
		t.Fatal(err)
	}
	if got.BlockSize != want.BlockSize || got.Size != want.Size || len(got.Blocks) != len(want.Blocks) {
		t.Fatalf("derived signature: block size %d, size %d, %d blocks; Signature: %d, %d, %d",
			got.BlockSize, got.Size, len(got.Blocks), want.BlockSize, want.Size, len(want.Blocks))
	}
	for i := range want.Blocks {
		if got.Blocks[i] != want.Blocks[i] {
			t.Fatalf("block %d of %d differs", i, len(want.Blocks))
		}
	}
	if rs.kept < int64(minKept) {
		t.Errorf("took over %d blocks from the basis, want at least %d", rs.kept, minKept)
	}
}

// TestResignerRefuses checks the cases where nothing can be reused or the
// result would be wrong.
func TestResignerRefuses(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	base := randBytes(r, 300_000)
	sig, err := Signature(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	// A new size with another block size: no Resigner.
	if rs := NewResigner(sig, 64<<20); rs != nil {
		t.Errorf("NewResigner for a size of block size %d, basis %d: got one", BlockSize(64<<20), sig.BlockSize)
	}
	// Fewer bytes than announced: an error, not a short signature.
	rs := NewResigner(sig, int64(len(base)))
	rs.Write(base[:1000])
	if _, err := rs.Sig(); err == nil {
		t.Error("Sig after 1000 of 300000 bytes: no error")
	}
}

// fillBuffer is a Patcher's output that lends it buffers of size bytes to
// read the basis into (a Filler), counting the fills.
type fillBuffer struct {
	bytes.Buffer
	size  int
	fills int
}

func (f *fillBuffer) Fill(read func(b []byte) (int, error)) (int, error) {
	b := make([]byte, f.size)
	k, err := read(b)
	if err != nil {
		return k, err
	}
	f.fills++
	return f.Write(b[:k])
}

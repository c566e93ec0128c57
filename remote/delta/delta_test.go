package delta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/concord-sync/concord/remote/delta/deltatest"
)

func TestBlockSize(t *testing.T) {
	tests := []struct {
		size int64
		want int
	}{
		{0, MinBlockSize},
		{1, MinBlockSize},
		{1 << 20, MinBlockSize}, // sqrt = 1024
		{64 << 20, 8192},
		{1 << 30, 32768},
		{1 << 40, MaxBlockSize},
		{10_000_000, 3200}, // sqrt = 3162.3, rounded up to 64
	}
	for _, tt := range tests {
		if got := BlockSize(tt.size); got != tt.want {
			t.Errorf("BlockSize(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}

func TestWeakRolls(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	const n = 2048
	a, b := weakSums(data[:n])
	for pos := 0; pos+n < len(data); pos++ {
		out, in := uint32(data[pos]), uint32(data[pos+n])
		a += in - out
		b += a - n*out
		if got, want := a&0xffff|b<<16, Weak(data[pos+1:pos+1+n]); got != want {
			t.Fatalf("rolled checksum at %d = %#x, fresh = %#x", pos+1, got, want)
		}
	}
	// The unrolled sum must agree with the plain definition.
	var pa, pb uint32
	for _, c := range data[:1001] {
		pa += uint32(c)
		pb += pa
	}
	if got, want := Weak(data[:1001]), pa&0xffff|pb<<16; got != want {
		t.Fatalf("Weak = %#x, definition gives %#x", got, want)
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// stats runs Delta and collects its instructions (copies of the literal
// data), checking the limits every emitted instruction must respect.
func runDelta(t testing.TB, sig *Sig, newFile []byte) (instrs []Instr, literal int64) {
	return runDeltaConfirm(t, sig, newFile, ConfirmAll)
}

// runDeltaConfirm is runDelta with matches confirmed as c says.
func runDeltaConfirm(t testing.TB, sig *Sig, newFile []byte, c Confirm) (instrs []Instr, literal int64) {
	t.Helper()
	err := Delta(sig, bytes.NewReader(newFile), c, func(in Instr) error {
		switch in.Kind {
		case Literal:
			if len(in.Data) == 0 || len(in.Data) > MaxLiteral {
				t.Fatalf("literal of %d bytes", len(in.Data))
			}
			literal += int64(len(in.Data))
			in.Data = bytes.Clone(in.Data)
		case Copy:
			if in.Count <= 0 {
				t.Fatalf("copy with count %d", in.Count)
			}
		}
		instrs = append(instrs, in)
		return nil
	})
	if err != nil {
		t.Fatalf("Delta: %v", err)
	}
	return instrs, literal
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := randBytes(r, 300_000) // block size 2048 (sqrt = 548 is clamped)
	bs := BlockSize(int64(len(base)))
	mid := len(base) / 2
	changed := bytes.Clone(base)
	copy(changed[mid:], randBytes(r, 1000))
	zeros := make([]byte, 100_000)

	tests := []struct {
		name       string
		old, new   []byte
		maxLiteral int64 // upper bound on literal bytes (-1: no bound)
	}{
		{"both empty", nil, nil, 0},
		{"empty basis", nil, base[:5000], 5000},
		{"empty new", base, nil, 0},
		{"identical", base, base, 0},
		{"identical short", base[:100], base[:100], 0},
		{"1000 bytes changed in the middle", base, changed, int64(1000 + 2*bs)},
		{"inserted at start", base, cat([]byte("hello"), base), 5},
		{"inserted in the middle", base, cat(base[:mid], []byte("xyz"), base[mid:]), int64(3 + 2*bs)},
		{"deleted in the middle", base, cat(base[:mid], base[mid+777:]), int64(2 * bs)},
		{"appended", base, cat(base, []byte("tail")), int64(4 + bs)},
		{"truncated", base, base[:len(base)-3000], int64(bs)},
		{"shifted by one", base, base[1:], int64(bs)},
		{"unrelated", base, randBytes(r, 200_000), -1},
		{"new shorter than a block", base, base[:1000], 1000},
		{"zeros", zeros, cat(zeros, zeros), int64(bs)},
		{"blocks reordered", base[:4*bs], cat(base[2*bs:4*bs], base[:2*bs]), 0},
		{"long literal run", base[:bs], randBytes(r, 3*MaxLiteral+17), -1},
	}
	for _, tt := range tests {
		for _, c := range []Confirm{ConfirmAll, ConfirmResync} {
			t.Run(fmt.Sprintf("%s/confirm=%d", tt.name, c), func(t *testing.T) {
				roundTrip(t, tt.old, tt.new, tt.maxLiteral, c)
			})
		}
	}
}

// roundTrip checks that the delta of nw against old, with matches confirmed
// as c says, rebuilds nw, directly and through the encoding, with at most
// maxLiteral literal bytes (-1: no bound).
func roundTrip(t *testing.T, old, nw []byte, maxLiteral int64, c Confirm) {
	t.Helper()
	sig, err := Signature(bytes.NewReader(old), int64(len(old)))
	if err != nil {
		t.Fatal(err)
	}
	instrs, lit := runDeltaConfirm(t, sig, nw, c)
	if maxLiteral >= 0 && lit > maxLiteral {
		t.Errorf("literal bytes = %d, want at most %d", lit, maxLiteral)
	}
	if out := applyAll(t, old, sig, instrs); !bytes.Equal(out, nw) {
		t.Fatalf("Apply rebuilt %d bytes, differing from the %d-byte new file", len(out), len(nw))
	}

	// The same through the encoding.
	var enc, out bytes.Buffer
	if err := WriteDelta(&enc, sig, bytes.NewReader(nw), c); err != nil {
		t.Fatal(err)
	}
	if err := ApplyStream(bytes.NewReader(old), &enc, &out); err != nil {
		t.Fatalf("ApplyStream: %v", err)
	}
	if !bytes.Equal(out.Bytes(), nw) {
		t.Fatal("ApplyStream rebuilt a different file")
	}
}

// applyAll rebuilds a file from old (whose signature is sig) and instrs.
func applyAll(t *testing.T, old []byte, sig *Sig, instrs []Instr) []byte {
	t.Helper()
	var out bytes.Buffer
	seq := func(yield func(Instr, error) bool) {
		for _, in := range instrs {
			if !yield(in, nil) {
				return
			}
		}
	}
	if err := Apply(bytes.NewReader(old), sig.Header(), seq, &out); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return out.Bytes()
}

func TestCopiesMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	base := randBytes(r, 100_000)
	sig, err := Signature(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	instrs, _ := runDelta(t, sig, base)
	if len(instrs) != 1 || instrs[0].Kind != Copy || instrs[0].Block != 0 || instrs[0].Count != int64(len(sig.Blocks)) {
		t.Fatalf("identical file gave %+v, want one copy of all %d blocks", instrs, len(sig.Blocks))
	}
}

func TestSignatureSizeMismatch(t *testing.T) {
	tests := []struct {
		name string
		data string
		size int64
	}{
		{"shorter", "abc", 10},
		{"longer", "abcdef", 3},
		{"negative", "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Signature(bytes.NewReader([]byte(tt.data)), tt.size); err == nil {
				t.Fatal("Signature accepted a file whose length differs from its size")
			}
		})
	}
}

func TestApplyRefusesHostile(t *testing.T) {
	basis := bytes.Repeat([]byte("x"), 3*MinBlockSize+10) // 4 blocks
	h := Header{BlockSize: MinBlockSize, BasisSize: int64(len(basis))}
	tests := []struct {
		name string
		in   Instr
	}{
		{"block past the end", Instr{Kind: Copy, Block: 4, Count: 1}},
		{"count past the end", Instr{Kind: Copy, Block: 2, Count: 3}},
		{"negative block", Instr{Kind: Copy, Block: -1, Count: 1}},
		{"zero count", Instr{Kind: Copy, Block: 0, Count: 0}},
		{"overflowing count", Instr{Kind: Copy, Block: 1, Count: 1<<63 - 1}},
		{"empty literal", Instr{Kind: Literal}},
		{"oversized literal", Instr{Kind: Literal, Data: make([]byte, MaxLiteral+1)}},
		{"unknown kind", Instr{Kind: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p, err := NewPatcher(bytes.NewReader(basis), h, &out)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Apply(tt.in); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Apply(%v) = %v, want ErrCorrupt", tt.in.Kind, err)
			}
			if out.Len() != 0 {
				t.Fatalf("a refused instruction wrote %d bytes", out.Len())
			}
		})
	}
	// A basis shorter than the header says fails cleanly.
	p, err := NewPatcher(bytes.NewReader(basis[:100]), h, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(Instr{Kind: Copy, Block: 0, Count: 1}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("copy from a short basis = %v, want ErrUnexpectedEOF", err)
	}
	for _, h := range []Header{{BlockSize: 1, BasisSize: 10}, {BlockSize: MaxBlockSize * 2}, {BlockSize: MinBlockSize, BasisSize: -1}} {
		if _, err := NewPatcher(bytes.NewReader(basis), h, io.Discard); !errors.Is(err, ErrCorrupt) {
			t.Errorf("NewPatcher(%+v) = %v, want ErrCorrupt", h, err)
		}
	}
}

func TestEncodingErrors(t *testing.T) {
	base := bytes.Repeat([]byte("abcdefgh"), 2000)
	sig, err := Signature(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	var sigEnc bytes.Buffer
	if err := sig.Encode(&sigEnc); err != nil {
		t.Fatal(err)
	}
	var instrEnc bytes.Buffer
	if err := WriteDelta(&instrEnc, sig, bytes.NewReader(append(bytes.Clone(base), "more"...)), ConfirmAll); err != nil {
		t.Fatal(err)
	}
	oversize := []byte{0, 0x10, 0, 0} // an item of 1 MiB announced

	sigTests := []struct {
		name string
		data []byte
		size int64
	}{
		{"empty", nil, int64(len(base))},
		{"truncated", sigEnc.Bytes()[:sigEnc.Len()-5], int64(len(base))},
		{"other size", sigEnc.Bytes(), int64(len(base)) + 1},
		{"oversized item", oversize, int64(len(base))},
		{"instruction stream", instrEnc.Bytes(), int64(len(base))},
	}
	for _, tt := range sigTests {
		t.Run("sig "+tt.name, func(t *testing.T) {
			if _, err := DecodeSig(bytes.NewReader(tt.data), tt.size); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeSig = %v, want ErrCorrupt", err)
			}
		})
	}
	got, err := DecodeSig(bytes.NewReader(sigEnc.Bytes()), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	if got.BlockSize != sig.BlockSize || len(got.Blocks) != len(sig.Blocks) || got.Blocks[3] != sig.Blocks[3] {
		t.Fatal("decoded signature differs from the encoded one")
	}

	instrTests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", instrEnc.Bytes()[:instrEnc.Len()-3]},
		{"without end", instrEnc.Bytes()[:instrEnc.Len()-6]},
		{"oversized item", oversize},
		{"signature", sigEnc.Bytes()},
	}
	for _, tt := range instrTests {
		t.Run("instrs "+tt.name, func(t *testing.T) {
			err := ApplyStream(bytes.NewReader(base), bytes.NewReader(tt.data), io.Discard)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ApplyStream = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestNewReader(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	old := randBytes(r, 50_000)
	nw := cat(old[:20_000], []byte("changed"), old[20_000:])
	sig, err := Signature(bytes.NewReader(old), int64(len(old)))
	if err != nil {
		t.Fatal(err)
	}
	rc := NewReader(sig, bytes.NewReader(nw), ConfirmAll)
	defer rc.Close()
	var out bytes.Buffer
	if err := ApplyStream(bytes.NewReader(old), rc, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), nw) {
		t.Fatal("rebuilt file differs")
	}
}

// TestSignatureBatches checks the parallel, batched signature against the
// definition, on a file spanning several batches with a short last block.
func TestSignatureBatches(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	data := randBytes(r, 2*sigBatchBytes+12345)
	sig, err := Signature(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	bs := sig.BlockSize
	if len(sig.Blocks) != (len(data)+bs-1)/bs {
		t.Fatalf("%d blocks for %d bytes of %d-byte blocks", len(sig.Blocks), len(data), bs)
	}
	for i, b := range sig.Blocks {
		blk := data[i*bs : min((i+1)*bs, len(data))]
		if b.Weak != Weak(blk) || b.Strong != strong(blk) {
			t.Fatalf("block %d differs from its definition", i)
		}
	}
}

// TestWeakSumsDefinition checks the chunked weak sums against the byte
// loop that defines them, for every length around the chunk size and for
// bytes at their largest (where the 16-bit lanes are closest to
// overflowing).
func TestWeakSumsDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	random := randBytes(r, 4*weakChunk+7)
	full := bytes.Repeat([]byte{0xff}, 4*weakChunk+7)
	for name, data := range map[string][]byte{"random": random, "0xff": full} {
		for n := 0; n <= len(data); n++ {
			var pa, pb uint32
			for _, c := range data[:n] {
				pa += uint32(c)
				pb += pa
			}
			if a, b := weakSums(data[:n]); a != pa || b != pb {
				t.Fatalf("%s, %d bytes: weakSums = (%#x, %#x), definition gives (%#x, %#x)", name, n, a, b, pa, pb)
			}
		}
	}
}

// TestCopyRunsCapped checks that a long unchanged stretch is sent as
// several copies of at most maxRunBytes each, in order and covering every
// block, so that the receiver can start before the sender has read it all.
func TestCopyRunsCapped(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	base := randBytes(r, 3*maxRunBytes+12345)
	sig, err := Signature(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		t.Fatal(err)
	}
	instrs, _ := runDelta(t, sig, base)
	if len(instrs) < 4 {
		t.Fatalf("a file of %d bytes gave %d instructions, want at least 4 runs of at most %d bytes", len(base), len(instrs), maxRunBytes)
	}
	next := int64(0)
	for _, in := range instrs {
		if in.Kind != Copy || in.Block != next || in.Count*int64(sig.BlockSize) > maxRunBytes {
			t.Fatalf("instruction %+v (block size %d): want a copy from block %d of at most %d bytes", in, sig.BlockSize, next, maxRunBytes)
		}
		next += in.Count
	}
	if next != int64(len(sig.Blocks)) {
		t.Fatalf("copies cover %d blocks, want %d", next, len(sig.Blocks))
	}
}

// TestConfirmResync checks which matches ConfirmResync takes on the weak
// checksum alone: the block right after a match (in place or moved), and
// no other. An edit the weak sum cannot see (deltatest.CollideWeak) in such
// a block is missed, and the old block rebuilt, while ConfirmAll rebuilds
// the new file; the same edit where a run starts (the first block, the
// first after literal bytes) is caught by the strong hash.
func TestConfirmResync(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	base := randBytes(r, 300_000)
	bs := BlockSize(int64(len(base)))
	collide := func(b []byte, off int) []byte {
		b = bytes.Clone(b)
		if err := deltatest.CollideWeak(b[off : off+bs]); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Block 40 (of 147) edited where the weak sum does not see it, in
	// place and with everything moved by an insertion at the start.
	inPlace := collide(base, 40*bs)
	moved := cat([]byte("inserted"), inPlace)
	// Block 41 edited the same way, after a literal in block 40.
	afterLiteral := collide(base, 41*bs)
	copy(afterLiteral[40*bs+100:], "a visible edit")
	type resyncCase struct {
		name   string
		nw     []byte
		missed []byte // what ConfirmResync rebuilds, if not nw
	}
	tests := []resyncCase{
		{"following block in place", inPlace, base},
		{"following block moved", moved, cat([]byte("inserted"), base)},
		{"first block", collide(base, 0), nil},
		{"first block after a literal", afterLiteral, nil},
	}
	// Block 1 edited that way and placed after more literal bytes than a
	// literal instruction holds, at each place around where the encoder
	// refills its buffer and looks at the block after its last match
	// again (at MaxLiteral+bs+1, reading from memory): it is no longer
	// right after the match, so the strong hash decides.
	for q := MaxLiteral + bs - 3; q <= MaxLiteral+bs+5; q++ {
		nw := cat(base[:bs], randBytes(r, q-bs), collide(base, bs)[bs:2*bs], base[2*bs:])
		tests = append(tests, resyncCase{fmt.Sprintf("block after the last match, at %d after literal bytes", q), nw, nil})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := Signature(bytes.NewReader(base), int64(len(base)))
			if err != nil {
				t.Fatal(err)
			}
			instrs, _ := runDeltaConfirm(t, sig, tt.nw, ConfirmAll)
			if !bytes.Equal(applyAll(t, base, sig, instrs), tt.nw) {
				t.Fatal("ConfirmAll rebuilt a different file")
			}
			want := tt.nw
			if tt.missed != nil {
				want = tt.missed
			}
			instrs, lit := runDeltaConfirm(t, sig, tt.nw, ConfirmResync)
			if got := applyAll(t, base, sig, instrs); !bytes.Equal(got, want) {
				t.Fatalf("ConfirmResync rebuilt %d bytes, not the expected %d (literal bytes: %d)", len(got), len(want), lit)
			}
			checkResync(t, base, tt.nw, sig)
		})
	}
}

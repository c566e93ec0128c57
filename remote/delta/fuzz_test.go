package delta

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// FuzzDecodeSig feeds arbitrary bytes to the signature decoder: it must
// return a valid signature or an error, never panic or over-allocate.
func FuzzDecodeSig(f *testing.F) {
	base := bytes.Repeat([]byte("0123456789"), 700)
	sig, err := Signature(bytes.NewReader(base), int64(len(base)))
	if err != nil {
		f.Fatal(err)
	}
	var enc bytes.Buffer
	if err := sig.Encode(&enc); err != nil {
		f.Fatal(err)
	}
	f.Add(enc.Bytes(), int64(len(base)))
	f.Add(enc.Bytes()[:30], int64(len(base)))
	f.Add([]byte{0, 0, 0, 1, 0x80}, int64(0))
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		s, err := DecodeSig(bytes.NewReader(data), size)
		if err != nil {
			return
		}
		if err := s.check(); err != nil {
			t.Fatalf("DecodeSig returned an inconsistent signature: %v", err)
		}
		if s.Size != size {
			t.Fatalf("DecodeSig returned a signature of %d bytes for %d", s.Size, size)
		}
	})
}

// FuzzDeltaInstrs feeds arbitrary encoded instruction streams to
// ApplyStream against a fixed basis: it must rebuild something or refuse,
// never read outside the basis or panic.
func FuzzDeltaInstrs(f *testing.F) {
	basis := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), 400)
	sig, err := Signature(bytes.NewReader(basis), int64(len(basis)))
	if err != nil {
		f.Fatal(err)
	}
	var enc bytes.Buffer
	nw := append(bytes.Clone(basis[:2*MinBlockSize]), "inserted"...)
	nw = append(nw, basis[2*MinBlockSize:]...)
	if err := WriteDelta(&enc, sig, bytes.NewReader(nw), ConfirmAll); err != nil {
		f.Fatal(err)
	}
	f.Add(enc.Bytes())
	f.Add(enc.Bytes()[:enc.Len()/2])
	// A hand-made stream copying a block far out of range.
	var hostile bytes.Buffer
	iw := newItemWriter(&hostile)
	_ = iw.write(streamHeader{Magic: instrMagic, Version: encodingVersion, BlockSize: MinBlockSize, Size: int64(len(basis))})
	_ = iw.write(instrItem{Kind: uint8(Copy), A: 1 << 40, B: 1})
	f.Add(hostile.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var out countWriter
		limit := int64(-1)
		if d, err := DecodeInstrs(bytes.NewReader(data)); err == nil {
			limit = d.Header().BasisSize
		}
		err := ApplyStream(strictReaderAt{basis, limit}, bytes.NewReader(data), &out)
		if err != nil {
			return
		}
		d, _ := DecodeInstrs(bytes.NewReader(data))
		for {
			if _, err := d.Next(); err != nil {
				break
			}
		}
		if out.n != d.Size() {
			t.Fatalf("ApplyStream succeeded with %d bytes, stream announced %d", out.n, d.Size())
		}
	})
}

// FuzzDelta checks the round trip on arbitrary old and new files: the
// rebuilt file must equal the new one.
func FuzzDelta(f *testing.F) {
	f.Add([]byte("hello world"), []byte("hello there world"), uint16(0), uint16(1))
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), []byte{1, 2, 3, 4}, uint16(7), uint16(300))
	f.Fuzz(func(t *testing.T, old, seed []byte, rep, times uint16) {
		// Small inputs repeated make files of several blocks.
		old = bytes.Repeat(old, int(times%512)+1)
		// Build the new file from pieces of the old one and the seed, so
		// that matches happen.
		var nw []byte
		for i := 0; i < int(rep%8)+1; i++ {
			nw = append(nw, seed...)
			if len(old) > 0 {
				nw = append(nw, old[(i*len(old))/8:]...)
			}
		}
		if len(nw) > 1<<20 {
			nw = nw[:1<<20]
		}
		sig, err := Signature(bytes.NewReader(old), int64(len(old)))
		if err != nil {
			t.Fatal(err)
		}
		var enc, out bytes.Buffer
		if err := WriteDelta(&enc, sig, bytes.NewReader(nw), ConfirmAll); err != nil {
			t.Fatal(err)
		}
		if err := ApplyStream(bytes.NewReader(old), &enc, &out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), nw) {
			t.Fatal("rebuilt file differs from the new one")
		}
		checkResync(t, old, nw, sig)
	})
}

// checkResync checks the delta of nw against old (signature sig) with
// ConfirmResync: every block it copies holds the new file's bytes or, taken
// on the weak checksum alone, bytes of the same weak sum; and where a copy
// starts a run (at the start or after a literal) it holds the new bytes.
func checkResync(t *testing.T, old, nw []byte, sig *Sig) {
	t.Helper()
	var pos int64
	afterLiteral := true
	err := Delta(sig, bytes.NewReader(nw), ConfirmResync, func(in Instr) error {
		if in.Kind == Literal {
			if !bytes.Equal(in.Data, nw[pos:pos+int64(len(in.Data))]) {
				t.Fatalf("literal at %d differs from the new file", pos)
			}
			pos += int64(len(in.Data))
			afterLiteral = true
			return nil
		}
		for k := in.Block; k < in.Block+in.Count; k++ {
			off := k * int64(sig.BlockSize)
			blk := old[off:min(off+int64(sig.BlockSize), int64(len(old)))]
			got := nw[pos : pos+int64(len(blk))]
			if !bytes.Equal(blk, got) {
				if afterLiteral && k == in.Block {
					t.Fatalf("block %d copied at %d starts a run but differs", k, pos)
				}
				if Weak(blk) != Weak(got) {
					t.Fatalf("block %d copied at %d differs, and so does its weak sum", k, pos)
				}
			}
			pos += int64(len(blk))
		}
		afterLiteral = false
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pos != int64(len(nw)) {
		t.Fatalf("the delta rebuilds %d bytes of %d", pos, len(nw))
	}
}

// strictReaderAt panics on a read outside the basis size the stream's
// header announced, which Apply must never attempt; reads past its real
// data (the header may lie) end short with io.EOF, as a file's would.
type strictReaderAt struct {
	b     []byte
	limit int64
}

func (s strictReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.limit {
		panic(fmt.Sprintf("read of %d bytes at %d, outside the %d-byte basis", len(p), off, s.limit))
	}
	if off >= int64(len(s.b)) {
		return 0, io.EOF
	}
	n := copy(p, s.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// FuzzApply gives the patcher arbitrary instructions, as a hostile peer's
// decoded stream could: it must refuse what does not fit the basis and
// never read outside it.
func FuzzApply(f *testing.F) {
	f.Add(uint8(Copy), int64(0), int64(1), []byte(nil), int64(5000))
	f.Add(uint8(Copy), int64(2), int64(1<<62), []byte(nil), int64(5000))
	f.Add(uint8(Literal), int64(0), int64(0), []byte("abc"), int64(0))
	f.Fuzz(func(t *testing.T, kind uint8, block, count int64, data []byte, basisSize int64) {
		if basisSize < 0 || basisSize > 1<<20 {
			return
		}
		basis := make([]byte, basisSize)
		var out countWriter
		p, err := NewPatcher(strictReaderAt{basis, basisSize}, Header{BlockSize: MinBlockSize, BasisSize: basisSize}, &out)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Apply(Instr{Kind: InstrKind(kind), Block: block, Count: count, Data: data})
		if err == nil && out.n == 0 {
			t.Fatal("an accepted instruction wrote nothing")
		}
		if err != nil && out.n != 0 {
			t.Fatalf("a refused instruction wrote %d bytes", out.n)
		}
	})
}

// FuzzApplyClones applies a program of copies and literals three times: to
// a plain buffer, to an output that lends its buffers (fillBuffer), and to
// an output that clones (memCloner, which fails on a clone that is
// misaligned, short or not at the output's end). The results and the
// verdicts must be the same. prog is read four bytes per
// instruction: kind (even: copy), block (two bytes), count or literal
// length.
func FuzzApplyClones(f *testing.F) {
	// 196 blocks of 2 KiB: 150 in place (cloned), a literal, 40 more
	// (copied: no longer in place).
	f.Add([]byte{0, 0, 0, 150, 1, 0, 0, 17, 0, 0, 151, 40}, uint16(4096), uint32(400_000))
	// 512 blocks: two runs in place, both cloned, the second starting
	// off a 4 KiB boundary.
	f.Add([]byte{0, 0, 0, 255, 0, 0, 255, 200}, uint16(4096), uint32(1<<20-1))
	f.Add([]byte{1, 0, 0, 9, 0, 0, 1, 250}, uint16(0), uint32(300_000))
	f.Fuzz(func(t *testing.T, prog []byte, align uint16, basisSize uint32) {
		size := int64(basisSize % (1 << 20))
		r := rand.New(rand.NewPCG(uint64(size), 7))
		basis := make([]byte, size)
		for i := range basis {
			basis[i] = byte(r.Uint32())
		}
		h := Header{BlockSize: BlockSize(size), BasisSize: size}
		var instrs []Instr
		for len(prog) >= 4 {
			n := int64(prog[3])
			if prog[0]%2 == 0 {
				instrs = append(instrs, Instr{Kind: Copy, Block: int64(prog[1])<<8 | int64(prog[2]), Count: n})
			} else {
				instrs = append(instrs, Instr{Kind: Literal, Data: bytes.Repeat([]byte{prog[1]}, int(n))})
			}
			prog = prog[4:]
		}
		run := func(out io.Writer, outLen func() int) error {
			p, err := NewPatcher(strictReaderAt{basis, size}, h, out)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if p.Written() != int64(outLen()) {
					t.Fatalf("the patcher counts %d bytes written, the output holds %d", p.Written(), outLen())
				}
			}()
			for _, in := range instrs {
				if err := p.Apply(in); err != nil {
					return err
				}
			}
			return nil
		}
		var plain bytes.Buffer
		errPlain := run(&plain, plain.Len)
		a := int64(align)
		if a&(a-1) != 0 || a < 512 {
			a = 0
		}
		m := &memCloner{basis: basis, align: a}
		errClone := run(m, m.out.Len)
		if (errPlain == nil) != (errClone == nil) {
			t.Fatalf("plain: %v; cloning: %v", errPlain, errClone)
		}
		if errPlain == nil && !bytes.Equal(plain.Bytes(), m.out.Bytes()) {
			t.Fatalf("cloning built %d bytes that differ from the plain %d", m.out.Len(), plain.Len())
		}
		// And into an output that lends its buffers (a Filler).
		fb := &fillBuffer{size: 1 + int(align)%5000}
		errFill := run(fb, fb.Len)
		if (errPlain == nil) != (errFill == nil) {
			t.Fatalf("plain: %v; filling: %v", errPlain, errFill)
		}
		if errPlain == nil && !bytes.Equal(plain.Bytes(), fb.Bytes()) {
			t.Fatalf("filling built %d bytes that differ from the plain %d", fb.Len(), plain.Len())
		}
	})
}

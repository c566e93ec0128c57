package delta

import (
	"errors"
	"fmt"
	"io"
	"iter"
)

// ErrCorrupt marks an instruction stream or signature that is malformed or
// does not fit its basis: a block index out of range, an oversized literal,
// a truncated stream, a result of the wrong length.
var ErrCorrupt = errors.New("corrupt delta")

// Header describes the basis a delta was computed against. It opens every
// encoded instruction stream.
type Header struct {
	// BlockSize is the signature's block size.
	BlockSize int
	// BasisSize is the size of the basis file the signature was taken of.
	BasisSize int64
}

func (h Header) check() error {
	if h.BlockSize < MinBlockSize || h.BlockSize > MaxBlockSize {
		return fmt.Errorf("%w: block size %d outside [%d, %d]", ErrCorrupt, h.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if h.BasisSize < 0 {
		return fmt.Errorf("%w: negative basis size %d", ErrCorrupt, h.BasisSize)
	}
	return nil
}

// copyChunk is how many bytes of the basis a Copy reads and writes at a
// time.
const copyChunk = 1 << 20

// A Cloner is a Patcher's output that can take bytes of the basis without
// the Patcher reading and writing them, typically by sharing the basis's
// disk blocks with the new file (a reflink: FICLONERANGE on XFS, btrfs and
// others). A delta of a large file that changed a little then costs
// neither a copy of the unchanged bulk nor its write-back to disk. The
// Patcher offers it only bytes that stay at the offset they had in the
// basis.
type Cloner interface {
	// CloneAlign returns the alignment, in bytes, of the ranges Clone
	// takes, or 0 when it cannot clone (any more).
	CloneAlign() int64
	// Clone appends to the output the n bytes of the basis at offset
	// off, where the output now ends; off and n are multiples of
	// CloneAlign. It returns false, having written nothing, when it
	// cannot: the Patcher then writes the bytes itself.
	Clone(off, n int64) (bool, error)
}

// A Filler is a Patcher's output that lends the Patcher its own buffers to
// read the basis into, so that copied bytes are not copied once more on
// their way (into a hash computed on another goroutine, say).
type Filler interface {
	// Fill calls read with a buffer of the output's, and appends the
	// first k bytes read put there (k being what read returns) to the
	// output, unless read failed. It returns k and read's error, or the
	// error of appending.
	Fill(read func(b []byte) (int, error)) (int, error)
}

// CloneMin is the shortest range a Patcher clones rather than copies: below
// it the saving is small and the new file's extents would splinter.
const CloneMin = 64 << 10

// Patcher rebuilds a file from its basis, one instruction at a time.
type Patcher struct {
	basis   io.ReaderAt
	h       Header
	blocks  int64
	out     io.Writer
	buf     []byte
	written int64
	resign  *Resigner
}

// NewPatcher returns a Patcher writing to out the file rebuilt from basis,
// whose layout h gives.
func NewPatcher(basis io.ReaderAt, h Header, out io.Writer) (*Patcher, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	return &Patcher{basis: basis, h: h, blocks: numBlocks(h.BasisSize, h.BlockSize), out: out}, nil
}

// Resign makes the patcher feed r (made for this patcher's basis signature)
// as it writes, so that r.Sig gives the new file's signature at the end.
// A Resigner of another block size is ignored.
func (p *Patcher) Resign(r *Resigner) {
	if r != nil && r.bs == p.h.BlockSize && p.written == 0 {
		p.resign = r
	}
}

// emit writes b, the next bytes of the new file, and hands them to the
// Resigner unless it took them as blocks in place.
func (p *Patcher) emit(b []byte, inPlace bool) error {
	if _, err := p.out.Write(b); err != nil {
		return fmt.Errorf("delta: write: %w", err)
	}
	if p.resign != nil && !inPlace {
		p.resign.Write(b)
	}
	p.written += int64(len(b))
	return nil
}

// Written returns how many bytes the patcher has written so far.
func (p *Patcher) Written() int64 { return p.written }

// Apply carries out one instruction. A Copy naming blocks outside the
// basis, a Literal longer than MaxLiteral or an unknown kind is refused
// with an error wrapping ErrCorrupt, before anything is read or written.
func (p *Patcher) Apply(in Instr) error {
	switch in.Kind {
	case Literal:
		if len(in.Data) == 0 || len(in.Data) > MaxLiteral {
			return fmt.Errorf("%w: literal of %d bytes (allowed 1 to %d)", ErrCorrupt, len(in.Data), MaxLiteral)
		}
		return p.emit(in.Data, false)
	case Copy:
		if in.Block < 0 || in.Count <= 0 || in.Block >= p.blocks || in.Count > p.blocks-in.Block {
			return fmt.Errorf("%w: copy of blocks [%d, +%d) from a basis of %d blocks", ErrCorrupt, in.Block, in.Count, p.blocks)
		}
		bs := int64(p.h.BlockSize)
		off := in.Block * bs
		end := min((in.Block+in.Count)*bs, p.h.BasisSize)
		// Whole blocks written where they were in the basis keep their
		// signature entries (see Resigner); up to inPlace.
		inPlace := off
		if p.resign != nil && off == p.written && p.resign.at(off) {
			inPlace = min(end, p.h.BasisSize/bs*bs)
			if inPlace > off {
				p.resign.inPlace(in.Block, (inPlace-off)/bs)
			}
		}
		// Bytes that stay where they were may be cloned rather than
		// copied (see Cloner), as long as the Resigner needs none of
		// them.
		if c, ok := p.out.(Cloner); ok && off == p.written {
			limit := end
			if p.resign != nil {
				limit = inPlace
			}
			if a := c.CloneAlign(); a > 0 {
				from, to := (off+a-1)/a*a, limit/a*a
				if to-from >= CloneMin {
					if err := p.copyRange(off, from, inPlace); err != nil {
						return err
					}
					done, err := c.Clone(from, to-from)
					if err != nil {
						return fmt.Errorf("delta: clone: %w", err)
					}
					if done {
						p.written += to - from
						off = to
					} else {
						off = from
					}
				}
			}
		}
		return p.copyRange(off, end, inPlace)
	}
	return fmt.Errorf("%w: unknown instruction kind %d", ErrCorrupt, in.Kind)
}

// copyRange reads the bytes [off, end) of the basis and writes them; those
// before inPlace are blocks the Resigner already took.
func (p *Patcher) copyRange(off, end, inPlace int64) error {
	if off >= end {
		return nil
	}
	if f, ok := p.out.(Filler); ok {
		return p.fillRange(f, off, end, inPlace)
	}
	// A run of blocks is copied up to copyChunk bytes at a time: a 1 GiB
	// file mostly unchanged is one run, and a block at a time would cost
	// two system calls per block.
	if want := min(max(copyChunk, int64(p.h.BlockSize)), end-off); int64(len(p.buf)) < want {
		p.buf = make([]byte, want)
	}
	for off < end {
		chunk := p.buf[:min(int64(len(p.buf)), end-off)]
		if err := p.readBasis(chunk, off); err != nil {
			return err
		}
		if k := max(min(inPlace-off, int64(len(chunk))), 0); k > 0 {
			if err := p.emit(chunk[:k], true); err != nil {
				return err
			}
			chunk = chunk[k:]
			off += k
		}
		if len(chunk) > 0 {
			if err := p.emit(chunk, false); err != nil {
				return err
			}
			off += int64(len(chunk))
		}
	}
	return nil
}

// readBasis fills chunk with the basis's bytes at off; a basis shorter than
// its header said is an error.
func (p *Patcher) readBasis(chunk []byte, off int64) error {
	n, err := p.basis.ReadAt(chunk, off)
	if n < len(chunk) {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("basis is shorter than %d bytes (changed during sync?): %w", p.h.BasisSize, io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("delta: read basis at %d: %w", off, err)
	}
	return nil
}

// fillRange is copyRange into an output that lends its buffers.
func (p *Patcher) fillRange(f Filler, off, end, inPlace int64) error {
	for off < end {
		var rerr error
		n, err := f.Fill(func(b []byte) (int, error) {
			chunk := b[:min(int64(len(b)), end-off)]
			if rerr = p.readBasis(chunk, off); rerr != nil {
				return 0, rerr
			}
			if k := max(min(inPlace-off, int64(len(chunk))), 0); p.resign != nil && k < int64(len(chunk)) {
				p.resign.Write(chunk[k:])
			}
			return len(chunk), nil
		})
		switch {
		case rerr != nil:
			return rerr
		case err != nil:
			return fmt.Errorf("delta: write: %w", err)
		case n == 0:
			return fmt.Errorf("delta: write: %w", io.ErrShortWrite)
		}
		p.written += int64(n)
		off += int64(n)
	}
	return nil
}

// Apply rebuilds a file into out from basis (laid out as h says) and the
// instructions instrs yields, stopping at the first error (from instrs, a
// refused instruction, the basis or out).
func Apply(basis io.ReaderAt, h Header, instrs iter.Seq2[Instr, error], out io.Writer) error {
	p, err := NewPatcher(basis, h, out)
	if err != nil {
		return err
	}
	for in, err := range instrs {
		if err != nil {
			return err
		}
		if err := p.Apply(in); err != nil {
			return err
		}
	}
	return nil
}

// ApplyStream rebuilds a file into out from basis and an encoded
// instruction stream (as EncodeInstrs writes it), and checks that the
// result has the length the stream's end announces. The local endpoint
// calls it for an OpPut with Delta set, basis being the file now at the
// path; the caller still checks the BLAKE3 of the result before installing.
func ApplyStream(basis io.ReaderAt, encoded io.Reader, out io.Writer) error {
	return ApplyStreamResign(basis, encoded, out, nil)
}

// ApplyStreamResign is ApplyStream feeding r, if not nil, as the file is
// rebuilt (see Patcher.Resign).
func ApplyStreamResign(basis io.ReaderAt, encoded io.Reader, out io.Writer, r *Resigner) error {
	d, err := DecodeInstrs(encoded)
	if err != nil {
		return err
	}
	p, err := NewPatcher(basis, d.Header(), out)
	if err != nil {
		return err
	}
	p.Resign(r)
	for {
		in, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := p.Apply(in); err != nil {
			return err
		}
	}
	if p.Written() != d.Size() {
		return fmt.Errorf("%w: rebuilt %d bytes, the sender announced %d", ErrCorrupt, p.Written(), d.Size())
	}
	return nil
}

package delta

import (
	"errors"
	"fmt"
	"io"
)

// MaxLiteral is the largest Literal instruction Delta emits and the largest
// one the decoders accept.
const MaxLiteral = 64 << 10

// InstrKind says what an instruction does.
type InstrKind uint8

// The instructions of a delta.
const (
	// Copy copies Count blocks of the basis, starting at block Block.
	Copy InstrKind = 1
	// Literal writes Data as it is.
	Literal InstrKind = 2
)

// String names k.
func (k InstrKind) String() string {
	switch k {
	case Copy:
		return "copy"
	case Literal:
		return "literal"
	}
	return fmt.Sprintf("instr(%d)", uint8(k))
}

// Instr is one step of rebuilding a file from its basis.
type Instr struct {
	Kind InstrKind
	// Block and Count give the run of basis blocks a Copy copies.
	Block, Count int64
	// Data holds a Literal's bytes (at most MaxLiteral). The slice passed
	// to an emit function is only valid during the call.
	Data []byte
}

// matcher indexes a signature's blocks by weak checksum.
type matcher struct {
	sig *Sig
	// filter has one bit per slot of a hash of the weak checksum, so that
	// most windows that match no block are rejected without a map lookup.
	filter []uint64
	shift  uint
	// first maps a weak checksum to the first block carrying it; next
	// chains the others.
	first map[uint32]int32
	next  []int32
}

// slot spreads a weak checksum over the filter.
func (m *matcher) slot(w uint32) uint32 { return (w * 0x9E3779B1) >> m.shift }

func newMatcher(sig *Sig) *matcher {
	n := len(sig.Blocks)
	bits := uint(16)
	for (1<<bits) < 16*n && bits < 30 {
		bits++
	}
	m := &matcher{
		sig:    sig,
		filter: make([]uint64, (1<<bits)/64),
		shift:  32 - bits,
		first:  make(map[uint32]int32, n),
		next:   make([]int32, n),
	}
	// Chain in reverse so that lookups find the lowest index first.
	for i := n - 1; i >= 0; i-- {
		w := sig.Blocks[i].Weak
		s := m.slot(w)
		m.filter[s/64] |= 1 << (s % 64)
		if j, ok := m.first[w]; ok {
			m.next[i] = j
		} else {
			m.next[i] = -1
		}
		m.first[w] = int32(i)
	}
	return m
}

// find returns the index of a block of length len(win) whose weak checksum
// is w and whose strong hash matches win, preferring block want (the one
// after the previous match, so that runs merge); -1 if none.
func (m *matcher) find(w uint32, win []byte, want int64) int64 {
	return m.findHashed(w, win, want, [StrongSize]byte{}, false)
}

// findHashed is find with the window's strong hash h already computed if
// hashed is set.
func (m *matcher) findHashed(w uint32, win []byte, want int64, h [StrongSize]byte, hashed bool) int64 {
	s := m.slot(w)
	if m.filter[s/64]&(1<<(s%64)) == 0 {
		return -1
	}
	blocks := m.sig.Blocks
	if !hashed && want >= 0 && want < int64(len(blocks)) && blocks[want].Weak == w && m.blockLen(want) == len(win) {
		h, hashed = strong(win), true
		if blocks[want].Strong == h {
			return want
		}
	}
	i, ok := m.first[w]
	if !ok {
		return -1
	}
	for ; i >= 0; i = m.next[i] {
		if m.blockLen(int64(i)) != len(win) {
			continue
		}
		if !hashed {
			h, hashed = strong(win), true
		}
		if blocks[i].Strong == h {
			return int64(i)
		}
	}
	return -1
}

// blockLen returns the length of block i of the basis.
func (m *matcher) blockLen(i int64) int {
	off := i * int64(m.sig.BlockSize)
	return int(min(int64(m.sig.BlockSize), m.sig.Size-off))
}

// emitter merges adjacent copies before handing instructions on.
type emitter struct {
	emit    func(Instr) error
	pending Instr // a Copy not yet emitted (Count 0: none)
	// maxRun caps the blocks one Copy covers, so that the receiver can
	// rebuild while the sender is still reading: a file unchanged but for
	// one byte would otherwise be two instructions, each sent only once
	// the sender has read half the file.
	maxRun int64
}

// maxRunBytes is about how much of the basis one Copy instruction covers
// at most.
const maxRunBytes = 8 << 20

func (e *emitter) copy(block int64) error {
	if e.pending.Count > 0 && e.pending.Block+e.pending.Count == block && e.pending.Count < e.maxRun {
		e.pending.Count++
		return nil
	}
	if err := e.flush(); err != nil {
		return err
	}
	e.pending = Instr{Kind: Copy, Block: block, Count: 1}
	return nil
}

func (e *emitter) literal(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if err := e.flush(); err != nil {
		return err
	}
	for len(p) > 0 {
		n := min(len(p), MaxLiteral)
		if err := e.emit(Instr{Kind: Literal, Data: p[:n]}); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

func (e *emitter) flush() error {
	if e.pending.Count == 0 {
		return nil
	}
	in := e.pending
	e.pending = Instr{}
	return e.emit(in)
}

// Confirm says which of the blocks the delta encoder matches it confirms by
// their strong hash.
type Confirm uint8

const (
	// ConfirmAll confirms every match by its strong hash: the rebuilt file
	// is the new one unless BLAKE3 collides.
	ConfirmAll Confirm = iota
	// ConfirmResync confirms by strong hash only the match that starts a
	// run: the first one, and the first after literal bytes. A block right
	// after a match that is the next block of the basis (the common case:
	// the unchanged bulk of a file, in place or moved as a whole) is taken
	// on its weak checksum alone, which takes a third to a half of the
	// time of a BLAKE3 hash.
	//
	// A weak checksum can agree on different bytes (a changed block whose
	// edits cancel out in both sums), so the rebuilt file may then differ
	// from the new one. It is for receivers that check the whole result's
	// hash, as every concord destination does before it renames, and that
	// ask again with ConfirmAll when that check fails: rsync's own answer
	// to its short strong sums (its "redo" pass).
	ConfirmResync
)

// Valid reports whether c is one of the defined values.
func (c Confirm) Valid() bool { return c <= ConfirmResync }

// Delta reads the new version of a file from newFile and calls emit with
// the instructions that rebuild it from the basis sig describes: Copy
// instructions (runs of adjacent blocks merged, up to about 8 MiB each)
// and Literal ones of at most MaxLiteral bytes. c says which matches are
// confirmed by strong hash. It reads newFile once, front to back, holding
// at most MaxLiteral plus two blocks of it; an error from emit stops it and
// is returned as it is.
func Delta(sig *Sig, newFile io.Reader, c Confirm, emit func(Instr) error) error {
	if err := sig.check(); err != nil {
		return err
	}
	bs := sig.BlockSize
	e := &emitter{emit: emit, maxRun: int64(max(maxRunBytes/bs, 1))}
	if len(sig.Blocks) == 0 {
		// Nothing to match against: the whole file is literal.
		buf := make([]byte, MaxLiteral)
		for {
			n, err := io.ReadFull(newFile, buf)
			if lerr := e.literal(buf[:n]); lerr != nil {
				return lerr
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("delta: read new file: %w", err)
			}
		}
	}
	m := newMatcher(sig)
	lastLen := m.blockLen(int64(len(sig.Blocks) - 1))

	// buf[lit:pos] is literal data not yet emitted, buf[pos:pos+bs] the
	// window, buf[:end] what has been read.
	buf := make([]byte, MaxLiteral+2*bs)
	var lit, pos, end int
	eof := false
	fill := func() error {
		if lit > 0 {
			copy(buf, buf[lit:end])
			pos -= lit
			end -= lit
			lit = 0
		}
		for !eof && end < len(buf) {
			n, err := newFile.Read(buf[end:])
			end += n
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return fmt.Errorf("delta: read new file: %w", err)
			}
			if n == 0 && err == nil {
				continue
			}
			if end-pos >= bs {
				break
			}
		}
		return nil
	}

	var a, b uint32 // weak sums of buf[pos:pos+bs], valid when fresh is false
	fresh := true
	want := int64(-1)
	// matched is set while the window starts where the last match ended
	// (no literal byte since): only there does ConfirmResync take block
	// want on its weak sum.
	matched := false
	for {
		if end-pos < bs {
			if !eof {
				if err := fill(); err != nil {
					return err
				}
				continue
			}
			break
		}
		var h [StrongSize]byte
		hashed := false
		if fresh {
			// Right after a match the next block most often follows:
			// try it on the strong hash alone, skipping the weak sum;
			// or, with ConfirmResync, on the weak sum alone.
			next := want >= 0 && want < int64(len(sig.Blocks)) && m.blockLen(want) == bs
			weakDone := false
			if next {
				var follows bool
				if c == ConfirmResync && matched {
					weakDone = true
					a, b = weakSums(buf[pos : pos+bs])
					follows = a&0xffff|b<<16 == sig.Blocks[want].Weak
				} else {
					h, hashed = strong(buf[pos:pos+bs]), true
					follows = h == sig.Blocks[want].Strong
				}
				if follows {
					if err := e.literal(buf[lit:pos]); err != nil {
						return err
					}
					if err := e.copy(want); err != nil {
						return err
					}
					pos += bs
					lit = pos
					want++
					matched = true
					continue
				}
			}
			if !weakDone {
				a, b = weakSums(buf[pos : pos+bs])
			}
			fresh = false
		}
		w := a&0xffff | b<<16
		if i := m.findHashed(w, buf[pos:pos+bs], want, h, hashed); i >= 0 {
			if err := e.literal(buf[lit:pos]); err != nil {
				return err
			}
			if err := e.copy(i); err != nil {
				return err
			}
			pos += bs
			lit = pos
			want = i + 1
			fresh, matched = true, true
			continue
		}
		// Roll the window one byte.
		matched = false
		out := uint32(buf[pos])
		if pos+bs < end {
			in := uint32(buf[pos+bs])
			a += in - out
			b += a - uint32(bs)*out
		} else {
			fresh = true
		}
		pos++
		if pos-lit >= MaxLiteral {
			if err := e.literal(buf[lit:pos]); err != nil {
				return err
			}
			lit = pos
		}
		if pos+bs > end {
			// The next window needs bytes not read yet; fill recomputes
			// the sums because it may move the buffer.
			fresh = true
		}
	}
	// Fewer than bs bytes are left: they may still match the short last
	// block of the basis.
	if lastLen < bs && end-pos >= lastLen {
		tail := buf[end-lastLen : end]
		if i := m.find(Weak(tail), tail, int64(len(sig.Blocks)-1)); i >= 0 {
			if err := e.literal(buf[lit : end-lastLen]); err != nil {
				return err
			}
			if err := e.copy(i); err != nil {
				return err
			}
			return e.flush()
		}
	}
	if err := e.literal(buf[lit:end]); err != nil {
		return err
	}
	return e.flush()
}

// check verifies that s is self-consistent.
func (s *Sig) check() error {
	if s == nil {
		return errors.New("delta: nil signature")
	}
	if s.BlockSize < MinBlockSize || s.BlockSize > MaxBlockSize {
		return fmt.Errorf("delta: signature block size %d outside [%d, %d]", s.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if s.Size < 0 || int64(len(s.Blocks)) != numBlocks(s.Size, s.BlockSize) {
		return fmt.Errorf("delta: signature has %d blocks for %d bytes of %d-byte blocks", len(s.Blocks), s.Size, s.BlockSize)
	}
	return nil
}

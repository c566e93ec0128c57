package delta

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/concord-sync/concord/archive/state"
)

// Block sizes and hash widths.
const (
	// MinBlockSize is the smallest block a signature uses: below it the
	// per-block overhead (20 bytes of signature, an instruction per block)
	// outweighs what a match saves.
	MinBlockSize = 2 << 10
	// MaxBlockSize is the largest block a signature uses, so that one
	// changed byte never costs more than 128 KiB of literal data.
	MaxBlockSize = 128 << 10
	// StrongSize is how many bytes of each block's BLAKE3-256 hash the
	// signature keeps. 128 bits make an accidental collision between two
	// blocks of a file practically impossible; the receiver also checks the
	// BLAKE3 of the whole rebuilt file before installing it.
	StrongSize = 16
)

// BlockSize returns the block size a signature of a file of size bytes
// uses: the square root of the size, rounded up to a multiple of 64, and
// clamped to [MinBlockSize, MaxBlockSize]. With it a file of n bytes has
// about sqrt(n) blocks, balancing the signature's size against the literal
// bytes one change costs, as rsync does.
func BlockSize(size int64) int {
	if size <= 0 {
		return MinBlockSize
	}
	b := int64(math.Sqrt(float64(size)))
	b = (b + 63) &^ 63
	return int(min(max(b, MinBlockSize), MaxBlockSize))
}

// Block is the signature of one block of the basis file.
type Block struct {
	// Weak is the rolling checksum of the block (see Weak).
	Weak uint32
	// Strong is the block's BLAKE3-256 hash truncated to StrongSize bytes.
	Strong [StrongSize]byte
}

// Sig is the signature of a basis file: its size, the block size, and one
// Block per block (the last one may be shorter than BlockSize).
type Sig struct {
	BlockSize int
	Size      int64
	Blocks    []Block
}

// Header returns the layout of the basis described by s, which is what
// Apply needs to serve Copy instructions.
func (s *Sig) Header() Header {
	return Header{BlockSize: s.BlockSize, BasisSize: s.Size}
}

// numBlocks returns how many blocks a basis of size bytes has with blocks
// of bs bytes.
func numBlocks(size int64, bs int) int64 {
	return (size + int64(bs) - 1) / int64(bs)
}

// Signer is implemented by endpoints that can compute the signature of a
// file they hold, so that the engine can send a delta to them. The local
// endpoint implements it by reading the file; the wire client forwards the
// request to its peer.
type Signer interface {
	// Signature returns the signature of the file at path, which must
	// match expect (by stat data); otherwise it returns an error wrapping
	// remote.ErrChanged.
	Signature(ctx context.Context, path string, expect *state.Entry) (*Sig, error)
}

// Weak returns rsync's weak checksum of p: with a the sum of the bytes and
// b the sum of the running values of a, both taken modulo 2^16, the result
// is a | b<<16. It can be rolled one byte at a time (see roll).
func Weak(p []byte) uint32 {
	a, b := weakSums(p)
	return a&0xffff | b<<16
}

// weakSums returns the two running sums of Weak, before masking.
//
// It is written by hand for speed: the signature takes the weak sum of every
// byte of the basis, and a plain byte loop ran at half BLAKE3's speed. Whole
// 128-byte chunks are summed eight bytes at a time in 16-bit lanes of a
// uint64 (SIMD within a register), then folded into a and b; the rest goes
// byte by byte.
func weakSums(p []byte) (a, b uint32) {
	for len(p) >= weakChunk {
		s, w := chunkSums((*[weakChunk]byte)(p))
		b += weakChunk*a + w
		a += s
		p = p[weakChunk:]
	}
	for _, c := range p {
		a += uint32(c)
		b += a
	}
	return a, b
}

// weakChunk is how many bytes chunkSums takes: 16 words of 8 bytes, the
// most for which its 16-bit lanes cannot overflow.
const weakChunk = 128

// chunkSums returns, for the bytes c[0..127] of p, the sum of c[i] and the
// weighted sum of (128-i)*c[i]: what 128 steps of the byte loop add to a and
// (besides 128 times the old a) to b.
//
// Word j of p (bytes 8j..8j+7) is split into its even and odd bytes, four
// 16-bit lanes each. ae and ao accumulate the words' lanes (at most
// 16*255 = 4080 per lane); pe and po accumulate ae and ao after each word,
// so that they hold the sum over j of (16-j) times word j's lanes (at most
// 136*255 = 34680 per lane). With i = 8j+k, (128-i) = 8(16-j) - k, so the
// weighted sum is 8 times the lanes of pe and po minus the sum of k times
// byte lane k.
func chunkSums(p *[weakChunk]byte) (sum, weighted uint32) {
	const even = 0x00ff00ff00ff00ff
	var ae, ao, pe, po uint64
	for j := 0; j < weakChunk; j += 8 {
		w := binary.LittleEndian.Uint64(p[j:])
		ae += w & even
		ao += (w >> 8) & even
		pe += ae
		po += ao
	}
	// Horizontal sums by multiplication: the top lane of x*M collects
	// lane l times the multiplier lane 3-l. No partial product overflows a
	// lane (checked against the bounds above), so the top lane is exact.
	const ones = 0x0001000100010001
	sum = uint32((ae*ones)>>48 + (ao*ones)>>48)
	// Byte lane k is lane k/2 of ae (k even) or ao (k odd): weights
	// 0,2,4,6 are 2 times (0,1,2,3), and 1,3,5,7 go into ao's multiplier.
	kEven := uint32((ae * (3 | 2<<16 | 1<<32)) >> 48)
	kOdd := uint32((ao * (7 | 5<<16 | 3<<32 | 1<<48)) >> 48)
	// pe and po lanes are too large to add four at once in 16 bits:
	// widen to 32-bit lanes first.
	const lo32 = 0x0000ffff0000ffff
	t := pe&lo32 + (pe>>16)&lo32 + po&lo32 + (po>>16)&lo32
	p8 := uint32(t) + uint32(t>>32)
	return sum, 8*p8 - (2*kEven + kOdd)
}

// strong returns the truncated BLAKE3 hash of p.
func strong(p []byte) (s [StrongSize]byte) {
	sum := blake3.Sum256(p)
	copy(s[:], sum[:StrongSize])
	return s
}

// sigBatchBytes is how much of the basis Signature reads at a time before
// hashing the blocks read in parallel.
const sigBatchBytes = 4 << 20

// Signature reads the basis file from r, which must deliver exactly size
// bytes, and returns its signature. Blocks are hashed on all available
// cores, a batch of about 4 MiB at a time, while the next batch is read.
func Signature(r io.Reader, size int64) (*Sig, error) {
	if size < 0 {
		return nil, fmt.Errorf("signature: negative size %d", size)
	}
	bs := BlockSize(size)
	n := numBlocks(size, bs)
	s := &Sig{BlockSize: bs, Size: size, Blocks: make([]Block, n)}
	perBatch := max(sigBatchBytes/bs, 1)
	bufLen := min(int64(perBatch*bs), size)
	// Two buffers: one being hashed, one being filled.
	bufs := [2][]byte{make([]byte, bufLen), nil}
	if bufLen < size {
		bufs[1] = make([]byte, bufLen)
	}
	workers := runtime.GOMAXPROCS(0)
	var hashing sync.WaitGroup
	defer hashing.Wait()
	for first, left, k := int64(0), size, 0; left > 0; k ^= 1 {
		p := bufs[k][:min(left, bufLen)]
		if _, err := io.ReadFull(r, p); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("signature: file is shorter than its %d bytes (changed while read?): %w", size, io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("signature: %w", err)
		}
		// The buffer read next was hashed two rounds ago: wait for
		// that before reading into it.
		hashing.Wait()
		count := (len(p) + bs - 1) / bs
		out := s.Blocks[first : first+int64(count)]
		hashing.Add(1)
		go func() {
			defer hashing.Done()
			hashBlocks(out, p, bs, workers)
		}()
		first += int64(count)
		left -= int64(len(p))
	}
	hashing.Wait()
	var one [1]byte
	if k, err := r.Read(one[:]); k > 0 {
		return nil, fmt.Errorf("signature: file is longer than its %d bytes (changed while read?)", size)
	} else if err != nil && err != io.EOF {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return s, nil
}

// hashBlocks fills out with the signatures of the blocks of p, split among
// up to workers goroutines.
func hashBlocks(out []Block, p []byte, bs, workers int) {
	hash := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			b := p[i*bs : min((i+1)*bs, len(p))]
			out[i] = Block{Weak: Weak(b), Strong: strong(b)}
		}
	}
	if workers <= 1 || len(out) < 2*workers {
		hash(0, len(out))
		return
	}
	var wg sync.WaitGroup
	per := (len(out) + workers - 1) / workers
	for lo := 0; lo < len(out); lo += per {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			hash(lo, hi)
		}(lo, min(lo+per, len(out)))
	}
	wg.Wait()
}

package delta

import "fmt"

// SigWriter computes the signature of a file from its contents as they are
// written to it, in order. The receiver of a large file sent whole signs it
// on its way to disk, so that the first delta against that file needs no
// pass over it (Signature reads and hashes the whole file: about a second
// per GiB on two cores).
//
// The result is exactly what Signature computes of the same bytes.
type SigWriter struct {
	blocks
	size int64
	seen int64
}

// NewSigWriter returns a SigWriter for a file of size bytes.
func NewSigWriter(size int64) *SigWriter {
	bs := BlockSize(size)
	return &SigWriter{blocks: newBlocks(bs, numBlocks(max(size, 0), bs)), size: max(size, 0)}
}

// Write takes the next bytes of the file. It never fails; bytes beyond
// the size announced are counted, and make Sig fail.
func (w *SigWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.seen += int64(n)
	if w.seen > w.size {
		w.out, w.cur = nil, nil
		return n, nil
	}
	w.write(p)
	return n, nil
}

// Sig returns the signature once the whole file went through the
// SigWriter; an error if it saw another number of bytes than the size.
func (w *SigWriter) Sig() (*Sig, error) {
	if w.seen != w.size {
		return nil, fmt.Errorf("delta: sign: saw %d bytes of a file of %d", w.seen, w.size)
	}
	w.finish()
	return &Sig{BlockSize: w.bs, Size: w.size, Blocks: w.out}, nil
}

// blocks collects the signature of bytes taken in order, a block of bs
// bytes at a time; SigWriter and Resigner hash through it.
type blocks struct {
	bs  int
	out []Block
	cur []byte // the bytes so far of a block split across writes
}

func newBlocks(bs int, n int64) blocks {
	return blocks{bs: bs, out: make([]Block, 0, n)}
}

// write takes the next bytes, hashing each block as it fills.
func (b *blocks) write(p []byte) {
	for len(p) > 0 {
		if len(b.cur) == 0 && len(p) >= b.bs {
			// A whole block at once: no copy into cur.
			b.out = append(b.out, Block{Weak: Weak(p[:b.bs]), Strong: strong(p[:b.bs])})
			p = p[b.bs:]
			continue
		}
		if b.cur == nil {
			b.cur = make([]byte, 0, b.bs)
		}
		k := min(b.bs-len(b.cur), len(p))
		b.cur = append(b.cur, p[:k]...)
		p = p[k:]
		if len(b.cur) == b.bs {
			b.out = append(b.out, Block{Weak: Weak(b.cur), Strong: strong(b.cur)})
			b.cur = b.cur[:0]
		}
	}
}

// finish hashes the last, shorter block, if any.
func (b *blocks) finish() {
	if len(b.cur) > 0 {
		b.out = append(b.out, Block{Weak: Weak(b.cur), Strong: strong(b.cur)})
		b.cur = b.cur[:0]
	}
}

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
	bs   int
	size int64
	seen int64
	out  []Block
	cur  []byte // the bytes so far of a block split across writes
}

// NewSigWriter returns a SigWriter for a file of size bytes.
func NewSigWriter(size int64) *SigWriter {
	bs := BlockSize(size)
	return &SigWriter{bs: bs, size: max(size, 0), out: make([]Block, 0, numBlocks(max(size, 0), bs))}
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
	for len(p) > 0 {
		if len(w.cur) == 0 && len(p) >= w.bs {
			// A whole block at once: no copy into cur.
			w.out = append(w.out, Block{Weak: Weak(p[:w.bs]), Strong: strong(p[:w.bs])})
			p = p[w.bs:]
			continue
		}
		if w.cur == nil {
			w.cur = make([]byte, 0, w.bs)
		}
		k := min(w.bs-len(w.cur), len(p))
		w.cur = append(w.cur, p[:k]...)
		p = p[k:]
		if len(w.cur) == w.bs {
			w.out = append(w.out, Block{Weak: Weak(w.cur), Strong: strong(w.cur)})
			w.cur = w.cur[:0]
		}
	}
	return n, nil
}

// Sig returns the signature once the whole file went through the
// SigWriter; an error if it saw another number of bytes than the size.
func (w *SigWriter) Sig() (*Sig, error) {
	if w.seen != w.size {
		return nil, fmt.Errorf("delta: sign: saw %d bytes of a file of %d", w.seen, w.size)
	}
	if len(w.cur) > 0 {
		w.out = append(w.out, Block{Weak: Weak(w.cur), Strong: strong(w.cur)})
		w.cur = w.cur[:0]
	}
	return &Sig{BlockSize: w.bs, Size: w.size, Blocks: w.out}, nil
}

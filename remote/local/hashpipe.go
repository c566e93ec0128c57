package local

import (
	"io"
	"sync"

	"github.com/zeebo/blake3"
)

// pipeHashMin is the size from which a file's contents are hashed on a
// goroutine of their own while they are written: below it the hand-off
// costs more than it saves.
const pipeHashMin = 8 << 20

// pipeBufSize and pipeBufs size the hand-off: a writer is at most
// pipeBufs*pipeBufSize bytes ahead of the hash.
const (
	pipeBufSize = 1 << 20
	pipeBufs    = 4
)

// hashWriter is a hash that contents are written to.
type hashWriter interface {
	io.Writer
	Sum(b []byte) []byte
}

// newHashWriter returns the hash for a file of size bytes: a plain BLAKE3
// hasher for small files, a pipeHasher for large ones. The returned stop
// function must be called once the hash is no longer needed.
func newHashWriter(size int64) (hw hashWriter, stop func()) {
	if size < pipeHashMin {
		h := hashers.Get().(*blake3.Hasher)
		return h, func() {
			h.Reset()
			hashers.Put(h)
		}
	}
	p := newPipeHasher()
	return p, p.stop
}

// hashers recycles the hashers of small files: a first sync of many small
// files otherwise allocates (and clears) a hasher of several kilobytes per
// file, which cost a twentieth of the far side's CPU time in the remote
// first-sync benchmark.
var hashers = sync.Pool{New: func() any { return blake3.New() }}

// pipeHasher computes the BLAKE3 hash of what is written to it on another
// goroutine, so that writing a large file to disk and hashing it use two
// cores instead of taking turns on one. Sum waits for the hash to catch up.
type pipeHasher struct {
	*pipeWriter
	h *blake3.Hasher
}

func newPipeHasher() *pipeHasher {
	h := blake3.New()
	return &pipeHasher{pipeWriter: newPipeWriter(h), h: h}
}

// Sum appends the hash of everything written to b, once the hashing
// goroutine has caught up. Nothing may be written after it.
func (p *pipeHasher) Sum(b []byte) []byte {
	p.stop()
	return p.h.Sum(b)
}

// pipeWriter hands what is written to it to w, a writer that never fails
// (a hash, a signature), on a goroutine of its own: Write copies the bytes
// into one of a few buffers and returns.
type pipeWriter struct {
	w    io.Writer
	work chan []byte
	free chan []byte
	done chan struct{}
	once sync.Once
}

// pipeBufPool recycles the hand-off buffers between files.
var pipeBufPool = sync.Pool{New: func() any { b := make([]byte, pipeBufSize); return &b }}

func newPipeWriter(w io.Writer) *pipeWriter {
	p := &pipeWriter{
		w:    w,
		work: make(chan []byte, pipeBufs),
		free: make(chan []byte, pipeBufs),
		done: make(chan struct{}),
	}
	for range pipeBufs {
		p.free <- *pipeBufPool.Get().(*[]byte)
	}
	go func() {
		defer close(p.done)
		for b := range p.work {
			p.w.Write(b)
			p.free <- b[:cap(b)]
		}
	}()
	return p
}

// Write hands a copy of b to the goroutine. It never fails.
func (p *pipeWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		buf := <-p.free
		k := copy(buf, b)
		p.work <- buf[:k]
		b = b[k:]
	}
	return n, nil
}

// fill hands the goroutine the bytes read puts into one of its buffers (no
// copy), and returns read's result.
func (p *pipeWriter) fill(read func(b []byte) (int, error)) (int, error) {
	buf := <-p.free
	k, err := read(buf)
	if k > 0 {
		p.work <- buf[:k]
	} else {
		p.free <- buf
	}
	return k, err
}

// stop ends the goroutine (after it has written what it was given) and
// returns the buffers to the pool. It may be called more than once.
func (p *pipeWriter) stop() {
	p.once.Do(func() {
		close(p.work)
		<-p.done
		for range pipeBufs {
			b := <-p.free
			pipeBufPool.Put(&b)
		}
	})
}

// Package bufpool recycles byte buffers of a few fixed sizes.
//
// A sync.Pool of one size either wastes memory on small requests or cannot
// serve large ones; a Pool keeps one sync.Pool per size and serves each
// request from the smallest size that holds it.
package bufpool

import (
	"slices"
	"sync"
)

// Pool recycles buffers of the sizes it was made with.
type Pool struct {
	sizes []int
	pools []sync.Pool
}

// New returns a pool of buffers of the given sizes.
func New(sizes ...int) *Pool {
	s := slices.Clone(sizes)
	slices.Sort(s)
	return &Pool{sizes: s, pools: make([]sync.Pool, len(s))}
}

// Get returns an empty buffer with room for n bytes: its capacity is the
// smallest size that holds n, or n itself when that is larger than every
// size (such a buffer is allocated and left to the collector).
func (p *Pool) Get(n int) []byte {
	for i, size := range p.sizes {
		if n <= size {
			if b, ok := p.pools[i].Get().(*[]byte); ok {
				return (*b)[:0]
			}
			return make([]byte, 0, size)
		}
	}
	return make([]byte, 0, n)
}

// Put recycles b, which its caller no longer uses and nothing else refers
// to. Buffers whose capacity is not one of the pool's sizes are left to the
// collector.
func (p *Pool) Put(b []byte) {
	for i, size := range p.sizes {
		if cap(b) == size {
			b = b[:0]
			p.pools[i].Put(&b)
			return
		}
	}
}

package bufpool

import "testing"

func TestPool(t *testing.T) {
	p := New(64, 16, 256) // any order
	for _, tc := range []struct{ n, want int }{
		{0, 16}, {1, 16}, {16, 16}, {17, 64}, {64, 64}, {65, 256}, {256, 256}, {257, 257}, {1000, 1000},
	} {
		b := p.Get(tc.n)
		if len(b) != 0 || cap(b) != tc.want {
			t.Errorf("Get(%d): len %d cap %d, want 0 and %d", tc.n, len(b), cap(b), tc.want)
		}
		p.Put(append(b, 'x'))
	}
	// A recycled buffer comes back empty.
	b := append(p.Get(10), "left over"...)
	p.Put(b)
	if c := p.Get(10); len(c) != 0 {
		t.Errorf("a recycled buffer came back holding %q", c)
	}
}

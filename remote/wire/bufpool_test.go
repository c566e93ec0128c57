package wire

import "testing"

// TestBufClasses checks that getBuf gives an empty buffer with room for
// what was asked, from the smallest class that fits, and that putBuf keeps
// only buffers of a class.
func TestBufClasses(t *testing.T) {
	for _, n := range []int{0, 1, 4<<10 + 1, 8 << 10, 8<<10 + 1, inlineMax + 1, ChunkSize, ChunkSize + 64<<10, ChunkSize + 64<<10 + 1} {
		b := getBuf(n)
		if len(b) != 0 || cap(b) < n {
			t.Errorf("getBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		want := n
		for _, size := range bufClasses {
			if n <= size {
				want = size
				break
			}
		}
		if cap(b) != want {
			t.Errorf("getBuf(%d): cap %d, want the class of %d", n, cap(b), want)
		}
		putBuf(append(b, 'x'))
	}
	// A recycled buffer comes back empty.
	b := getBuf(10)
	b = append(b, "left over"...)
	putBuf(b)
	if c := getBuf(10); len(c) != 0 {
		t.Errorf("a recycled buffer came back holding %q", c)
	}
}

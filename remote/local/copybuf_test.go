package local

import "testing"

func TestCopyBufClass(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int // buffer length
	}{
		{0, 4 << 10},
		{100, 4 << 10},
		{4<<10 - 1, 4 << 10},
		{4 << 10, 8 << 10}, // one byte more than the file, to see its end
		{100 << 10, 128 << 10},
		{256<<10 - 1, 256 << 10},
		{256 << 10, 256 << 10}, // the largest class
		{1 << 30, 256 << 10},
		{-1, 256 << 10}, // size unknown
	} {
		b := getCopyBuf(tc.size)
		if len(b) != tc.want {
			t.Errorf("size %d: a buffer of %d bytes, want %d", tc.size, len(b), tc.want)
		}
		putCopyBuf(b)
		// Recycled into its own class: the next buffer of that size
		// has the same length.
		if b2 := getCopyBuf(tc.size); len(b2) != tc.want {
			t.Errorf("size %d after recycling: %d bytes, want %d", tc.size, len(b2), tc.want)
		}
	}
}

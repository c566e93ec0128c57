// Package deltatest helps tests of delta transfers make the edits the
// rsync weak checksum cannot see.
package deltatest

import "fmt"

// CollideWeak changes four bytes of p so that p's contents differ but its
// weak checksum (delta.Weak) stays the same: +1 at i, -1 at i+1, -1 at j
// and +1 at j+1 leave both running sums unchanged, the weighted one because
// each pair moves weight 1 one place. It picks the first i from a quarter
// of p and j from three quarters where the bytes allow, and fails when p
// is shorter than 8 bytes or no such positions exist.
func CollideWeak(p []byte) error {
	if len(p) < 8 {
		return fmt.Errorf("deltatest: %d bytes are too few to collide", len(p))
	}
	i := find(p, len(p)/4, func(a, b byte) bool { return a < 255 && b > 0 })
	j := find(p, 3*len(p)/4, func(a, b byte) bool { return a > 0 && b < 255 })
	if i < 0 || j < 0 || j <= i+1 {
		return fmt.Errorf("deltatest: no room for a colliding edit in %d bytes", len(p))
	}
	p[i]++
	p[i+1]--
	p[j]--
	p[j+1]++
	return nil
}

// find returns the first k from start with ok(p[k], p[k+1]), or -1.
func find(p []byte, start int, ok func(a, b byte) bool) int {
	for k := start; k+1 < len(p); k++ {
		if ok(p[k], p[k+1]) {
			return k
		}
	}
	return -1
}

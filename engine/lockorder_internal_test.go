package engine

import (
	"testing"

	"github.com/concord-sync/concord/remote"
)

// TestLockOrder checks the order in which the sides take their locks: two
// local roots by replica id, the same for both orders of the roots on the
// command line; a pair with a remote root in root order.
func TestLockOrder(t *testing.T) {
	tests := []struct {
		root1, root2 string
		id1, id2     string
		want         [2]int
	}{
		{"/a", "/b", "aaaa", "bbbb", [2]int{1, 2}},
		{"/b", "/a", "bbbb", "aaaa", [2]int{2, 1}},
		{"/a", "host:/b", "aaaa", "bbbb", [2]int{1, 2}},
		{"/b", "host:/a", "bbbb", "aaaa", [2]int{1, 2}},
		{"ssh://host/b", "/a", "bbbb", "aaaa", [2]int{1, 2}},
	}
	for _, tt := range tests {
		s := &Session{cfg: Config{Root1: tt.root1, Root2: tt.root2}}
		s.info[1], s.info[2] = remote.Info{ReplicaID: tt.id1}, remote.Info{ReplicaID: tt.id2}
		if got := s.lockOrder(); got != tt.want {
			t.Errorf("lockOrder(%s [%s], %s [%s]) = %v, want %v", tt.root1, tt.id1, tt.root2, tt.id2, got, tt.want)
		}
	}
}

package remote

import "testing"

// TestTrimClasses: the class prefixes at the start of a message go, in any
// order and repeated; anything else stays, and a message that is only a
// prefix is left whole.
func TestTrimClasses(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"fatal: root /srv does not exist", "root /srv does not exist"},
		{"fatal: locked: pair lock held by pid 42", "pair lock held by pid 42"},
		{"locked: fatal: pair lock held by pid 42", "pair lock held by pid 42"},
		{"fatal: fatal: x", "x"},
		{"archive damaged: fatal: x", "archive damaged: fatal: x"},
		{"changed: f.txt", "changed: f.txt"},
		{"fatal: ", "fatal: "},
	} {
		if got := TrimClasses(tt.in, ErrFatal, ErrLocked); got != tt.want {
			t.Errorf("TrimClasses(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

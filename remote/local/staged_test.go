package local

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestAnonymousFilesBounded checks that anonymous files are counted while
// open and that beyond the limit named temporary files are used instead.
func TestAnonymousFilesBounded(t *testing.T) {
	if noAnonymous.Load() {
		t.Skip("no O_TMPFILE or /proc here: named temporary files are used throughout")
	}
	dirfd, err := unix.Open(t.TempDir(), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	oldMax, before := anonMax, anonOpen.Load()
	anonMax = before + 1
	defer func() { anonMax = oldMax }()

	first, err := openAnonymous(dirfd)
	if err != nil || first < 0 {
		t.Skipf("O_TMPFILE is not supported here (%v): named temporary files are used", err)
	}
	if second, err := openAnonymous(dirfd); err != nil || second >= 0 {
		t.Fatalf("beyond the limit: openAnonymous = %d, %v; want -1 (a named file instead)", second, err)
	}
	if n := anonOpen.Load(); n != before+1 {
		t.Errorf("%d anonymous files counted, want %d", n, before+1)
	}
	staged{fd: first}.discard(dirfd)
	if n := anonOpen.Load(); n != before {
		t.Errorf("after discarding: %d counted, want %d", n, before)
	}
	if again, err := openAnonymous(dirfd); err != nil || again < 0 {
		t.Errorf("after one was freed: openAnonymous = %d, %v", again, err)
	} else {
		staged{fd: again}.discard(dirfd)
	}
}

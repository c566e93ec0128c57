// Package fdlimittest lowers the limit of open files for a test, so that
// code which must live within a low limit (ulimit -n in a container or a
// cron job) can be tested against one.
package fdlimittest

import (
	"syscall"
	"testing"
)

// Lower sets the soft limit of open files of the test process to n until
// the test ends. It skips the test when the limit cannot be read or set, or
// is already below n. The limit applies to the whole process: tests that
// call it must not run in parallel with others.
func Lower(t testing.TB, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if old.Cur < n {
		t.Skipf("the limit of open files is already %d", old.Cur)
	}
	low := old
	low.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restore the limit of open files: %v", err)
		}
	})
}

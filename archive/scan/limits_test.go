package scan

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

// TestScanLowDescriptorLimit scans, under a low limit of open files, a tree
// of many directories holding one file each to hash: a directory stays
// open until its files are hashed, so without a bound the directories
// waiting for the hashers exhaust the descriptors and are reported as
// unreadable.
func TestScanLowDescriptorLimit(t *testing.T) {
	root := t.TempDir()
	const dirs = 600
	for i := range dirs {
		d := filepath.Join(root, fmt.Sprintf("d%03d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	const limit = 96
	if old.Cur < limit {
		t.Skipf("the descriptor limit is already %d", old.Cur)
	}
	low := old
	low.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	res := mustScan(t, root, nil, Options{})
	if len(res.Skipped) != 0 {
		t.Fatalf("%d problems under a limit of %d descriptors, e.g. %s: %s", len(res.Skipped), limit, res.Skipped[0].Path, res.Skipped[0].Err)
	}
	files := 0
	for _, c := range res.Changes {
		if c.New != nil && c.New.Kind == state.File && !c.New.Unhashed {
			files++
		}
	}
	if want := dirs; files != want {
		t.Errorf("%d files hashed, want %d", files, want)
	}
}

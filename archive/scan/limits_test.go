package scan

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/internal/fdlimit/fdlimittest"
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
	const limit = 96
	fdlimittest.Lower(t, limit)
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

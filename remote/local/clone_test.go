package local

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
	"golang.org/x/sys/unix"
)

// reflinkDir returns a new directory on a file system that can clone
// ranges of files (XFS, btrfs): under $CONCORD_TEST_REFLINK_DIR, which must
// be one when set, or else under the temporary directory if it is one. It
// skips the test otherwise.
func reflinkDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("CONCORD_TEST_REFLINK_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "reflink")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if !canClone(t, dir) {
			t.Fatalf("CONCORD_TEST_REFLINK_DIR=%s cannot clone files (FICLONE); it must be on XFS with reflink or btrfs", d)
		}
		return dir
	}
	dir := t.TempDir()
	if !canClone(t, dir) {
		t.Skipf("%s cannot clone files; set CONCORD_TEST_REFLINK_DIR to a directory on XFS or btrfs to run this test (.ci/run mounts an XFS image)", os.TempDir())
	}
	return dir
}

func canClone(t *testing.T, dir string) bool {
	a := filepath.Join(dir, ".probe-a")
	b := filepath.Join(dir, ".probe-b")
	defer os.Remove(a)
	defer os.Remove(b)
	if err := os.WriteFile(a, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Create(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	return unix.IoctlFileClone(int(fb.Fd()), int(fa.Fd())) == nil
}

// TestPutDeltaClones applies a delta of a file with 1,000 bytes changed in
// the middle: where the file system can clone, the unchanged ranges are
// cloned from the old version (and take no new disk space), and the result
// is right either way; a result that does not hash to what the sender
// claims is still refused.
func TestPutDeltaClones(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		reflink bool // on a file system that can clone
		off     bool // with cloning turned off
		size    int
		corrupt bool // the sender's hash does not match
	}{
		{name: "large, hashed on the side", reflink: true, size: 12 << 20},
		{name: "small, hashed in line", reflink: true, size: 1<<20 + 12345},
		{name: "cloning off", reflink: true, off: true, size: 12 << 20},
		{name: "wrong hash", reflink: true, size: 12 << 20, corrupt: true},
		{name: "any file system", size: 12 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.reflink {
				dir = reflinkDir(t)
			}
			if tt.off {
				cloneDisabled = true
				t.Cleanup(func() { cloneDisabled = false })
			}
			r := rand.New(rand.NewPCG(41, uint64(tt.size)))
			old := make([]byte, tt.size)
			for i := range old {
				old[i] = byte(r.Uint32())
			}
			next := bytes.Clone(old)
			for i := range 1000 {
				next[len(next)/2+i] ^= 0x5a
			}
			root := filepath.Join(dir, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "f"), old, 0o644); err != nil {
				t.Fatal(err)
			}
			// A second link keeps the old version's blocks allocated,
			// so that the space the new version takes shows.
			if err := os.Link(filepath.Join(root, "f"), filepath.Join(dir, "old")); err != nil {
				t.Fatal(err)
			}
			f := newFixtureAt(t, root, nil, remote.OpenRequest{}, Options{})
			expect := f.entry("f")
			sig, err := f.e.Signature(ctx, "f", expect)
			if err != nil {
				t.Fatal(err)
			}
			var enc bytes.Buffer
			if err := delta.WriteDelta(&enc, sig, bytes.NewReader(next), delta.ConfirmAll); err != nil {
				t.Fatal(err)
			}
			claim := fileEntry(string(next), 0o644, t0)
			if tt.corrupt {
				claim.Hash[0] ^= 1
			}
			free := func() int64 {
				var st unix.Statfs_t
				if err := unix.Statfs(dir, &st); err != nil {
					t.Fatal(err)
				}
				return int64(st.Bfree) * st.Bsize
			}
			unix.Sync()
			before := free()
			_, err = f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: expect, New: claim, Delta: true}, &enc)
			if tmp := temps(t, root); len(tmp) != 0 {
				t.Errorf("temporary files left: %q", tmp)
			}
			if tt.corrupt {
				if err == nil {
					t.Fatal("a result whose hash differs from the sender's was installed")
				}
				if f.read("f") != string(old) {
					t.Fatal("refused delta changed the destination")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.read("f") != string(next) {
				t.Fatal("delta result differs from the new version")
			}
			unix.Sync()
			grew := before - free()
			cloned := f.e.cloned.Load()
			t.Logf("cloned %d of %d bytes; free space fell by %d bytes", cloned, tt.size, grew)
			switch {
			case !tt.reflink:
			case tt.off && cloned != 0:
				t.Errorf("cloned %d bytes with cloning off", cloned)
			case tt.off:
			case cloned < int64(tt.size)-4*delta.CloneMin:
				t.Errorf("cloned %d bytes of a %d-byte file with 1,000 bytes changed", cloned, tt.size)
			case grew > int64(tt.size)/4:
				t.Errorf("the new version took %d bytes of new space; cloned, it should share all but the change", grew)
			}
		})
	}
}

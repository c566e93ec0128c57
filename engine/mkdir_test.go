package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-sync/concord/engine"
)

// TestNewDirectoryTrees: directories are created while what goes inside
// them is already dispatched (each waits for its parent): deep and wide
// new trees arrive whole, a read-only directory gets its mode after its
// contents, and a directory that cannot be created fails its item without
// anything below it being attempted.
func TestNewDirectoryTrees(t *testing.T) {
	p := newPair(t)
	p.write(1, "keep.txt", "k")
	if r := p.sync(p.config()); r.Failed != 0 {
		t.Fatalf("first sync: %v", outcomes(r))
	}
	deep := "deep"
	for i := range 12 {
		deep += fmt.Sprintf("/l%02d", i)
		p.write(1, deep+"/f.txt", "level "+deep)
	}
	for i := range 40 {
		for j := range 3 {
			p.write(1, fmt.Sprintf("wide/d%02d/s%d/f%d", i, j, j), fmt.Sprintf("%d.%d", i, j))
		}
	}
	p.write(1, "ro/inner/f", "read-only parent")
	if err := os.Chmod(filepath.Join(p.root[1], "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(p.root[1], "ro"), 0o755)
	p.write(1, "blocked/sub/f", "never placed")
	// Between the scan and propagation a file appears on side 2 where
	// side 1's new directory "blocked" goes.
	t.Setenv(engine.HookEnv, "echo theirs > "+filepath.Join(p.root[2], "blocked"))
	res := p.sync(p.config())
	t.Setenv(engine.HookEnv, "")
	defer os.Chmod(filepath.Join(p.root[2], "ro"), 0o755)

	var failed []string
	for _, o := range res.Outcomes {
		if o.Status == engine.Failed {
			failed = append(failed, o.Item.Path)
			if !strings.Contains(o.Err.Error(), "blocked") {
				t.Errorf("%s failed with %v, want the error of creating blocked", o.Item.Path, o.Err)
			}
		}
	}
	if strings.Join(failed, " ") != "blocked" {
		t.Errorf("failed items %q, want only blocked; outcomes %v", failed, outcomes(res))
	}
	if b, err := os.ReadFile(filepath.Join(p.root[2], "blocked")); err != nil || string(b) != "theirs\n" {
		t.Errorf("side 2's blocked = %q, %v; want its own file left alone", b, err)
	}
	one, two := p.tree(1), p.tree(2)
	for path, v := range one {
		if strings.HasPrefix(path, "blocked") {
			continue
		}
		if two[path] != v {
			t.Errorf("%s on side 2: %q, want %q", path, two[path], v)
		}
	}
	fi, err := os.Stat(filepath.Join(p.root[2], "ro"))
	if err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("side 2's ro: %v, %v; want mode 0555", fi.Mode(), err)
	}
}

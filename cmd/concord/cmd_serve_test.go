package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWidenPipes checks that serve's pipes are enlarged and that other
// streams are left alone.
func TestWidenPipes(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	max := servePipeSize
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		var m int
		if _, err := fmt.Sscan(string(b), &m); err == nil && m < max {
			max = m
		}
	}
	if before >= max {
		t.Skipf("pipes here already hold %d bytes", before)
	}
	widenPipes(r, w, f, os.Stderr, nil)
	for _, p := range []*os.File{r, w} {
		got, err := unix.FcntlInt(p.Fd(), unix.F_GETPIPE_SZ, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got != max {
			t.Errorf("pipe holds %d bytes after widenPipes, want %d (was %d)", got, max, before)
		}
	}
	if _, err := f.WriteString("still writable"); err != nil {
		t.Errorf("a plain file was disturbed: %v", err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBuildID checks that development builds are told apart by their
// contents and releases are not.
func TestBuildID(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("one build"), 0o755)
	os.WriteFile(b, []byte("another build"), 0o755)
	idA, idB := buildID("0.1.0-dev", a), buildID("0.1.0-dev", b)
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(idA) || idA == idB {
		t.Errorf("dev build ids %q and %q: want 12 hex digits, different for different executables", idA, idB)
	}
	if again := buildID("0.1.0-dev", a); again != idA {
		t.Errorf("the same executable got %q, then %q", idA, again)
	}
	if id := buildID("1.2.0", a); id != "" {
		t.Errorf("release build id %q, want none", id)
	}
	if id := buildID("0.1.0-dev", filepath.Join(dir, "missing")); id != "" {
		t.Errorf("unreadable executable: build id %q, want none", id)
	}
}

// TestBuildIDOfThisBinary checks that the test binary's Go build ID is
// found in its ELF note (the fast way, without hashing the file) and that
// it names the build.
func TestBuildIDOfThisBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	id := goBuildID(exe)
	if id == "" || !strings.Contains(id, "/") {
		t.Fatalf("Go build ID of the test binary = %q, want actionID/contentID", id)
	}
	if got := buildID("0.1.0-dev", exe); len(got) != 12 {
		t.Errorf("buildID = %q", got)
	}
}

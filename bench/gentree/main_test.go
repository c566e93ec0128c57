package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readTree returns every regular file under root by relative path.
func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestTree(t *testing.T) {
	tests := []struct {
		name      string
		n, dirs   int
		seed      string
		wantDirs  int
		wantFiles int
	}{
		{"small", 50, 10, "1", 10, 50},
		{"one dir", 7, 1, "1", 1, 7},
		{"more dirs than files", 3, 20, "5", 20, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
			for _, root := range []string{a, b} {
				args := []string{"-n", itoa(tc.n), "-dirs", itoa(tc.dirs), "-seed", tc.seed, root}
				if err := cmdTree(args); err != nil {
					t.Fatal(err)
				}
			}
			fa, fb := readTree(t, a), readTree(t, b)
			if len(fa) != tc.wantFiles {
				t.Errorf("got %d files, want %d", len(fa), tc.wantFiles)
			}
			for p, data := range fa {
				if len(data) < 100 || len(data) > 4096 {
					t.Errorf("%s: size %d outside 100..4096", p, len(data))
				}
				if !bytes.Equal(data, fb[p]) {
					t.Errorf("%s differs between two runs with the same seed", p)
				}
			}
			dirs := 0
			_ = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() && p != a {
					dirs++
				}
				return err
			})
			if dirs != tc.wantDirs {
				t.Errorf("got %d directories, want %d", dirs, tc.wantDirs)
			}
			if err := cmdTree([]string{"-n", "1", a}); err == nil || !strings.Contains(err.Error(), "not empty") {
				t.Errorf("tree into a non-empty directory: got %v, want a refusal", err)
			}
		})
	}
}

func TestEditPartsAreDisjoint(t *testing.T) {
	root := filepath.Join(t.TempDir(), "t")
	if err := cmdTree([]string{"-n", "40", "-dirs", "4", root}); err != nil {
		t.Fatal(err)
	}
	before := readTree(t, root)
	if err := cmdEdit([]string{"-count", "20", "-part", "0", "-seed", "7", root}); err != nil {
		t.Fatal(err)
	}
	afterEven := readTree(t, root)
	if err := cmdEdit([]string{"-count", "20", "-part", "1", "-seed", "8", root}); err != nil {
		t.Fatal(err)
	}
	afterOdd := readTree(t, root)
	for p := range before {
		even := !bytes.Equal(before[p], afterEven[p])
		odd := !bytes.Equal(afterEven[p], afterOdd[p])
		if even == odd {
			t.Errorf("%s: edited by part 0: %v, by part 1: %v; want exactly one", p, even, odd)
		}
	}
	if err := cmdEdit([]string{"-count", "21", "-part", "0", root}); err == nil {
		t.Error("editing more files than the part holds succeeded")
	}
}

func TestBigAndPoke(t *testing.T) {
	f := filepath.Join(t.TempDir(), "big")
	if err := cmdBig([]string{"-size", "100000", f}); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(f)
	if err := cmdPoke([]string{"-bytes", "1000", f}); err != nil {
		t.Fatal(err)
	}
	poked, _ := os.ReadFile(f)
	if len(orig) != 100000 || len(poked) != 100000 {
		t.Fatalf("sizes %d and %d, want 100000", len(orig), len(poked))
	}
	first, last := -1, -1
	for i := range orig {
		if orig[i] != poked[i] {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 50000 || last >= 51000 || last-first < 900 {
		t.Errorf("changed bytes %d..%d, want within 50000..50999", first, last)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

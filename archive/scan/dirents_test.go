package scan

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadNames checks readNames against os.ReadDir on a directory whose
// records fill the getdents buffer several times over, with names of
// every length up to the 255-byte limit and odd bytes.
func TestReadNames(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 1200 {
		want = append(want, fmt.Sprintf("%04d-", i)+strings.Repeat("x", i%251))
	}
	want = append(want, "with space", "new\nline", "é-ü", ".hidden", "..x", "-")
	slices.Sort(want)
	want = slices.Compact(want)
	for _, n := range want {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got, err := readNames(fd, newDirScratch())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("readNames listed %d names, want %d (first difference near %q)", len(got), len(want), firstDiff(got, want))
	}
	// The records took several getdents calls.
	total := 0
	for _, n := range want {
		total += (19 + len(n) + 1 + 7) &^ 7
	}
	if total <= 2*direntBuf {
		t.Fatalf("test tree too small: %d bytes of records", total)
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i]
		}
	}
	return "the end"
}

// dirent encodes one linux_dirent64 record.
func dirent(name string, pad int) []byte {
	reclen := 19 + len(name) + 1 + pad
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b, 42)
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = unix.DT_REG
	copy(b[19:], name)
	return b
}

func TestParseDirents(t *testing.T) {
	var b []byte
	for _, n := range []string{".", "..", "a", "bb", "c"} {
		b = append(b, dirent(n, 3)...)
	}
	arena, ends, err := parseDirents(b, nil, nil)
	if err != nil || string(arena) != "abbc" || !slices.Equal(ends, []int{1, 3, 4}) {
		t.Errorf("parseDirents = %q %v %v", arena, ends, err)
	}
	bad := dirent("x", 0)
	binary.NativeEndian.PutUint16(bad[16:], 0)
	for name, b := range map[string][]byte{
		"zero length":   bad,
		"too long":      dirent("x", 0)[:15],
		"beyond buffer": append(dirent("abc", 0)[:19], 'a'),
	} {
		if _, _, err := parseDirents(b, nil, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzParseDirents checks that no input makes parseDirents panic or
// return a name with a NUL in it.
func FuzzParseDirents(f *testing.F) {
	f.Add(append(dirent("a", 3), dirent("..", 0)...))
	f.Add(dirent("name", 0)[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		arena, ends, err := parseDirents(b, nil, nil)
		if err != nil {
			return
		}
		start := 0
		for _, end := range ends {
			if end <= start || end > len(arena) || strings.IndexByte(string(arena[start:end]), 0) >= 0 {
				t.Fatalf("bad name bounds %d..%d in %q", start, end, arena)
			}
			start = end
		}
	})
}

package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

func hashOf(b byte) [32]byte {
	var h [32]byte
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func unpackAll(t *testing.T, b []byte) (map[string]*state.Entry, []string) {
	t.Helper()
	got := map[string]*state.Entry{}
	var order []string
	n, err := unpackDir(b, func(name string, e *state.Entry) {
		got[name] = e
		order = append(order, name)
	})
	if err != nil {
		t.Fatalf("unpackDir: %v", err)
	}
	if n != len(order) {
		t.Fatalf("unpackDir returned count %d, called fn %d times", n, len(order))
	}
	return got, order
}

func TestPackRoundTrip(t *testing.T) {
	longTarget := strings.Repeat("../very/long/target/", 300) // 6000 bytes
	tests := []struct {
		name     string
		children map[string]*state.Entry
	}{
		{"empty", map[string]*state.Entry{}},
		{"one file", map[string]*state.Entry{
			"a.txt": {Kind: state.File, Mode: 0o644, Size: 12, MTime: 1_700_000_000_123456789, Hash: hashOf(1), Ino: 42, CTime: 1_700_000_001_000000000},
		}},
		{"all kinds", map[string]*state.Entry{
			"dir":  {Kind: state.Dir, Mode: 0o755, MTime: 5, Ino: 7, CTime: 9},
			"file": {Kind: state.File, Mode: 0o600, Size: 1 << 40, MTime: -1, Hash: hashOf(2), Ino: math.MaxUint64, CTime: math.MinInt64},
			"link": {Kind: state.Symlink, Target: "dir/file", Hash: hashOf(3), MTime: 3, Ino: 1},
		}},
		{"non-UTF-8 and control names", map[string]*state.Entry{
			"\xff\xfe":     {Kind: state.File, Mode: 0o644, Hash: hashOf(4)},
			"new\nline":    {Kind: state.File, Mode: 0o644, Hash: hashOf(5)},
			"tab\tand\x7f": {Kind: state.Dir, Mode: 0o700},
			"日本語":          {Kind: state.Symlink, Target: "\xc3\x28", Hash: hashOf(6)},
		}},
		{"long target and name", map[string]*state.Entry{
			strings.Repeat("n", 255): {Kind: state.Symlink, Target: longTarget, Hash: hashOf(7)},
		}},
		{"extreme numbers", map[string]*state.Entry{
			"max": {Kind: state.File, Mode: state.PermMask, Size: math.MaxInt64, MTime: math.MaxInt64, CTime: math.MaxInt64, Ino: math.MaxUint64, Hash: hashOf(8)},
			"min": {Kind: state.File, Mode: 0, Size: 0, MTime: math.MinInt64, CTime: math.MinInt64, Hash: hashOf(9)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := packDir(tt.children)
			got, order := unpackAll(t, b)
			want := tt.children
			if len(want) == 0 {
				want = map[string]*state.Entry{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			if !sort.StringsAreSorted(order) {
				t.Errorf("entries not in name order: %q", order)
			}
			c, err := packedCount(b)
			if err != nil || c != int64(len(want)) {
				t.Errorf("packedCount = %d, %v; want %d", c, err, len(want))
			}
			// Packing is deterministic.
			if again := packDir(got); !bytes.Equal(again, b) {
				t.Errorf("packing the decoded entries gives different bytes")
			}
		})
	}
}

func TestPackDirIgnoresHashOfDirs(t *testing.T) {
	// A directory's hash and target are not stored: they decode as zero.
	b := packDir(map[string]*state.Entry{"d": {Kind: state.Dir, Mode: 0o755, Hash: hashOf(1), Target: "x"}})
	got, _ := unpackAll(t, b)
	if got["d"].Hash != ([32]byte{}) || got["d"].Target != "" {
		t.Errorf("directory decoded with hash %x target %q; want zero", got["d"].Hash, got["d"].Target)
	}
}

func TestUnpackDirRejectsDamage(t *testing.T) {
	valid := packDir(map[string]*state.Entry{
		"a": {Kind: state.File, Mode: 0o644, Size: 3, Hash: hashOf(1)},
		"b": {Kind: state.Symlink, Target: "a", Hash: hashOf(2)},
	})
	badKind := packDir(map[string]*state.Entry{"a": {Kind: state.Dir}})
	badKind[3] = 9 // count, len, 'a', kind
	emptyName := binary.AppendUvarint(nil, 1)
	emptyName = appendEntry(emptyName, "", &state.Entry{Kind: state.Dir})
	hugeCount := binary.AppendUvarint(nil, maxPackedEntries+1)
	overlongTarget := packDir(map[string]*state.Entry{"l": {Kind: state.Symlink, Target: "abc"}})
	overlongTarget[len(overlongTarget)-4] = 0x7f // claims a 127-byte target

	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"count larger than input", binary.AppendUvarint(nil, 1000)},
		{"count above limit", hugeCount},
		{"unterminated varint", []byte{0x80, 0x80}},
		{"truncated by one", valid[:len(valid)-1]},
		{"truncated in hash", valid[:20]},
		{"trailing bytes", append(append([]byte(nil), valid...), 0)},
		{"bad kind", badKind},
		{"empty name", emptyName},
		{"target longer than record", overlongTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := unpackDir(tt.b, func(string, *state.Entry) {})
			if !errors.Is(err, errPacked) || n != 0 {
				t.Fatalf("unpackDir(% x) = %d, %v; want an error wrapping errPacked", tt.b, n, err)
			}
		})
	}
	if _, err := packedCount([]byte{0x80}); err == nil {
		t.Error("packedCount accepted an unterminated varint")
	}
	if _, err := packedCount(hugeCount); err == nil {
		t.Error("packedCount accepted a count above the limit")
	}
}

// FuzzUnpackDir feeds random bytes and mutated valid records to the decoder:
// it must never panic, never allocate beyond the input's size, and whatever
// it accepts must survive a re-encode.
func FuzzUnpackDir(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add(binary.AppendUvarint(nil, maxPackedEntries))
	f.Add(packDir(map[string]*state.Entry{
		"dir":        {Kind: state.Dir, Mode: 0o755, MTime: 1, Ino: 2, CTime: 3},
		"file":       {Kind: state.File, Mode: 0o644, Size: 10, MTime: -5, Hash: hashOf(1)},
		"link":       {Kind: state.Symlink, Target: "file", Hash: hashOf(2)},
		"\xffname\n": {Kind: state.File, Hash: hashOf(3)},
	}))
	f.Add(packDir(map[string]*state.Entry{"l": {Kind: state.Symlink, Target: strings.Repeat("t", 600)}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var names []string
		total := 0
		got := map[string]*state.Entry{}
		n, err := unpackDir(b, func(name string, e *state.Entry) {
			names = append(names, name)
			total += len(name) + len(e.Target)
			got[name] = e
		})
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with count %d", err, n)
			}
			return
		}
		if n != len(names) {
			t.Fatalf("count %d but %d entries", n, len(names))
		}
		// Every decoded byte of names and targets came from the input:
		// no allocation beyond it.
		if total > len(b) || n > len(b) {
			t.Fatalf("decoded %d entries with %d bytes of names and targets from %d input bytes", n, total, len(b))
		}
		c, err := packedCount(b)
		if err != nil || c != int64(n) {
			t.Fatalf("packedCount = %d, %v; unpackDir said %d", c, err, n)
		}
		for _, name := range names {
			if name == "" {
				t.Fatal("accepted an empty name")
			}
			if k := got[name].Kind; k != state.File && k != state.Dir && k != state.Symlink {
				t.Fatalf("accepted kind %d", k)
			}
		}
		// A record without duplicate names survives a re-encode.
		if len(got) == len(names) {
			again := map[string]*state.Entry{}
			if _, err := unpackDir(packDir(got), func(name string, e *state.Entry) { again[name] = e }); err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
			for name, e := range got {
				a := again[name]
				if a == nil || a.Kind != e.Kind || a.Mode != e.Mode || a.Size != e.Size || a.MTime != e.MTime ||
					a.CTime != e.CTime || a.Ino != e.Ino || (e.Kind != state.Dir && a.Hash != e.Hash) || (e.Kind == state.Symlink && a.Target != e.Target) {
					t.Fatalf("entry %q changed on re-encode: %+v → %+v", name, e, a)
				}
			}
		}
	})
}

// TestUnpackDirBoundedAllocation checks that a record claiming many entries
// or a huge name is refused without allocating for the claim.
func TestUnpackDirBoundedAllocation(t *testing.T) {
	claims := [][]byte{
		binary.AppendUvarint(nil, maxPackedEntries),
		append(binary.AppendUvarint([]byte{1}, 1<<40), 'x'),
		append(append(binary.AppendUvarint(nil, 1), 1, 'l', byte(state.Symlink), 0, 0, 0, 0, 0), append(make([]byte, 32), binary.AppendUvarint(nil, math.MaxUint64)...)...),
	}
	for i, b := range claims {
		allocs := testing.AllocsPerRun(10, func() {
			unpackDir(b, func(string, *state.Entry) {})
		})
		if allocs > 10 {
			t.Errorf("claim %d: %v allocations for a %d-byte record", i, allocs, len(b))
		}
		if _, err := unpackDir(b, func(string, *state.Entry) {}); !errors.Is(err, errPacked) {
			t.Errorf("claim %d accepted: %v", i, err)
		}
	}
}

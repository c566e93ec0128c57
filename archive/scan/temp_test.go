package scan

import (
	"math"
	"strings"
	"testing"
)

func TestTempOwner(t *testing.T) {
	tests := []struct {
		name string
		pid  int // 0: not a temporary name
	}{
		{".concord-tmp-1-2-3", 1},
		{".concord-tmp-4242-17-903211", 4242},
		{".concord-tmp-99999999-1-0", 99999999},
		{".concord-tmp-2147483647-18446744073709551615-999999", math.MaxInt32},

		// A user's names with the prefix.
		{".concord-tmp-", 0},
		{".concord-tmp-notes", 0},
		{".concord-tmp-dir", 0},
		{".concord-tmp-x", 0},
		{".concord-tmp-1", 0},
		{".concord-tmp-1-2", 0},
		{".concord-tmp-1-2-", 0},
		{".concord-tmp-1--3", 0},
		{".concord-tmp--1-2-3", 0},
		{".concord-tmp-1-2-3-4", 0},
		{".concord-tmp-1-2-3.bak", 0},
		{".concord-tmp-1-2-3~", 0},
		{".concord-tmp-1-2-3/", 0},
		{".concord-tmp-1-2-3 ", 0},
		{".concord-tmp- 1-2-3", 0},
		{".concord-tmp-1-2-3\n", 0},
		{".concord-tmp-1-2-3\x00", 0},
		{".concord-tmp-notes-1-2-3", 0},
		{".concord-tmp-1x-2-3", 0},
		{".concord-tmp-+1-2-3", 0},
		{".concord-tmp-1-+2-3", 0},
		{".concord-tmp-1-2--3", 0},
		// Numbers strconv never writes, or out of range.
		{".concord-tmp-0-2-3", 0},
		{".concord-tmp-01-2-3", 0},
		{".concord-tmp-1-0-3", 0},
		{".concord-tmp-1-02-3", 0},
		{".concord-tmp-1-2-03", 0},
		{".concord-tmp-1-2-00", 0},
		{".concord-tmp-1-2-1000000", 0},
		{".concord-tmp-2147483648-1-1", 0},
		{".concord-tmp-99999999999999999999-1-1", 0},
		{".concord-tmp-1-18446744073709551616-1", 0},
		// Hexadecimal, other digits, other case, other prefixes.
		{".concord-tmp-1a-2-3", 0},
		{".concord-tmp-1A-2-3", 0},
		{".concord-tmp-0x1-2-3", 0},
		{".concord-tmp-١-2-3", 0}, // Arabic-Indic digit one
		{".CONCORD-TMP-1-2-3", 0},
		{".Concord-tmp-1-2-3", 0},
		{"concord-tmp-1-2-3", 0},
		{"x.concord-tmp-1-2-3", 0},
		{".concord-tmp_1-2-3", 0},
		{"", 0},
	}
	for _, tt := range tests {
		pid, ok := TempOwner(tt.name)
		if ok != (tt.pid != 0) || pid != tt.pid {
			t.Errorf("TempOwner(%q) = %d, %v; want %d, %v", tt.name, pid, ok, tt.pid, tt.pid != 0)
		}
		if IsTemp(tt.name) != ok {
			t.Errorf("IsTemp(%q) = %v, TempOwner says %v", tt.name, !ok, ok)
		}
	}
}

func TestTempName(t *testing.T) {
	tests := []struct {
		pid  int
		seq  uint64
		nano int64
		want string
	}{
		{1, 1, 0, ".concord-tmp-1-1-0"},
		{4242, 17, 1_700_000_000_903_211, ".concord-tmp-4242-17-903211"},
		{math.MaxInt32, math.MaxUint64, 999_999, ".concord-tmp-2147483647-18446744073709551615-999999"},
		{7, 3, -1, ".concord-tmp-7-3-551615"}, // a clock before 1970
	}
	for _, tt := range tests {
		if got := TempName(tt.pid, tt.seq, tt.nano); got != tt.want {
			t.Errorf("TempName(%d, %d, %d) = %q, want %q", tt.pid, tt.seq, tt.nano, got, tt.want)
		}
	}
}

// FuzzTempName checks that the names TempName makes, and only those, are
// recognised as temporaries: every name it returns parses back to its pid,
// and every name TempOwner accepts is the one TempName makes from the
// numbers in it.
func FuzzTempName(f *testing.F) {
	f.Add(1, uint64(1), int64(0), ".concord-tmp-1-2-3")
	f.Add(4242, uint64(17), int64(903211), ".concord-tmp-notes")
	f.Add(99999999, uint64(1), int64(-1), ".concord-tmp-1-2-3.bak")
	f.Add(0, uint64(0), int64(0), ".concord-tmp-01-2-3")
	f.Fuzz(func(t *testing.T, pid int, seq uint64, nano int64, name string) {
		if pid > 0 && pid <= math.MaxInt32 && seq > 0 {
			n := TempName(pid, seq, nano)
			if got, ok := TempOwner(n); !ok || got != pid {
				t.Fatalf("TempOwner(TempName(%d, %d, %d) = %q) = %d, %v", pid, seq, nano, n, got, ok)
			}
		}
		owner, ok := TempOwner(name)
		if !ok {
			return
		}
		parts := strings.Split(strings.TrimPrefix(name, TempPrefix), "-")
		if len(parts) != 3 {
			t.Fatalf("TempOwner accepted %q, which has %d parts", name, len(parts))
		}
		var nums [3]uint64
		for i, p := range parts {
			for _, c := range []byte(p) {
				if c < '0' || c > '9' {
					t.Fatalf("TempOwner accepted %q, whose part %q is not decimal", name, p)
				}
				nums[i] = nums[i]*10 + uint64(c-'0')
			}
		}
		if back := TempName(owner, nums[1], int64(nums[2])); back != name {
			t.Fatalf("TempOwner accepted %q, but TempName makes %q from its numbers", name, back)
		}
	})
}

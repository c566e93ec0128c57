package state

import (
	"cmp"
	"strings"
	"testing"
)

func TestDisplay(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "."},
		{"plain/name.txt", "plain/name.txt"},
		{"été/日本", "été/日本"},
		{"na\nme", `na\nme`},
		{"tab\there", `tab\there`},
		{"esc\x1b[31mred", `esc\x1b[31mred`},
		{"bad\xffbyte", `bad\xffbyte`},
		{`back\slash`, `back\\slash`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"c1\u009bcontrol", `c1\u009bcontrol`},
	}
	for _, tt := range tests {
		if got := Display(tt.in); got != tt.want {
			t.Errorf("Display(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestComparePaths(t *testing.T) {
	ordered := []string{"", "a", "a/b", "a/b/c", "a/c", "a!", "a-b", "a-b/c", "a.txt", "a0", "b", "b\xff"}
	for i := range ordered {
		for j := range ordered {
			got := ComparePaths(ordered[i], ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("ComparePaths(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

// componentCompare is ComparePaths written the plain way, splitting both
// paths into components and comparing those: the reference the fuzz test
// holds the fast one to.
func componentCompare(a, b string) int {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	if a == "" {
		as = nil
	}
	if b == "" {
		bs = nil
	}
	for i := 0; i < len(as) && i < len(bs); i++ {
		if c := strings.Compare(as[i], bs[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(as), len(bs))
}

func FuzzComparePaths(f *testing.F) {
	for _, s := range [][2]string{{"a/b", "a.txt"}, {"a", "a/b"}, {"a-b", "a/b"}, {"x/y/z", "x/y"}, {"", "a"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := ComparePaths(a, b), componentCompare(a, b); got != want {
			t.Fatalf("ComparePaths(%q, %q) = %d, component by component %d", a, b, got, want)
		}
	})
}

func TestValidatePath(t *testing.T) {
	good := []string{"a", "a/b", "dir with space/x", "na\nme", "\xff"}
	bad := []string{"", "/etc/passwd", "..", "a/../b", "a/./b", "a//b", "a/", "nul\x00byte", "../x"}
	for _, p := range good {
		if err := ValidatePath(p); err != nil {
			t.Errorf("ValidatePath(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range bad {
		if err := ValidatePath(p); err == nil {
			t.Errorf("ValidatePath(%q) = nil, want an error", p)
		}
	}
}

// splitValidate is ValidatePath as it was written first, by splitting the
// path: the reference FuzzValidatePath holds the faster one to.
func splitValidate(p string) bool {
	if p == "" || p[0] == '/' || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

func FuzzValidatePath(f *testing.F) {
	for _, p := range []string{"a", "a/b", "", "/x", "..", "a/../b", "a//b", "a/", "./a", "a/.", "a/..b", "...", "nul\x00"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := ValidatePath(p) == nil, splitValidate(p); got != want {
			t.Fatalf("ValidatePath(%q) accepts: %v, splitting the path: %v", p, got, want)
		}
	})
}

func BenchmarkValidatePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if ValidatePath("d017/s0517/f012517.dat") != nil {
			b.Fatal("refused")
		}
	}
}

func TestIsBelowParentBase(t *testing.T) {
	if !IsBelow("a/b", "a") || IsBelow("ab", "a") || IsBelow("a", "a") || !IsBelow("x", "") {
		t.Error("IsBelow is wrong")
	}
	if Parent("a/b/c") != "a/b" || Parent("a") != "" || Base("a/b/c") != "c" || Join("", "x") != "x" || Join("a", "x") != "a/x" {
		t.Error("Parent/Base/Join are wrong")
	}
}

func FuzzDisplay(f *testing.F) {
	f.Add("a\nb\x1b\u202e\xff")
	f.Fuzz(func(t *testing.T, s string) {
		out := Display(s)
		for _, r := range out {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || isBidi(r) {
				t.Fatalf("Display(%q) = %q keeps control character %U", s, out, r)
			}
		}
	})
}

package torture

import (
	"regexp"
	"strings"
	"testing"

	"github.com/concord-sync/concord/archive/scan"
)

// plainName is a pattern with no gitignore syntax in it.
var plainName = regexp.MustCompile(`^[a-z0-9_]+$`)

// FuzzIgnorePatterns feeds the ignore-pattern parser (gitignore syntax
// from profiles and --ignore) arbitrary patterns and paths: it must
// neither panic nor hang, must answer the same way twice, and a plain
// name must ignore a path of that name at any depth.
func FuzzIgnorePatterns(f *testing.F) {
	for _, s := range [][2]string{
		{"*.o\n!keep.o", "src/keep.o"},
		{"/build/\n**/tmp/**", "a/tmp/b"},
		{"[a-z]?x\\*", "bqx*"},
		{"a/**/b\n#comment\n\\#x", "a/x/y/b"},
		{"[", "["},
		{"***", "x"},
		{"\x00", "x"},
		{"cache", "deep/down/cache"},
	} {
		f.Add(s[0], s[1], false)
	}
	f.Fuzz(func(t *testing.T, patterns, path string, isDir bool) {
		pats := strings.Split(patterns, "\n")
		m, err := scan.NewMatcher(pats)
		if err != nil {
			return
		}
		comps := strings.Split(path, "/")
		got := m.Match(comps, isDir)
		if again := m.Match(comps, isDir); again != got {
			t.Fatalf("Match(%q) answered %v then %v", path, got, again)
		}
		if len(pats) == 1 && plainName.MatchString(pats[0]) {
			p := append(append([]string(nil), comps...), pats[0])
			if !m.Match(p, isDir) {
				t.Fatalf("pattern %q does not ignore %q", pats[0], strings.Join(p, "/"))
			}
		}
	})
}

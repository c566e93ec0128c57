package scan

import (
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// Matcher decides which paths are ignored, with gitignore semantics,
// relative to the root. The zero Matcher ignores nothing.
type Matcher struct {
	m gitignore.Matcher
}

// NewMatcher compiles gitignore-style patterns. A pattern that is empty after
// trimming, or contains a NUL byte, is an error naming it.
func NewMatcher(patterns []string) (*Matcher, error) {
	if len(patterns) == 0 {
		return &Matcher{}, nil
	}
	ps := make([]gitignore.Pattern, 0, len(patterns))
	for _, p := range patterns {
		if strings.IndexByte(p, 0) >= 0 {
			return nil, fmt.Errorf("ignore pattern %q contains a NUL byte", p)
		}
		t := strings.TrimSpace(p)
		if t == "" || t == "!" {
			return nil, fmt.Errorf("ignore pattern %q is empty", p)
		}
		if strings.HasPrefix(t, "#") {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(p, nil))
	}
	return &Matcher{m: gitignore.NewMatcher(ps)}, nil
}

// Match reports whether the path made of components is ignored.
func (m *Matcher) Match(components []string, isDir bool) bool {
	if m == nil || m.m == nil {
		return false
	}
	return m.m.Match(components, isDir)
}

// Active reports whether any pattern is set.
func (m *Matcher) Active() bool { return m != nil && m.m != nil }

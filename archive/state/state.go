// Package state defines what a path looks like on one side of a pair: the
// Entry recorded in an archive and produced by a scan, and the helpers that
// compare entries and handle the byte-string paths concord moves around.
//
// It is a leaf package with no I/O so that the reconciler, the archive, the
// scanner and the wire protocol can all share one data model.
package state

import (
	"bytes"
	"cmp"
	"fmt"
	"strings"
	"time"
)

// Kind is the type of a file-system object.
type Kind uint8

// The kinds of entry concord synchronizes. Anything else (FIFOs, sockets,
// devices) is skipped by the scanner with a message.
const (
	File    Kind = 1
	Dir     Kind = 2
	Symlink Kind = 3
)

// String returns a short lower-case name for k.
func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// PermMask selects the permission bits concord synchronizes.
const PermMask = 0o7777

// Entry is the state of one path on one side: what a scan saw or what an
// archive recorded. A nil *Entry means the path is absent.
type Entry struct {
	Kind Kind
	// Mode holds the permission bits (Mode & PermMask). Unused for symlinks.
	Mode uint32
	// Size is the length of a file's contents in bytes; 0 for others.
	Size int64
	// MTime is the modification time in nanoseconds since the Unix epoch.
	// Only files' times are compared and synchronized.
	MTime int64
	// Hash is the BLAKE3-256 of a file's contents or a symlink's target.
	Hash [32]byte
	// Target is a symlink's target text.
	Target string
	// Ino and CTime are the stat data used to skip re-reading an unchanged
	// file. They are local to one host and never compared across sides.
	Ino   uint64
	CTime int64
	// Unhashed marks a file whose contents were not read, so Hash is
	// unknown. A scan leaves new files (ones its archive does not record)
	// unread: their hash matters only where the other side has the same
	// path, and then the engine asks for it; otherwise the copy computes
	// it while the file is read anyway. Unhashed entries are never
	// archived, and never have the same content as anything.
	Unhashed bool
}

// Clone returns a copy of e (nil for nil).
func (e *Entry) Clone() *Entry {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

// Time returns the modification time as a time.Time.
func (e *Entry) Time() time.Time { return time.Unix(0, e.MTime) }

// SameContent reports whether a and b have the same kind and the same
// contents (files), target (symlinks), or are both directories. Two nil
// entries are the same; nil and non-nil are not.
func SameContent(a, b *Entry) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case File:
		return a.Size == b.Size && a.Hash == b.Hash && !a.Unhashed && !b.Unhashed
	case Symlink:
		return a.Target == b.Target
	}
	return true
}

// SamePerm reports whether a and b carry the same permission bits. Symlinks
// have no permissions of their own, so they always match.
func SamePerm(a, b *Entry) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if a.Kind == Symlink && b.Kind == Symlink {
		return true
	}
	return a.Mode&PermMask == b.Mode&PermMask
}

// SameTime reports whether a and b have the same modification time where it
// matters: only for two files. Directory and symlink times are not synced.
func SameTime(a, b *Entry) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if a.Kind == File && b.Kind == File {
		return a.MTime == b.MTime
	}
	return true
}

// Changed reports whether cur differs from base in the sense of the SPEC's
// reconciliation table: kind, contents, symlink target or permission bits.
// A modification time alone is not a change (see TimeOnly).
func Changed(base, cur *Entry) bool {
	return !SameContent(base, cur) || !SamePerm(base, cur)
}

// Equal reports whether a and b are identical in everything that is
// synchronized: contents, permissions and (for files) modification time.
// Both sides' archives must be Equal on a path for it to have an ancestor.
func Equal(a, b *Entry) bool {
	return SameContent(a, b) && SamePerm(a, b) && SameTime(a, b)
}

// StatSame reports whether the stat data of a and b match exactly: kind,
// size, modification time, permissions, inode and ctime. A file whose stat
// data match its archived entry is taken as unchanged without being read.
func StatSame(a, b *Entry) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Kind == b.Kind && a.Size == b.Size && a.MTime == b.MTime &&
		a.Mode == b.Mode && a.Ino == b.Ino && a.CTime == b.CTime
}

// ComparePaths orders two slash-separated relative paths component by
// component, so that a directory is followed directly by everything below it
// ("a", "a/b", "a.txt"). It is the order of every scan and plan.
//
// It is the first differing byte that decides, with '/' below every other
// byte (a component that ends there sorts before a longer one), and a
// path before everything it is a prefix of; that is the same order as
// comparing component by component, without splitting. Every scan and
// plan sorts by it, 100,000 paths more than once in a first sync.
func ComparePaths(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	switch {
	case i == n:
		return cmp.Compare(len(a), len(b))
	case a[i] == '/':
		return -1
	case b[i] == '/':
		return 1
	case a[i] < b[i]:
		return -1
	}
	return 1
}

// Parent returns the directory part of p ("" for a top-level name).
func Parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Base returns the last component of p.
func Base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Join joins a directory path and a name; an empty dir means the root.
func Join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// IsBelow reports whether p lies strictly below dir ("" is the root, below
// which every non-empty path lies).
func IsBelow(p, dir string) bool {
	if dir == "" {
		return p != ""
	}
	return len(p) > len(dir) && p[len(dir)] == '/' && p[:len(dir)] == dir
}

// ValidatePath checks that p is a clean relative path that stays inside a
// root: not absolute, no empty, "." or ".." components, no NUL byte. Every
// path that arrives from a peer goes through it (SPEC guarantee 5).
func ValidatePath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path")
	}
	if p[0] == '/' {
		return fmt.Errorf("path %s is absolute", Display(p))
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path %s contains a NUL byte", Display(p))
	}
	// Component by component without splitting: every path a peer sends
	// and every file a transfer reads is checked, and strings.Split
	// allocated a slice each time.
	for rest := p; ; {
		c := rest
		i := strings.IndexByte(rest, '/')
		if i >= 0 {
			c, rest = rest[:i], rest[i+1:]
		}
		switch c {
		case "":
			return fmt.Errorf("path %s has an empty component", Display(p))
		case ".", "..":
			return fmt.Errorf("path %s contains %q", Display(p), c)
		}
		if i < 0 {
			return nil
		}
	}
}

// Display returns p made safe to show to a person: control characters,
// invalid UTF-8 and backslashes are escaped Go-style, so a file name can never
// move the cursor or change colours on a terminal. The root shows as ".".
func Display(p string) string {
	if p == "" {
		return "."
	}
	clean := true
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c >= 0x80 || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		return p
	}
	var b bytes.Buffer
	for len(p) > 0 {
		r, size := decodeRune(p)
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == 0xFFFD && size == 1:
			fmt.Fprintf(&b, `\x%02x`, p[0])
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || isBidi(r):
			switch r {
			case '\n':
				b.WriteString(`\n`)
			case '\t':
				b.WriteString(`\t`)
			case '\r':
				b.WriteString(`\r`)
			default:
				if r < 0x80 {
					fmt.Fprintf(&b, `\x%02x`, r)
				} else {
					fmt.Fprintf(&b, `\u%04x`, r)
				}
			}
		default:
			b.WriteString(p[:size])
		}
		p = p[size:]
	}
	return b.String()
}

// isBidi reports the invisible direction and format controls that can make
// a name display as another ("Trojan Source"): they are shown escaped.
func isBidi(r rune) bool {
	switch {
	case r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

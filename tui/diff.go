package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff"
	"github.com/mattn/go-runewidth"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
)

// Limits of the line-by-line comparison in the details screen: both
// versions must fit in diffMaxSize, and a NUL byte in the first
// sniffSize bytes marks a file as binary (as git and diff do).
const (
	diffMaxSize = 1 << 20
	sniffSize   = 8 << 10
)

// comparison is what the details screen says about the two versions'
// contents: a unified diff (raw lines, control characters escaped), or
// notes in words.
type comparison struct {
	diff  []string
	notes []string
	err   error
}

// errTooLarge reports a file that grew past diffMaxSize while being read.
var errTooLarge = errors.New("larger than the diff limit")

// compare reads both versions of it (when they are files small enough)
// through r and compares them; times are shown in loc.
func compare(ctx context.Context, r Runner, it *reconcile.Item, loc *time.Location) comparison {
	one, two := it.One, it.Two
	isFile := func(e *state.Entry) bool { return e != nil && e.Kind == state.File }
	switch {
	case !isFile(one) && !isFile(two):
		return comparison{notes: []string{"No file contents to compare."}}
	case isFile(one) && isFile(two) && state.SameContent(one, two):
		return comparison{notes: sameContentNotes(one, two, loc)}
	case (one != nil && !isFile(one)) || (two != nil && !isFile(two)):
		return comparison{notes: []string{"The sides hold different kinds of entry; see the table above."}}
	}
	if (isFile(one) && one.Size > diffMaxSize) || (isFile(two) && two.Size > diffMaxSize) {
		return comparison{notes: binaryNotes(one, two, "over 1 MiB")}
	}
	var texts [3][]byte
	for _, s := range []reconcile.Side{reconcile.One, reconcile.Two} {
		e := side(it, s)
		if e == nil {
			continue
		}
		b, err := readSmall(ctx, r, s, it.Path, e)
		if errors.Is(err, errTooLarge) {
			return comparison{notes: binaryNotes(one, two, "over 1 MiB")}
		}
		if err != nil {
			return comparison{err: err}
		}
		if bytes.IndexByte(b[:min(len(b), sniffSize)], 0) >= 0 {
			return comparison{notes: binaryNotes(one, two, "binary contents (a NUL byte in the first 8 KiB)")}
		}
		texts[s] = b
	}
	from, to := "1/"+state.Display(it.Path), "2/"+state.Display(it.Path)
	if one == nil {
		from = "/dev/null (absent on side 1)"
	}
	if two == nil {
		to = "/dev/null (absent on side 2)"
	}
	u := udiff.Unified(from, to, string(texts[1]), string(texts[2]))
	if u == "" {
		return comparison{notes: []string{"Both sides have the same contents."}}
	}
	lines := strings.Split(strings.TrimSuffix(u, "\n"), "\n")
	for i, l := range lines {
		lines[i] = sanitizeLine(capLine(l))
	}
	return comparison{diff: lines}
}

// maxLineBytes caps a diff line: no terminal is that wide, and styling a
// megabyte-long line (minified code) on every redraw would be slow.
const maxLineBytes = 4096

// capLine cuts l to maxLineBytes at a character boundary, marking the cut.
func capLine(l string) string {
	if len(l) <= maxLineBytes {
		return l
	}
	cut := maxLineBytes
	for cut > maxLineBytes-utf8.UTFMax && !utf8.RuneStart(l[cut]) {
		cut--
	}
	return l[:cut] + "…"
}

// readSmall reads the file at path on side s, at most diffMaxSize bytes.
func readSmall(ctx context.Context, r Runner, s reconcile.Side, path string, e *state.Entry) ([]byte, error) {
	rc, err := r.ReadFile(ctx, s, path, e)
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", state.Display(path), sideName(s), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, diffMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", state.Display(path), sideName(s), err)
	}
	if len(b) > diffMaxSize {
		return nil, errTooLarge
	}
	return b, nil
}

// binaryNotes says, for files that are not compared line by line, which
// one is newer and which is larger.
func binaryNotes(one, two *state.Entry, why string) []string {
	notes := []string{"Not compared line by line: " + why + "."}
	if one == nil || two == nil {
		return notes
	}
	switch d := time.Duration(one.MTime - two.MTime); {
	case d > 0:
		notes = append(notes, "Side 1 is newer, by "+d.Round(time.Second).String()+".")
	case d < 0:
		notes = append(notes, "Side 2 is newer, by "+(-d).Round(time.Second).String()+".")
	default:
		notes = append(notes, "Both have the same modification time.")
	}
	switch {
	case one.Size > two.Size:
		notes = append(notes, fmt.Sprintf("Side 1 is larger: %s against %s.", bytesText(one.Size), bytesText(two.Size)))
	case one.Size < two.Size:
		notes = append(notes, fmt.Sprintf("Side 2 is larger: %s against %s.", bytesText(two.Size), bytesText(one.Size)))
	default:
		notes = append(notes, "Both are the same size: "+bytesText(one.Size)+".")
	}
	return notes
}

// sanitizeLine makes a line of file contents safe to print: tabs become
// spaces up to the next multiple of 8, and control characters, bidi
// overrides and invalid UTF-8 are escaped, so that a file can neither move
// the cursor nor recolour the terminal.
func sanitizeLine(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	col := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\t':
			n := 8 - col%8
			b.WriteString(strings.Repeat(" ", n))
			col += n
		case r == '\r':
			b.WriteString(`\r`)
			col += 2
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
			col += 4
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
			col += 4
		case (r >= 0x80 && r < 0xa0) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			fmt.Fprintf(&b, `\u%04x`, r)
			col += 6
		default:
			b.WriteRune(r)
			col += runewidth.RuneWidth(r)
		}
		i += size
	}
	return b.String()
}

// sameContentNotes says which properties differ between two files of the
// same contents. The table above shows times to the second: two copies made
// within the same second differ only in the digits it leaves out, so the
// note gives the times in full.
func sameContentNotes(one, two *state.Entry, loc *time.Location) []string {
	notes := []string{"Both sides have the same contents; only properties differ."}
	if !state.SamePerm(one, two) {
		notes = append(notes, fmt.Sprintf("Permissions: side 1 %s, side 2 %s.", permText(one.Mode), permText(two.Mode)))
	}
	if !state.SameTime(one, two) {
		const full = "2006-01-02 15:04:05.000000000"
		newer, d := 1, one.MTime-two.MTime
		if d < 0 {
			newer, d = 2, -d
		}
		notes = append(notes,
			fmt.Sprintf("Modified on side 1 at %s,", one.Time().In(loc).Format(full)),
			fmt.Sprintf("on side 2 at %s: side %d is newer by %s.", two.Time().In(loc).Format(full), newer, time.Duration(d)))
	}
	return notes
}

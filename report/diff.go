package report

import (
	"bytes"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/aymanbagabas/go-udiff/lcs"

	"github.com/concord-sync/concord/archive/state"
)

// The limits of UnifiedDiff: a file is text when its first sniffLen bytes
// hold no NUL byte, and a diff is made only of files up to maxDiffInput.
const (
	sniffLen     = 8 << 10
	maxDiffInput = 1 << 20
)

// UnifiedDiff returns a unified diff (three lines of context) turning a into
// b, labelled nameA and nameB, and true; or "" and false when either input
// is binary (a NUL byte in its first 8 KiB) or larger than 1 MiB. Equal
// inputs give "" and true. Invalid UTF-8 in the inputs is shown as U+FFFD,
// and the labels are escaped as state.Display does, so the diff is always
// valid UTF-8 text with exactly one header line per file.
func UnifiedDiff(a, b []byte, nameA, nameB string) (string, bool) {
	if !IsText(a) || !IsText(b) {
		return "", false
	}
	if bytes.Equal(a, b) {
		return "", true
	}
	sa := strings.ToValidUTF8(string(a), "\uFFFD")
	sb := strings.ToValidUTF8(string(b), "\uFFFD")
	edits := lineEdits(sa, sb)
	d, err := udiff.ToUnified(state.Display(nameA), state.Display(nameB), sa, edits, udiff.DefaultContextLines)
	if err != nil {
		return "", false
	}
	return d, true
}

// IsText reports whether UnifiedDiff treats b as text: at most 1 MiB and no
// NUL byte in the first 8 KiB.
func IsText(b []byte) bool {
	if len(b) > maxDiffInput {
		return false
	}
	return bytes.IndexByte(b[:min(len(b), sniffLen)], 0) < 0
}

// lineEdits diffs a and b line by line: every distinct line becomes one
// symbol, so the longest common subsequence is taken over whole lines and
// an edited line never drags its unchanged neighbours into the diff (a
// character-level diff, widened to lines afterwards, does).
func lineEdits(a, b string) []udiff.Edit {
	ids := make(map[string]rune)
	intern := func(s string) (lines []string, offs []int, syms []rune) {
		for off := 0; off < len(s); {
			end := strings.IndexByte(s[off:], '\n')
			if end < 0 {
				end = len(s)
			} else {
				end += off + 1
			}
			line := s[off:end]
			id, ok := ids[line]
			if !ok {
				id = rune(len(ids))
				ids[line] = id
			}
			lines, offs, syms = append(lines, line), append(offs, off), append(syms, id)
			off = end
		}
		return lines, append(offs, len(s)), syms
	}
	_, offA, symA := intern(a)
	linesB, _, symB := intern(b)
	diffs := lcs.DiffRunes(symA, symB)
	edits := make([]udiff.Edit, len(diffs))
	for i, d := range diffs {
		edits[i] = udiff.Edit{
			Start: offA[d.Start],
			End:   offA[d.End],
			New:   strings.Join(linesB[d.ReplStart:d.ReplEnd], ""),
		}
	}
	return edits
}

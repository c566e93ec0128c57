package tui

import (
	"strconv"
	"strings"

	"github.com/charmbracelet/x/ansi"
	"github.com/dustin/go-humanize"
)

func itoa(n int) string { return strconv.Itoa(n) }

// count formats n with thousands separators.
func count(n int64) string { return humanize.Comma(n) }

// bytesText formats a byte count for people ("1.2 MB").
func bytesText(n int64) string {
	if n < 0 {
		n = 0
	}
	return humanize.Bytes(uint64(n))
}

// pad returns s padded with spaces (or cut) to exactly w cells.
func pad(s string, w int) string {
	sw := ansi.StringWidth(s)
	switch {
	case sw > w:
		return ansi.Truncate(s, w, "…")
	case sw < w:
		return s + strings.Repeat(" ", w-sw)
	}
	return s
}

// cutLeft keeps the end of s, which is usually the most telling part of a
// path, so that it fits in w cells.
func cutLeft(s string, w int) string {
	sw := ansi.StringWidth(s)
	if sw <= w {
		return s
	}
	if w <= 1 {
		return ansi.Truncate("…", w, "")
	}
	return ansi.TruncateLeft(s, sw-w+1, "…")
}

// cut keeps the start of s so that it fits in w cells.
func cut(s string, w int) string {
	return ansi.Truncate(s, max(0, w), "…")
}

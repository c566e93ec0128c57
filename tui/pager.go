package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

// pager shows a window of pre-rendered lines and scrolls through them. Only
// the visible lines are cut to width and joined, so a summary of 100,000
// outcomes scrolls as fast as one of ten.
type pager struct {
	lines         []string
	offset        int
	width, height int
}

// SetSize sets the area the pager draws into.
func (p *pager) SetSize(width, height int) {
	p.width, p.height = width, max(1, height)
	p.clamp()
}

// SetLines replaces the content, keeping the scroll position if it still
// fits.
func (p *pager) SetLines(lines []string) {
	p.lines = lines
	p.clamp()
}

func (p *pager) clamp() {
	p.offset = min(p.offset, max(0, len(p.lines)-p.height))
	p.offset = max(0, p.offset)
}

// handle scrolls for a navigation key and reports whether it was one.
func (p *pager) handle(msg tea.KeyMsg, k navKeys) bool {
	switch {
	case key.Matches(msg, k.Up):
		p.offset--
	case key.Matches(msg, k.Down):
		p.offset++
	case key.Matches(msg, k.PageUp):
		p.offset -= p.height
	case key.Matches(msg, k.PageDown):
		p.offset += p.height
	case key.Matches(msg, k.Home):
		p.offset = 0
	case key.Matches(msg, k.End):
		p.offset = len(p.lines)
	default:
		return false
	}
	p.clamp()
	return true
}

// position describes the visible range, e.g. "lines 1-20 of 130", or ""
// when everything fits.
func (p *pager) position() string {
	if len(p.lines) <= p.height {
		return ""
	}
	last := min(len(p.lines), p.offset+p.height)
	return "lines " + itoa(p.offset+1) + "-" + itoa(last) + " of " + itoa(len(p.lines))
}

// View renders exactly height lines.
func (p *pager) View() string {
	var b strings.Builder
	for i := 0; i < p.height; i++ {
		if i > 0 {
			b.WriteByte('\n')
		}
		if j := p.offset + i; j < len(p.lines) {
			b.WriteString(ansi.Truncate(p.lines[j], p.width, "…"))
		}
	}
	return b.String()
}

package tui

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// styles holds every lipgloss style the interface uses, so that colours are
// chosen in one place and NO_COLOR turns them all off together.
type styles struct {
	r       *lipgloss.Renderer
	color   bool
	profile termenv.Profile

	title    lipgloss.Style // the top line of a screen
	colHead  lipgloss.Style // column headings
	faint    lipgloss.Style // secondary text
	selected lipgloss.Style // the selected row of a list
	status   lipgloss.Style // the status line under a list
	warn     lipgloss.Style // refused keys, cancellation
	errText  lipgloss.Style // failures
	ok       lipgloss.Style // success
	dialog   lipgloss.Style // a box asking a question
	label    lipgloss.Style // field names in details

	arrowOne      lipgloss.Style // ---->
	arrowTwo      lipgloss.Style // <----
	arrowConflict lipgloss.Style // <-?->
	arrowSkip     lipgloss.Style // -----

	diffAdd  lipgloss.Style
	diffDel  lipgloss.Style
	diffHunk lipgloss.Style
	diffHead lipgloss.Style

	helpKey  lipgloss.Style
	helpDesc lipgloss.Style
	helpSep  lipgloss.Style

	input       lipgloss.Style // the filter line's prompt and text
	inputCursor lipgloss.Style
}

// newStyles returns the styles for renderer r. Without color only
// attributes (bold, faint, reverse) are used, as NO_COLOR asks.
func newStyles(r *lipgloss.Renderer, color bool) *styles {
	s := &styles{r: r, color: color, profile: r.ColorProfile()}
	if !color {
		s.profile = termenv.Ascii
	}
	ns := r.NewStyle
	fg := func(st lipgloss.Style, c string) lipgloss.Style {
		if !color {
			return st
		}
		return st.Foreground(lipgloss.Color(c))
	}
	s.title = ns().Bold(true)
	s.colHead = ns().Faint(true)
	s.faint = ns().Faint(true)
	s.selected = ns().Reverse(true)
	s.status = ns()
	s.warn = fg(ns().Bold(true), "3")
	s.errText = fg(ns().Bold(true), "1")
	s.ok = fg(ns(), "2")
	s.label = ns().Bold(true)
	s.dialog = ns().Border(lipgloss.RoundedBorder()).Padding(0, 2)
	if color {
		s.dialog = s.dialog.BorderForeground(lipgloss.Color("3"))
	}

	s.arrowOne = fg(ns(), "2")
	s.arrowTwo = fg(ns(), "6")
	s.arrowConflict = fg(ns().Bold(true), "1")
	s.arrowSkip = ns().Faint(true)

	s.diffAdd = fg(ns(), "2")
	s.diffDel = fg(ns(), "1")
	s.diffHunk = fg(ns(), "6")
	s.diffHead = ns().Bold(true)

	s.helpKey = fg(ns().Bold(true), "7")
	s.helpDesc = ns().Faint(true)
	s.helpSep = ns().Faint(true)

	s.input = ns()
	s.inputCursor = ns().Reverse(true)
	return s
}

// newRenderer returns the renderer for out. With noColor on a terminal it
// keeps the attributes (bold, reverse video for the selection): NO_COLOR
// asks for no colour, and the colourless styles carry none, but lipgloss
// would otherwise drop every attribute along with the colours.
func newRenderer(out io.Writer, noColor bool) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(out)
	if noColor && r.Output().ColorProfile() != termenv.Ascii {
		r.SetColorProfile(termenv.ANSI)
	}
	return r
}

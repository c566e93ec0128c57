package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/reconcile"
)

// scanMsg carries one side's running scan counts into the program.
type scanMsg engine.ScanEvent

// scanView is the screen shown while both sides are scanned: a spinner and
// live counts per side, so that a large tree never looks frozen.
type scanView struct {
	st    *styles
	keys  scanKeys
	help  help.Model
	spin  spinner.Model
	roots [2]string
	seen  [3]bool
	ev    [3]engine.ScanEvent

	width, height int
}

func newScanView(st *styles, root1, root2 string) *scanView {
	return &scanView{
		st:    st,
		keys:  newScanKeys(),
		help:  newHelp(st),
		spin:  spinner.New(spinner.WithSpinner(spinner.Dot), spinner.WithStyle(st.title)),
		roots: [2]string{root1, root2},
	}
}

// SetSize sets the screen area of the scan view.
func (s *scanView) SetSize(width, height int) {
	s.width, s.height = width, height
	s.help.Width = width
}

// Update takes a scan event or a spinner tick.
func (s *scanView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case scanMsg:
		if msg.Side == reconcile.One || msg.Side == reconcile.Two {
			s.ev[msg.Side] = engine.ScanEvent(msg)
			s.seen[msg.Side] = true
		}
	case spinner.TickMsg:
		var cmd tea.Cmd
		s.spin, cmd = s.spin.Update(msg)
		return cmd
	}
	return nil
}

// View renders the scan screen.
func (s *scanView) View() string {
	var b strings.Builder
	b.WriteString(s.st.title.Render(cut("concord: scanning", s.width)))
	b.WriteString("\n\n")
	b.WriteString(s.spin.View() + " Scanning both sides for changes since the last sync…")
	b.WriteString("\n\n")
	head := fmt.Sprintf("%-6s %12s %14s %14s  %-9s %s", "side", "entries", "files hashed", "bytes hashed", "status", "root")
	b.WriteString(s.st.colHead.Render(cut(head, s.width)))
	for _, sd := range []reconcile.Side{reconcile.One, reconcile.Two} {
		ev := s.ev[sd]
		status := "waiting"
		switch {
		case ev.Done:
			status = "done"
		case s.seen[sd]:
			status = "scanning"
		}
		line := fmt.Sprintf("%-6d %12s %14s %14s  %-9s %s", sd, count(ev.Entries), count(ev.Hashed),
			bytesText(ev.HashedBytes), status, state.Display(s.roots[sd-1]))
		b.WriteByte('\n')
		b.WriteString(cut(line, s.width))
	}
	used := 7
	for i := used; i < s.height-1; i++ {
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(helpView(s.help, s.keys))
	return b.String()
}

package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
)

// summaryView is the last screen: what was propagated, skipped and failed,
// with the reasons, until the user leaves with q or enter.
type summaryView struct {
	st    *styles
	keys  summaryKeys
	help  help.Model
	pager pager
	title string

	width, height int
}

// newSummaryView describes res (which may be nil when Execute failed
// outright) and err, Execute's error.
func newSummaryView(st *styles, roots [2]string, res *engine.Result, err error) *summaryView {
	s := &summaryView{
		st:   st,
		keys: newSummaryKeys(),
		help: newHelp(st),
		title: fmt.Sprintf("concord: finished   1: %s   2: %s",
			state.Display(roots[0]), state.Display(roots[1])),
	}
	var lines []string
	add := func(l string) { lines = append(lines, l) }
	if err != nil {
		add(st.errText.Render("The transfer stopped: " + sanitizeLine(err.Error())))
		add("")
	}
	if res != nil {
		verb := "moved"
		if res.DryRun {
			verb = "would move (dry run: nothing was changed)"
		}
		add(st.label.Render(fmt.Sprintf("%d propagated, %d skipped, %d failed; %s %s in %s.",
			res.Propagated, res.Skipped, res.Failed, bytesText(res.Bytes), verb,
			res.End.Sub(res.Start).Round(time.Millisecond))))
		add(exitText(st, res.ExitCode()))
		var failed, skipped, done []string
		for i := range res.Outcomes {
			o := &res.Outcomes[i]
			switch o.Status {
			case engine.Failed:
				failed = append(failed, "  "+outcomeLine(o))
			case engine.Skipped:
				skipped = append(skipped, "  "+outcomeLine(o))
			default:
				if o.Item != nil {
					done = append(done, "  "+o.Item.Action.Arrow()+"  "+state.Display(o.Item.Path))
				}
			}
		}
		section := func(title string, style lipgloss.Style, l []string) {
			if len(l) == 0 {
				return
			}
			add("")
			add(style.Render(fmt.Sprintf("%s (%d):", title, len(l))))
			lines = append(lines, l...)
		}
		section("failed", st.errText, failed)
		section("skipped", st.warn, skipped)
		problems := make([]string, 0, len(res.ScanProblems))
		for _, p := range res.ScanProblems {
			kind := "error"
			if p.Warning {
				kind = "warning"
			}
			problems = append(problems, fmt.Sprintf("  %s: %s (%s)", state.Display(p.Path), sanitizeLine(p.Err), kind))
		}
		section("not scanned", st.warn, problems)
		section("propagated", st.ok, done)
	}
	s.pager.SetLines(lines)
	return s
}

// exitText explains the exit code the run will end with.
func exitText(st *styles, code int) string {
	switch code {
	case 0:
		return st.ok.Render("Both sides are in sync (exit code 0).")
	case 1:
		return st.warn.Render("Some items were skipped and are listed below (exit code 1).")
	}
	return st.errText.Render(fmt.Sprintf("Some items failed and are listed below (exit code %d).", code))
}

// SetSize sets the screen area of the summary.
func (s *summaryView) SetSize(width, height int) {
	s.width, s.height = width, height
	s.help.Width = width
	s.pager.SetSize(width, height-3-lipgloss.Height(helpView(s.help, s.keys)))
}

// Update handles a key and reports whether the user leaves.
func (s *summaryView) Update(msg tea.KeyMsg) (leave bool) {
	if s.pager.handle(msg, s.keys.nav) {
		return false
	}
	return key.Matches(msg, s.keys.Leave) || key.Matches(msg, interruptKey)
}

// View renders the summary screen.
func (s *summaryView) View() string {
	var b strings.Builder
	b.WriteString(s.st.title.Render(cut(s.title, s.width)))
	b.WriteString("\n\n")
	b.WriteString(s.pager.View())
	b.WriteByte('\n')
	b.WriteString(s.st.faint.Render(s.pager.position()))
	b.WriteByte('\n')
	b.WriteString(helpView(s.help, s.keys))
	return b.String()
}

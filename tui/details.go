package tui

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
)

// Column widths of the details table, and how many entries below a
// directory it lists.
const (
	labelWidth  = 12
	detailWidth = 22
	maxSubLines = 10000
)

// comparedMsg delivers the comparison of an item's two versions.
type comparedMsg struct {
	id  int
	cmp comparison
}

// detailsEvent is what the details screen asks its parent to do.
type detailsEvent uint8

const (
	detailsNothing detailsEvent = iota
	detailsClose                // go back to the review
	detailsChoose               // set the item's action to the chosen one
)

// details shows one item in full: both sides' properties and, for text
// files, a coloured unified diff read through the Runner.
type details struct {
	st    *styles
	keys  detailsKeys
	help  help.Model
	loc   *time.Location
	roots [2]string

	it      *reconcile.Item
	id      int
	cmp     *comparison // nil while loading
	cancel  context.CancelFunc
	message string

	pager         pager
	width, height int
}

// newDetails opens the details of it and returns the command that reads
// and compares its contents. id tells this comparison from earlier ones.
func newDetails(ctx context.Context, st *styles, r Runner, it *reconcile.Item, roots [2]string,
	loc *time.Location, id int, track *tracker) (*details, tea.Cmd) {
	ctx, cancel := context.WithCancel(ctx)
	d := &details{
		st:     st,
		keys:   newDetailsKeys(),
		help:   newHelp(st),
		loc:    loc,
		roots:  roots,
		it:     it,
		id:     id,
		cancel: cancel,
	}
	cmd := func() tea.Msg {
		var c comparison
		if !track.run(func() { c = compare(ctx, r, it, loc) }) {
			return nil
		}
		return comparedMsg{id: id, cmp: c}
	}
	d.render()
	return d, cmd
}

// SetSize sets the screen area of the details.
func (d *details) SetSize(width, height int) {
	d.width, d.height = width, height
	d.help.Width = width
	d.pager.SetSize(width, height-3-lipgloss.Height(helpView(d.help, d.keys)))
	d.render()
}

// close stops a comparison still running.
func (d *details) close() { d.cancel() }

// compared takes a finished comparison; stale ones are ignored.
func (d *details) compared(msg comparedMsg) {
	if msg.id != d.id {
		return
	}
	d.cmp = &msg.cmp
	d.render()
}

// Update handles a key. A choice is returned with detailsChoose; the
// parent applies it (keeping the review's counts) and calls refresh.
func (d *details) Update(msg tea.KeyMsg) (detailsEvent, reconcile.Action) {
	d.message = ""
	c := d.keys.choice
	switch {
	case d.pager.handle(msg, d.keys.nav):
	case key.Matches(msg, c.OneToTwo):
		return detailsChoose, reconcile.OneToTwo
	case key.Matches(msg, c.TwoToOne):
		return detailsChoose, reconcile.TwoToOne
	case key.Matches(msg, c.Skip):
		return detailsChoose, reconcile.Skip
	case key.Matches(msg, c.Revert):
		return detailsChoose, reconcile.Record
	case key.Matches(msg, d.keys.Close), key.Matches(msg, interruptKey):
		return detailsClose, 0
	case key.Matches(msg, d.keys.Help):
		d.help.ShowAll = !d.help.ShowAll
		d.SetSize(d.width, d.height)
	}
	return detailsNothing, 0
}

// refresh redraws after the item's action changed, with err (if any)
// explaining a refused choice.
func (d *details) refresh(err error) {
	if err != nil {
		d.message = err.Error()
	}
	d.render()
}

// render rebuilds the pager's lines from the item and the comparison.
func (d *details) render() {
	it := d.it
	var lines []string
	add := func(s string) { lines = append(lines, s) }
	row := func(label string, f func(e *state.Entry) string) {
		s := d.st.label.Render(pad(label, labelWidth))
		for _, e := range []*state.Entry{it.One, it.Two, it.Base} {
			v := "-"
			if e != nil {
				v = f(e)
			}
			s += pad(v, detailWidth)
		}
		add(strings.TrimRight(s, " "))
	}
	action := it.Action.Arrow() + "  " + it.Action.String()
	if it.Action != it.Default {
		action += " (your choice; default " + it.Default.Arrow() + ")"
	}
	if it.Reason != "" {
		action += ": " + it.Reason
	}
	add(d.st.label.Render(pad("action", labelWidth)) + action)
	add(d.st.colHead.Render(strings.Repeat(" ", labelWidth) +
		pad(cut("side 1: "+state.Display(d.roots[0]), detailWidth-1), detailWidth) +
		pad(cut("side 2: "+state.Display(d.roots[1]), detailWidth-1), detailWidth) + "ancestor"))
	s := d.st.label.Render(pad("state", labelWidth)) +
		pad(orAbsent(sideWord(it.Base, it.One)), detailWidth) + pad(orAbsent(sideWord(it.Base, it.Two)), detailWidth)
	add(strings.TrimRight(s, " "))
	row("kind", func(e *state.Entry) string { return e.Kind.String() })
	row("size", func(e *state.Entry) string {
		if e.Kind != state.File {
			return "-"
		}
		return bytesText(e.Size) + " (" + count(e.Size) + ")"
	})
	row("modified", func(e *state.Entry) string {
		if e.MTime == 0 {
			return "-"
		}
		return e.Time().In(d.loc).Format("2006-01-02 15:04:05")
	})
	row("permissions", func(e *state.Entry) string {
		if e.Kind == state.Symlink {
			return "-"
		}
		return permText(e.Mode)
	})
	row("hash", func(e *state.Entry) string {
		if e.Kind == state.Dir {
			return "-"
		}
		if e.Unhashed {
			return "not read"
		}
		return hex.EncodeToString(e.Hash[:6])
	})
	if isLink(it.One) || isLink(it.Two) || isLink(it.Base) {
		row("target", func(e *state.Entry) string {
			if e.Kind != state.Symlink {
				return "-"
			}
			return state.Display(e.Target)
		})
	}
	if len(it.Sub) > 0 {
		add(d.st.label.Render(pad("below", labelWidth)) +
			fmt.Sprintf("%s entries below this directory go with it", count(int64(len(it.Sub)))))
	}
	add("")
	if len(it.Sub) > 0 {
		add(d.st.label.Render("Entries below, side 1 then side 2:"))
		for i := range it.Sub[:min(len(it.Sub), maxSubLines)] {
			p := &it.Sub[i]
			add("  " + pad(orAbsent(sideWord(p.Base, p.One)), wordWidth) + "  " +
				pad(orAbsent(sideWord(p.Base, p.Two)), wordWidth) + "  " + state.Display(p.Path))
		}
		if n := len(it.Sub) - maxSubLines; n > 0 {
			add(d.st.faint.Render(fmt.Sprintf("  … and %s more", count(int64(n)))))
		}
		add("")
	}
	switch {
	case d.cmp == nil:
		add(d.st.faint.Render("Reading both versions…"))
	case d.cmp.err != nil:
		add(d.st.errText.Render("Cannot compare the contents: " + d.cmp.err.Error()))
	case d.cmp.diff != nil:
		add(d.st.label.Render("Differences (- side 1, + side 2):"))
		for _, l := range d.cmp.diff {
			add(d.diffLine(l))
		}
	default:
		lines = append(lines, d.cmp.notes...)
	}
	d.pager.SetLines(lines)
}

// diffLine colours one line of a unified diff.
func (d *details) diffLine(l string) string {
	switch {
	case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
		return d.st.diffHead.Render(l)
	case strings.HasPrefix(l, "+"):
		return d.st.diffAdd.Render(l)
	case strings.HasPrefix(l, "-"):
		return d.st.diffDel.Render(l)
	case strings.HasPrefix(l, "@@"):
		return d.st.diffHunk.Render(l)
	}
	return l
}

func isLink(e *state.Entry) bool { return e != nil && e.Kind == state.Symlink }

func orAbsent(w string) string {
	if w == "" {
		return "absent"
	}
	return w
}

// permText shows permission bits as octal and as ls does: "0755 rwxr-xr-x".
func permText(mode uint32) string {
	const rwx = "rwxrwxrwx"
	b := []byte("---------")
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) != 0 {
			b[i] = rwx[i]
		}
	}
	return fmt.Sprintf("%04o %s", mode&state.PermMask, b)
}

// View renders the details screen.
func (d *details) View() string {
	var b strings.Builder
	b.WriteString(d.st.title.Render(cut("details: "+state.Display(d.it.Path), d.width)))
	b.WriteString("\n\n")
	b.WriteString(d.pager.View())
	b.WriteByte('\n')
	switch {
	case d.message != "":
		b.WriteString(d.st.warn.Render(cut(d.message, d.width)))
	default:
		b.WriteString(d.st.faint.Render(d.pager.position()))
	}
	b.WriteByte('\n')
	b.WriteString(helpView(d.help, d.keys))
	return b.String()
}

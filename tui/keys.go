package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/lipgloss"
)

// The key bindings of every screen. The help bars are generated from them
// (bubbles/help), so a binding's keys and its help text never disagree.
// The review keys follow Unison's text interface where it has one: `>` or
// `.` propagate from side 1 to side 2, `<` or `,` the other way, `f` or `r`
// follow the default again, `g` goes and `q` quits.

// navKeys move through a list or scroll a page of text.
type navKeys struct {
	Up       key.Binding
	Down     key.Binding
	PageUp   key.Binding
	PageDown key.Binding
	Home     key.Binding
	End      key.Binding
}

func newNavKeys() navKeys {
	return navKeys{
		Up:       key.NewBinding(key.WithKeys("up", "k", "p"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j", "n"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+f", " "), key.WithHelp("pgdn", "page down")),
		Home:     key.NewBinding(key.WithKeys("home"), key.WithHelp("home", "first")),
		End:      key.NewBinding(key.WithKeys("end"), key.WithHelp("end", "last")),
	}
}

func (n navKeys) list() []key.Binding {
	return []key.Binding{n.Up, n.Down, n.PageUp, n.PageDown, n.Home, n.End}
}

// choiceKeys set the action of one item (or of a group, after a bulk key).
type choiceKeys struct {
	OneToTwo key.Binding
	TwoToOne key.Binding
	Skip     key.Binding
	Revert   key.Binding
}

func newChoiceKeys() choiceKeys {
	return choiceKeys{
		OneToTwo: key.NewBinding(key.WithKeys(">", "."), key.WithHelp(">", "1→2")),
		TwoToOne: key.NewBinding(key.WithKeys("<", ","), key.WithHelp("<", "2→1")),
		Skip:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "skip")),
		Revert:   key.NewBinding(key.WithKeys("r", "f"), key.WithHelp("r", "default")),
	}
}

func (c choiceKeys) list() []key.Binding {
	return []key.Binding{c.OneToTwo, c.TwoToOne, c.Skip, c.Revert}
}

// reviewKeys are the keys of the review list.
type reviewKeys struct {
	nav    navKeys
	choice choiceKeys

	RevertAll     key.Binding
	BulkConflicts key.Binding
	BulkDir       key.Binding
	BulkFiltered  key.Binding
	Filter        key.Binding
	ClearFilter   key.Binding
	Details       key.Binding
	Go            key.Binding
	Quit          key.Binding
	Help          key.Binding
}

func newReviewKeys() reviewKeys {
	return reviewKeys{
		nav:           newNavKeys(),
		choice:        newChoiceKeys(),
		RevertAll:     key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "all to default")),
		BulkConflicts: key.NewBinding(key.WithKeys("C"), key.WithHelp("C >/</s/r", "all conflicts")),
		BulkDir:       key.NewBinding(key.WithKeys("D"), key.WithHelp("D >/</s/r", "all in this directory")),
		BulkFiltered:  key.NewBinding(key.WithKeys("F"), key.WithHelp("F >/</s/r", "all shown (filter)")),
		Filter:        key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		ClearFilter:   key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
		Details:       key.NewBinding(key.WithKeys("enter", "d", "x"), key.WithHelp("enter/d", "details")),
		Go:            key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "go")),
		Quit:          key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		Help:          key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
	}
}

// ShortHelp implements help.KeyMap.
func (k reviewKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.choice.OneToTwo, k.choice.TwoToOne, k.choice.Skip,
		k.Details, k.Filter, k.Go, k.Quit, k.Help}
}

// FullHelp implements help.KeyMap.
func (k reviewKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		k.nav.list(),
		append(k.choice.list(), k.RevertAll),
		{k.Filter, k.ClearFilter, k.Details, k.Go, k.Quit, k.Help},
		{k.BulkConflicts, k.BulkDir, k.BulkFiltered},
	}
}

// bulkKeys are the keys accepted after C, D or F.
type bulkKeys struct {
	choice choiceKeys
	Cancel key.Binding
}

func newBulkKeys() bulkKeys {
	return bulkKeys{
		choice: newChoiceKeys(),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
}

// ShortHelp implements help.KeyMap.
func (k bulkKeys) ShortHelp() []key.Binding { return append(k.choice.list(), k.Cancel) }

// FullHelp implements help.KeyMap.
func (k bulkKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// filterKeys are the keys of the filter input line.
type filterKeys struct {
	Apply  key.Binding
	Cancel key.Binding
}

func newFilterKeys() filterKeys {
	return filterKeys{
		Apply:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
	}
}

// ShortHelp implements help.KeyMap.
func (k filterKeys) ShortHelp() []key.Binding { return []key.Binding{k.Apply, k.Cancel} }

// FullHelp implements help.KeyMap.
func (k filterKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// confirmKeys answer a yes/no question.
type confirmKeys struct {
	Yes key.Binding
	No  key.Binding
}

func newConfirmKeys() confirmKeys {
	return confirmKeys{
		Yes: key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),
		No:  key.NewBinding(key.WithKeys("n", "N", "esc"), key.WithHelp("n/esc", "no")),
	}
}

// ShortHelp implements help.KeyMap.
func (k confirmKeys) ShortHelp() []key.Binding { return []key.Binding{k.Yes, k.No} }

// FullHelp implements help.KeyMap.
func (k confirmKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// detailsKeys are the keys of the details screen.
type detailsKeys struct {
	nav    navKeys
	choice choiceKeys
	Close  key.Binding
	Help   key.Binding
}

func newDetailsKeys() detailsKeys {
	return detailsKeys{
		nav:    newNavKeys(),
		choice: newChoiceKeys(),
		Close:  key.NewBinding(key.WithKeys("esc", "q", "enter", "d", "x"), key.WithHelp("esc/q", "back")),
		Help:   key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
	}
}

// ShortHelp implements help.KeyMap.
func (k detailsKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.nav.Up, k.nav.Down, k.choice.OneToTwo, k.choice.TwoToOne,
		k.choice.Skip, k.Close, k.Help}
}

// FullHelp implements help.KeyMap.
func (k detailsKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{k.nav.list(), k.choice.list(), {k.Close, k.Help}}
}

// transferKeys are the keys of the transfer screen.
type transferKeys struct {
	Stop key.Binding
}

func newTransferKeys() transferKeys {
	return transferKeys{
		Stop: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "stop after the current item")),
	}
}

// ShortHelp implements help.KeyMap.
func (k transferKeys) ShortHelp() []key.Binding { return []key.Binding{k.Stop} }

// FullHelp implements help.KeyMap.
func (k transferKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// summaryKeys are the keys of the summary screen.
type summaryKeys struct {
	nav   navKeys
	Leave key.Binding
}

func newSummaryKeys() summaryKeys {
	return summaryKeys{
		nav:   newNavKeys(),
		Leave: key.NewBinding(key.WithKeys("q", "enter", "esc"), key.WithHelp("q/enter", "leave")),
	}
}

// ShortHelp implements help.KeyMap.
func (k summaryKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.nav.Up, k.nav.Down, k.nav.PageDown, k.Leave}
}

// FullHelp implements help.KeyMap.
func (k summaryKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{k.nav.list(), {k.Leave}}
}

// scanKeys are the keys of the scanning screen.
type scanKeys struct {
	Quit key.Binding
}

func newScanKeys() scanKeys {
	return scanKeys{
		Quit: key.NewBinding(key.WithKeys("q", "ctrl+c", "esc"), key.WithHelp("q", "stop and quit")),
	}
}

// ShortHelp implements help.KeyMap.
func (k scanKeys) ShortHelp() []key.Binding { return []key.Binding{k.Quit} }

// FullHelp implements help.KeyMap.
func (k scanKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// interruptKey leaves the review at once, like q without the question.
var interruptKey = key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit now"))

// helpView renders k's help with h: one line, or with ShowAll the full
// help, its columns wrapped into as many bands as the width needs.
func helpView(h help.Model, k help.KeyMap) string {
	if !h.ShowAll {
		return h.ShortHelpView(k.ShortHelp())
	}
	groups := k.FullHelp()
	unbounded := h
	unbounded.Width = 0
	var bands []string
	for len(groups) > 0 {
		n := 1
		for n < len(groups) && (h.Width <= 0 || lipgloss.Width(unbounded.FullHelpView(groups[:n+1])) <= h.Width) {
			n++
		}
		bands = append(bands, h.FullHelpView(groups[:n]))
		groups = groups[n:]
	}
	return strings.Join(bands, "\n")
}

package tui

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
)

// Column widths of a review row: the gutter holding the selection mark,
// each side's state word, and the arrow followed by the "changed by you"
// mark.
const (
	gutterWidth = 2
	wordWidth   = 9
	arrowWidth  = 6
	rowFixed    = gutterWidth + wordWidth + 1 + arrowWidth + 1 + wordWidth + 1
)

// reviewEvent is what the review asks its parent to do after a key.
type reviewEvent uint8

const (
	reviewNothing reviewEvent = iota
	reviewGo                  // start the transfer
	reviewQuit                // leave without changing anything
	reviewDetails             // open the selected item's details
)

// bulkScope names the group a bulk key (C, D, F) applies to.
type bulkScope uint8

const (
	bulkNone bulkScope = iota
	bulkConflicts
	bulkDir
	bulkFiltered
)

// review is the list of planned items that a person reviews and changes.
//
// It keeps one sorted index of the reviewable items (conflicts first, then
// path order) built once, and a filtered view of it rebuilt only when the
// filter changes. Moving, choosing and drawing cost time in proportion to
// the screen, not to the plan; counts and bytes are kept up to date item by
// item.
type review struct {
	st     *styles
	keys   reviewKeys
	bulk   bulkKeys
	fkeys  filterKeys
	ckeys  confirmKeys
	help   help.Model
	guards *reconcile.Options

	plan         *reconcile.Plan
	root1, root2 string

	rows   []int    // plan indices of the items shown, conflicts first
	view   []int    // the rows that pass the filter
	folded []string // lower-cased displayed path per row, built on demand

	filter    string
	filtering bool
	input     textinput.Model

	cursor, offset int // cursor and first visible line, as indices into view
	width, height  int
	listHeight     int

	counts  [5]int // rows by current action
	bytes   int64  // contents the current choices move
	changed int    // rows whose action differs from the default

	pending     bulkScope
	message     string
	messageErr  bool
	confirmQuit bool
}

// newReview builds the review of plan. guards, if non-nil, holds the run's
// --no-deletion/--no-update/--no-creation flags, which choices may not
// break.
func newReview(st *styles, plan *reconcile.Plan, root1, root2 string, guards *reconcile.Options) *review {
	r := &review{
		st:     st,
		keys:   newReviewKeys(),
		bulk:   newBulkKeys(),
		fkeys:  newFilterKeys(),
		ckeys:  newConfirmKeys(),
		help:   newHelp(st),
		guards: guards,
		plan:   plan,
		root1:  root1,
		root2:  root2,
	}
	var conflicts, others int
	for i := range plan.Items {
		switch plan.Items[i].Action {
		case reconcile.Record:
		case reconcile.Conflict:
			conflicts++
		default:
			others++
		}
	}
	r.rows = make([]int, 0, conflicts+others)
	for i := range plan.Items {
		if plan.Items[i].Action == reconcile.Conflict {
			r.rows = append(r.rows, i)
		}
	}
	for i := range plan.Items {
		if a := plan.Items[i].Action; a != reconcile.Record && a != reconcile.Conflict {
			r.rows = append(r.rows, i)
		}
	}
	for _, i := range r.rows {
		it := &plan.Items[i]
		r.counts[it.Action]++
		r.bytes += moveBytes(it, it.Action)
		if it.Action != it.Default {
			r.changed++
		}
	}
	r.view = r.rows

	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "path text"
	in.PromptStyle = st.input
	in.TextStyle = st.input
	in.PlaceholderStyle = st.faint
	in.Cursor.Style = st.inputCursor
	in.Cursor.TextStyle = st.input
	in.Cursor.SetMode(cursor.CursorStatic)
	r.input = in
	return r
}

// newHelp returns a help bar drawn with st.
func newHelp(st *styles) help.Model {
	h := help.New()
	h.Styles = help.Styles{
		Ellipsis:       st.helpSep,
		ShortKey:       st.helpKey,
		ShortDesc:      st.helpDesc,
		ShortSeparator: st.helpSep,
		FullKey:        st.helpKey,
		FullDesc:       st.helpDesc,
		FullSeparator:  st.helpSep,
	}
	return h
}

// SetSize sets the screen area of the review.
func (r *review) SetSize(width, height int) {
	r.width, r.height = width, height
	r.help.Width = width
	r.input.Width = max(1, width-2)
	r.layout()
}

// layout recomputes the list height after a size or help change.
func (r *review) layout() {
	r.listHeight = max(1, r.height-4-lipgloss.Height(r.helpView()))
	r.scrollToCursor()
}

// selected returns the plan index of the selected item.
func (r *review) selected() (int, bool) {
	if r.cursor < 0 || r.cursor >= len(r.view) {
		return 0, false
	}
	return r.view[r.cursor], true
}

// Update handles a key and says what the parent should do next.
func (r *review) Update(msg tea.KeyMsg) (reviewEvent, tea.Cmd) {
	ev, cmd := r.update(msg)
	// The mode (filter, bulk prompt, question, full help) decides the
	// help bar's height and so the list's.
	r.layout()
	return ev, cmd
}

func (r *review) update(msg tea.KeyMsg) (reviewEvent, tea.Cmd) {
	r.message, r.messageErr = "", false
	switch {
	case r.confirmQuit:
		switch {
		case key.Matches(msg, r.ckeys.Yes):
			return reviewQuit, nil
		case key.Matches(msg, r.ckeys.No), key.Matches(msg, r.keys.Quit):
			r.confirmQuit = false
		}
		return reviewNothing, nil
	case r.filtering:
		return reviewNothing, r.updateFilter(msg)
	case r.pending != bulkNone:
		scope := r.pending
		r.pending = bulkNone
		if a, ok := r.choice(msg); ok {
			r.applyBulk(scope, a)
		} else if !key.Matches(msg, r.bulk.Cancel) {
			r.setMessage("bulk choice cancelled: expected >, <, s or r", true)
		}
		return reviewNothing, nil
	}

	switch {
	case key.Matches(msg, interruptKey):
		return reviewQuit, nil
	case r.move(msg):
	case key.Matches(msg, r.keys.RevertAll):
		r.applyBulk(bulkNone, 0)
	default:
		if a, ok := r.choice(msg); ok {
			r.chooseSelected(a)
			return reviewNothing, nil
		}
		return r.command(msg)
	}
	return reviewNothing, nil
}

// command handles the keys that are neither moves nor choices.
func (r *review) command(msg tea.KeyMsg) (reviewEvent, tea.Cmd) {
	switch {
	case key.Matches(msg, r.keys.BulkConflicts):
		r.startBulk(bulkConflicts)
	case key.Matches(msg, r.keys.BulkDir):
		if _, ok := r.selected(); ok {
			r.startBulk(bulkDir)
		}
	case key.Matches(msg, r.keys.BulkFiltered):
		r.startBulk(bulkFiltered)
	case key.Matches(msg, r.keys.Filter):
		r.filtering = true
		r.input.SetValue(r.filter)
		r.input.CursorEnd()
		return reviewNothing, r.input.Focus()
	case key.Matches(msg, r.keys.ClearFilter):
		if r.filter != "" {
			r.applyFilter("")
		}
	case key.Matches(msg, r.keys.Details):
		if _, ok := r.selected(); ok {
			return reviewDetails, nil
		}
	case key.Matches(msg, r.keys.Go):
		return reviewGo, nil
	case key.Matches(msg, r.keys.Quit):
		if r.changed == 0 {
			return reviewQuit, nil
		}
		r.confirmQuit = true
	case key.Matches(msg, r.keys.Help):
		r.help.ShowAll = !r.help.ShowAll
	}
	return reviewNothing, nil
}

// choice maps a key to the action it chooses: r (revert) yields Record,
// standing for "the item's default".
func (r *review) choice(msg tea.KeyMsg) (reconcile.Action, bool) {
	c := r.keys.choice
	switch {
	case key.Matches(msg, c.OneToTwo):
		return reconcile.OneToTwo, true
	case key.Matches(msg, c.TwoToOne):
		return reconcile.TwoToOne, true
	case key.Matches(msg, c.Skip):
		return reconcile.Skip, true
	case key.Matches(msg, c.Revert):
		return reconcile.Record, true
	}
	return 0, false
}

// move handles a navigation key and reports whether it was one.
func (r *review) move(msg tea.KeyMsg) bool {
	n := r.keys.nav
	switch {
	case key.Matches(msg, n.Up):
		r.cursor--
	case key.Matches(msg, n.Down):
		r.cursor++
	case key.Matches(msg, n.PageUp):
		r.cursor -= r.listHeight
		r.offset -= r.listHeight
	case key.Matches(msg, n.PageDown):
		r.cursor += r.listHeight
		r.offset += r.listHeight
	case key.Matches(msg, n.Home):
		r.cursor = 0
	case key.Matches(msg, n.End):
		r.cursor = len(r.view) - 1
	default:
		return false
	}
	r.scrollToCursor()
	return true
}

// scrollToCursor clamps the cursor and scrolls so that it is visible.
func (r *review) scrollToCursor() {
	r.cursor = max(0, min(r.cursor, len(r.view)-1))
	r.offset = max(0, min(r.offset, len(r.view)-r.listHeight))
	if r.cursor < r.offset {
		r.offset = r.cursor
	}
	if r.cursor >= r.offset+r.listHeight {
		r.offset = r.cursor - r.listHeight + 1
	}
}

// set gives plan item i action a (Record meaning its default), keeping
// the counts current. It returns why the action is refused, or nil.
func (r *review) set(i int, a reconcile.Action) error {
	it := &r.plan.Items[i]
	if a == reconcile.Record {
		a = it.Default
	}
	if a == it.Action {
		return nil
	}
	if a != it.Default {
		if err := checkAction(it, a, r.guards); err != nil {
			return err
		}
	}
	if it.Action != it.Default {
		r.changed--
	}
	r.counts[it.Action]--
	r.bytes -= moveBytes(it, it.Action)
	it.Action = a
	r.counts[a]++
	r.bytes += moveBytes(it, a)
	if a != it.Default {
		r.changed++
	}
	return nil
}

// chooseSelected applies a to the selected item and moves to the next
// one, as Unison does, so a run of items is decided key after key.
func (r *review) chooseSelected(a reconcile.Action) {
	i, ok := r.selected()
	if !ok {
		return
	}
	if err := r.set(i, a); err != nil {
		r.setMessage(err.Error(), true)
		return
	}
	if r.cursor < len(r.view)-1 {
		r.cursor++
		r.scrollToCursor()
	}
}

func (r *review) setMessage(s string, isErr bool) {
	r.message, r.messageErr = s, isErr
}

// startBulk waits for the choice to apply to scope.
func (r *review) startBulk(scope bulkScope) {
	r.pending = scope
}

// bulkDir returns the directory the D key applies to: the selected item
// itself when it is a directory on either side, else its parent.
func (r *review) bulkDir() string {
	i, ok := r.selected()
	if !ok {
		return ""
	}
	it := &r.plan.Items[i]
	if (it.One != nil && it.One.Kind == state.Dir) || (it.Two != nil && it.Two.Kind == state.Dir) {
		return it.Path
	}
	return state.Parent(it.Path)
}

// scopeText describes a bulk scope for the prompt and the report.
func (r *review) scopeText(scope bulkScope) string {
	switch scope {
	case bulkConflicts:
		return "every conflict"
	case bulkDir:
		if d := r.bulkDir(); d != "" {
			return "everything under " + state.Display(d)
		}
		return "everything (the item is at the top)"
	case bulkFiltered:
		if r.filter == "" {
			return "every item"
		}
		return "every item matching " + quote(r.filter)
	}
	return "every item"
}

// applyBulk applies a (Record: the default) to every row in scope; with
// bulkNone it reverts every row to its default.
func (r *review) applyBulk(scope bulkScope, a reconcile.Action) {
	var rows []int
	what := r.scopeText(scope)
	switch scope {
	case bulkNone:
		rows, a, what = r.rows, reconcile.Record, "every item"
	case bulkConflicts:
		rows = r.rows
	case bulkDir:
		rows = r.rows
	case bulkFiltered:
		rows = r.view
	}
	dir := r.bulkDir()
	var applied, refused int
	var firstErr error
	for _, i := range rows {
		it := &r.plan.Items[i]
		switch scope {
		case bulkConflicts:
			if it.Default != reconcile.Conflict {
				continue
			}
		case bulkDir:
			if it.Path != dir && !state.IsBelow(it.Path, dir) {
				continue
			}
		}
		want := a
		if want == reconcile.Record {
			want = it.Default
		}
		if it.Action == want {
			continue
		}
		if err := r.set(i, a); err != nil {
			refused++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		applied++
	}
	label := "default"
	if a != reconcile.Record {
		label = a.Arrow()
	}
	msg := fmt.Sprintf("%s set to %s: %d changed", what, label, applied)
	if refused > 0 {
		msg += fmt.Sprintf(", %d refused (%v)", refused, firstErr)
	}
	r.setMessage(msg, refused > 0)
}

// updateFilter handles a key while the filter line is open: the list
// follows the text as it is typed.
func (r *review) updateFilter(msg tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(msg, r.fkeys.Apply):
		r.filtering = false
		r.input.Blur()
		return nil
	case key.Matches(msg, r.fkeys.Cancel):
		r.filtering = false
		r.input.Blur()
		r.applyFilter("")
		return nil
	}
	var cmd tea.Cmd
	r.input, cmd = r.input.Update(msg)
	if v := r.input.Value(); v != r.filter {
		r.applyFilter(v)
	}
	return cmd
}

// applyFilter shows only the rows whose displayed path contains text
// (ignoring case unless text has an upper-case letter, like less -i),
// keeping the selected item selected when it still shows.
func (r *review) applyFilter(text string) {
	sel, hadSel := r.selected()
	r.filter = text
	if text == "" {
		r.view = r.rows
	} else {
		fold := !hasUpper(text)
		if fold && r.folded == nil {
			r.folded = make([]string, len(r.rows))
			for k, i := range r.rows {
				r.folded[k] = strings.ToLower(state.Display(r.plan.Items[i].Path))
			}
		}
		view := make([]int, 0, len(r.view))
		for k, i := range r.rows {
			var p string
			if fold {
				p = r.folded[k]
			} else {
				p = state.Display(r.plan.Items[i].Path)
			}
			if strings.Contains(p, text) {
				view = append(view, i)
			}
		}
		r.view = view
	}
	r.cursor = 0
	if hadSel {
		for k, i := range r.view {
			if i == sel {
				r.cursor = k
				break
			}
		}
	}
	r.offset = 0
	r.scrollToCursor()
}

func hasUpper(s string) bool {
	for _, c := range s {
		if unicode.IsUpper(c) {
			return true
		}
	}
	return false
}

// quote shows user-typed text between quotes with control characters
// escaped.
func quote(s string) string { return "\"" + state.Display(s) + "\"" }

// helpView renders the help bar for the current mode.
func (r *review) helpView() string {
	switch {
	case r.confirmQuit:
		return helpView(r.help, r.ckeys)
	case r.filtering:
		return helpView(r.help, r.fkeys)
	case r.pending != bulkNone:
		return helpView(r.help, r.bulk)
	}
	return helpView(r.help, r.keys)
}

// View renders the whole review screen.
func (r *review) View() string {
	var b strings.Builder
	b.WriteString(r.st.title.Render(cut(fmt.Sprintf("concord review   1: %s   2: %s",
		state.Display(r.root1), state.Display(r.root2)), r.width)))
	b.WriteByte('\n')
	head := strings.Repeat(" ", gutterWidth) + pad("side 1", wordWidth) + " " + pad("action", arrowWidth) +
		" " + pad("side 2", wordWidth) + " path"
	if len(r.view) > 0 {
		pos := count(int64(r.cursor+1)) + "/" + count(int64(len(r.view)))
		if gap := r.width - len(head) - len(pos); gap > 0 {
			head += strings.Repeat(" ", gap) + pos
		}
	}
	b.WriteString(r.st.colHead.Render(cut(head, r.width)))
	b.WriteByte('\n')
	b.WriteString(r.listView())
	b.WriteByte('\n')
	b.WriteString(r.statusView())
	b.WriteByte('\n')
	b.WriteString(r.summaryView())
	b.WriteByte('\n')
	b.WriteString(r.helpView())
	return b.String()
}

// listView renders the visible rows (or the quit question), exactly
// listHeight lines.
func (r *review) listView() string {
	if r.confirmQuit {
		q := fmt.Sprintf("You changed the action of %d item(s).\nQuit without changing anything on either side?\n\n y: quit    n: back to the review", r.changed)
		return r.st.r.Place(r.width, r.listHeight, lipgloss.Center, lipgloss.Center, r.st.dialog.Render(q))
	}
	if len(r.view) == 0 {
		text := "Nothing to propagate: the replicas agree. Press g to record that, q to quit."
		if len(r.rows) > 0 {
			text = "No item matches the filter " + quote(r.filter) + "; esc clears it."
		}
		return r.st.r.Place(r.width, r.listHeight, lipgloss.Center, lipgloss.Center, cut(text, r.width))
	}
	var b strings.Builder
	for k := 0; k < r.listHeight; k++ {
		if k > 0 {
			b.WriteByte('\n')
		}
		if j := r.offset + k; j < len(r.view) {
			b.WriteString(r.rowView(&r.plan.Items[r.view[j]], j == r.cursor))
		}
	}
	return b.String()
}

// rowView renders one item as a line of the list.
func (r *review) rowView(it *reconcile.Item, selected bool) string {
	gutter := "  "
	if selected {
		gutter = "▸ "
	}
	mark := " "
	if it.Action != it.Default {
		mark = "*"
	}
	w1 := pad(sideWord(it.Base, it.One), wordWidth)
	w2 := pad(sideWord(it.Base, it.Two), wordWidth)
	arrow := it.Action.Arrow()
	path := cutLeft(state.Display(it.Path), max(1, r.width-rowFixed))
	if selected {
		line := gutter + w1 + " " + arrow + mark + " " + w2 + " " + path
		return r.st.selected.Render(pad(line, r.width))
	}
	return gutter + w1 + " " + r.arrowStyle(it.Action).Render(arrow) + mark + " " + w2 + " " + path
}

func (r *review) arrowStyle(a reconcile.Action) lipgloss.Style {
	switch a {
	case reconcile.OneToTwo:
		return r.st.arrowOne
	case reconcile.TwoToOne:
		return r.st.arrowTwo
	case reconcile.Conflict:
		return r.st.arrowConflict
	}
	return r.st.arrowSkip
}

// statusView renders the line under the list: the filter being typed, a
// bulk prompt, the last message, or why the selected item is what it is.
func (r *review) statusView() string {
	switch {
	case r.filtering:
		return r.input.View()
	case r.pending != bulkNone:
		return r.st.warn.Render(cut("apply to "+r.scopeText(r.pending)+": press >, <, s (skip) or r (default); esc cancels", r.width))
	case r.message != "":
		if r.messageErr {
			return r.st.warn.Render(cut(r.message, r.width))
		}
		return r.st.status.Render(cut(r.message, r.width))
	}
	i, ok := r.selected()
	if !ok {
		return ""
	}
	it := &r.plan.Items[i]
	var s string
	switch {
	case it.Action == reconcile.Conflict && it.Reason != "":
		s = "conflict: " + it.Reason
	case it.Action == reconcile.Conflict:
		s = "conflict: both sides changed"
	case it.Action != it.Default:
		s = "your choice; the default was " + it.Default.Arrow()
		if it.Reason != "" {
			s += " (" + it.Reason + ")"
		}
	case it.Reason != "":
		s = it.Action.String() + ": " + it.Reason
	}
	return r.st.faint.Render(cut(s, r.width))
}

// summaryView renders the counts line.
func (r *review) summaryView() string {
	s := fmt.Sprintf("1→2: %d  2→1: %d  unresolved: %d  skipped: %d  to move: %s",
		r.counts[reconcile.OneToTwo], r.counts[reconcile.TwoToOne],
		r.counts[reconcile.Conflict], r.counts[reconcile.Skip], bytesText(r.bytes))
	if r.filter != "" {
		s += fmt.Sprintf("  shown: %d of %d", len(r.view), len(r.rows))
	}
	st := r.st.label
	if r.counts[reconcile.Conflict] > 0 {
		st = r.st.warn
	}
	return st.Render(cut(s, r.width))
}

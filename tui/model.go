package tui

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/spinner"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/concord-sync/concord/engine"
)

// phase is the screen the program is on.
type phase uint8

const (
	phaseScan phase = iota
	phaseReview
	phaseTransfer
	phaseSummary
)

// preparedMsg reports that preparation (connect, scan, reconcile) ended.
type preparedMsg struct {
	r   Runner
	err error
}

// tracker counts the work that commands run outside the program (Execute,
// reading files for a diff), so that Run returns only after all of it has
// stopped. Once closed it refuses to start anything new.
type tracker struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// run calls f unless the tracker is closed, and reports whether it did.
func (t *tracker) run(f func()) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	f()
	return true
}

// closeAndWait refuses new work and waits for the work under way.
func (t *tracker) closeAndWait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}

// execOut keeps what Execute returned where Run can find it even when the
// program ended (killed through its context) before the message arrived.
type execOut struct {
	mu  sync.Mutex
	msg *executedMsg
}

func (o *execOut) set(msg executedMsg) {
	o.mu.Lock()
	o.msg = &msg
	o.mu.Unlock()
}

func (o *execOut) get() *executedMsg {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.msg
}

// model is the whole interface: it owns one component per screen and
// moves between them as the run goes from scanning to the summary.
type model struct {
	ctx   context.Context
	opts  Options
	st    *styles
	track *tracker

	width, height int // the layout size, at least 20×8
	termW, termH  int // the terminal's real size
	phase         phase

	scan     *scanView
	runner   Runner
	roots    [2]string
	review   *review
	details  *details
	detailID int
	transfer *transferView
	summary  *summaryView
	trust    *trustPrompt

	feed       *feed
	execOut    *execOut
	execDone   chan struct{}
	stopExec   context.CancelFunc
	executed   bool
	result     *engine.Result
	err        error // from prepare or Execute
	quit       bool  // left without transferring
	prepareErr bool
}

// newModel returns the model in its scanning phase.
func newModel(ctx context.Context, opts Options, st *styles, track *tracker) *model {
	m := &model{
		ctx:    ctx,
		opts:   opts,
		st:     st,
		track:  track,
		width:  80,
		height: 24,
		termW:  80,
		termH:  24,
		roots:  [2]string{opts.Root1, opts.Root2},
	}
	if m.opts.Location == nil {
		m.opts.Location = time.Local
	}
	if m.roots[0] == "" {
		m.roots[0] = "side 1"
	}
	if m.roots[1] == "" {
		m.roots[1] = "side 2"
	}
	m.scan = newScanView(st, m.roots[0], m.roots[1])
	m.resize()
	return m
}

// Init implements tea.Model.
func (m *model) Init() tea.Cmd { return m.scan.spin.Tick }

// resize passes the window size to every component.
func (m *model) resize() {
	w, h := m.width, m.height
	m.scan.SetSize(w, h)
	if m.review != nil {
		m.review.SetSize(w, h)
	}
	if m.details != nil {
		m.details.SetSize(w, h)
	}
	if m.transfer != nil {
		m.transfer.SetSize(w, h)
	}
	if m.summary != nil {
		m.summary.SetSize(w, h)
	}
	if m.trust != nil {
		m.trust.width = w
	}
}

// Update implements tea.Model.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.termW, m.termH = max(1, msg.Width), max(1, msg.Height)
		m.width, m.height = max(20, msg.Width), max(8, msg.Height)
		m.resize()
		return m, nil
	case askTrustMsg:
		m.trust = newTrustPrompt(m.st, msg)
		m.trust.width = m.width
		return m, nil
	case tea.KeyMsg:
		if m.trust != nil {
			if answer, done := m.trust.Update(msg); done {
				m.trust.ask.reply <- answer
				m.trust = nil
			}
			return m, nil
		}
		return m.key(msg)
	case scanMsg:
		m.scan.Update(msg)
		return m, nil
	case spinner.TickMsg:
		if m.phase == phaseScan {
			return m, m.scan.Update(msg)
		}
		return m, nil
	case preparedMsg:
		return m.prepared(msg)
	case comparedMsg:
		if m.details != nil {
			m.details.compared(msg)
		}
		return m, nil
	case progressMsg:
		if m.phase != phaseTransfer || m.executed {
			return m, nil
		}
		m.transfer.update(msg)
		return m, m.feed.wait(m.ctx, m.execDone)
	case executedMsg:
		return m.finished(msg)
	}
	return m, nil
}

// prepared moves from the scan to the review, or ends the program when
// preparation failed (Run then returns the error for the caller to print
// on the normal screen).
func (m *model) prepared(msg preparedMsg) (tea.Model, tea.Cmd) {
	if msg.err != nil {
		m.err, m.prepareErr = msg.err, true
		return m, tea.Quit
	}
	m.runner = msg.r
	m.roots[0], m.roots[1] = msg.r.Roots()
	m.review = newReview(m.st, msg.r.Plan(), m.roots[0], m.roots[1], m.opts.Guards)
	m.phase = phaseReview
	m.resize()
	return m, nil
}

// key dispatches a key press to the current screen.
func (m *model) key(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch m.phase {
	case phaseScan:
		if key.Matches(msg, m.scan.keys.Quit) {
			m.quit = true
			return m, tea.Quit
		}
	case phaseReview:
		if m.details != nil {
			return m.detailsKey(msg)
		}
		ev, cmd := m.review.Update(msg)
		switch ev {
		case reviewQuit:
			m.quit = true
			return m, tea.Quit
		case reviewGo:
			return m, m.startTransfer()
		case reviewDetails:
			return m, m.openDetails()
		}
		return m, cmd
	case phaseTransfer:
		if key.Matches(msg, m.transfer.keys.Stop) && !m.transfer.stopping {
			m.transfer.stopping = true
			m.stopExec()
		}
	case phaseSummary:
		if m.summary.Update(msg) {
			return m, tea.Quit
		}
	}
	return m, nil
}

// openDetails shows the selected item and starts comparing its versions.
func (m *model) openDetails() tea.Cmd {
	i, ok := m.review.selected()
	if !ok {
		return nil
	}
	m.detailID++
	var cmd tea.Cmd
	m.details, cmd = newDetails(m.ctx, m.st, m.runner, &m.review.plan.Items[i], m.roots,
		m.opts.Location, m.detailID, m.track)
	m.details.SetSize(m.width, m.height)
	return cmd
}

// detailsKey handles a key on the details screen.
func (m *model) detailsKey(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	ev, a := m.details.Update(msg)
	switch ev {
	case detailsClose:
		m.details.close()
		m.details = nil
	case detailsChoose:
		i, _ := m.review.selected()
		m.details.refresh(m.review.set(i, a))
	}
	return m, nil
}

// startTransfer runs Execute outside the program, feeding its progress
// back in.
func (m *model) startTransfer() tea.Cmd {
	m.phase = phaseTransfer
	m.transfer = newTransferView(m.st, m.roots)
	m.transfer.SetSize(m.width, m.height)
	ctx, cancel := context.WithCancel(m.ctx)
	m.stopExec = cancel
	m.feed = newFeed()
	f, r := m.feed, m.runner
	done := make(chan struct{})
	m.execDone = done
	out := &execOut{}
	m.execOut = out
	exec := func() tea.Msg {
		defer close(done)
		var msg executedMsg
		if !m.track.run(func() {
			msg.res, msg.err = r.Execute(ctx, f.push)
			out.set(msg)
		}) {
			return nil
		}
		return msg
	}
	return tea.Batch(exec, f.wait(m.ctx, done))
}

// finished shows the summary once Execute has returned.
func (m *model) finished(msg executedMsg) (tea.Model, tea.Cmd) {
	m.executed = true
	m.stopExec()
	m.transfer.update(m.feed.take())
	m.result, m.err = msg.res, msg.err
	m.phase = phaseSummary
	m.summary = newSummaryView(m.st, m.roots, msg.res, msg.err)
	m.summary.SetSize(m.width, m.height)
	return m, nil
}

// View implements tea.Model.
func (m *model) View() string {
	var v string
	switch m.phase {
	case phaseScan:
		v = m.scan.View()
	case phaseReview:
		if m.details != nil {
			v = m.details.View()
		} else {
			v = m.review.View()
		}
	case phaseTransfer:
		v = m.transfer.View()
	case phaseSummary:
		v = m.summary.View()
	}
	if m.trust != nil {
		v = m.st.r.Place(m.width, m.height, lipgloss.Center, lipgloss.Center, m.trust.View())
	}
	return fitScreen(v, m.termW, m.termH)
}

// fitScreen cuts a view to the terminal so that a long line or an extra
// line never scrolls the screen.
func fitScreen(v string, width, height int) string {
	lines := strings.Split(v, "\n")
	if len(lines) > height {
		lines = lines[:height]
	}
	for i, l := range lines {
		lines[i] = cut(l, width)
	}
	return strings.Join(lines, "\n")
}

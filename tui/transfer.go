package tui

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
)

// progressMsg carries the latest transfer progress and the failures
// reported since the previous one.
type progressMsg struct {
	p      engine.Progress
	failed []engine.Outcome
}

// executedMsg reports that Execute returned.
type executedMsg struct {
	res *engine.Result
	err error
}

// feed passes progress from the engine's goroutine to the program without
// ever blocking the engine: it keeps only the latest counts (a slow
// terminal sees fewer updates, not a slower transfer) but every failure.
type feed struct {
	mu     sync.Mutex
	last   engine.Progress
	failed []engine.Outcome
	notify chan struct{}
}

func newFeed() *feed { return &feed{notify: make(chan struct{}, 1)} }

// push records p; it is the progress callback given to Execute.
func (f *feed) push(p engine.Progress) {
	f.mu.Lock()
	if p.Failed != nil {
		f.failed = append(f.failed, *p.Failed)
		p.Failed = nil
	}
	f.last = p
	f.mu.Unlock()
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// take returns what arrived since the last take.
func (f *feed) take() progressMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := progressMsg{p: f.last, failed: f.failed}
	f.failed = nil
	return m
}

// wait returns a command delivering the next progress, or nothing once
// the transfer is over (done) or the program is leaving (ctx).
func (f *feed) wait(ctx context.Context, done <-chan struct{}) tea.Cmd {
	return func() tea.Msg {
		select {
		case <-f.notify:
			return f.take()
		case <-done:
		case <-ctx.Done():
		}
		return nil
	}
}

// transferView shows the transfer under way: a progress bar over the
// bytes, file counts, rate, time left, the current file and the errors so
// far.
type transferView struct {
	st    *styles
	keys  transferKeys
	help  help.Model
	bar   progress.Model
	roots [2]string

	last     engine.Progress
	failed   []engine.Outcome
	stopping bool

	width, height int
}

func newTransferView(st *styles, roots [2]string) *transferView {
	opts := []progress.Option{progress.WithColorProfile(st.profile)}
	if st.color {
		opts = append(opts, progress.WithDefaultGradient())
	} else {
		opts = append(opts, progress.WithSolidFill(""))
	}
	return &transferView{
		st:    st,
		keys:  newTransferKeys(),
		help:  newHelp(st),
		bar:   progress.New(opts...),
		roots: roots,
	}
}

// SetSize sets the screen area of the transfer view.
func (t *transferView) SetSize(width, height int) {
	t.width, t.height = width, height
	t.help.Width = width
	t.bar.Width = max(10, width-2)
}

// update takes new progress.
func (t *transferView) update(msg progressMsg) {
	if msg.p != (engine.Progress{}) {
		t.last = msg.p
	}
	t.failed = append(t.failed, msg.failed...)
}

// View renders the transfer screen.
func (t *transferView) View() string {
	p := t.last
	var lines []string
	add := func(s string) { lines = append(lines, cut(s, t.width)) }
	add(t.st.title.Render(cut(fmt.Sprintf("concord: transferring   1: %s   2: %s",
		state.Display(t.roots[0]), state.Display(t.roots[1])), t.width)))
	add("")
	frac := 0.0
	switch {
	case p.BytesTotal > 0:
		frac = float64(p.BytesDone) / float64(p.BytesTotal)
	case p.FilesTotal > 0:
		frac = float64(p.FilesDone) / float64(p.FilesTotal)
	}
	add(" " + t.bar.ViewAs(min(1, frac)))
	add("")
	add(fmt.Sprintf(" files    %s of %s", count(p.FilesDone), count(p.FilesTotal)))
	add(fmt.Sprintf(" bytes    %s of %s", bytesText(p.BytesDone), bytesText(p.BytesTotal)))
	rate, eta := "-", "-"
	if secs := p.Elapsed.Seconds(); secs > 0 && p.BytesDone > 0 {
		r := float64(p.BytesDone) / secs
		rate = bytesText(int64(r)) + "/s"
		left := time.Duration(float64(p.BytesTotal-p.BytesDone) / r * float64(time.Second))
		eta = max(0, left).Round(time.Second).String()
	}
	add(fmt.Sprintf(" rate     %s   time left %s   elapsed %s", rate, eta, p.Elapsed.Round(time.Second)))
	cur := ""
	if p.Current != "" {
		cur = cutLeft(state.Display(p.Current), max(1, t.width-10))
	}
	add(" current  " + cur)
	add("")
	if t.stopping {
		add(t.st.warn.Render("Stopping after the current item…"))
	} else {
		add("")
	}
	hv := helpView(t.help, t.keys)
	room := t.height - len(lines) - 1 - strings.Count(hv, "\n") - 1
	if len(t.failed) > 0 && room > 0 {
		add(t.st.errText.Render(fmt.Sprintf("errors (%d):", len(t.failed))))
		room--
		shown := t.failed
		if len(shown) > room {
			shown = shown[len(shown)-max(0, room-1):]
			add(t.st.faint.Render(fmt.Sprintf("  … %d earlier", len(t.failed)-len(shown))))
		}
		for _, o := range shown {
			add("  " + outcomeLine(&o))
		}
	}
	for len(lines) < t.height-1-strings.Count(hv, "\n") {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n") + "\n" + hv
}

// outcomeLine describes a failed or skipped item in one line.
func outcomeLine(o *engine.Outcome) string {
	path := "?"
	if o.Item != nil {
		path = state.Display(o.Item.Path)
	}
	switch {
	case o.Err != nil:
		return path + ": " + sanitizeLine(o.Err.Error())
	case o.Reason != "":
		return path + ": " + sanitizeLine(o.Reason)
	}
	return path
}

package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"
	"github.com/zeebo/blake3"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/reconcile"
)

func TestMain(m *testing.M) {
	// Stable goldens: no colour or attribute sequences from any renderer,
	// including the default one that bubbles components fall back on.
	lipgloss.SetColorProfile(termenv.Ascii)
	os.Exit(m.Run())
}

// t0 is the base time of the hand-made plans.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// file returns a file entry with contents c, modified at t0+minutes.
func file(c string, minutes int) *state.Entry {
	return &state.Entry{Kind: state.File, Mode: 0o644, Size: int64(len(c)),
		MTime: t0.Add(time.Duration(minutes) * time.Minute).UnixNano(), Hash: blake3.Sum256([]byte(c))}
}

func withMode(e *state.Entry, mode uint32) *state.Entry {
	c := e.Clone()
	c.Mode = mode
	return c
}

func withMTime(e *state.Entry, mtime int64) *state.Entry {
	c := e.Clone()
	c.MTime = mtime
	return c
}

func dir() *state.Entry { return &state.Entry{Kind: state.Dir, Mode: 0o755} }

func link(target string) *state.Entry {
	return &state.Entry{Kind: state.Symlink, Target: target, Hash: blake3.Sum256([]byte(target))}
}

// fixture is the hand-made plan the screen tests share, with the file
// contents the fake Runner serves for diffs.
type fixture struct {
	plan  *reconcile.Plan
	files map[reconcile.Side]map[string]string
}

func newFixture() *fixture {
	f := &fixture{files: map[reconcile.Side]map[string]string{reconcile.One: {}, reconcile.Two: {}}}
	item := func(path string, base, one, two *state.Entry, a reconcile.Action, reason string) reconcile.Item {
		return reconcile.Item{Path: path, Base: base, One: one, Two: two, Action: a, Default: a, Reason: reason}
	}
	put := func(s reconcile.Side, path, c string) *state.Entry {
		f.files[s][path] = c
		return file(c, len(f.files[s]))
	}
	readmeBase := "concord\n\nKeeps two trees in step.\nLine four.\nLine five.\n"
	readme1 := put(reconcile.One, "docs/readme.txt", "concord\n\nKeeps two trees in step, like Unison.\nLine four.\nLine five.\n")
	readme2 := put(reconcile.Two, "docs/readme.txt", "concord\n\nKeeps two trees in step.\nLine four.\nLine 5.\nA sixth line\twith a tab and \x1b[31mescape.\n")
	bin1 := put(reconcile.One, "data.bin", "\x00\x01\x02binary one, longer")
	bin2 := put(reconcile.Two, "data.bin", "\x00\x01binary")
	bin2.MTime = t0.Add(3 * time.Hour).UnixNano()
	newMain := put(reconcile.One, "src/main.go", "package main\n\nfunc main() {}\n")
	util2 := put(reconcile.Two, "src/util.go", "package main\n\n// util helps.\nfunc util() {}\n")
	utilBase := file("package main\n\nfunc util() {}\n", 0)
	f.files[reconcile.One]["src/util.go"] = "package main\n\nfunc util() {}\n"
	tool := file("#!/bin/sh\necho tool\n", 0)
	sub1 := file("one", 1)
	sub2 := file("two two", 2)
	weird := put(reconcile.One, "weird\nname\x1b[31m.txt", "x\n")
	old := file("old contents\n", 0)
	guarded := file("keep me\n", 0)
	same := file("same\n", 0)

	f.plan = &reconcile.Plan{Items: []reconcile.Item{
		item("bin/tool", withMode(tool, 0o644), withMode(tool, 0o644), withMode(tool, 0o755), reconcile.TwoToOne, ""),
		item("data.bin", file("base", 0), bin1, bin2, reconcile.Conflict, "both sides modified"),
		item("docs/readme.txt", file(readmeBase, 0), readme1, readme2, reconcile.Conflict, "both sides modified"),
		item("guarded.txt", guarded, guarded, nil, reconcile.Skip, "--no-deletion on side 1"),
		item("link", link("a"), link("b"), link("a"), reconcile.OneToTwo, ""),
		{Path: "newdir", Two: dir(), Action: reconcile.TwoToOne, Default: reconcile.TwoToOne, Sub: []reconcile.Path{
			{Path: "newdir/a", Two: sub1}, {Path: "newdir/b", Two: sub2}}},
		item("old.txt", old, nil, old, reconcile.OneToTwo, ""),
		item("same.txt", nil, same, same, reconcile.Record, ""),
		item("src/main.go", nil, newMain, nil, reconcile.OneToTwo, ""),
		item("src/util.go", utilBase, utilBase, util2, reconcile.TwoToOne, ""),
		item("weird\nname\x1b[31m.txt", nil, weird, nil, reconcile.OneToTwo, ""),
	}}
	return f
}

// fakeRunner is a Runner over a fixture. Execute reports the progress
// events in steps, waiting for release (if set) before returning.
type fakeRunner struct {
	f       *fixture
	steps   []engine.Progress
	release chan struct{}
	execErr error

	mu        sync.Mutex
	planned   chan struct{}
	executed  chan struct{}
	execCalls int
	seen      []reconcile.Action // actions at the time of Execute
}

func newFakeRunner(f *fixture) *fakeRunner {
	return &fakeRunner{f: f, planned: make(chan struct{}), executed: make(chan struct{})}
}

func (r *fakeRunner) Plan() *reconcile.Plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.planned:
	default:
		close(r.planned)
	}
	return r.f.plan
}

func (r *fakeRunner) Roots() (string, string) { return "/srv/www", "web2:/srv/www" }

func (r *fakeRunner) ReadFile(ctx context.Context, side reconcile.Side, path string, e *state.Entry) (io.ReadCloser, error) {
	c, ok := r.f.files[side][path]
	if !ok {
		return nil, fmt.Errorf("no such file %s", state.Display(path))
	}
	return io.NopCloser(strings.NewReader(c)), nil
}

func (r *fakeRunner) Execute(ctx context.Context, progress func(engine.Progress)) (*engine.Result, error) {
	r.mu.Lock()
	r.execCalls++
	for i := range r.f.plan.Items {
		r.seen = append(r.seen, r.f.plan.Items[i].Action)
	}
	r.mu.Unlock()
	defer close(r.executed)
	for _, p := range r.steps {
		progress(p)
	}
	if r.release != nil {
		select {
		case <-r.release:
		case <-ctx.Done():
		}
	}
	res := &engine.Result{Start: t0, End: t0.Add(1500 * time.Millisecond), Root1: "/srv/www", Root2: "web2:/srv/www"}
	for i := range r.f.plan.Items {
		it := &r.f.plan.Items[i]
		o := engine.Outcome{Item: it}
		switch it.Action {
		case reconcile.Record:
			continue
		case reconcile.Conflict, reconcile.Skip:
			o.Status, o.Reason = engine.Skipped, it.Reason
			if o.Reason == "" {
				o.Reason = "skipped by you"
			}
			res.Skipped++
		default:
			if it.Path == "old.txt" {
				o.Status, o.Err = engine.Failed, errors.New("changed during sync")
				res.Failed++
			} else {
				o.Status = engine.Done
				res.Propagated++
				res.Bytes += moveBytes(it, it.Action)
			}
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	return res, r.execErr
}

// testStyles returns colour styles on a renderer that emits no escape
// sequences, so goldens are plain text.
func testStyles() *styles {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return newStyles(r, true)
}

// probe wraps the model so a test can look at it from inside the
// program's goroutine, in order with the keys it sent.
type probe struct{ m *model }

type inspectMsg struct {
	f    func(m *model)
	done chan struct{}
}

func (p probe) Init() tea.Cmd { return p.m.Init() }

func (p probe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if im, ok := msg.(inspectMsg); ok {
		im.f(p.m)
		close(im.done)
		return p, nil
	}
	_, cmd := p.m.Update(msg)
	return p, cmd
}

func (p probe) View() string { return p.m.View() }

// harness runs a model under teatest at a fixed size.
type harness struct {
	t      *testing.T
	tm     *teatest.TestModel
	m      *model
	runner *fakeRunner
}

// newHarness starts a model; with a runner it starts in the review, as if
// preparation had just finished.
func newHarness(t *testing.T, runner *fakeRunner, width, height int) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	track := &tracker{}
	t.Cleanup(func() {
		cancel()
		track.closeAndWait()
	})
	opts := Options{Location: time.UTC, Root1: "/srv/www", Root2: "web2:/srv/www",
		Guards: &reconcile.Options{NoDeletion: [3]bool{false, true, false}}}
	m := newModel(ctx, opts, testStyles(), track)
	m.scan.spin.Spinner.Frames = []string{"*"}
	m.scan.spin.Spinner.FPS = time.Hour
	if runner != nil {
		m.Update(preparedMsg{r: runner})
	}
	tm := teatest.NewTestModel(t, probe{m}, teatest.WithInitialTermSize(width, height))
	h := &harness{t: t, tm: tm, m: m, runner: runner}
	t.Cleanup(func() {
		_ = tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(5*time.Second))
	})
	return h
}

// inspect runs f on the model inside the program, after every message
// sent so far.
func (h *harness) inspect(f func(m *model)) {
	h.t.Helper()
	done := make(chan struct{})
	h.tm.Send(inspectMsg{f: f, done: done})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("the program did not answer within 10s")
	}
}

// view returns the current screen.
func (h *harness) view() string {
	h.t.Helper()
	var v string
	h.inspect(func(m *model) { v = m.View() })
	return v
}

// waitFor polls the model until cond holds.
func (h *harness) waitFor(what string, cond func(m *model) bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ok := false
		h.inspect(func(m *model) { ok = cond(m) })
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s", what)
}

// keys sends key presses: single characters, or names in angle brackets
// such as <down>, <enter>, <esc>, <pgdown>.
func (h *harness) keys(seq ...string) {
	for _, s := range seq {
		h.tm.Send(keyMsg(s))
	}
}

func keyMsg(s string) tea.KeyMsg {
	named := map[string]tea.KeyType{
		"<up>": tea.KeyUp, "<down>": tea.KeyDown, "<enter>": tea.KeyEnter, "<esc>": tea.KeyEsc,
		"<pgup>": tea.KeyPgUp, "<pgdown>": tea.KeyPgDown, "<home>": tea.KeyHome, "<end>": tea.KeyEnd,
		"<ctrl+c>": tea.KeyCtrlC, "<backspace>": tea.KeyBackspace,
	}
	if k, ok := named[s]; ok {
		return tea.KeyMsg{Type: k}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// typeText sends each rune of s as a key.
func (h *harness) typeText(s string) {
	for _, r := range s {
		h.tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

// actions returns the current action of every plan item by path.
func (h *harness) actions() map[string]reconcile.Action {
	got := map[string]reconcile.Action{}
	h.inspect(func(m *model) {
		for _, it := range m.review.plan.Items {
			got[it.Path] = it.Action
		}
	})
	return got
}

// checkScreen fails if any line of v is wider than width or v has more
// than height lines, or if v holds a raw control character.
func checkScreen(t *testing.T, v string, width, height int) {
	t.Helper()
	lines := strings.Split(v, "\n")
	if len(lines) > height {
		t.Errorf("screen has %d lines, more than the terminal's %d", len(lines), height)
	}
	for i, l := range lines {
		if w := lipgloss.Width(l); w > width {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i, w, width, l)
		}
		for _, c := range l {
			if c < 0x20 || c == 0x7f {
				t.Errorf("line %d holds control character %q: %q", i, c, l)
			}
		}
	}
}

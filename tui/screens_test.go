package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/remote"
)

// The golden files under testdata are the screens as a person sees them at
// a fixed size. Run `go test ./tui/ -update` to rewrite them after a
// deliberate change, and read the diff.

func requireScreen(t *testing.T, v string, width, height int) {
	t.Helper()
	checkScreen(t, v, width, height)
	golden.RequireEqual(t, []byte(v+"\n"))
}

func TestScanScreen(t *testing.T) {
	h := newHarness(t, nil, 80, 24)
	h.tm.Send(scanMsg{Side: reconcile.One, ScanProgress: remote.ScanProgress{Entries: 123456, Hashed: 789, HashedBytes: 5 << 20}, Done: true})
	h.tm.Send(scanMsg{Side: reconcile.Two, ScanProgress: remote.ScanProgress{Entries: 4321, Hashed: 12, HashedBytes: 40960}})
	requireScreen(t, h.view(), 80, 24)
}

func TestReviewScreen(t *testing.T) {
	for _, size := range []struct {
		name   string
		w, h   int
		resize bool
	}{
		{"80x24", 80, 24, false},
		{"resized_to_120x36", 120, 36, true},
		{"resized_to_50x12", 50, 12, true},
	} {
		t.Run(size.name, func(t *testing.T) {
			h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
			if size.resize {
				h.tm.Send(tea.WindowSizeMsg{Width: size.w, Height: size.h})
			}
			requireScreen(t, h.view(), size.w, size.h)
		})
	}
}

func TestReviewFullHelp(t *testing.T) {
	h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
	h.keys("?")
	requireScreen(t, h.view(), 80, 24)
}

func TestFilterScreen(t *testing.T) {
	h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
	h.keys("/")
	h.typeText("src")
	t.Run("typing", func(t *testing.T) { requireScreen(t, h.view(), 80, 24) })
	h.keys("<enter>")
	t.Run("applied", func(t *testing.T) { requireScreen(t, h.view(), 80, 24) })
	h.keys("<esc>")
	h.inspect(func(m *model) {
		if m.review.filter != "" || len(m.review.view) != len(m.review.rows) {
			t.Errorf("esc left filter %q showing %d of %d rows", m.review.filter, len(m.review.view), len(m.review.rows))
		}
	})
	h.keys("/")
	h.typeText("nothing-matches")
	t.Run("no_match", func(t *testing.T) { requireScreen(t, h.view(), 80, 24) })
}

func TestDetailsScreen(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []string
	}{
		{"text_diff", []string{"<down>", "<enter>"}}, // docs/readme.txt
		{"binary", []string{"d"}},                    // data.bin
		{"new_dir", []string{"<end>", "<up>", "<up>", "<up>", "<up>", "x"}},
		{"symlink", []string{"<end>", "<up>", "<up>", "<up>", "<up>", "<up>", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
			h.keys(tc.keys...)
			h.waitFor("the comparison", func(m *model) bool { return m.details != nil && m.details.cmp != nil })
			requireScreen(t, h.view(), 80, 24)
		})
	}
}

func TestDetailsChoiceAndScroll(t *testing.T) {
	h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
	h.keys("<down>", "<enter>")
	h.waitFor("the comparison", func(m *model) bool { return m.details != nil && m.details.cmp != nil })
	h.keys("<", "<pgdown>")
	requireScreen(t, h.view(), 80, 24)
	h.keys("<esc>")
	got := h.actions()
	if got["docs/readme.txt"] != reconcile.TwoToOne {
		t.Errorf("< in details set %v, want 2to1", got["docs/readme.txt"])
	}
	h.inspect(func(m *model) {
		if m.details != nil {
			t.Error("esc did not close the details")
		}
		if m.review.counts[reconcile.Conflict] != 1 || m.review.counts[reconcile.TwoToOne] != 4 {
			t.Errorf("counts after a choice in details: %v", m.review.counts)
		}
	})
}

func TestQuitConfirmation(t *testing.T) {
	h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
	h.keys(">", "q")
	t.Run("dialog", func(t *testing.T) { requireScreen(t, h.view(), 80, 24) })
	h.keys("n")
	h.inspect(func(m *model) {
		if m.review.confirmQuit || m.quit {
			t.Error("n did not return to the review")
		}
	})
	h.keys("q", "y")
	fm := h.tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(probe).m
	if !fm.quit || fm.executed {
		t.Errorf("after q y: quit=%v executed=%v, want quit without executing", fm.quit, fm.executed)
	}
	if h.runner.execCalls != 0 {
		t.Error("Execute was called although the user quit")
	}
}

func TestQuitWithoutChoicesAsksNothing(t *testing.T) {
	h := newHarness(t, newFakeRunner(newFixture()), 80, 24)
	h.keys(">", "<up>", "r", "q") // a choice made and reverted is no choice
	fm := h.tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(probe).m
	if !fm.quit {
		t.Error("q without choices did not quit at once")
	}
}

func TestTransferAndSummary(t *testing.T) {
	runner := newFakeRunner(newFixture())
	runner.release = make(chan struct{})
	failure := &engine.Outcome{Item: &runner.f.plan.Items[6], Status: engine.Failed, Err: errors.New("changed during sync")}
	runner.steps = []engine.Progress{
		{FilesTotal: 7, BytesTotal: 4 << 20, Current: "src/main.go"},
		{FilesDone: 2, FilesTotal: 7, BytesDone: 1 << 20, BytesTotal: 4 << 20, Current: "old.txt", Failed: failure, Elapsed: 2 * time.Second},
		{FilesDone: 3, FilesTotal: 7, BytesDone: 3 << 20, BytesTotal: 4 << 20, Current: "weird\nname\x1b[31m.txt", Elapsed: 3 * time.Second},
	}
	h := newHarness(t, runner, 80, 24)
	h.keys(">", "g") // data.bin from side 1; docs/readme.txt stays a conflict
	h.waitFor("the last progress", func(m *model) bool {
		return m.transfer != nil && m.transfer.last.FilesDone == 3 && len(m.transfer.failed) == 1
	})
	t.Run("progress", func(t *testing.T) { requireScreen(t, h.view(), 80, 24) })
	close(runner.release)
	h.waitFor("the summary", func(m *model) bool { return m.phase == phaseSummary })
	t.Run("summary", func(t *testing.T) { requireScreen(t, h.view(), 80, 24) })
	h.keys("<enter>")
	fm := h.tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(probe).m
	if fm.result == nil || fm.result.Propagated != 7 || fm.result.Skipped != 2 || fm.result.Failed != 1 {
		t.Fatalf("result = %+v", fm.result)
	}
	if runner.seen[1] != reconcile.OneToTwo || runner.seen[2] != reconcile.Conflict {
		t.Errorf("Execute saw data.bin %v and docs/readme.txt %v, want 1to2 and conflict", runner.seen[1], runner.seen[2])
	}
}

func TestTransferStop(t *testing.T) {
	runner := newFakeRunner(newFixture())
	runner.release = make(chan struct{}) // never closed: only cancellation ends Execute
	runner.steps = []engine.Progress{{FilesDone: 1, FilesTotal: 7, BytesDone: 10, BytesTotal: 100, Current: "bin/tool", Elapsed: time.Second}}
	runner.execErr = errors.New("interrupted")
	h := newHarness(t, runner, 80, 24)
	h.keys("g")
	h.waitFor("the progress", func(m *model) bool { return m.transfer != nil && m.transfer.last.FilesDone == 1 })
	h.keys("<ctrl+c>")
	h.waitFor("the summary", func(m *model) bool { return m.phase == phaseSummary })
	v := h.view()
	if !strings.Contains(v, "The transfer stopped: interrupted") {
		t.Errorf("summary does not report the stop:\n%s", v)
	}
}

func TestTrustPrompt(t *testing.T) {
	h := newHarness(t, nil, 80, 24)
	reply := make(chan bool, 1)
	h.tm.Send(askTrustMsg{host: "web2.example.org", keyType: "ssh-ed25519",
		fingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", reply: reply})
	requireScreen(t, h.view(), 80, 24)
	h.keys("j", "y") // only y or n answer
	select {
	case ok := <-reply:
		if !ok {
			t.Error("y answered no")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
}

func TestAskTrustStandalone(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
		err  bool
	}{
		{"y", true, false},
		{"xn", false, false},
		{"", false, true},
	} {
		var out strings.Builder
		got, err := askTrust(iotest.OneByteReader(strings.NewReader(tc.in)), &out, true, askTrustMsg{host: "h\x1b]0;evil\x07", keyType: "ssh-ed25519", fingerprint: "SHA256:x"})
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("input %q: got %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if strings.Contains(out.String(), "\x1b]0;evil") {
			t.Errorf("input %q: the host name reached the terminal raw", tc.in)
		}
	}
}

// TestScreensFitAfterResize resizes every screen to several sizes and
// checks that nothing is drawn beyond the terminal.
func TestScreensFitAfterResize(t *testing.T) {
	sizes := [][2]int{{80, 24}, {20, 8}, {45, 12}, {200, 60}, {10, 3}, {100, 30}}
	check := func(t *testing.T, h *harness, screen string) {
		t.Helper()
		for _, s := range sizes {
			h.tm.Send(tea.WindowSizeMsg{Width: s[0], Height: s[1]})
			v := h.view()
			t.Run(fmt.Sprintf("%s_%dx%d", screen, s[0], s[1]), func(t *testing.T) { checkScreen(t, v, s[0], s[1]) })
		}
	}
	check(t, newHarness(t, nil, 80, 24), "scan")

	runner := newFakeRunner(newFixture())
	runner.release = make(chan struct{})
	runner.steps = []engine.Progress{{FilesDone: 1, FilesTotal: 7, BytesDone: 10, BytesTotal: 100,
		Current: strings.Repeat("deep/", 40) + "file", Elapsed: time.Second,
		Failed: &engine.Outcome{Item: &runner.f.plan.Items[6], Status: engine.Failed, Err: errors.New(strings.Repeat("long error ", 30))}}}
	h := newHarness(t, runner, 80, 24)
	check(t, h, "review")
	h.keys("?")
	check(t, h, "review_full_help")
	h.keys("?", "<down>", "<enter>")
	h.waitFor("the comparison", func(m *model) bool { return m.details != nil && m.details.cmp != nil })
	check(t, h, "details")
	h.keys("<esc>", "?", ">", "q") // a choice, so q asks first; full help on
	check(t, h, "review_quit")
	h.keys("n", "?")
	h.keys("n", "g")
	h.waitFor("the progress", func(m *model) bool { return m.transfer != nil && len(m.transfer.failed) == 1 })
	check(t, h, "transfer")
	close(runner.release)
	h.waitFor("the summary", func(m *model) bool { return m.phase == phaseSummary })
	check(t, h, "summary")
}

package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/reconcile"
)

// Runner is what the interface needs from a prepared run (an
// *engine.Session satisfies it): the plan to review, the roots' names, the
// transfer, and read access to both sides for diffs.
type Runner interface {
	// Plan returns the plan, items in path order. The interface changes
	// items' Action in place before calling Execute.
	Plan() *reconcile.Plan
	// Roots returns the names of root 1 and root 2 for display.
	Roots() (string, string)
	// Execute carries out every item whose Action is OneToTwo or TwoToOne
	// (Conflict and Skip items are skipped), reporting progress from one
	// goroutine.
	Execute(ctx context.Context, progress func(engine.Progress)) (*engine.Result, error)
	// ReadFile opens path on side as it was scanned (e).
	ReadFile(ctx context.Context, side reconcile.Side, path string, e *state.Entry) (io.ReadCloser, error)
}

// Options configure Run.
type Options struct {
	// Input and Output are the terminal (default: standard output, and
	// standard input or, when that is not a terminal, /dev/tty).
	Input  io.Reader
	Output io.Writer
	// NoColor turns colours off; the NO_COLOR environment variable does too.
	NoColor bool
	// AltScreen draws on the terminal's alternate screen, leaving the
	// shell's scrollback as it was.
	AltScreen bool
	// Root1 and Root2 name the roots on the scanning screen, before the
	// Runner exists.
	Root1, Root2 string
	// Guards, if set, are the run's --no-deletion, --no-update and
	// --no-creation flags: the review refuses choices that break them.
	Guards *reconcile.Options
	// Location is the time zone of times shown (default: local time).
	Location *time.Location
}

// ErrQuit is returned by Run when the user left before the transfer:
// nothing was changed on either side, and the caller should exit with 0.
var ErrQuit = errors.New("quit without changing anything")

// Run shows the interactive interface for one sync. It calls prepare (in
// its own goroutine) to connect, scan and reconcile, showing the scan's
// progress; then the review, where the user changes actions in the plan;
// then, on g, the transfer with its progress, and the summary.
//
// It returns the Result of Execute (with Execute's error, if any), prepare's
// error if preparation failed, or ErrQuit if the user quit without
// transferring. Run returns only after prepare and Execute have returned;
// if the user quits during the scan, prepare's context is cancelled and
// whatever it returns is not used, so a caller that needs to close the
// Runner should keep it from within prepare. One Run at a time owns the
// terminal.
func Run(ctx context.Context, prepare func(ctx context.Context, scan func(engine.ScanEvent)) (Runner, error), opts Options) (*engine.Result, error) {
	out := opts.Output
	if out == nil {
		out = os.Stdout
	}
	opts.NoColor = opts.NoColor || noColorEnv()

	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	track := &tracker{}
	r := newRenderer(out, opts.NoColor)
	m := newModel(inner, opts, newStyles(r, !opts.NoColor), track)

	popts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithOutput(out)}
	if opts.Input != nil {
		popts = append(popts, tea.WithInput(opts.Input))
	}
	if opts.AltScreen {
		popts = append(popts, tea.WithAltScreen())
	}
	p := tea.NewProgram(m, popts...)

	// While the program runs, AskTrust asks inside it. The registration
	// ends as soon as the program does, before waiting for prepare, which
	// may itself be waiting in AskTrust.
	done := make(chan struct{})
	active.Lock()
	active.send, active.done = p.Send, done
	active.Unlock()
	unregister := sync.OnceFunc(func() {
		active.Lock()
		if active.done == done {
			active.send, active.done = nil, nil
		}
		active.Unlock()
		close(done)
	})
	defer unregister()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		runner, err := prepare(inner, func(ev engine.ScanEvent) { p.Send(scanMsg(ev)) })
		if err == nil && runner == nil {
			err = errors.New("preparing the run returned no plan")
		}
		p.Send(preparedMsg{r: runner, err: err})
	}()

	final, runErr := p.Run()
	unregister()
	cancel()
	track.closeAndWait()
	wg.Wait()

	fm, _ := final.(*model)
	switch {
	case fm == nil:
		return nil, fmt.Errorf("terminal interface: %w", runErr)
	case fm.prepareErr:
		return nil, fm.err
	case fm.executed:
		if runErr != nil && fm.err == nil {
			fm.err = fmt.Errorf("terminal interface: %w", runErr)
		}
		return fm.result, fm.err
	case fm.execOut != nil:
		// The program ended during the transfer; Execute has returned since.
		err := fmt.Errorf("terminal interface: %w", runErr)
		if msg := fm.execOut.get(); msg != nil {
			return msg.res, errors.Join(msg.err, err)
		}
		return nil, err
	case runErr != nil:
		return nil, fmt.Errorf("terminal interface: %w", runErr)
	}
	return nil, ErrQuit
}

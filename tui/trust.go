package tui

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/concord-sync/concord/archive/state"
)

// askTrustMsg asks the running program to put the host key question on
// screen; the answer goes to reply (buffered, so the program never waits).
type askTrustMsg struct {
	host, fingerprint, keyType string
	reply                      chan bool
}

// trustPrompt is the trust-on-first-use question for an unknown SSH host
// key (SPEC guarantee 6): it shows the fingerprint and takes y or n.
type trustPrompt struct {
	st    *styles
	keys  confirmKeys
	ask   askTrustMsg
	width int
}

func newTrustPrompt(st *styles, ask askTrustMsg) *trustPrompt {
	return &trustPrompt{st: st, keys: newConfirmKeys(), ask: ask}
}

// Update handles a key; done is set once the question is answered (or
// interrupted, which means no).
func (t *trustPrompt) Update(msg tea.KeyMsg) (answer, done bool) {
	switch {
	case key.Matches(msg, t.keys.Yes):
		return true, true
	case key.Matches(msg, t.keys.No), key.Matches(msg, interruptKey):
		return false, true
	}
	return false, false
}

// View renders the question as a box.
func (t *trustPrompt) View() string {
	q := fmt.Sprintf("The host %s is not in known_hosts.\n\n%s key fingerprint:\n  %s\n\n"+
		"Compare it with the one the host's administrator gives you.\nTrust this host and add its key to known_hosts?  y: yes   n: no",
		state.Display(t.ask.host), state.Display(t.ask.keyType), state.Display(t.ask.fingerprint))
	return t.st.dialog.Render(q)
}

// The program of the Run in progress, if any, so that AskTrust, called by
// the engine while Run shows the scan, asks inside it rather than starting a
// second program on the same terminal.
var active struct {
	sync.Mutex
	send func(tea.Msg)
	done <-chan struct{}
}

// ErrNoAnswer is returned by AskTrust when the interface ended before the
// question was answered.
var ErrNoAnswer = errors.New("the terminal interface ended before the host key question was answered")

// AskTrust asks the person at the terminal whether to trust the SSH host
// key of host, showing its type and fingerprint, and reports the answer.
// While Run is showing its screens the question appears there; otherwise
// a small prompt runs on standard input and output. A caller that gets
// true adds the key to known_hosts; false means refuse the connection.
func AskTrust(host, fingerprint, keyType string) (bool, error) {
	active.Lock()
	send, done := active.send, active.done
	active.Unlock()
	ask := askTrustMsg{host: host, fingerprint: fingerprint, keyType: keyType, reply: make(chan bool, 1)}
	if send != nil {
		send(ask)
		select {
		case ok := <-ask.reply:
			return ok, nil
		case <-done:
			return false, ErrNoAnswer
		}
	}
	return askTrust(nil, os.Stdout, noColorEnv(), ask)
}

// askTrust runs the standalone prompt on out, reading in (nil: the
// terminal). A reader other than a terminal that ends counts as no answer.
func askTrust(in io.Reader, out io.Writer, noColor bool, ask askTrustMsg) (bool, error) {
	r := newRenderer(out, noColor)
	m := &trustModel{p: newTrustPrompt(newStyles(r, !noColor), ask)}
	opts := []tea.ProgramOption{tea.WithOutput(out)}
	var p *tea.Program
	if in != nil {
		if _, isFile := in.(*os.File); !isFile {
			in = &eofReader{r: in, eof: func() { p.Send(eofMsg{}) }}
		}
		opts = append(opts, tea.WithInput(in))
	}
	p = tea.NewProgram(m, opts...)
	final, err := p.Run()
	if err != nil {
		return false, fmt.Errorf("ask whether to trust the host key of %s: %w", state.Display(ask.host), err)
	}
	fm := final.(*trustModel)
	if !fm.done {
		return false, ErrNoAnswer
	}
	return fm.answer, nil
}

// eofMsg tells the standalone prompt that its input ended.
type eofMsg struct{}

// eofReader reports the end of a non-terminal input, which bubbletea
// otherwise ignores, leaving a prompt waiting forever.
type eofReader struct {
	r   io.Reader
	eof func()
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		e.eof()
	}
	return n, err
}

// trustModel is the standalone program around a trustPrompt.
type trustModel struct {
	p            *trustPrompt
	answer, done bool
}

// Init implements tea.Model.
func (m *trustModel) Init() tea.Cmd { return nil }

// Update implements tea.Model.
func (m *trustModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if _, ok := msg.(eofMsg); ok {
		return m, tea.Quit
	}
	if k, ok := msg.(tea.KeyMsg); ok {
		if m.answer, m.done = m.p.Update(k); m.done {
			return m, tea.Quit
		}
	}
	return m, nil
}

// View implements tea.Model. Once answered, the answer stays printed.
func (m *trustModel) View() string {
	if m.done {
		word := "not trusted"
		if m.answer {
			word = "trusted"
		}
		return "Host key of " + state.Display(m.p.ask.host) + " " + word + ".\n"
	}
	return strings.TrimRight(m.p.View(), "\n") + "\n"
}

// noColorEnv reports whether the NO_COLOR convention asks for no colour.
func noColorEnv() bool { return os.Getenv("NO_COLOR") != "" }

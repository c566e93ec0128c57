package tui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/reconcile"
)

// syncBuffer is an output the program writes while the test may read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// typist writes keys into the program's input: each step waits for its
// gate (if any), then writes its key every 20ms until the next gate opens
// or Run returns, so a key that arrives a moment too early is sent again.
type typist struct {
	pr   *io.PipeReader
	pw   *io.PipeWriter
	done chan struct{}
}

type step struct {
	gate <-chan struct{}
	key  string
}

func newTypist(t *testing.T, steps ...step) *typist {
	pr, pw := io.Pipe()
	ty := &typist{pr: pr, pw: pw, done: make(chan struct{})}
	go func() {
		for i, s := range steps {
			if s.gate != nil {
				select {
				case <-s.gate:
				case <-ty.done:
					return
				}
			}
			if !ty.repeat(s.key, steps[i+1:]) {
				return
			}
		}
	}()
	t.Cleanup(ty.stop)
	return ty
}

// repeat types key until the gate of the next step opens; when the next
// step has no gate it types key once; for the last step it repeats until
// Run returns. It reports false once Run has returned.
func (ty *typist) repeat(key string, rest []step) bool {
	var next <-chan struct{}
	if len(rest) > 0 {
		if rest[0].gate == nil {
			_, err := ty.pw.Write([]byte(key))
			return err == nil
		}
		next = rest[0].gate
	}
	for {
		if _, err := ty.pw.Write([]byte(key)); err != nil {
			return false
		}
		select {
		case <-next:
			return true
		case <-ty.done:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (ty *typist) stop() {
	select {
	case <-ty.done:
	default:
		close(ty.done)
		ty.pr.Close()
	}
}

func TestRunGoAndLeave(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	runner := newFakeRunner(newFixture())
	ty := newTypist(t, step{runner.planned, ">"}, step{nil, "g"}, step{runner.executed, "q"})
	var out syncBuffer
	prepare := func(ctx context.Context, scan func(engine.ScanEvent)) (Runner, error) {
		scan(engine.ScanEvent{Side: reconcile.One, Done: true})
		scan(engine.ScanEvent{Side: reconcile.Two, Done: true})
		return runner, nil
	}
	res, err := Run(context.Background(), prepare, Options{Input: ty.pr, Output: &out, NoColor: true, Location: time.UTC})
	ty.stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res == nil || res.Propagated != 7 {
		t.Fatalf("result %+v", res)
	}
	if runner.seen[1] != reconcile.OneToTwo {
		t.Errorf("the choice on data.bin did not reach Execute: %v", runner.seen[1])
	}
	if strings.Contains(out.String(), "\x1b[31m.txt") {
		t.Error("a raw escape sequence from a file name reached the terminal")
	}
}

func TestRunQuitInReview(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	runner := newFakeRunner(newFixture())
	ty := newTypist(t, step{runner.planned, "q"})
	prepare := func(ctx context.Context, scan func(engine.ScanEvent)) (Runner, error) { return runner, nil }
	res, err := Run(context.Background(), prepare, Options{Input: ty.pr, Output: io.Discard})
	ty.stop()
	if !errors.Is(err, ErrQuit) || res != nil {
		t.Fatalf("Run = %v, %v; want nil, ErrQuit", res, err)
	}
	if runner.execCalls != 0 {
		t.Error("Execute ran although the user quit")
	}
}

func TestRunQuitWhileScanning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	started := make(chan struct{})
	var prepareErr error
	prepare := func(ctx context.Context, scan func(engine.ScanEvent)) (Runner, error) {
		scan(engine.ScanEvent{Side: reconcile.One})
		close(started)
		<-ctx.Done() // a scan that only stops when cancelled
		prepareErr = ctx.Err()
		return nil, ctx.Err()
	}
	ty := newTypist(t, step{started, "q"})
	_, err := Run(context.Background(), prepare, Options{Input: ty.pr, Output: io.Discard})
	ty.stop()
	if !errors.Is(err, ErrQuit) {
		t.Fatalf("Run error %v, want ErrQuit", err)
	}
	if !errors.Is(prepareErr, context.Canceled) {
		t.Errorf("prepare was not cancelled before Run returned: %v", prepareErr)
	}
}

func TestRunPrepareFails(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	boom := errors.New("root /x is missing")
	ty := newTypist(t)
	prepare := func(ctx context.Context, scan func(engine.ScanEvent)) (Runner, error) { return nil, boom }
	res, err := Run(context.Background(), prepare, Options{Input: ty.pr, Output: io.Discard})
	ty.stop()
	if !errors.Is(err, boom) || res != nil {
		t.Fatalf("Run = %v, %v; want the preparation error", res, err)
	}
}

func TestRunAsksTrustInside(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	runner := newFakeRunner(newFixture())
	asking := make(chan struct{})
	var trusted bool
	var trustErr error
	prepare := func(ctx context.Context, scan func(engine.ScanEvent)) (Runner, error) {
		close(asking)
		trusted, trustErr = AskTrust("web2", "SHA256:abc", "ssh-ed25519")
		return runner, nil
	}
	ty := newTypist(t, step{asking, "y"}, step{runner.planned, "q"})
	_, err := Run(context.Background(), prepare, Options{Input: ty.pr, Output: io.Discard})
	ty.stop()
	if !errors.Is(err, ErrQuit) {
		t.Fatalf("Run error %v, want ErrQuit", err)
	}
	if !trusted || trustErr != nil {
		t.Errorf("AskTrust inside Run = %v, %v; want true", trusted, trustErr)
	}
}

func TestRunKilledWhileAskingTrust(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var trustErr error
	prepare := func(pctx context.Context, scan func(engine.ScanEvent)) (Runner, error) {
		go func() {
			time.Sleep(50 * time.Millisecond)
			cancel() // the caller gives up while the question is on screen
		}()
		_, trustErr = AskTrust("web2", "SHA256:abc", "ssh-ed25519")
		return nil, pctx.Err()
	}
	ty := newTypist(t)
	finished := make(chan error, 1)
	go func() {
		_, err := Run(ctx, prepare, Options{Input: ty.pr, Output: io.Discard})
		finished <- err
	}()
	select {
	case err := <-finished:
		if err == nil || errors.Is(err, ErrQuit) {
			t.Errorf("Run = %v, want the program's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return while prepare waited for the host key answer")
	}
	ty.stop()
	if !errors.Is(trustErr, ErrNoAnswer) {
		t.Errorf("AskTrust = %v, want ErrNoAnswer", trustErr)
	}
}

// The engine's session is what cmd/concord hands to Run.
var _ Runner = (*engine.Session)(nil)

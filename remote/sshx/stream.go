package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// closeWait is how long Close waits for the remote command to exit after
// its standard input is closed (a variable for tests).
var closeWait = 10 * time.Second

// Stream is a remote command whose standard input and output form a byte
// stream (Write feeds its stdin, Read drains its stdout); its standard
// error is kept for messages. Read and Write may be called concurrently
// with each other and with Close.
//
// Reads and writes go through pipes fed by goroutines, so that cancelling
// the context (or Close giving up) unblocks them at once even when the
// remote side no longer answers.
type Stream struct {
	c      *Client
	sess   *ssh.Session
	label  string
	stderr *tailBuffer

	out  *io.PipeReader // fed from the command's stdout through outW
	outW *io.PipeWriter
	in   *io.PipeWriter // drained into the command's stdin through inR
	inR  *io.PipeReader

	closeWait time.Duration

	exited   chan struct{} // closed when the command ended or was abandoned
	waitErr  error         // how it ended, valid once exited is closed
	exitOnce sync.Once
	stopCtx  func() bool

	closeOnce sync.Once
	closeErr  error
}

// Start runs cmd with sh -c in the remote home ($HOME) and returns its
// standard input and output as a stream. Cancelling ctx breaks the stream
// and closes the session (the command then sees the end of its input);
// Close ends it normally.
func (c *Client) Start(ctx context.Context, cmd string) (*Stream, error) {
	return c.start(ctx, shorten(cmd), userCommand(cmd))
}

func (c *Client) start(ctx context.Context, label, cmd string) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", label, c.host.display(), err)
	}
	sess, err := c.newSession()
	if err != nil {
		return nil, err
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start %s on %s: %w", label, c.host.display(), err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start %s on %s: %w", label, c.host.display(), err)
	}
	s := &Stream{c: c, sess: sess, label: label, stderr: &tailBuffer{max: 64 << 10}, exited: make(chan struct{}), closeWait: closeWait}
	sess.Stderr = s.stderr
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return nil, c.lostError(err)
	}
	outR, outW := io.Pipe()
	inR, inW := io.Pipe()
	s.out, s.outW, s.in, s.inR = outR, outW, inW, inR
	go func() { s.finish(sess.Wait()) }()
	go func() {
		_, err := io.Copy(outW, stdout)
		if err != nil {
			outW.CloseWithError(s.c.lostError(err))
			return
		}
		outW.CloseWithError(s.end())
	}()
	go func() {
		_, err := io.Copy(stdin, inR)
		if err != nil {
			// The command no longer reads: it ended, or the link broke.
			if s.Exited(time.Second) {
				inR.CloseWithError(s.result())
			} else {
				inR.CloseWithError(s.c.lostError(err))
			}
			return
		}
		_ = stdin.Close()
	}()
	s.stopCtx = context.AfterFunc(ctx, func() {
		s.abandon(fmt.Errorf("%s on %s: %w", label, c.host.display(), ctx.Err()))
	})
	return s, nil
}

// finish records how the command ended (the first report wins).
func (s *Stream) finish(err error) {
	s.exitOnce.Do(func() {
		s.waitErr = err
		close(s.exited)
	})
}

// abandon gives up on the command: pending and later reads and writes
// fail with err, and the session is closed. The input is broken before
// the output, so a caller whose Read has failed finds Write failing too.
func (s *Stream) abandon(err error) {
	s.finish(err)
	s.inR.CloseWithError(err)
	s.outW.CloseWithError(err)
	_ = s.sess.Signal(ssh.SIGKILL)
	s.sess.Close()
}

// Read reads the command's standard output. When it ends, Read returns
// io.EOF if the command exited with status 0, and otherwise an error
// saying how it ended (with the end of its standard error) wrapping
// io.ErrUnexpectedEOF, or an *Error (ErrConnectionLost) if the link broke.
func (s *Stream) Read(p []byte) (int, error) { return s.out.Read(p) }

// Write writes to the command's standard input.
func (s *Stream) Write(p []byte) (int, error) { return s.in.Write(p) }

// end waits for the exit status once the command's output is done and
// returns what Read reports at the end.
func (s *Stream) end() error {
	if !s.Exited(s.closeWait) {
		return fmt.Errorf("%s on %s closed its output but did not exit: %w", s.label, s.c.host.display(), io.ErrUnexpectedEOF)
	}
	if err := s.result(); err != nil {
		return err
	}
	return io.EOF
}

// result describes how the command ended: nil for exit status 0. The
// command must have ended.
func (s *Stream) result() error {
	err := s.waitErr
	var ee *ssh.ExitError
	var fe *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return &exitError{fmt.Sprintf("%s on %s %s%s", s.label, s.c.host.display(), exitText(ee), stderrText(s.stderr)), []error{io.ErrUnexpectedEOF, ee}}
	case errors.As(err, &fe), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, errStopped):
		return err
	}
	return s.c.lostError(err)
}

var errStopped = errors.New("stopped")

// Exited reports whether the command has ended (or was abandoned),
// waiting up to d for it.
func (s *Stream) Exited(d time.Duration) bool {
	select {
	case <-s.exited:
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.exited:
		return true
	case <-t.C:
		return false
	}
}

// ExitStatus returns the command's exit status once it has ended: -1 if
// it was killed by a signal, abandoned or its connection broke. ok is
// false while it runs.
func (s *Stream) ExitStatus() (status int, ok bool) {
	if !s.Exited(0) {
		return 0, false
	}
	var ee *ssh.ExitError
	switch {
	case s.waitErr == nil:
		return 0, true
	case errors.As(s.waitErr, &ee) && ee.Signal() == "":
		return ee.ExitStatus(), true
	}
	return -1, true
}

// Stderr returns the last 64 KiB of the command's standard error.
func (s *Stream) Stderr() string { return s.stderr.String() }

// Command returns the command the stream runs (shortened, for messages).
func (s *Stream) Command() string { return s.label }

// Close closes the command's standard input and waits up to 10 s for it
// to exit, discarding output nobody read; a command still running then is
// abandoned (its session closed). Close returns an error if the command
// did not exit with status 0. It is safe to call more than once.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.stopCtx()
		_ = s.in.Close()
		go func() { _, _ = io.Copy(io.Discard, s.out) }()
		if !s.Exited(s.closeWait) {
			s.abandon(fmt.Errorf("%s on %s did not exit within %v of the end of its input; its session was closed: %w", s.label, s.c.host.display(), s.closeWait, errStopped))
		}
		s.sess.Close()
		if err := s.result(); err != nil && !errors.Is(err, ErrConnectionLost) {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// kill abandons the command (for a probe that timed out).
func (s *Stream) kill(err error) { s.abandon(err) }

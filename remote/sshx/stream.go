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

// How long Close waits for the remote command to exit after its standard
// input is closed, and then after SIGTERM.
var (
	closeWait = 10 * time.Second
	termWait  = 2 * time.Second
)

// Stream is a remote command whose standard input and output form a byte
// stream (Write feeds its stdin, Read drains its stdout); its standard
// error is kept for messages. Read and Write may be called concurrently.
type Stream struct {
	c      *Client
	sess   *ssh.Session
	label  string
	stdin  io.WriteCloser
	stdout io.Reader
	stderr *tailBuffer

	exited  chan struct{} // closed when the command has ended
	waitErr error         // its result, valid once exited is closed
	stopCtx func() bool

	endOnce sync.Once
	endErr  error // what Read returns once stdout is done

	closeOnce sync.Once
	closeErr  error
}

// Start runs cmd through the remote user's shell and returns its standard
// input and output as a stream. Cancelling ctx kills the command and
// breaks the stream; Close ends it.
func (c *Client) Start(ctx context.Context, cmd string) (*Stream, error) {
	return c.start(ctx, shorten(cmd), cmd)
}

func (c *Client) start(ctx context.Context, label, cmd string) (*Stream, error) {
	sess, err := c.newSession()
	if err != nil {
		return nil, err
	}
	s := &Stream{c: c, sess: sess, label: label, stderr: &tailBuffer{max: 64 << 10}, exited: make(chan struct{})}
	if s.stdin, err = sess.StdinPipe(); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start %s on %s: %w", label, c.host.display(), err)
	}
	if s.stdout, err = sess.StdoutPipe(); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start %s on %s: %w", label, c.host.display(), err)
	}
	sess.Stderr = s.stderr
	if err := sess.Start(cmd); err != nil {
		sess.Close()
		return nil, c.lostError(err)
	}
	go func() {
		s.waitErr = sess.Wait()
		close(s.exited)
	}()
	s.stopCtx = context.AfterFunc(ctx, s.kill)
	return s, nil
}

// kill ends the command at once.
func (s *Stream) kill() {
	_ = s.sess.Signal(ssh.SIGKILL)
	s.sess.Close()
}

// Read reads the command's standard output. When it ends, Read returns
// io.EOF if the command exited with status 0, and otherwise an error
// saying how it ended (with its standard error), wrapping
// io.ErrUnexpectedEOF, or an *Error if the connection broke.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.stdout.Read(p)
	if err == io.EOF {
		return n, s.end()
	}
	if err != nil {
		return n, s.c.lostError(err)
	}
	return n, nil
}

// Write writes to the command's standard input.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.stdin.Write(p)
	if err != nil {
		if s.Exited(0) {
			return n, s.end()
		}
		return n, s.c.lostError(err)
	}
	return n, nil
}

// end waits for the command's exit status once its output is done and
// describes how it ended.
func (s *Stream) end() error {
	s.endOnce.Do(func() {
		select {
		case <-s.exited:
		case <-time.After(closeWait):
			s.endErr = fmt.Errorf("%s on %s closed its output but did not exit: %w", s.label, s.c.host.display(), io.ErrUnexpectedEOF)
			return
		}
		s.endErr = s.exitError()
		if s.endErr == nil {
			s.endErr = io.EOF
		}
	})
	return s.endErr
}

// exitError describes the command's end (nil for exit status 0); the
// command must have exited.
func (s *Stream) exitError() error {
	err := s.waitErr
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%s on %s ended with %s%s: %w", s.label, s.c.host.display(), exitText(ee), stderrText(s.stderr), errors.Join(io.ErrUnexpectedEOF, err))
	}
	return s.c.lostError(err)
}

// Exited reports whether the command has ended, waiting up to d for it.
func (s *Stream) Exited(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-s.exited:
			return true
		default:
			return false
		}
	}
	select {
	case <-s.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// ExitStatus returns the command's exit status (-1 for a signal or a lost
// connection) once it has ended; ok is false while it runs.
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

// Command returns the command line the stream runs (shortened).
func (s *Stream) Command() string { return s.label }

// Close closes the command's standard input and waits (up to 10 s, then
// sends SIGTERM) for it to exit, discarding output nobody read. It returns
// an error if the command ended with a non-zero status. It is safe to
// call more than once.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.stopCtx()
		_ = s.stdin.Close()
		go func() { _, _ = io.Copy(io.Discard, s.stdout) }()
		if !s.Exited(closeWait) {
			_ = s.sess.Signal(ssh.SIGTERM)
			if !s.Exited(termWait) {
				s.sess.Close()
				<-s.exited
				s.closeErr = fmt.Errorf("%s on %s did not exit after its input was closed; it was stopped", s.label, s.c.host.display())
				return
			}
		}
		s.sess.Close()
		if err := s.exitError(); err != nil && !errors.Is(err, ErrConnectionLost) {
			s.closeErr = err
		}
	})
	return s.closeErr
}

package sshx

import (
	"errors"

	"github.com/concord-sync/concord/remote"
)

// The kinds of failure an *Error carries; test with errors.Is.
var (
	// ErrConfig: ~/.ssh/config or a key file could not be used.
	ErrConfig = errors.New("ssh configuration problem")
	// ErrUnreachable: no connection (name not resolved, refused, timed
	// out, closed during the handshake).
	ErrUnreachable = errors.New("host unreachable")
	// ErrHostKeyUnknown: the host is not in known_hosts and may not be
	// added (batch mode, StrictHostKeyChecking=yes, or the user said no).
	ErrHostKeyUnknown = errors.New("host key unknown")
	// ErrHostKeyChanged: known_hosts holds another key for the host.
	ErrHostKeyChanged = errors.New("host key changed")
	// ErrHostKeyRevoked: the host's key is marked @revoked.
	ErrHostKeyRevoked = errors.New("host key revoked")
	// ErrAuth: the server accepted none of the keys offered.
	ErrAuth = errors.New("authentication refused")
	// ErrConnectionLost: an established connection broke (no answer to
	// keepalives, reset, closed).
	ErrConnectionLost = errors.New("connection lost")
	// ErrNoServer: no usable concord on the remote, and this one cannot
	// be installed there.
	ErrNoServer = errors.New("no usable concord on the remote host")
)

// ErrVersionMismatch is what a Bootstrap.Probe returns (wrapped) when the
// concord it reached speaks another protocol version; StartServer then
// tries the next candidate or installs this executable.
var ErrVersionMismatch = errors.New("concord protocol version mismatch")

// Error is a fatal transport failure. Its message is meant for a person:
// it names the host and what to do. It matches remote.ErrFatal, its Kind
// (ErrUnreachable, ErrAuth, ...) and its cause with errors.Is and errors.As.
type Error struct {
	Host string // the host as the user named it
	Kind error  // one of the Err* kinds above
	Msg  string // the complete message
	Err  error  // the underlying cause, or nil
}

// Error returns the message.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns remote.ErrFatal, the kind and the cause.
func (e *Error) Unwrap() []error {
	errs := []error{remote.ErrFatal, e.Kind}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

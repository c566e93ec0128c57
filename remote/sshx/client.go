package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
)

// Defaults for Options.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepAlive      = 15 * time.Second
	DefaultKeepAliveMax   = 3
)

// Options adjusts Dial. The zero value is batch mode with OpenSSH's
// configuration files.
type Options struct {
	// Batch refuses unknown host keys instead of calling AskTrust (also
	// the case when AskTrust is nil).
	Batch bool
	// ConnectTimeout bounds the TCP connection and the SSH handshake with
	// each host (ProxyJump hops included). Zero means ConnectTimeout from
	// ~/.ssh/config, or DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ConfigFile is the ssh_config to read, as OpenSSH's -F: "" reads
	// ~/.ssh/config and /etc/ssh/ssh_config, "none" reads nothing.
	ConfigFile string
	// Stderr receives notes and warnings (a key skipped, a host key
	// added); nil discards them.
	Stderr io.Writer
	// AskTrust is asked, in interactive mode, whether to trust the
	// unknown host key of host (fingerprint "SHA256:...", keyType such as
	// "ssh-ed25519"). A yes adds it to the user's known_hosts file.
	AskTrust func(host, fingerprint, keyType string) (bool, error)
	// KeepAlive is the interval between keepalive@openssh.com requests
	// and KeepAliveMax how many may go unanswered before the connection
	// is declared lost. Zero means ServerAliveInterval and
	// ServerAliveCountMax from ~/.ssh/config, or DefaultKeepAlive and
	// DefaultKeepAliveMax.
	KeepAlive    time.Duration
	KeepAliveMax int
}

// Client is an SSH connection to a remote root's host. Its methods may be
// called from several goroutines.
type Client struct {
	host   *hostConfig
	opts   Options
	ssh    *ssh.Client
	jumps  []*ssh.Client // ProxyJump hops, nearest first
	agent  *agentConn
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu   sync.Mutex
	lost error // why the connection broke, once it has
}

// Dial connects to root's host, through the ProxyJump hops its
// configuration names. Errors are *Error values wrapping remote.ErrFatal.
func Dial(ctx context.Context, root remote.Root, opts Options) (*Client, error) {
	if root.Local {
		return nil, fmt.Errorf("sshx: root %s is local", root)
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, &Error{Host: root.Host, Kind: ErrConfig, Err: err,
			Msg: fmt.Sprintf("connect to %s: cannot find the home directory for ~/.ssh: %v; set HOME", state.Display(root.Host), err)}
	}
	cfg, err := loadConfig(opts.ConfigFile, home)
	if err != nil {
		return nil, withHost(err, root.Host)
	}
	target, err := cfg.resolve(root.Host, root.User, root.Port, home)
	if err != nil {
		return nil, err
	}
	chain := make([]*hostConfig, 0, len(target.proxyJump)+1)
	for _, hop := range target.proxyJump {
		user, host, port, err := parseHop(hop)
		if err != nil {
			return nil, &Error{Host: root.Host, Kind: ErrConfig, Err: err,
				Msg: fmt.Sprintf("ssh configuration for %s: ProxyJump %q: %v", state.Display(root.Host), state.Display(hop), err)}
		}
		hc, err := cfg.resolve(host, user, port, home)
		if err != nil {
			return nil, err
		}
		chain = append(chain, hc)
	}
	chain = append(chain, target)

	c := &Client{host: target, opts: opts, closed: make(chan struct{})}
	c.agent = dialAgent(os.Getenv("SSH_AUTH_SOCK"))
	noted := map[string]bool{}
	note := func(s string) {
		if !noted[s] {
			noted[s] = true
			fmt.Fprintf(opts.Stderr, "concord: %s\n", s)
		}
	}
	var via *ssh.Client
	for i, hc := range chain {
		cl, err := c.connect(ctx, via, hc, note)
		if err != nil {
			c.closeAll()
			if i < len(chain)-1 {
				if e := (*Error)(nil); errors.As(err, &e) {
					e.Msg = fmt.Sprintf("connect to %s through ProxyJump %s: %s", target.display(), hc.display(), e.Msg)
				}
			}
			return nil, err
		}
		if i < len(chain)-1 {
			c.jumps = append(c.jumps, cl)
		} else {
			c.ssh = cl
		}
		via = cl
	}

	interval, max := opts.KeepAlive, opts.KeepAliveMax
	if interval == 0 {
		interval = target.aliveInterval
	}
	if interval == 0 {
		interval = DefaultKeepAlive
	}
	if max == 0 {
		max = target.aliveCountMax
	}
	if max == 0 {
		max = DefaultKeepAliveMax
	}
	c.wg.Add(2)
	go c.keepalive(interval, max)
	go func() {
		defer c.wg.Done()
		err := c.ssh.Wait()
		c.setLost(fmt.Sprintf("the connection to %s closed", target.display()), err)
	}()
	return c, nil
}

func withHost(err error, host string) error {
	if e := (*Error)(nil); errors.As(err, &e) && e.Host == "" {
		e.Host = host
	}
	return err
}

// parseHop parses a ProxyJump hop: [user@]host[:port] or
// ssh://[user@]host[:port].
func parseHop(s string) (user, host string, port int, err error) {
	rest := s
	if hasPrefixFold(rest, "ssh://") {
		rest = strings.TrimSuffix(rest[6:], "/")
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, rest = rest[:at], rest[at+1:]
	}
	host = rest
	if h, p, e := net.SplitHostPort(rest); e == nil {
		host = h
		if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port < 1 || port > 65535 {
			return "", "", 0, fmt.Errorf("bad port %q", p)
		}
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1]
	}
	if host == "" || strings.ContainsAny(host, "/ \t") || strings.HasPrefix(host, "-") {
		return "", "", 0, fmt.Errorf("bad host %q", host)
	}
	return user, host, port, nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// connect dials hc (directly, or through via) and does the SSH handshake,
// all within the connect timeout.
func (c *Client) connect(ctx context.Context, via *ssh.Client, hc *hostConfig, note func(string)) (*ssh.Client, error) {
	timeout := c.opts.ConnectTimeout
	if timeout == 0 {
		timeout = hc.connectTimeout
	}
	if timeout == 0 {
		timeout = DefaultConnectTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if via == nil {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", hc.addr())
		if err == nil {
			conn = withQuickAck(conn)
		}
	} else {
		conn, err = via.DialContext(dctx, "tcp", hc.addr())
	}
	if err != nil {
		return nil, dialError(ctx, hc, timeout, err)
	}

	hk, err := newHostKeys(hc, &c.opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	// The handshake runs under a timer that closes the connection; it is
	// paused while a person answers AskTrust. (Channel connections through
	// a hop do not support deadlines, so a timer it is.)
	var tmu sync.Mutex
	timedOut := false
	timer := time.AfterFunc(timeout, func() {
		tmu.Lock()
		timedOut = true
		tmu.Unlock()
		conn.Close()
	})
	hk.pause = func() func() {
		timer.Stop()
		return func() { timer.Reset(timeout) }
	}
	stopCtx := context.AfterFunc(ctx, func() { conn.Close() })
	ks := keys(hc, c.agent, note)
	config := &ssh.ClientConfig{
		User:              hc.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(ks.signers...)},
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: hk.algorithms(),
	}
	sconn, chans, reqs, err := ssh.NewClientConn(conn, hc.knownHostsAddr(), config)
	timer.Stop()
	stopCtx()
	if err != nil {
		conn.Close()
		tmu.Lock()
		to := timedOut
		tmu.Unlock()
		return nil, handshakeError(ctx, hc, hk, ks, timeout, to, err)
	}
	return ssh.NewClient(sconn, chans, reqs), nil
}

// dialError explains a failed TCP connection.
func dialError(ctx context.Context, hc *hostConfig, timeout time.Duration, err error) error {
	e := &Error{Host: hc.alias, Kind: ErrUnreachable, Err: err}
	var dnsErr *net.DNSError
	switch {
	case ctx.Err() != nil:
		e.Msg = fmt.Sprintf("connect to %s: %v", hc.display(), ctx.Err())
		e.Err = ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		e.Msg = fmt.Sprintf("cannot connect to %s: no answer within %v; check that the host is up and reachable from here (or raise ConnectTimeout in ~/.ssh/config)", hc.display(), timeout)
	case errors.As(err, &dnsErr):
		e.Msg = fmt.Sprintf("cannot connect to %s: the name %s does not resolve (%v); check the host name, or its HostName in ~/.ssh/config", hc.display(), state.Display(hc.hostName), dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Msg = fmt.Sprintf("cannot connect to %s: connection refused; check that sshd runs there and listens on port %d (Port in ~/.ssh/config or ssh://host:port/...)", hc.display(), hc.port)
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		e.Msg = fmt.Sprintf("cannot connect to %s: no route to the host; check the network and the address", hc.display())
	default:
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) {
			e.Msg = fmt.Sprintf("cannot connect to %s: the ProxyJump host refused to open the connection (%v); check that it can reach %s and allows forwarding (AllowTcpForwarding)", hc.display(), oe, state.Display(hc.addr()))
		} else {
			e.Msg = fmt.Sprintf("cannot connect to %s: %v", hc.display(), err)
		}
	}
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handshakeError explains a failed SSH handshake.
func handshakeError(ctx context.Context, hc *hostConfig, hk *hostKeys, ks keySet, timeout time.Duration, timedOut bool, err error) error {
	if hk.err != nil {
		return hk.err
	}
	var ane *ssh.AlgorithmNegotiationError
	switch {
	case ctx.Err() != nil:
		return &Error{Host: hc.alias, Kind: ErrUnreachable, Err: ctx.Err(),
			Msg: fmt.Sprintf("connect to %s: %v", hc.display(), ctx.Err())}
	case timedOut:
		return &Error{Host: hc.alias, Kind: ErrUnreachable, Err: err,
			Msg: fmt.Sprintf("cannot connect to %s: the SSH handshake did not finish within %v; check that an SSH server answers on port %d (or raise ConnectTimeout in ~/.ssh/config)", hc.display(), timeout, hc.port)}
	case strings.Contains(err.Error(), "unable to authenticate"):
		return authError(hc, ks, err)
	case errors.As(err, &ane) && strings.Contains(ane.What, "host key"):
		if known := hk.known(); len(known) > 0 {
			return changedError(hc, fmt.Sprintf("it offers only %s host keys, and %s line %d records a %s key",
				strings.Join(ane.RequestedAlgorithms, ", "), state.Display(known[0].Filename), known[0].Line, known[0].Key.Type()), known[0], err)
		}
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return &Error{Host: hc.alias, Kind: ErrUnreachable, Err: err,
			Msg: fmt.Sprintf("%s closed the connection during the SSH handshake; check that port %d is an SSH server and that it accepts connections from here (sshd's AllowUsers, MaxStartups, a firewall)", hc.display(), hc.port)}
	}
	return &Error{Host: hc.alias, Kind: ErrUnreachable, Err: err,
		Msg: fmt.Sprintf("SSH handshake with %s failed: %v", hc.display(), err)}
}

// keepalive sends keepalive@openssh.com every interval and declares the
// connection lost when max of them in a row get no answer.
func (c *Client) keepalive(interval time.Duration, max int) {
	defer c.wg.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	replies := make(chan error, 1)
	pending, missed := false, 0
	for {
		select {
		case <-c.closed:
			return
		case err := <-replies:
			pending, missed = false, 0
			if err != nil {
				c.setLost(fmt.Sprintf("the connection to %s broke", c.host.display()), err)
				return
			}
		case <-ticker.C:
			if pending {
				missed++
				if missed >= max {
					c.setLost(fmt.Sprintf("%s did not answer %d keepalives in %v", c.host.display(), missed, time.Duration(missed)*interval), nil)
					c.ssh.Close()
					return
				}
				continue
			}
			pending = true
			go func() {
				_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
				select {
				case replies <- err:
				case <-c.closed:
				}
			}()
		}
	}
}

// setLost records why the connection broke, unless Close was called or a
// reason is already known.
func (c *Client) setLost(what string, cause error) {
	select {
	case <-c.closed:
		return
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost != nil {
		return
	}
	msg := what
	if cause != nil && !errors.Is(cause, io.EOF) {
		msg += fmt.Sprintf(" (%v)", cause)
	}
	c.lost = &Error{Host: c.host.alias, Kind: ErrConnectionLost, Err: cause,
		Msg: msg + "; the connection is given up: run again when the host is reachable"}
}

// Err returns why the connection broke, or nil while it is up.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// lostError returns the reason the connection broke, or one built from
// err.
func (c *Client) lostError(err error) error {
	if l := c.Err(); l != nil {
		return l
	}
	select {
	case <-c.closed:
		return fmt.Errorf("connection to %s: %w", c.host.display(), net.ErrClosed)
	default:
	}
	return &Error{Host: c.host.alias, Kind: ErrConnectionLost, Err: err,
		Msg: fmt.Sprintf("the connection to %s broke (%v); run again when the host is reachable", c.host.display(), err)}
}

// Host returns the host as the root named it (for messages).
func (c *Client) Host() string { return c.host.alias }

// Close closes the connection and the ProxyJump hops. It is safe to call
// more than once.
func (c *Client) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.closeAll()
		c.wg.Wait()
	})
	return nil
}

func (c *Client) closeAll() {
	if c.ssh != nil {
		c.ssh.Close()
	}
	for i := len(c.jumps) - 1; i >= 0; i-- {
		c.jumps[i].Close()
	}
	if c.agent != nil {
		c.agent.conn.Close()
	}
}

// newSession opens a session channel.
func (c *Client) newSession() (*ssh.Session, error) {
	s, err := c.ssh.NewSession()
	if err != nil {
		return nil, c.lostError(err)
	}
	return s, nil
}

// Run runs cmd with sh -c in the remote home ($HOME) and returns its
// standard output. A non-zero exit is an error wrapping *ssh.ExitError
// whose message holds the end of the command's standard error; a broken
// connection is an *Error. Cancelling ctx returns at once and closes the
// session, which ends a command that reads its input or writes output
// (OpenSSH honours no signals for root logins, so nothing stronger is
// possible).
func (c *Client) Run(ctx context.Context, cmd string) ([]byte, error) {
	return c.run(ctx, shorten(cmd), userCommand(cmd), nil)
}

// userCommand wraps a caller's command so that it runs with sh in $HOME,
// whatever the remote login shell.
func userCommand(cmd string) string {
	return "sh -c " + ShellQuote(`cd "${HOME:-/}" || exit 1; `+cmd)
}

// run runs cmd with stdin (may be nil); label names it in messages.
func (c *Client) run(ctx context.Context, label, cmd string, stdin io.Reader) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s on %s: %w", label, c.host.display(), err)
	}
	sess, err := c.newSession()
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 8 << 10}
	sess.Stdout, sess.Stderr, sess.Stdin = &stdout, stderr, stdin
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		return nil, fmt.Errorf("%s on %s: %w", label, c.host.display(), ctx.Err())
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), &exitError{fmt.Sprintf("%s on %s %s%s", label, c.host.display(), exitText(ee), stderrText(stderr)), []error{ee}}
	}
	return stdout.Bytes(), c.lostError(err)
}

// exitError says how a remote command ended, once: wrapping the
// *ssh.ExitError with %w repeated it in ssh's words ("... killed by signal
// KILL: Process exited with status 137 from signal KILL"). It unwraps to
// that error and any others it was given (io.ErrUnexpectedEOF for a
// stream).
type exitError struct {
	msg  string
	errs []error
}

func (e *exitError) Error() string   { return e.msg }
func (e *exitError) Unwrap() []error { return e.errs }

// exitText says how a remote command ended: "exited with status N" or "was
// killed by signal SIG".
func exitText(ee *ssh.ExitError) string {
	if ee.Signal() != "" {
		return "was killed by signal " + ee.Signal()
	}
	return fmt.Sprintf("exited with status %d", ee.ExitStatus())
}

// stderrText returns ": " and the last lines of stderr, escaped and
// joined with "; ", for a message, or "".
func stderrText(b *tailBuffer) string {
	var lines []string
	for _, l := range strings.Split(b.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, state.Display(l))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return ": " + strings.Join(lines, "; ")
}

func shorten(cmd string) string {
	cmd = strings.Join(strings.Fields(cmd), " ")
	if len(cmd) > 60 {
		cmd = cmd[:57] + "..."
	}
	return fmt.Sprintf("%q", cmd)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.cut = true
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return "..." + string(b.buf)
	}
	return string(b.buf)
}

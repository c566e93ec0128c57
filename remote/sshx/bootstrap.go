package sshx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/concord-sync/concord/archive/state"
)

// DefaultProbeTimeout bounds Bootstrap.Probe when ProbeTimeout is zero.
const DefaultProbeTimeout = 30 * time.Second

// Bootstrap says how StartServer finds, or installs, `concord serve` on the
// remote host.
type Bootstrap struct {
	// Version is this concord's version. The remote copy lives in
	// ~/.cache/concord/<Version>/concord (characters other than letters,
	// digits and "._+-" become "_").
	Version string
	// Build, if set, tells builds of one Version apart (development builds
	// all call themselves the same version): the remote copy then lives
	// in ~/.cache/concord/<Version>+<Build>/concord, so that one build
	// never runs another's copy because their protocols match.
	Build string
	// Executable is the file installed on the remote when it has no usable
	// concord; "" means this process's executable (os.Executable). It
	// must run on runtime.GOOS/runtime.GOARCH: StartServer installs it
	// only on a remote whose `uname -sm` says the same.
	Executable string
	// Args follow "serve" on the remote command line, each quoted.
	Args []string
	// Probe checks that the concord just started speaks this one's
	// protocol, typically by doing the protocol handshake on the stream
	// (the stream is then returned as it is, handshake done). It returns
	// an error wrapping ErrVersionMismatch for another protocol version;
	// StartServer then tries the next candidate or installs Executable.
	// A remote command that exits during the probe is treated the same
	// way. Any other error stops StartServer. Nil accepts the first
	// concord found.
	Probe func(ctx context.Context, s *Stream) error
	// ProbeTimeout bounds Probe; zero means DefaultProbeTimeout.
	ProbeTimeout time.Duration
}

// lookScript reports the cached copy for version $1, concord in PATH, and
// the platform.
const lookScript = `c=$HOME/.cache/concord/$1/concord; ` +
	`if [ -f "$c" ] && [ -x "$c" ]; then echo "concord-probe cached $c"; fi; ` +
	`p=$(command -v concord 2>/dev/null) && echo "concord-probe path $p"; ` +
	`echo "concord-probe uname $(uname -sm)"`

// parseLook reads lookScript's output: the cached copy's path, concord's
// path in PATH, and `uname -sm`, each "" when absent. Other lines (shell
// start-up noise) are ignored.
func parseLook(out []byte) (cached, inPath, uname string) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "concord-probe cached "); ok {
			cached = v
		} else if v, ok := strings.CutPrefix(line, "concord-probe path "); ok {
			inPath = v
		} else if v, ok := strings.CutPrefix(line, "concord-probe uname "); ok {
			uname = strings.TrimSpace(v)
		}
	}
	return cached, inPath, uname
}

// candidate is one way to start concord serve on the remote.
type candidate struct {
	label string // for messages
	cmd   string
}

// StartServer starts `concord serve` on c's host with b.Args, and returns
// its stream once b.Probe accepts it. It tries, in order, the copy
// installed earlier in ~/.cache/concord/<Version>/ and concord in the
// remote PATH (as the remote login shell sets it); when neither is usable
// and the remote runs this OS and architecture, it uploads b.Executable
// there (see Upload) and starts that, so a second run reuses it.
// Otherwise the *Error (ErrNoServer) says what to install.
//
// The remote command runs in the remote user's login shell after
// cd "$HOME": the remote concord sees its own environment (XDG_STATE_HOME
// and the like), and a relative root in b.Args is under the remote home.
func StartServer(ctx context.Context, c *Client, b Bootstrap) (*Stream, error) {
	ver := cacheVersion(b.Version)
	if b.Build != "" {
		ver = cacheVersion(b.Version + "+" + b.Build)
	}
	display := "~/.cache/concord/" + ver + "/concord"
	// The usual case, every run after the first: this version waits in
	// the cache. Start it straight away; only when it is missing (exit
	// 97, silently) or speaks another protocol, look around and install.
	// That saves a command (a login shell, uname, a PATH search) per run.
	// Only with a probe: without a handshake a missing copy would look
	// started.
	fast := candidate{display + " serve", shCommand("concord",
		`v=$1; shift; c="$HOME/.cache/concord/$v/concord"; [ -f "$c" ] && [ -x "$c" ] || exit 97; exec "$c" serve "$@"`,
		append([]string{ver}, b.Args...)...)}
	if b.Probe != nil {
		if s, _, err := tryServer(ctx, c, fast, &b); s != nil || err != nil {
			return s, err
		}
	}
	out, err := c.run(ctx, "looking for concord", shCommand("concord-probe", lookScript, ver), nil)
	if err != nil {
		return nil, noServer(c, fmt.Sprintf("cannot look for concord on %s: %v", c.host.display(), err), err)
	}
	cached, inPath, uname := parseLook(out)

	cachedCand := candidate{display + " serve",
		shCommand("concord", `v=$1; shift; exec "$HOME/.cache/concord/$v/concord" serve "$@"`, append([]string{ver}, b.Args...)...)}
	var cands []candidate
	if cached != "" {
		cands = append(cands, cachedCand)
	}
	if inPath != "" && inPath != cached {
		cands = append(cands, candidate{"concord serve (" + state.Display(inPath) + " in the remote PATH)",
			shCommand("concord", `exec concord serve "$@"`, b.Args...)})
	}
	var tried []string
	for _, cand := range cands {
		s, reason, err := tryServer(ctx, c, cand, &b)
		if s != nil || err != nil {
			return s, err
		}
		tried = append(tried, reason)
	}
	found := "no concord in the remote PATH or in " + display
	if len(tried) > 0 {
		found = strings.Join(tried, "; ")
	}

	goos, goarch, ok := platform(uname)
	if !ok || goos != runtime.GOOS || goarch != runtime.GOARCH {
		runs := "an unknown system (uname -sm said " + fmt.Sprintf("%q", state.Display(uname)) + ")"
		if ok {
			runs = goos + "/" + goarch
		}
		return nil, noServer(c, fmt.Sprintf("%s: %s. It runs %s and this concord is built for %s/%s, so it cannot install itself there: install concord %s on %s (in its PATH)",
			c.host.display(), found, runs, runtime.GOOS, runtime.GOARCH, state.Display(b.Version), state.Display(c.host.alias)), nil)
	}
	exe := b.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, noServer(c, fmt.Sprintf("%s: %s, and this program cannot find its own executable to install there (%v): install concord %s on %s",
				c.host.display(), found, err, state.Display(b.Version), state.Display(c.host.alias)), err)
		}
	}
	if c.opts.Stderr != nil {
		fmt.Fprintf(c.opts.Stderr, "concord: installing concord %s on %s as %s (%s)\n", state.Display(b.Version), c.host.display(), display, found)
	}
	if err := c.Upload(ctx, exe, ".cache/concord/"+ver+"/concord", 0o755); err != nil {
		return nil, noServer(c, fmt.Sprintf("%s: %s, and installing this concord there failed: %v", c.host.display(), found, err), err)
	}
	s, reason, err := tryServer(ctx, c, cachedCand, &b)
	if s != nil || err != nil {
		return s, err
	}
	return nil, noServer(c, fmt.Sprintf("%s: the concord just installed does not work: %s", c.host.display(), reason), nil)
}

// tryServer starts cand and probes it. It returns the stream if the probe
// accepts it, a reason if this concord is not usable (another version,
// or it exited), or an error that ends StartServer.
func tryServer(ctx context.Context, c *Client, cand candidate, b *Bootstrap) (*Stream, string, error) {
	s, err := c.start(ctx, cand.label, cand.cmd)
	if err != nil {
		return nil, "", err
	}
	if b.Probe == nil {
		return s, "", nil
	}
	timeout := b.ProbeTimeout
	if timeout == 0 {
		timeout = DefaultProbeTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(pctx, func() {
		s.kill(fmt.Errorf("%s on %s: handshake: %w", cand.label, c.host.display(), pctx.Err()))
	})
	err = b.Probe(pctx, s)
	if !stop() {
		_ = s.Close()
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("start concord on %s: %w", c.host.display(), ctx.Err())
		}
		return nil, "", noServer(c, fmt.Sprintf("%s on %s did not finish its handshake within %v; check that it runs when started by hand there", cand.label, c.host.display(), timeout), err)
	}
	if err == nil {
		return s, "", nil
	}
	if errors.Is(err, ErrVersionMismatch) {
		_ = s.Close()
		return nil, fmt.Sprintf("%s: %v", cand.label, err), nil
	}
	if s.Exited(2 * time.Second) {
		reason := fmt.Sprintf("%s: %v", cand.label, err)
		if xe := s.result(); xe != nil {
			reason = xe.Error()
		}
		_ = s.Close()
		return nil, reason, nil
	}
	_ = s.Close()
	if e := (*Error)(nil); errors.As(err, &e) {
		return nil, "", err
	}
	return nil, "", noServer(c, fmt.Sprintf("%s on %s: %v", cand.label, c.host.display(), err), err)
}

func noServer(c *Client, msg string, cause error) error {
	if e := (*Error)(nil); errors.As(cause, &e) && e.Kind != ErrNoServer {
		return cause
	}
	return &Error{Host: c.host.alias, Kind: ErrNoServer, Msg: msg, Err: cause}
}

// cacheVersion makes version safe as a directory name.
func cacheVersion(version string) string {
	b := []byte(version)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '+' || ch == '-') {
			b[i] = '_'
		}
	}
	v := strings.Trim(string(b), ".")
	if v == "" {
		return "unknown"
	}
	if len(v) > 64 {
		v = v[:64]
	}
	return v
}

// platform maps `uname -sm` output to GOOS and GOARCH.
func platform(uname string) (goos, goarch string, ok bool) {
	f := strings.Fields(uname)
	if len(f) != 2 {
		return "", "", false
	}
	switch strings.ToLower(f[0]) {
	case "linux":
		goos = "linux"
	case "darwin":
		goos = "darwin"
	case "freebsd":
		goos = "freebsd"
	case "openbsd":
		goos = "openbsd"
	case "netbsd":
		goos = "netbsd"
	default:
		return "", "", false
	}
	switch m := f[1]; {
	case m == "x86_64" || m == "amd64":
		goarch = "amd64"
	case m == "aarch64" || m == "arm64":
		goarch = "arm64"
	case m == "i386" || m == "i486" || m == "i586" || m == "i686":
		goarch = "386"
	case strings.HasPrefix(m, "armv6") || strings.HasPrefix(m, "armv7"):
		goarch = "arm"
	case m == "riscv64" || m == "ppc64le" || m == "s390x" || m == "loong64":
		goarch = m
	default:
		return "", "", false
	}
	return goos, goarch, true
}

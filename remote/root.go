package remote

import (
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/concord-sync/concord/archive/state"
)

// Root is a parsed ROOT argument: a directory on this machine, or one on
// another machine reached over SSH.
//
// The accepted forms are (SPEC.md, "Command line"):
//
//	/abs/path, rel/path, ./a:b             a local path
//	ssh://[user@]host[:port]/abs/path      an absolute path on host
//	ssh://[user@]host[:port]/~/path        a path under the remote home
//	[user@]host:path                       scp-like: under the remote home,
//	                                       unless path starts with "/"
//
// A local path whose first ':' comes after a '/' stays local, as with scp
// and rsync, so a local file named "a:b" is written "./a:b". IPv6 hosts are
// written in brackets: "[::1]:dir", "ssh://[::1]:2222/dir". The path of an
// ssh:// URL is taken literally (no %-decoding).
type Root struct {
	// Local is true for a path on this machine.
	Local bool
	// Path is the directory: for a local root, the path as given, cleaned
	// (it may be relative to the working directory); for a remote root, an
	// absolute cleaned path, or, when HomeRelative is set, a cleaned path
	// relative to the remote home ("." for the home itself).
	Path string
	// User is the remote login name ("" when not given: ~/.ssh/config or
	// the local user name decide).
	User string
	// Host is the remote host name, address or ~/.ssh/config alias, without
	// brackets for an IPv6 address.
	Host string
	// Port is the remote port (0 when not given: ~/.ssh/config or 22).
	Port int
	// HomeRelative is true when Path is relative to the remote home.
	HomeRelative bool
	// Raw is the root as the user wrote it.
	Raw string
}

// ParseRoot parses a ROOT argument (see Root for the forms). Errors name the
// root and say how to write it.
func ParseRoot(s string) (Root, error) {
	if s == "" {
		return Root{}, fmt.Errorf("empty root: give a local path, ssh://host/path or host:path")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return Root{}, rootErr(s, "contains a NUL byte")
	}
	if i := strings.Index(s, "://"); i > 0 && isScheme(s[:i]) {
		if !strings.EqualFold(s[:i], "ssh") {
			return Root{}, rootErr(s, fmt.Sprintf("the scheme %s:// is not supported; use ssh://host/path, host:path, or ./%s for a local path", displayPart(s[:i]), displayPart(s)))
		}
		return parseURLRoot(s, s[i+3:])
	}
	colon := strings.IndexByte(s, ':')
	if colon < 0 || strings.Contains(s[:colon], "/") || s[0] == '~' {
		return Root{Local: true, Path: filepath.Clean(s), Raw: s}, nil
	}
	return parseSCPRoot(s)
}

// parseSCPRoot parses the scp-like form [user@]host:path.
func parseSCPRoot(s string) (Root, error) {
	r := Root{Raw: s}
	var hostPart, p string
	if open := strings.IndexByte(s, '['); open >= 0 && open < strings.IndexByte(s, ':') {
		end := strings.IndexByte(s[open:], ']')
		if end < 0 {
			return Root{}, rootErr(s, "has '[' without ']'; write an IPv6 host as [::1]:path, or ./"+displayPart(s)+" for a local path")
		}
		end += open
		if end+1 >= len(s) || s[end+1] != ':' {
			return Root{}, rootErr(s, "needs ':' right after the bracketed host, as in [::1]:path")
		}
		user := s[:open]
		if user != "" {
			if !strings.HasSuffix(user, "@") {
				return Root{}, rootErr(s, "has text before '[' that is not user@")
			}
			r.User = user[:len(user)-1]
			if err := checkUser(s, r.User); err != nil {
				return Root{}, err
			}
		}
		host := s[open+1 : end]
		if err := checkIPv6(s, host); err != nil {
			return Root{}, err
		}
		r.Host = host
		p = s[end+2:]
	} else {
		colon := strings.IndexByte(s, ':')
		hostPart, p = s[:colon], s[colon+1:]
		if at := strings.LastIndexByte(hostPart, '@'); at >= 0 {
			r.User = hostPart[:at]
			hostPart = hostPart[at+1:]
			if err := checkUser(s, r.User); err != nil {
				return Root{}, err
			}
		}
		if err := checkHost(s, hostPart); err != nil {
			return Root{}, err
		}
		r.Host = hostPart
	}
	if err := checkRemotePath(s, p); err != nil {
		return Root{}, err
	}
	switch {
	case p == "" || p == "~":
		r.HomeRelative, r.Path = true, "."
	case strings.HasPrefix(p, "/"):
		r.Path = path.Clean(p)
	case strings.HasPrefix(p, "~/"):
		r.HomeRelative, r.Path = true, path.Clean(p[2:])
	case strings.HasPrefix(p, "~"):
		return Root{}, rootErr(s, "uses ~user, which is not supported; write the absolute path, as in host:/home/user/dir")
	default:
		r.HomeRelative, r.Path = true, path.Clean(p)
	}
	return r, nil
}

// parseURLRoot parses ssh://[user@]host[:port]/path; rest is what follows
// "ssh://".
func parseURLRoot(s, rest string) (Root, error) {
	r := Root{Raw: s}
	authority, p := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, p = rest[:i], rest[i:]
	}
	if p == "" {
		return Root{}, rootErr(s, "has no path; write ssh://host/absolute/path or ssh://host/~/dir")
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		r.User = authority[:at]
		authority = authority[at+1:]
		if strings.Contains(r.User, ":") {
			// Never echo the password back.
			return Root{}, fmt.Errorf("root %q contains a password (user:password@); concord logs in with SSH keys or ssh-agent only, so leave it out", redactURL(s))
		}
		if err := checkUser(s, r.User); err != nil {
			return Root{}, err
		}
	}
	host, portStr := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return Root{}, rootErr(s, "has '[' without ']' around the IPv6 host")
		}
		host = authority[1:end]
		after := authority[end+1:]
		switch {
		case after == "":
		case strings.HasPrefix(after, ":"):
			portStr = after[1:]
			if portStr == "" {
				return Root{}, rootErr(s, "has ':' but no port number after the host")
			}
		default:
			return Root{}, rootErr(s, "has text after the bracketed host that is not :port")
		}
		if err := checkIPv6(s, host); err != nil {
			return Root{}, err
		}
	} else {
		if strings.Count(authority, ":") > 1 {
			return Root{}, rootErr(s, "looks like an IPv6 address without brackets; write ssh://[::1]/path")
		}
		if i := strings.IndexByte(authority, ':'); i >= 0 {
			host, portStr = authority[:i], authority[i+1:]
			if portStr == "" {
				return Root{}, rootErr(s, "has ':' but no port number after the host")
			}
		}
		if err := checkHost(s, host); err != nil {
			return Root{}, err
		}
	}
	r.Host = host
	if portStr != "" {
		n, err := strconv.Atoi(portStr)
		if err != nil || n < 1 || n > 65535 || portStr[0] == '+' || portStr[0] == '-' {
			return Root{}, rootErr(s, fmt.Sprintf("has port %q; a port is a number from 1 to 65535", displayPart(portStr)))
		}
		r.Port = n
	}
	if err := checkRemotePath(s, p); err != nil {
		return Root{}, err
	}
	switch {
	case p == "/~" || strings.HasPrefix(p, "/~/"):
		r.HomeRelative, r.Path = true, path.Clean(strings.TrimPrefix(p[2:], "/"))
		if r.Path == "" {
			r.Path = "."
		}
	case strings.HasPrefix(p, "/~"):
		return Root{}, rootErr(s, "uses ~user, which is not supported; write the absolute path, as in ssh://host/home/user/dir")
	default:
		r.Path = path.Clean(p)
	}
	return r, nil
}

// String returns the root for display: the local path, "[user@]host:path"
// for a root written scp-like, and the ssh:// form otherwise. Control
// characters are escaped; a root never holds a password (ParseRoot refuses
// one).
func (r Root) String() string {
	if r.Local {
		return state.Display(r.Path)
	}
	var b strings.Builder
	scp := r.Raw != "" && !hasSSHScheme(r.Raw) && r.Port == 0
	if !scp {
		b.WriteString("ssh://")
	}
	if r.User != "" {
		b.WriteString(r.User)
		b.WriteByte('@')
	}
	if strings.Contains(r.Host, ":") {
		b.WriteString("[" + r.Host + "]")
	} else {
		b.WriteString(r.Host)
	}
	if !scp && r.Port != 0 {
		b.WriteString(":" + strconv.Itoa(r.Port))
	}
	switch {
	case scp && r.HomeRelative && r.Path == ".":
		b.WriteString(":")
	case scp && r.HomeRelative && strings.HasPrefix(r.Path, "~"):
		b.WriteString(":~/" + r.Path)
	case scp:
		b.WriteString(":" + r.Path)
	case r.HomeRelative && r.Path == ".":
		b.WriteString("/~")
	case r.HomeRelative:
		b.WriteString("/~/" + r.Path)
	case strings.HasPrefix(r.Path, "/~"):
		// An absolute directory named ~ or ~x: "ssh://h/~" would be the
		// home, "ssh://h//~" is that directory.
		b.WriteString("/" + r.Path)
	default:
		b.WriteString(r.Path)
	}
	return state.Display(b.String())
}

// isScheme reports whether s is a URL scheme name (RFC 3986).
func isScheme(s string) bool {
	for i, c := range []byte(s) {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

func hasSSHScheme(s string) bool {
	return len(s) >= 6 && strings.EqualFold(s[:6], "ssh://")
}

func rootErr(s, msg string) error {
	return fmt.Errorf("root %q %s", displayPart(s), msg)
}

// displayPart makes part of a root safe to show in a message.
func displayPart(s string) string {
	if s == "" {
		return ""
	}
	return state.Display(s)
}

// redactURL removes the password from an ssh:// root for a message.
func redactURL(s string) string {
	rest := s[6:]
	auth := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		auth = rest[:i]
	}
	at := strings.LastIndexByte(auth, '@')
	colon := strings.IndexByte(auth, ':')
	if at < 0 || colon < 0 || colon > at {
		return displayPart(s)
	}
	return displayPart(s[:6] + auth[:colon] + ":xxxxx" + rest[at:])
}

func checkUser(s, u string) error {
	if u == "" {
		return rootErr(s, "has '@' with no user name before it")
	}
	if u[0] == '-' {
		return rootErr(s, fmt.Sprintf("has user name %q starting with '-'", displayPart(u)))
	}
	for _, c := range []byte(u) {
		if c <= ' ' || c == 0x7f || c == '/' || c == ':' || c == '[' || c == ']' {
			return rootErr(s, fmt.Sprintf("has user name %q with a character not allowed in one", displayPart(u)))
		}
	}
	return nil
}

func checkHost(s, h string) error {
	if h == "" {
		return rootErr(s, "has no host name; write host:path or ssh://host/path, or ./"+displayPart(s)+" for a local path")
	}
	bad := h[0] == '-' || h[0] == '.'
	for _, c := range []byte(h) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			bad = true
		}
	}
	if bad {
		return rootErr(s, fmt.Sprintf("has %q, which is not a valid host name; to name a local path, write ./%s", displayPart(h), displayPart(s)))
	}
	return nil
}

func checkIPv6(s, h string) error {
	if !strings.Contains(h, ":") {
		return rootErr(s, fmt.Sprintf("has [%s] in brackets, which are only for IPv6 addresses", displayPart(h)))
	}
	zone := false
	for _, c := range []byte(h) {
		switch {
		case c == '%':
			zone = true
		case zone && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'):
		case !zone && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c >= '0' && c <= '9' || c == ':' || c == '.'):
		default:
			return rootErr(s, fmt.Sprintf("has [%s], which is not a valid IPv6 address", displayPart(h)))
		}
	}
	return nil
}

// checkRemotePath refuses control characters in a remote path: it is
// passed on a remote shell's command line, where they are not safe.
func checkRemotePath(s, p string) error {
	for _, c := range []byte(p) {
		if c < ' ' || c == 0x7f {
			return rootErr(s, "has a control character in the remote path, which cannot be passed to the remote side")
		}
	}
	return nil
}

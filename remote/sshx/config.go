package sshx

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"

	"github.com/concord-sync/concord/archive/state"
)

// systemConfigFile is OpenSSH's system-wide client configuration.
const systemConfigFile = "/etc/ssh/ssh_config"

// sshConfig is the client configuration: the user's file, then the
// system's, the first value found winning (as in OpenSSH).
type sshConfig struct {
	files []*ssh_config.Config
	names []string
}

// loadConfig reads the configuration files as OpenSSH's -F does: an empty
// name reads ~/.ssh/config and /etc/ssh/ssh_config when they exist, "none"
// reads nothing, and any other name reads just that file, which must
// exist.
func loadConfig(name, home string) (*sshConfig, error) {
	var files []string
	optional := false
	switch name {
	case "none":
	case "":
		files = []string{filepath.Join(home, ".ssh", "config"), systemConfigFile}
		optional = true
	default:
		files = []string{expandHome(name, home)}
	}
	c := &sshConfig{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, &Error{Kind: ErrConfig, Err: err,
				Msg: fmt.Sprintf("read ssh configuration %s: %v", state.Display(f), err)}
		}
		cfg, err := ssh_config.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, &Error{Kind: ErrConfig, Err: err,
				Msg: fmt.Sprintf("read ssh configuration %s: %v; concord reads this file with its own SSH client, so fix or remove that line", state.Display(f), err)}
		}
		c.files = append(c.files, cfg)
		c.names = append(c.names, f)
	}
	return c, nil
}

// get returns the first value of key for alias, or "".
func (c *sshConfig) get(alias, key string) string {
	for _, f := range c.files {
		if v, err := f.Get(alias, key); err == nil && v != "" {
			return unquote(v)
		}
	}
	return ""
}

// getAll returns every value of key for alias, in order.
func (c *sshConfig) getAll(alias, key string) []string {
	var all []string
	for _, f := range c.files {
		vs, _ := f.GetAll(alias, key)
		for _, v := range vs {
			all = append(all, unquote(v))
		}
	}
	return all
}

func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

// hostConfig is everything needed to connect to one host (the target or
// a ProxyJump hop).
type hostConfig struct {
	alias    string // the name the user gave
	hostName string // what to connect to
	port     int
	user     string

	identityFiles    []string // expanded paths
	identityExplicit bool     // from IdentityFile, not the defaults
	identitiesOnly   bool

	userKnownHosts   []string // expanded; the first one receives new keys
	globalKnownHosts []string
	hostKeyAlias     string
	strict           string // "yes", "no", "ask" or "accept-new"
	hashKnownHosts   bool

	proxyJump      []string // hops, in order
	connectTimeout time.Duration
	aliveInterval  time.Duration
	aliveCountMax  int
}

// knownHostsAddr is the address under which the host's keys are recorded:
// "host" for port 22, "[host]:port" otherwise (knownhosts.Normalize
// writes it in that form).
func (h *hostConfig) knownHostsAddr() string {
	name := h.hostName
	if h.hostKeyAlias != "" {
		name = h.hostKeyAlias
	}
	return joinHostPort(name, h.port)
}

// addr is the TCP address to dial.
func (h *hostConfig) addr() string { return joinHostPort(h.hostName, h.port) }

// display names the host for messages: the alias, and the address when it
// differs.
func (h *hostConfig) display() string {
	a := h.addr()
	if h.port == 22 {
		a = h.hostName
	}
	if a == h.alias {
		return state.Display(h.alias)
	}
	return state.Display(h.alias) + " (" + state.Display(a) + ")"
}

// resolve computes the settings for alias; user and port, when set, win
// over the configuration (they were typed in the root).
func (c *sshConfig) resolve(alias, user string, port int, home string) (*hostConfig, error) {
	h := &hostConfig{alias: alias, user: user, port: port}
	h.hostName = c.get(alias, "HostName")
	if h.hostName == "" {
		h.hostName = alias
	} else {
		h.hostName = strings.ReplaceAll(h.hostName, "%h", alias)
	}
	if h.port == 0 {
		if v := c.get(alias, "Port"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return nil, c.badValue(alias, "Port", v, "a number from 1 to 65535")
			}
			h.port = n
		} else {
			h.port = 22
		}
	}
	if h.user == "" {
		h.user = c.get(alias, "User")
	}
	if h.user == "" {
		h.user = localUser()
	}

	tokens := func(s string) string { return expandTokens(s, h, home) }
	for _, v := range c.getAll(alias, "IdentityFile") {
		if strings.EqualFold(v, "none") {
			continue
		}
		h.identityFiles = append(h.identityFiles, tokens(v))
		h.identityExplicit = true
	}
	if !h.identityExplicit {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			h.identityFiles = append(h.identityFiles, filepath.Join(home, ".ssh", n))
		}
	}
	h.identitiesOnly = strings.EqualFold(c.get(alias, "IdentitiesOnly"), "yes")

	if v := c.get(alias, "UserKnownHostsFile"); v != "" {
		if !strings.EqualFold(v, "none") {
			for _, f := range strings.Fields(v) {
				h.userKnownHosts = append(h.userKnownHosts, tokens(f))
			}
		}
	} else {
		h.userKnownHosts = []string{filepath.Join(home, ".ssh", "known_hosts"), filepath.Join(home, ".ssh", "known_hosts2")}
	}
	if v := c.get(alias, "GlobalKnownHostsFile"); v != "" {
		if !strings.EqualFold(v, "none") {
			for _, f := range strings.Fields(v) {
				h.globalKnownHosts = append(h.globalKnownHosts, tokens(f))
			}
		}
	} else {
		h.globalKnownHosts = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
	}
	h.hostKeyAlias = c.get(alias, "HostKeyAlias")
	h.hashKnownHosts = strings.EqualFold(c.get(alias, "HashKnownHosts"), "yes")
	switch v := strings.ToLower(c.get(alias, "StrictHostKeyChecking")); v {
	case "", "ask":
		h.strict = "ask"
	case "yes", "true":
		h.strict = "yes"
	case "no", "off", "false":
		h.strict = "no"
	case "accept-new":
		h.strict = "accept-new"
	default:
		return nil, c.badValue(alias, "StrictHostKeyChecking", v, "yes, no, ask or accept-new")
	}

	if v := c.get(alias, "ProxyJump"); v != "" && !strings.EqualFold(v, "none") {
		for _, hop := range strings.Split(v, ",") {
			if hop = strings.TrimSpace(hop); hop != "" {
				h.proxyJump = append(h.proxyJump, hop)
			}
		}
	}
	if v := c.get(alias, "ProxyCommand"); v != "" && !strings.EqualFold(v, "none") && len(h.proxyJump) == 0 {
		return nil, &Error{Host: alias, Kind: ErrConfig,
			Msg: fmt.Sprintf("ssh configuration for %s sets ProxyCommand, which concord's SSH client does not run; use ProxyJump instead", state.Display(alias))}
	}
	var err error
	if h.connectTimeout, err = c.seconds(alias, "ConnectTimeout"); err != nil {
		return nil, err
	}
	if h.aliveInterval, err = c.seconds(alias, "ServerAliveInterval"); err != nil {
		return nil, err
	}
	if v := c.get(alias, "ServerAliveCountMax"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, c.badValue(alias, "ServerAliveCountMax", v, "a number from 1 up")
		}
		h.aliveCountMax = n
	}
	return h, nil
}

func (c *sshConfig) seconds(alias, key string) (time.Duration, error) {
	v := c.get(alias, key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, c.badValue(alias, key, v, "a number of seconds")
	}
	return time.Duration(n) * time.Second, nil
}

func (c *sshConfig) badValue(alias, key, v, want string) error {
	return &Error{Host: alias, Kind: ErrConfig,
		Msg: fmt.Sprintf("ssh configuration for %s: %s %q is not %s; fix it in %s", state.Display(alias), key, state.Display(v), want, strings.Join(c.names, " or "))}
}

// expandTokens expands ~ and the ssh_config tokens %d (local home), %u
// (local user), %h (host name), %n (the alias as given), %p (port), %r
// (remote user) and %%.
func expandTokens(s string, h *hostConfig, home string) string {
	s = expandHome(s, home)
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'd':
			b.WriteString(home)
		case 'u':
			b.WriteString(localUser())
		case 'h':
			b.WriteString(h.hostName)
		case 'n':
			b.WriteString(h.alias)
		case 'p':
			b.WriteString(strconv.Itoa(h.port))
		case 'r':
			b.WriteString(h.user)
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func expandHome(s, home string) string {
	if s == "~" {
		return home
	}
	if strings.HasPrefix(s, "~/") {
		return filepath.Join(home, s[2:])
	}
	return s
}

func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

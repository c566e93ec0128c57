package sshdtest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDPath is the OpenSSH server the package runs.
const SSHDPath = "/usr/sbin/sshd"

// The host key types Config.HostKeyTypes accepts.
const (
	Ed25519 = "ed25519"
	ECDSA   = "ecdsa"
	RSA     = "rsa"
)

// Config adjusts the server StartConfig starts.
type Config struct {
	// HostKeyTypes lists the server's host keys, in order (default: just
	// Ed25519). Several keys reproduce golang/go#29286: a client that does
	// not restrict its host key algorithms to those in known_hosts sees a
	// "key mismatch" when the server offers another type first.
	HostKeyTypes []string
	// Env holds variables set in every session on top of HOME=RemoteHome
	// and PATH=SessionPath (sshd_config SetEnv, which overrides sshd's
	// defaults); it may replace either.
	Env map[string]string
	// Extra is appended to sshd_config as is.
	Extra string
}

// SessionPath is the PATH of every session unless Config.Env sets another.
// It leaves out /usr/local/bin and the like (sshd's default PATH has them),
// where the machine running the tests may have a concord installed: a
// remote session must run the concord under test, which the client
// uploads, not whatever version a developer installed. With one in
// /usr/local/bin the torture tests once ran it as the server and looked
// for their own in vain.
const SessionPath = "/usr/bin:/bin"

// Server is a running sshd. Its fields are read-only.
type Server struct {
	// Host and Port are where the server listens (Host is "127.0.0.1").
	Host string
	Port int
	// User is the login name the server accepts (the current user).
	User string
	// UserKeyPath is an unencrypted OpenSSH private key file whose public
	// key is the server's only authorized key; UserKey is its signer.
	UserKeyPath string
	UserKey     ssh.Signer
	// HostKeys are the server's public host keys, in Config.HostKeyTypes
	// order.
	HostKeys []ssh.PublicKey
	// KnownHosts is a known_hosts file with every host key for
	// [Host]:Port.
	KnownHosts string
	// RemoteHome is HOME in the server's sessions.
	RemoteHome string
	// Dir is the temporary directory holding the server's files.
	Dir string

	cmd      *exec.Cmd
	done     chan struct{}
	log      *lockedBuffer
	stopOnce sync.Once
}

// Start starts an sshd with one ed25519 host key and registers its Stop
// with t.Cleanup. It skips the test when sshd is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartConfig(t, Config{})
}

// StartConfig starts an sshd configured by cfg and registers its Stop with
// t.Cleanup. It skips the test when sshd is not installed.
func StartConfig(t testing.TB, cfg Config) *Server {
	t.Helper()
	if _, err := os.Stat(SSHDPath); err != nil {
		t.Skipf("sshdtest: %s not found (install openssh-server to run the SSH tests): %v", SSHDPath, err)
	}
	if os.Geteuid() == 0 {
		// sshd's privilege separation directory; packages create it at boot.
		_ = os.MkdirAll("/run/sshd", 0o755)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshdtest: current user: %v", err)
	}
	s := &Server{Host: "127.0.0.1", User: u.Username, Dir: t.TempDir(), log: &lockedBuffer{}}
	s.RemoteHome = filepath.Join(s.Dir, "home")
	if err := os.MkdirAll(s.RemoteHome, 0o755); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}

	types := cfg.HostKeyTypes
	if len(types) == 0 {
		types = []string{Ed25519}
	}
	var hostKeyFiles []string
	for _, typ := range types {
		priv, err := newKey(typ)
		if err != nil {
			t.Fatalf("sshdtest: host key: %v", err)
		}
		file := filepath.Join(s.Dir, "ssh_host_"+typ+"_key")
		signer, err := writeKey(file, priv)
		if err != nil {
			t.Fatalf("sshdtest: host key: %v", err)
		}
		hostKeyFiles = append(hostKeyFiles, file)
		s.HostKeys = append(s.HostKeys, signer.PublicKey())
	}
	userPriv, err := newKey(Ed25519)
	if err != nil {
		t.Fatalf("sshdtest: user key: %v", err)
	}
	s.UserKeyPath = filepath.Join(s.Dir, "id_ed25519")
	if s.UserKey, err = writeKey(s.UserKeyPath, userPriv); err != nil {
		t.Fatalf("sshdtest: user key: %v", err)
	}
	authKeys := filepath.Join(s.Dir, "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(s.UserKey.PublicKey()), 0o600); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}

	var err2 error
	for attempt := 0; attempt < 5; attempt++ {
		if err2 = s.start(hostKeyFiles, authKeys, cfg); err2 == nil {
			break
		}
		if !strings.Contains(s.log.String(), "Address already in use") {
			break
		}
		s.log.Reset()
	}
	if err2 != nil {
		t.Fatalf("sshdtest: %v\nsshd log:\n%s", err2, s.log.String())
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log.String())
		}
	})

	var kh bytes.Buffer
	for _, k := range s.HostKeys {
		kh.WriteString(s.KnownHostsLine(k) + "\n")
	}
	s.KnownHosts = filepath.Join(s.Dir, "known_hosts")
	if err := os.WriteFile(s.KnownHosts, kh.Bytes(), 0o600); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	return s
}

// start writes sshd_config for a free port, starts sshd and waits until it
// accepts connections.
func (s *Server) start(hostKeyFiles []string, authKeys string, cfg Config) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Port = port
	var c strings.Builder
	fmt.Fprintf(&c, "ListenAddress %s:%d\n", s.Host, port)
	for _, f := range hostKeyFiles {
		fmt.Fprintf(&c, "HostKey %s\n", f)
	}
	fmt.Fprintf(&c, "AuthorizedKeysFile %s\n", authKeys)
	fmt.Fprintf(&c, "PidFile %s\n", filepath.Join(s.Dir, "sshd.pid"))
	c.WriteString(`PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
PermitUserEnvironment no
AllowTcpForwarding yes
X11Forwarding no
MaxSessions 64
MaxStartups 64
LogLevel VERBOSE
`)
	env := map[string]string{"HOME": s.RemoteHome, "PATH": SessionPath}
	for k, v := range cfg.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	c.WriteString("SetEnv")
	for _, k := range keys {
		fmt.Fprintf(&c, " %s", strconv.Quote(k+"="+env[k]))
	}
	c.WriteString("\n")
	c.WriteString(cfg.Extra)
	if cfg.Extra != "" && !strings.HasSuffix(cfg.Extra, "\n") {
		c.WriteString("\n")
	}
	cfgPath := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(c.String()), 0o600); err != nil {
		return err
	}

	cmd := exec.Command(SSHDPath, "-D", "-e", "-f", cfgPath)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", SSHDPath, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case <-done:
			return fmt.Errorf("sshd exited at start (%v)", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("sshd did not listen on %s within 15s", s.Addr())
		}
	}
	s.cmd, s.done = cmd, done
	return nil
}

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string {
	return net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// KnownHostsLine returns the known_hosts line for key at [Host]:Port.
func (s *Server) KnownHostsLine(key ssh.PublicKey) string {
	return knownhosts.Line([]string{s.Addr()}, key)
}

// ConfigBlock returns an ssh_config Host block named alias that reaches
// the server as User with UserKeyPath, checking host keys against
// KnownHosts.
func (s *Server) ConfigBlock(alias string) string {
	return s.configBlock(alias, s.UserKeyPath, s.KnownHosts)
}

func (s *Server) configBlock(alias, identity, knownHosts string) string {
	return fmt.Sprintf("Host %s\n  HostName %s\n  Port %d\n  User %s\n  IdentityFile %s\n  UserKnownHostsFile %s\n\n",
		alias, s.Host, s.Port, s.User, identity, knownHosts)
}

// WriteHome prepares home as a client's HOME: home/.ssh/id_ed25519 (the
// user key), home/.ssh/known_hosts (every host key) and home/.ssh/config
// holding ConfigBlock(alias) with those files, followed by extra. It
// returns the config file's path.
func (s *Server) WriteHome(t testing.TB, home, alias, extra string) string {
	t.Helper()
	dir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	key, err := os.ReadFile(s.UserKeyPath)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	kh, err := os.ReadFile(s.KnownHosts)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	identity := filepath.Join(dir, "id_ed25519")
	knownHosts := filepath.Join(dir, "known_hosts")
	config := filepath.Join(dir, "config")
	for _, f := range []struct {
		name string
		data []byte
	}{
		{identity, key},
		{knownHosts, kh},
		{config, []byte(s.configBlock(alias, identity, knownHosts) + extra)},
	} {
		if err := os.WriteFile(f.name, f.data, 0o600); err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
	}
	return config
}

// Log returns what sshd has logged so far.
func (s *Server) Log() string { return s.log.String() }

// Stop stops the server (connections already open live on in their own
// sshd processes until they close). It is safe to call more than once;
// Start registers it with t.Cleanup.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd == nil {
			return
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

// NewKey returns a new private key of the given type (Ed25519, ECDSA or
// RSA) and writes it in OpenSSH format to file with mode 0600 if file is
// not empty.
func NewKey(typ, file string) (ssh.Signer, error) {
	priv, err := newKey(typ)
	if err != nil {
		return nil, err
	}
	if file == "" {
		return ssh.NewSignerFromKey(priv)
	}
	return writeKey(file, priv)
}

func newKey(typ string) (crypto.PrivateKey, error) {
	switch typ {
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case ECDSA:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unknown key type %q (want %s, %s or %s)", typ, Ed25519, ECDSA, RSA)
}

func writeKey(file string, priv crypto.PrivateKey) (ssh.Signer, error) {
	block, err := ssh.MarshalPrivateKey(priv, "sshdtest")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

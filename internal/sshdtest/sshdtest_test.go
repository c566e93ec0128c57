package sshdtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// dial connects with the server's user key, checking its host keys
// against its known_hosts file, restricted to algos when not nil.
func dial(t *testing.T, s *Server, algos []string) (*ssh.Client, error) {
	t.Helper()
	cb, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User:              s.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(s.UserKey)},
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
	})
}

func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

func TestStartSessionEnvironment(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	s := StartConfig(t, Config{Env: map[string]string{"XDG_STATE_HOME": state}})
	c, err := dial(t, s, nil)
	if err != nil {
		t.Fatalf("dial: %v\nsshd log:\n%s", err, s.Log())
	}
	defer c.Close()
	got := run(t, c, `echo "$HOME|$XDG_STATE_HOME|$(cd && pwd)|$PATH"`)
	want := s.RemoteHome + "|" + state + "|" + s.RemoteHome + "|" + SessionPath + "\n"
	if got != want {
		t.Errorf("session environment = %q, want %q", got, want)
	}
	if !strings.Contains(s.Log(), "Accepted publickey for "+s.User) {
		t.Errorf("sshd log does not show the login:\n%s", s.Log())
	}
}

func TestStartSessionPathReplaced(t *testing.T) {
	bin := t.TempDir()
	s := StartConfig(t, Config{Env: map[string]string{"PATH": bin + ":/usr/bin:/bin"}})
	c, err := dial(t, s, nil)
	if err != nil {
		t.Fatalf("dial: %v\nsshd log:\n%s", err, s.Log())
	}
	defer c.Close()
	if got, want := run(t, c, `echo "$PATH"`), bin+":/usr/bin:/bin\n"; got != want {
		t.Errorf("PATH = %q, want %q", got, want)
	}
}

func TestStartRefusesOtherKeys(t *testing.T) {
	s := Start(t)
	other, err := NewKey(Ed25519, "")
	if err != nil {
		t.Fatal(err)
	}
	cb, err := knownhosts.New(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", s.Addr(), &ssh.ClientConfig{
		User: s.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(other)}, HostKeyCallback: cb,
	})
	if err == nil {
		c.Close()
		t.Fatal("a key that is not authorized logged in")
	}
	if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("err = %v, want an authentication failure", err)
	}
}

// TestSeveralHostKeys checks that the server offers every host key type,
// each usable on its own, and that known_hosts lists them all.
func TestSeveralHostKeys(t *testing.T) {
	s := StartConfig(t, Config{HostKeyTypes: []string{Ed25519, ECDSA, RSA}})
	kh, err := os.ReadFile(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(kh), "\n"); n != 3 {
		t.Errorf("known_hosts has %d lines, want 3:\n%s", n, kh)
	}
	for _, algo := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSASHA512} {
		c, err := dial(t, s, []string{algo})
		if err != nil {
			t.Errorf("host key algorithm %s: %v", algo, err)
			continue
		}
		c.Close()
	}
}

func TestWriteHome(t *testing.T) {
	s := Start(t)
	home := t.TempDir()
	cfg := s.WriteHome(t, home, "box", "Host other\n  Port 1\n")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Host box\n", "Port " + strconv.Itoa(s.Port), "IdentityFile " + filepath.Join(home, ".ssh", "id_ed25519"), "Host other\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("config lacks %q:\n%s", want, data)
		}
	}
	for _, f := range []string{"id_ed25519", "known_hosts"} {
		if fi, err := os.Stat(filepath.Join(home, ".ssh", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/internal/sshdtest"
	"github.com/concord-sync/concord/remote/delta"
	"github.com/concord-sync/concord/remote/delta/deltatest"
)

// e2eRun runs the concord CLI in this process with HOME, XDG_STATE_HOME
// and XDG_CONFIG_HOME under dir (the test binary itself serves as the
// remote concord: the bootstrap uploads it) and returns the exit code and
// standard error.
func e2eRun(t *testing.T, dir string, args ...string) (int, string, time.Duration) {
	t.Helper()
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("NO_COLOR", "1")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(args, strings.NewReader(""), &stdout, &stderr)
	return code, stderr.String(), time.Since(start)
}

// e2eSetup starts an sshd and returns it, a directory for the client
// (with home/.ssh written for the alias "e2e") and the two roots.
func e2eSetup(t *testing.T) (srv *sshdtest.Server, dir, r1, r2 string) {
	t.Helper()
	srv = sshdtest.Start(t)
	dir = t.TempDir()
	srv.WriteHome(t, filepath.Join(dir, "home"), "e2e", "")
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	for _, d := range []string{one, two} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(one, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, dir, one, "ssh://e2e" + two
}

// TestRemoteRefusals: every way the SSH connection can be refused exits 3
// at once, naming the host and what to do, and touches nothing.
func TestRemoteRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, srv *sshdtest.Server, home string)
		want  func(srv *sshdtest.Server) []string
	}{
		{"unknown host key", func(t *testing.T, srv *sshdtest.Server, home string) {
			os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), nil, 0o600)
		}, func(srv *sshdtest.Server) []string {
			// The fingerprint and the exact line to add.
			return []string{ssh.FingerprintSHA256(srv.HostKeys[0]), srv.KnownHostsLine(srv.HostKeys[0]), "127.0.0.1"}
		}},
		{"wrong host key", func(t *testing.T, srv *sshdtest.Server, home string) {
			other, err := sshdtest.NewKey(sshdtest.Ed25519, "")
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(srv.KnownHostsLine(other.PublicKey())+"\n"), 0o600)
		}, func(srv *sshdtest.Server) []string {
			return []string{"changed", "127.0.0.1", "known_hosts"}
		}},
		{"wrong user key", func(t *testing.T, srv *sshdtest.Server, home string) {
			if _, err := sshdtest.NewKey(sshdtest.Ed25519, filepath.Join(home, ".ssh", "id_ed25519")); err != nil {
				t.Fatal(err)
			}
		}, func(srv *sshdtest.Server) []string {
			return []string{"e2e", "refused", "key"}
		}},
		{"closed port", func(t *testing.T, srv *sshdtest.Server, home string) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			cfg := filepath.Join(home, ".ssh", "config")
			b, _ := os.ReadFile(cfg)
			b = bytes.Replace(b, []byte("Port "), []byte("Port "+strconv.Itoa(port)+"\n  #Port "), 1)
			os.WriteFile(cfg, b, 0o600)
		}, func(srv *sshdtest.Server) []string {
			return []string{"e2e"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, dir, r1, r2 := e2eSetup(t)
			tc.setup(t, srv, filepath.Join(dir, "home"))
			code, stderr, took := e2eRun(t, dir, "sync", "--batch", r1, r2)
			if code != exitFatal {
				t.Fatalf("want exit 3, got %d: %s", code, stderr)
			}
			if took > 5*time.Second {
				t.Errorf("took %s to give up (want under 5 s)", took)
			}
			for _, w := range tc.want(srv) {
				if !strings.Contains(strings.ToLower(stderr), strings.ToLower(w)) {
					t.Errorf("the message does not mention %q:\n%s", w, stderr)
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "two")); len(ents) != 0 {
				t.Errorf("the remote root was touched: %v", ents)
			}
			if _, err := os.Stat(filepath.Join(srv.RemoteHome, ".cache")); err == nil {
				t.Errorf("something was installed on a host that refused us")
			}
		})
	}
}

// TestRemoteBootstrap: a remote without concord gets this one uploaded
// (the run says it is installing), a second run reuses it, and a remote
// concord of another protocol version is replaced by the right one.
func TestRemoteBootstrap(t *testing.T) {
	srv, dir, r1, r2 := e2eSetup(t)
	code, stderr, _ := e2eRun(t, dir, "sync", "--batch", r1, r2)
	if code != exitOK || !strings.Contains(stderr, "installing") {
		t.Fatalf("first run: want exit 0 and an installation, got %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "two", "f")); err != nil || string(b) != "hello" {
		t.Fatalf("the file did not reach the remote root: %v", err)
	}
	code, stderr, _ = e2eRun(t, dir, "sync", "--batch", r1, r2)
	if code != exitOK || strings.Contains(stderr, "installing") {
		t.Fatalf("second run: want exit 0 and no installation, got %d: %s", code, stderr)
	}

	// Another protocol version in the cache: a script that answers the
	// handshake with protocol 9.
	matches, _ := filepath.Glob(filepath.Join(srv.RemoteHome, ".cache", "concord", "*", "concord"))
	if len(matches) != 1 {
		t.Fatalf("want one installed concord, got %q", matches)
	}
	fake := "#!/bin/sh\nprintf 'CONCORD\\000\\000\\000\\000\\011'\ncat >/dev/null\n"
	if err := os.WriteFile(matches[0], []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "one", "g"), []byte("again"), 0o644)
	code, stderr, _ = e2eRun(t, dir, "sync", "--batch", r1, r2)
	if code != exitOK || !strings.Contains(stderr, "installing") {
		t.Fatalf("run against another protocol version: want exit 0 after installing the right concord, got %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(matches[0]); bytes.Equal(b, []byte(fake)) {
		t.Fatal("the concord of the wrong version is still installed")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "two", "g")); err != nil || string(b) != "again" {
		t.Fatalf("the run after the reinstallation did not sync: %v", err)
	}
}

// TestRemoteSignsWholeCopies: in a pair with a remote root, a large file
// that crosses whole is signed where it lands (on the remote side, and on
// the local side for one pulled from the remote), so that the first delta
// against it reads nothing; a local pair signs nothing.
func TestRemoteSignsWholeCopies(t *testing.T) {
	srv, dir, r1, r2 := e2eSetup(t)
	big := make([]byte, archive.SigMinSize+1000)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	write := func(p string) {
		t.Helper()
		if err := os.WriteFile(p, big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "one", "pushed"))
	write(filepath.Join(dir, "two", "pulled"))
	if code, stderr, _ := e2eRun(t, dir, "sync", "--batch", r1, r2); code != exitOK {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}
	// kept reports whether an archive under stateDir keeps a signature
	// for p.
	kept := func(stateDir, p string) bool {
		t.Helper()
		dbs, _ := filepath.Glob(filepath.Join(stateDir, "concord", "ar-*.db"))
		if len(dbs) == 0 {
			t.Fatalf("no archive in %s", stateDir)
		}
		for _, path := range dbs {
			db, err := archive.Open(path, true)
			if err != nil {
				t.Fatal(err)
			}
			ent, blob, err := db.SigFor(context.Background(), p)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			if ent != nil && len(blob) > 0 {
				return true
			}
		}
		return false
	}
	if !kept(filepath.Join(srv.RemoteHome, ".local", "state"), "pushed") {
		t.Error("the remote side kept no signature of the large file it received whole")
	}
	if !kept(filepath.Join(dir, "state"), "pulled") {
		t.Error("the local side kept no signature of the large file it pulled whole")
	}

	// Two local roots: no deltas, no signatures.
	local := t.TempDir()
	a, b := filepath.Join(local, "a"), filepath.Join(local, "b")
	os.Mkdir(a, 0o755)
	os.Mkdir(b, 0o755)
	write(filepath.Join(a, "big"))
	if code, stderr, _ := e2eRun(t, local, "sync", "--batch", a, b); code != exitOK {
		t.Fatalf("local sync: exit %d: %s", code, stderr)
	}
	if kept(filepath.Join(local, "state"), "big") {
		t.Error("a local pair kept a signature")
	}
}

// TestRemoteStagedDelta: a large file edited on the local side crosses to
// the remote by a delta staged there during the scans, and one edited on
// the remote comes back by a delta rebuilt here during the scans (engine's
// TestStagedDelta and TestPulledStagedDelta check the staging itself); over the real connection the
// result is the edited file, its signature is kept for the next delta, and
// no temporary file is left on the remote, also when the plan sends
// nothing (--no-update on the remote: the staging is then cut short or
// dropped when the run ends).
func TestRemoteStagedDelta(t *testing.T) {
	srv, dir, r1, r2 := e2eSetup(t)
	big := make([]byte, archive.SigMinSize+3<<20)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	one, two := filepath.Join(dir, "one", "big"), filepath.Join(dir, "two", "big")
	if err := os.WriteFile(one, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stderr, _ := e2eRun(t, dir, "sync", "--batch", r1, r2); code != exitOK {
		t.Fatalf("first sync: exit %d: %s", code, stderr)
	}
	noTemps := func() {
		t.Helper()
		names, _ := filepath.Glob(filepath.Join(dir, "two", ".concord-tmp-*"))
		if len(names) != 0 {
			t.Errorf("temporary files left on the remote: %q", names)
		}
	}
	edit := func(at int, s string) {
		t.Helper()
		copy(big[at:], s)
		if err := os.WriteFile(one, big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit(len(big)/2, "an edit in the middle")
	if code, stderr, _ := e2eRun(t, dir, "sync", "--batch", "--no-update", r2, r1, r2); code != exitSkipped {
		t.Fatalf("sync with --no-update on the remote: exit %d, want %d: %s", code, exitSkipped, stderr)
	}
	noTemps()
	if code, stderr, _ := e2eRun(t, dir, "sync", "--batch", r1, r2); code != exitOK {
		t.Fatalf("sync of the edit: exit %d: %s", code, stderr)
	}
	got, err := os.ReadFile(two)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("the remote file is not the edited version")
	}
	noTemps()
	// The remote derived the new version's signature while rebuilding it.
	dbs, _ := filepath.Glob(filepath.Join(srv.RemoteHome, ".local", "state", "concord", "ar-*.db"))
	kept := false
	for _, path := range dbs {
		db, err := archive.Open(path, true)
		if err != nil {
			t.Fatal(err)
		}
		ent, blob, err := db.SigFor(context.Background(), "big")
		db.Close()
		if err == nil && ent != nil && len(blob) > 0 && ent.Size == int64(len(big)) {
			kept = true
		}
	}
	if !kept {
		t.Error("the remote kept no signature of the version it rebuilt")
	}

	// The other way: edited on the remote, rebuilt here from the
	// remote's delta during the scans.
	copy(big[len(big)/3:], "an edit on the remote side")
	if err := os.WriteFile(two, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stderr, _ := e2eRun(t, dir, "sync", "--batch", r1, r2); code != exitOK {
		t.Fatalf("sync of the remote edit: exit %d: %s", code, stderr)
	}
	if got, err := os.ReadFile(one); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the local file is not the remote's edited version (%v)", err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "one", ".concord-tmp-*")); len(names) != 0 {
		t.Errorf("temporary files left on the local side: %q", names)
	}
}

// TestRemoteWeakCollision edits files where rsync's weak checksum cannot see
// it, in a block after unchanged ones, which a first delta takes on the
// weak checksum alone: the destination refuses the result (its hash
// differs, an error class that crosses the wire), and the same run sends
// the files again with every block confirmed, pushed to the remote (a
// delta sent in the plan, one staged) and pulled from it (a read-delta
// computed by the server in the plan, one staged).
func TestRemoteWeakCollision(t *testing.T) {
	_, dir, r1, r2 := e2eSetup(t)
	r := rand.New(rand.NewPCG(21, 22))
	files := map[string][]byte{"small": make([]byte, 256<<10), "big": make([]byte, 9<<20)}
	for name, b := range files {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(filepath.Join(dir, "one", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, stderr, _ := e2eRun(t, dir, "sync", "--batch", r1, r2); code != exitOK {
		t.Fatalf("first sync: exit %d: %s", code, stderr)
	}
	for _, side := range []string{"one", "two"} {
		for name, b := range files {
			bs := delta.BlockSize(int64(len(b)))
			at := (len(b) / bs / 2) * bs
			if err := deltatest.CollideWeak(b[at : at+bs]); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, side, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if code, stderr, _ := e2eRun(t, dir, "sync", "--batch", r1, r2); code != exitOK {
			t.Fatalf("sync of the edits on side %s: exit %d: %s", side, code, stderr)
		}
		for name, b := range files {
			for _, s := range []string{"one", "two"} {
				if got, err := os.ReadFile(filepath.Join(dir, s, name)); err != nil || !bytes.Equal(got, b) {
					t.Errorf("after the edits on side %s, %s on side %s is not the edited version (%v)", side, name, s, err)
				}
			}
		}
	}
}

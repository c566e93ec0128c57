package sshx

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/concord-sync/concord/internal/sshdtest"
)

// fakeConcord is a stand-in for concord: "serve" prints a greeting line
// (its version, the XDG_STATE_HOME and working directory it sees, and its
// arguments) and then echoes its input.
func fakeConcord(version string) string {
	return `#!/bin/sh
[ "$1" = serve ] || { echo "usage: concord serve" >&2; exit 2; }
shift
printf 'FAKE-CONCORD %s state=%s pwd=%s args=' ` + version + ` "$XDG_STATE_HOME" "$(pwd)"
for a in "$@"; do printf '[%s]' "$a"; done
echo
exec cat
`
}

// readLine reads one line byte by byte, leaving the rest in the stream.
func readLine(r io.Reader) (string, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := r.Read(b); err != nil {
			return string(line), err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
}

// fakeProbe accepts the fake concord of version want and records the
// greeting it read.
func fakeProbe(want string, greeting *string) func(context.Context, *Stream) error {
	return func(ctx context.Context, s *Stream) error {
		line, err := readLine(s)
		*greeting = line
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "FAKE-CONCORD ") {
			return fmt.Errorf("the remote sent %q instead of a handshake (shell start-up files printing?)", line)
		}
		if !strings.HasPrefix(line, "FAKE-CONCORD "+want+" ") {
			return fmt.Errorf("%w: remote greeting %q, want version %s", ErrVersionMismatch, line, want)
		}
		return nil
	}
}

func TestStartServer(t *testing.T) {
	stateDir := t.TempDir()
	base := t.TempDir()
	remoteBin := filepath.Join(base, "bin")
	srv := sshdtest.StartConfig(t, sshdtest.Config{Env: map[string]string{
		"XDG_STATE_HOME": stateDir,
		"PATH":           remoteBin + ":/usr/bin:/bin",
	}})
	remoteHome := srv.RemoteHome
	e := newEnv(t, srv, "")
	c := dialBox(t, e, e.opts())
	ctx := context.Background()

	local := t.TempDir()
	v1 := writeFile(t, filepath.Join(local, "concord-v1"), fakeConcord("v1"))
	cacheDir := filepath.Join(remoteHome, ".cache", "concord", "1.0.0")
	cached := filepath.Join(cacheDir, "concord")
	var greeting string
	boot := Bootstrap{Version: "1.0.0", Executable: v1, Args: []string{"docs", "it's a dir"}, Probe: fakeProbe("v1", &greeting)}

	// start runs StartServer, checks the stream echoes, closes it, and
	// returns what was noted on stderr.
	start := func(t *testing.T) string {
		t.Helper()
		before := len(e.stderr.String())
		s, err := StartServer(ctx, c, boot)
		if err != nil {
			t.Fatalf("StartServer: %v", err)
		}
		if _, err := s.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if line, err := readLine(s); err != nil || line != "ping" {
			t.Fatalf("echo through the server: %q %v", line, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		return e.stderr.String()[before:]
	}
	writeScript := func(t *testing.T, name, body string) {
		t.Helper()
		writeFile(t, name, body)
		if err := os.Chmod(name, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	reset := func(t *testing.T) {
		t.Helper()
		for _, p := range []string{filepath.Join(remoteHome, ".cache"), remoteBin} {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("absent: installs itself", func(t *testing.T) {
		reset(t)
		notes := start(t)
		if !strings.Contains(notes, "installing concord 1.0.0 on box") {
			t.Errorf("no note about the installation: %q", notes)
		}
		want := fmt.Sprintf("FAKE-CONCORD v1 state=%s pwd=%s args=[docs][it's a dir]", stateDir, remoteHome)
		if greeting != want {
			t.Errorf("the remote concord saw\n%q\nwant\n%q", greeting, want)
		}
		fi, err := os.Stat(cached)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("installed copy: %v %v", fi, err)
		}
	})

	t.Run("second run reuses the copy", func(t *testing.T) {
		before, err := os.Stat(cached)
		if err != nil {
			t.Fatal(err)
		}
		// The copy in the cache is started without looking around first
		// (no uname, no PATH search: one command fewer per run).
		looked := filepath.Join(t.TempDir(), "looked")
		writeScript(t, filepath.Join(remoteBin, "uname"), "#!/bin/sh\ntouch '"+looked+"'\necho Linux x86_64\n")
		defer os.Remove(filepath.Join(remoteBin, "uname"))
		if notes := start(t); strings.Contains(notes, "installing") {
			t.Errorf("installed again: %q", notes)
		}
		if _, err := os.Stat(looked); err == nil {
			t.Errorf("the cached copy was started only after looking around")
		}
		after, err := os.Stat(cached)
		if err != nil {
			t.Fatal(err)
		}
		if before.Sys().(*syscall.Stat_t).Ino != after.Sys().(*syscall.Stat_t).Ino || !before.ModTime().Equal(after.ModTime()) {
			t.Errorf("the installed copy was replaced")
		}
	})

	t.Run("broken copy is replaced", func(t *testing.T) {
		writeScript(t, cached, "#!/bin/sh\necho 'segfault, sort of' >&2\nexit 1\n")
		notes := start(t)
		if !strings.Contains(notes, "installing") || !strings.Contains(notes, "segfault, sort of") {
			t.Errorf("notes %q: want an installation saying why", notes)
		}
	})

	t.Run("another build of the same version gets its own copy", func(t *testing.T) {
		reset(t)
		start(t) // build v1 in the cache
		v1copy, err := os.ReadFile(cached)
		if err != nil {
			t.Fatal(err)
		}
		saved := boot
		defer func() { boot = saved }()
		// Same version, same protocol, other code: a development build.
		// It must not reuse v1's copy.
		boot.Build = "b2"
		boot.Executable = writeFile(t, filepath.Join(local, "concord-b2"), fakeConcord("v2"))
		boot.Probe = fakeProbe("v2", &greeting)
		if notes := start(t); !strings.Contains(notes, "as ~/.cache/concord/1.0.0+b2/concord") {
			t.Errorf("notes %q: want the build installed in a directory of its own", notes)
		}
		if !strings.HasPrefix(greeting, "FAKE-CONCORD v2 ") {
			t.Errorf("greeting %q: want the new build", greeting)
		}
		if now, err := os.ReadFile(cached); err != nil || string(now) != string(v1copy) {
			t.Errorf("the other build's copy was touched: %v", err)
		}
	})

	t.Run("other version in PATH", func(t *testing.T) {
		reset(t)
		writeScript(t, filepath.Join(remoteBin, "concord"), fakeConcord("v0"))
		notes := start(t)
		if !strings.Contains(notes, "installing") || !strings.Contains(notes, "version mismatch") {
			t.Errorf("notes %q: want an installation after a version mismatch", notes)
		}
		if !strings.HasPrefix(greeting, "FAKE-CONCORD v1 ") {
			t.Errorf("greeting %q", greeting)
		}
	})

	t.Run("right version in PATH", func(t *testing.T) {
		reset(t)
		writeScript(t, filepath.Join(remoteBin, "concord"), fakeConcord("v1"))
		if notes := start(t); strings.Contains(notes, "installing") {
			t.Errorf("installed although PATH has a good concord: %q", notes)
		}
		if _, err := os.Stat(cached); err == nil {
			t.Errorf("a copy was installed")
		}
	})

	for _, tt := range []struct{ uname, want string }{
		{"SunOS sun4u", `uname -sm said "SunOS sun4u"`},
		{"Darwin arm64", "runs darwin/arm64"},
	} {
		t.Run("foreign platform "+tt.uname, func(t *testing.T) {
			reset(t)
			writeScript(t, filepath.Join(remoteBin, "uname"), "#!/bin/sh\necho '"+tt.uname+"'\n")
			_, err := StartServer(ctx, c, boot)
			checkFatal(t, err, ErrNoServer, tt.want, "install concord 1.0.0 on box", "no concord in the remote PATH")
			if _, err := os.Stat(cached); err == nil {
				t.Errorf("a copy was installed on a foreign platform")
			}
		})
	}

	t.Run("shell noise is not a reason to install", func(t *testing.T) {
		reset(t)
		writeScript(t, filepath.Join(remoteBin, "concord"), "#!/bin/sh\necho 'Welcome to box!'\nexec cat\n")
		_, err := StartServer(ctx, c, boot)
		checkFatal(t, err, ErrNoServer, "Welcome to box", "shell start-up files")
		if _, err := os.Stat(cached); err == nil {
			t.Errorf("installed after a handshake error")
		}
	})

	t.Run("silent server times out", func(t *testing.T) {
		reset(t)
		writeScript(t, filepath.Join(remoteBin, "concord"), "#!/bin/sh\nexec cat\n")
		b := boot
		b.ProbeTimeout = 300 * time.Millisecond
		begin := time.Now()
		_, err := StartServer(ctx, c, b)
		checkFatal(t, err, ErrNoServer, "did not finish its handshake within 300ms")
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("no probe takes the first found", func(t *testing.T) {
		reset(t)
		writeScript(t, filepath.Join(remoteBin, "concord"), fakeConcord("v0"))
		b := boot
		b.Probe = nil
		s, err := StartServer(ctx, c, b)
		if err != nil {
			t.Fatal(err)
		}
		if line, _ := readLine(s); !strings.HasPrefix(line, "FAKE-CONCORD v0 ") {
			t.Errorf("greeting %q", line)
		}
		s.Close()
	})
}

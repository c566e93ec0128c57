package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInteractiveInTmux drives the real binary's interactive review in a
// tmux terminal of 120×36: a conflict, a new file on side 1 and an edit on
// side 2; `>` on the conflict (the first row), `g`, then `q` on the
// summary. Both sides must end as chosen and the exit code must be 0.
func TestInteractiveInTmux(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and drives a terminal; skipped with -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is not on PATH")
	}
	work := t.TempDir()
	bin := filepath.Join(work, "concord")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	a, b := filepath.Join(work, "a"), filepath.Join(work, "b")
	env := map[string]string{
		"HOME":            filepath.Join(work, "home"),
		"XDG_STATE_HOME":  filepath.Join(work, "state"),
		"XDG_CONFIG_HOME": filepath.Join(work, "config"),
	}
	for _, d := range []string{a, b, env["HOME"]} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(a, "conflict.txt"), "base\n")
	write(filepath.Join(a, "edit.txt"), "shared\n")

	// A first sync in batch mode gives both sides an archive.
	first := exec.Command(bin, "sync", "--batch", a, b)
	first.Env = os.Environ()
	for k, v := range env {
		first.Env = append(first.Env, k+"="+v)
	}
	if out, err := first.CombinedOutput(); err != nil {
		t.Fatalf("first sync: %v\n%s", err, out)
	}

	// Something time-based must differ from the archived entries even on
	// a file system with coarse timestamps.
	time.Sleep(10 * time.Millisecond)
	write(filepath.Join(a, "conflict.txt"), "from side 1\n")
	write(filepath.Join(b, "conflict.txt"), "from side 2, longer\n")
	write(filepath.Join(a, "new.txt"), "new on side 1\n")
	write(filepath.Join(b, "edit.txt"), "edited on side 2\n")

	rcFile := filepath.Join(work, "rc")
	var cmd strings.Builder
	cmd.WriteString("env")
	for k, v := range env {
		cmd.WriteString(" " + k + "=" + shellQuote(v))
	}
	fmt.Fprintf(&cmd, " %s sync %s %s; echo $? > %s; sleep 60",
		shellQuote(bin), shellQuote(a), shellQuote(b), shellQuote(rcFile))

	socket := fmt.Sprintf("concord-test-%d", os.Getpid())
	tmux := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("tmux", append([]string{"-L", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-s", "sync", "-x", "120", "-y", "36", "sh", "-c", cmd.String())
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", socket, "kill-server").Run() })

	pane := func() string { return tmux("capture-pane", "-p", "-t", "sync") }
	waitFor := func(what string, cond func(screen string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := pane()
			if cond(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; the screen shows:\n%s", what, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	row := func(screen, path string) string {
		for _, l := range strings.Split(screen, "\n") {
			if strings.HasSuffix(strings.TrimRight(l, " "), " "+path) {
				return l
			}
		}
		return ""
	}

	waitFor("the review with the conflict first", func(s string) bool {
		r := row(s, "conflict.txt")
		return strings.Contains(r, "▸") && strings.Contains(r, "<-?->") && row(s, "new.txt") != ""
	})
	screen := pane()
	if r := row(screen, "new.txt"); !strings.Contains(r, "new file") || !strings.Contains(r, "---->") {
		t.Errorf("new.txt row %q, want a new file going 1 to 2", r)
	}
	if r := row(screen, "edit.txt"); !strings.Contains(r, "<----") || !strings.Contains(r, "changed") {
		t.Errorf("edit.txt row %q, want a change going 2 to 1", r)
	}

	tmux("send-keys", "-t", "sync", "-l", ">")
	waitFor("the conflict set to go from side 1", func(s string) bool {
		return strings.Contains(row(s, "conflict.txt"), "---->")
	})
	tmux("send-keys", "-t", "sync", "-l", "g")
	waitFor("the summary", func(s string) bool { return strings.Contains(s, "3 propagated, 0 skipped, 0 failed") })
	tmux("send-keys", "-t", "sync", "-l", "q")

	deadline := time.Now().Add(30 * time.Second)
	var rc []byte
	for {
		rc, err = os.ReadFile(rcFile)
		if err == nil && len(rc) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("concord did not exit; the screen shows:\n%s", pane())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := strings.TrimSpace(string(rc)); code != "0" {
		t.Errorf("exit code %s, want 0; the screen shows:\n%s", code, pane())
	}
	for _, c := range []struct{ path, want string }{
		{filepath.Join(a, "conflict.txt"), "from side 1\n"},
		{filepath.Join(b, "conflict.txt"), "from side 1\n"},
		{filepath.Join(b, "new.txt"), "new on side 1\n"},
		{filepath.Join(a, "new.txt"), "new on side 1\n"},
		{filepath.Join(a, "edit.txt"), "edited on side 2\n"},
		{filepath.Join(b, "edit.txt"), "edited on side 2\n"},
	} {
		got, err := os.ReadFile(c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s holds %q, want %q", c.path, got, c.want)
		}
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

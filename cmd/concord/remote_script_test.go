package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/concord-sync/concord/internal/sshdtest"
)

// remoteAlias is the ~/.ssh/config host alias of the test sshd.
const remoteAlias = "concord-test"

// TestScriptsRemote runs the CLI scenarios a second time with the second
// root on the other side of a real OpenSSH sshd on 127.0.0.1: the
// "concord" command of the scripts rewrites its second root to
// ssh://concord-test/ABS/PATH. The remote side is this same test binary,
// uploaded by concord's zero-install bootstrap on the first run and reused
// by every later one. Scenarios that cannot hold for a remote root say
// so with [remote] skip.
func TestScriptsRemote(t *testing.T) {
	if testing.Short() {
		t.Skip("remote scenarios are slow (one SSH connection per run); skipped with -short")
	}
	srv := sshdtest.Start(t)
	p := scriptParams(filepath.Join("..", "..", "testdata", "script"))
	setup := p.Setup
	p.Setup = func(e *testscript.Env) error {
		if err := setup(e); err != nil {
			return err
		}
		srv.WriteHome(t, filepath.Join(e.WorkDir, "home"), remoteAlias, "")
		e.Setenv("CONCORD_TEST_REMOTE", remoteAlias)
		return nil
	}
	p.Condition = func(cond string) (bool, error) {
		if cond == "remote" {
			return true, nil
		}
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	testscript.Run(t, p)
}

// valueFlags are the flags of sync and report that take a value.
var valueFlags = map[string]bool{
	"prefer": true, "force": true, "no-deletion": true, "no-update": true, "no-creation": true,
	"ignore": true, "max-delete": true, "report": true, "log": true, "backup-dir": true,
	"max-backups": true, "ssh-config": true, "connect-timeout": true, "format": true, "output": true,
}

// remoteArgs rewrites the second root of a sync or report command line to
// an ssh:// root on host alias, when CONCORD_TEST_REMOTE names one.
func remoteArgs(args []string) []string {
	alias := os.Getenv("CONCORD_TEST_REMOTE")
	if alias == "" || len(args) == 0 || (args[0] != "sync" && args[0] != "report") {
		return args
	}
	var pos []int
	for i := 1; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && valueFlags[name] {
				i++
			}
			continue
		}
		pos = append(pos, i)
	}
	if len(pos) != 2 {
		return args
	}
	root := args[pos[1]]
	if strings.Contains(root, ":") {
		return args
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return args
	}
	out := append([]string(nil), args...)
	remoteRoot := "ssh://" + alias + abs
	out[pos[1]] = remoteRoot
	// Flags that name the second root as written follow it.
	for i := 1; i+1 < len(out); i++ {
		switch strings.TrimLeft(out[i], "-") {
		case "prefer", "force", "no-deletion", "no-update", "no-creation":
			if out[i+1] == root {
				out[i+1] = remoteRoot
			}
		}
	}
	return out
}

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

// TestScriptsRemote runs the CLI scenarios a second time with one root on
// the other side of a real OpenSSH sshd on 127.0.0.1: the "concord"
// command of the scripts rewrites that root (the second of the first
// command) to ssh://concord-test/ABS/PATH. The remote side is this same test binary,
// uploaded by concord's zero-install bootstrap on the first run and reused
// by every later one (see remoteArgs for which root becomes remote).
// Scenarios that cannot hold for a remote root say so with [remote] skip.
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

// remoteArgs rewrites one root of a sync or report command line to an
// ssh:// root on host alias, when CONCORD_TEST_REMOTE names one: the
// second root of the script's first such command, and after that the same
// directory wherever it stands, so that "sync a b" then "sync b a" or
// "report b a" name one pair in both orders, as they do locally (the
// directory is kept in $WORK/.remote-root). A command whose roots do not
// include it gets its second root rewritten.
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
	var abs [2]string
	for k, i := range pos {
		if strings.Contains(args[i], ":") {
			return args
		}
		a, err := filepath.Abs(args[i])
		if err != nil {
			return args
		}
		abs[k] = a
	}
	which := 1
	stateFile := ""
	if w := os.Getenv("WORK"); w != "" {
		stateFile = filepath.Join(w, ".remote-root")
	}
	if b, err := os.ReadFile(stateFile); stateFile != "" && err == nil {
		if abs[0] == string(b) && abs[1] != string(b) {
			which = 0
		}
	} else if stateFile != "" {
		os.WriteFile(stateFile, []byte(abs[1]), 0o644)
	}
	root, dir := args[pos[which]], abs[which]
	out := append([]string(nil), args...)
	remoteRoot := "ssh://" + alias + dir
	out[pos[which]] = remoteRoot
	// Flags that name the rewritten root follow it: written as the root
	// was, as the same ssh:// URL; spelled otherwise (./b, $WORK/b, b/),
	// in the other remote spelling (alias:/abs/b, with the trailing slash
	// if any), which must name the same root.
	for i := 1; i+1 < len(out); i++ {
		switch strings.TrimLeft(out[i], "-") {
		case "prefer", "force", "no-deletion", "no-update", "no-creation":
			v := out[i+1]
			switch a, err := filepath.Abs(v); {
			case v == root:
				out[i+1] = remoteRoot
			case err == nil && a == dir && !strings.Contains(v, ":"):
				out[i+1] = alias + ":" + dir
				if strings.HasSuffix(v, "/") {
					out[i+1] += "/"
				}
			}
		}
	}
	return out
}

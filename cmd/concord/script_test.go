package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/net/html"

	"github.com/concord-sync/concord/archive/scan"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"concord": func() { os.Exit(run(remoteArgs(os.Args[1:]), os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scenarios in testdata/script/*.txtar against the
// real binary (the test binary standing in as "concord").
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams(filepath.Join("..", "..", "testdata", "script")))
}

func scriptParams(dir string) testscript.Params {
	return testscript.Params{
		Dir: dir,
		Setup: func(e *testscript.Env) error {
			work := e.WorkDir
			e.Setenv("HOME", filepath.Join(work, "home"))
			e.Setenv("XDG_STATE_HOME", filepath.Join(work, "state"))
			e.Setenv("XDG_CONFIG_HOME", filepath.Join(work, "config"))
			e.Setenv("NO_COLOR", "1")
			host, _ := os.Hostname()
			e.Setenv("HOSTNAME", host)
			return os.MkdirAll(filepath.Join(work, "home"), 0o755)
		},
		// [remote] holds when the second root is over SSH (see
		// TestScriptsRemote).
		Condition: func(cond string) (bool, error) {
			if cond == "remote" {
				return false, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// exits N prog args... runs prog and checks its exit code.
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exits: bad code %q", args[0])
				}
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("exits: %v", err)
				}
				if (got == want) == neg {
					ts.Fatalf("%s exited %d, want %d", strings.Join(args[1:], " "), got, want)
				}
			},
			// sametree A B fails unless both trees hold the same names,
			// kinds, contents, symlink targets and permission bits.
			"sametree": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: sametree DIR1 DIR2")
				}
				diff := compareTrees(ts.MkAbs(args[0]), ts.MkAbs(args[1]))
				if (diff == "") == neg {
					if neg {
						ts.Fatalf("trees are the same")
					}
					ts.Fatalf("trees differ: %s", diff)
				}
			},
			// samemtime A B fails unless both paths have the same
			// modification time (to the nanosecond; symlinks not followed).
			"samemtime": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: samemtime PATH1 PATH2")
				}
				a, err := os.Lstat(ts.MkAbs(args[0]))
				ts.Check(err)
				b, err := os.Lstat(ts.MkAbs(args[1]))
				ts.Check(err)
				if a.ModTime().Equal(b.ModTime()) == neg {
					ts.Fatalf("modification times %s and %s (want them %s)", a.ModTime(), b.ModTime(),
						map[bool]string{false: "equal", true: "different"}[neg])
				}
			},
			// decodes FORMAT FILE fails unless FILE parses as FORMAT: json
			// (one value), jsonl (one JSON object per line), csv (a header
			// and rows of the same width) or html (with a table).
			"decodes": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: decodes json|jsonl|csv|html FILE")
				}
				err := decodeAs(args[0], []byte(ts.ReadFile(args[1])))
				if (err == nil) == neg {
					ts.Fatalf("decodes %s %s: %v", args[0], args[1], err)
				}
			},
			// notemp DIR fails if a concord temporary file is left in DIR
			// (a user's file that merely starts the same way is not one).
			"notemp": func(ts *testscript.TestScript, neg bool, args []string) {
				for _, a := range args {
					filepath.Walk(ts.MkAbs(a), func(p string, fi os.FileInfo, err error) error {
						if err == nil && scan.IsTemp(fi.Name()) {
							ts.Fatalf("temporary file left: %s", p)
						}
						return nil
					})
				}
			},
		},
	}
}

// decodeAs parses b as format and returns the first problem found.
func decodeAs(format string, b []byte) error {
	switch format {
	case "json":
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if dec.More() {
			return errors.New("more than one JSON value")
		}
		return nil
	case "jsonl":
		lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		for i, line := range lines {
			var v map[string]any
			if err := json.Unmarshal(line, &v); err != nil {
				return fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		return nil
	case "csv":
		rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return errors.New("no header row")
		}
		return nil
	case "html":
		doc, err := html.Parse(bytes.NewReader(b))
		if err != nil {
			return err
		}
		for n := range doc.Descendants() {
			if n.Type == html.ElementNode && n.Data == "table" {
				return nil
			}
		}
		return errors.New("no <table> element")
	}
	return errors.New("unknown format " + strconv.Quote(format))
}

// compareTrees returns "" when a and b hold the same entries, else the first
// difference found.
func compareTrees(a, b string) string {
	list := func(root string) map[string]string {
		m := map[string]string{}
		filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
			if err != nil || p == root {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			desc := fi.Mode().String()
			switch {
			case fi.Mode()&os.ModeSymlink != 0:
				t, _ := os.Readlink(p)
				desc = "link " + t
			case fi.Mode().IsRegular():
				c, _ := os.ReadFile(p)
				desc += " " + string(c)
			}
			m[rel] = desc
			return nil
		})
		return m
	}
	ma, mb := list(a), list(b)
	for k, v := range ma {
		if w, ok := mb[k]; !ok {
			return strconv.Quote(k) + " only in " + a
		} else if v != w {
			return strconv.Quote(k) + ": " + strconv.Quote(v) + " vs " + strconv.Quote(w)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			return strconv.Quote(k) + " only in " + b
		}
	}
	return ""
}

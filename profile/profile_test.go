package profile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/concord-sync/concord/reconcile"
)

const full = `# nightly replica of the web tree
roots = ["/srv/www", "ssh://deploy@web2.example:2222/srv/www"]
ignore = ["*.tmp", "cache/"]
prefer = "newer"
no_deletion = ["ssh://deploy@web2.example:2222/srv/www/"]
no_update = "ROOT1"
no_creation = []
max_delete = "10%"
report = "/var/lib/concord/web.html"
log = "/var/log/concord/web.log"
batch = true
dry_run = false
backup_dir = ".concord-backups"
max_backups = 3
compress = true

[ssh]
config_file = "/etc/concord/ssh_config"
connect_timeout = "5s"
keepalive_interval = "30s"
keepalive_max = 4
`

func TestParseFull(t *testing.T) {
	p, err := Parse("web", "/cfg/web.toml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := &Profile{
		Name:       "web",
		File:       "/cfg/web.toml",
		Roots:      []string{"/srv/www", "ssh://deploy@web2.example:2222/srv/www"},
		Ignore:     []string{"*.tmp", "cache/"},
		Prefer:     Newer,
		NoDeletion: []string{Root2},
		NoUpdate:   []string{Root1},
		MaxDelete:  "10%",
		Report:     "/var/lib/concord/web.html",
		Log:        "/var/log/concord/web.log",
		Batch:      true,
		BackupDir:  ".concord-backups",
		MaxBackups: 3,
		Compress:   true,
		SSH: SSH{
			ConfigFile:     "/etc/concord/ssh_config",
			ConnectTimeout: 5 * time.Second,
			KeepAlive:      30 * time.Second,
			KeepAliveMax:   4,
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", p, want)
	}
	o, err := p.Options()
	if err != nil {
		t.Fatal(err)
	}
	wantOpts := reconcile.Options{Prefer: reconcile.PreferNewer, NoDeletion: [3]bool{false, false, true}, NoUpdate: [3]bool{false, true, false}}
	if o != wantOpts {
		t.Errorf("Options = %+v, want %+v", o, wantOpts)
	}
}

func TestParseValues(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip("no home directory")
	}
	const roots = "roots = [\"/a\", \"host:b\"]\n"
	tests := []struct {
		name, doc string
		check     func(*Profile) bool
	}{
		{"minimal", roots, func(p *Profile) bool {
			return p.Prefer == "" && p.MaxDelete == "" && p.Ignore == nil && !p.Batch
		}},
		{"max_delete integer", roots + "max_delete = 250\n", func(p *Profile) bool { return p.MaxDelete == "250" }},
		{"max_delete string", roots + "max_delete = \"250\"\n", func(p *Profile) bool { return p.MaxDelete == "250" }},
		{"max_delete percent", roots + "max_delete = \"0%\"\n", func(p *Profile) bool { return p.MaxDelete == "0%" }},
		{"max_delete zero", roots + "max_delete = 0\n", func(p *Profile) bool { return p.MaxDelete == "0" }},
		{"prefer ROOT2 lower case", roots + "prefer = \"root2\"\n", func(p *Profile) bool { return p.Prefer == Root2 }},
		{"prefer a root", roots + "prefer = \"/a/\"\n", func(p *Profile) bool { return p.Prefer == Root1 }},
		{"prefer older", roots + "prefer = \"Older\"\n", func(p *Profile) bool { return p.Prefer == Older }},
		{"force a root", roots + "force = \"host:b\"\n", func(p *Profile) bool { return p.Force == Root2 }},
		{"no_deletion both, deduplicated", roots + "no_deletion = [\"ROOT2\", \"/a\", \"ROOT1\"]\n", func(p *Profile) bool {
			return reflect.DeepEqual(p.NoDeletion, []string{Root1, Root2})
		}},
		{"ignore as one string", roots + "ignore = \"*.o\"\n", func(p *Profile) bool { return reflect.DeepEqual(p.Ignore, []string{"*.o"}) }},
		{"home expanded", "roots = [\"~/docs\", \"srv:docs\"]\nlog = \"~/concord.log\"\n", func(p *Profile) bool {
			return p.Roots[0] == filepath.Join(home, "docs") && p.Log == filepath.Join(home, "concord.log") && p.Roots[1] == "srv:docs"
		}},
		{"dotted ssh key", roots + "ssh.connect_timeout = \"1m30s\"\n", func(p *Profile) bool { return p.SSH.ConnectTimeout == 90*time.Second }},
		{"inline ssh table", roots + "ssh = { config_file = \"none\", keepalive_max = 2 }\n", func(p *Profile) bool {
			return p.SSH.ConfigFile == "none" && p.SSH.KeepAliveMax == 2
		}},
		{"keepalive zero", roots + "[ssh]\nkeepalive_interval = \"0s\"\n", func(p *Profile) bool { return p.SSH.KeepAlive == 0 }},
		{"report markdown", roots + "report = \"r.markdown\"\n", func(p *Profile) bool { return p.Report == "r.markdown" }},
		{"byte-order mark", "\ufeff" + roots + "batch = true\n", func(p *Profile) bool { return p.Batch }},
		{"CRLF line ends", "roots = [\"/a\", \"/b\"]\r\nbatch = true\r\n", func(p *Profile) bool { return p.Batch }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("t", "t.toml", []byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(p) {
				t.Errorf("unexpected profile %+v", p)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const roots = "roots = [\"/a\", \"/b\"]\n"
	tests := []struct {
		name, doc string
		// want lists substrings of the error, which always starts with
		// the file name.
		want []string
	}{
		{"unknown key", roots + "colour = \"blue\"\n", []string{"t.toml:2: key colour: unknown key"}},
		{"unknown ssh key", roots + "[ssh]\nport = 22\n", []string{"t.toml:3: key ssh.port: unknown key"}},
		{"two unknown keys", "frobnicate = 1\n" + roots + "extra = 2\n", []string{"t.toml:1: key frobnicate", "t.toml:3: key extra"}},
		{"missing roots", "batch = true\n", []string{"t.toml: key roots: missing"}},
		{"one root", "roots = [\"/a\"]\n", []string{"t.toml:1: key roots: want exactly two roots, not 1"}},
		{"three roots", "roots = [\"/a\", \"/b\", \"/c\"]\n", []string{"t.toml:1: key roots: want exactly two roots, not 3"}},
		{"same root twice", "roots = [\"/a\", \"/a/\"]\n", []string{"t.toml:1: key roots: both roots"}},
		{"empty root", "roots = [\"\", \"/a\"]\n", []string{"root 1 is empty"}},
		{"roots not a list", "roots = \"/a\"\n", []string{"t.toml:1: key roots: want a list, not a TOML string"}},
		{"wrong type int", roots + "max_backups = \"three\"\n", []string{"t.toml:2: key max_backups: want an integer, not a TOML string"}},
		{"wrong type bool", roots + "batch = \"yes\"\n", []string{"t.toml:2: key batch: want true or false, not a TOML string"}},
		{"bad prefer", roots + "\nprefer = \"left\"\n", []string{"t.toml:3: key prefer: \"left\" is not ROOT1, ROOT2, newer, older"}},
		{"bad force", roots + "force = \"newer\"\n", []string{"t.toml:2: key force: \"newer\" is not ROOT1, ROOT2"}},
		{"bad no_update", roots + "no_update = [\"ROOT3\"]\n", []string{"t.toml:2: key no_update: \"ROOT3\""}},
		{"no_creation of integers", roots + "no_creation = [1]\n", []string{"t.toml:2: key no_creation: element 1 is an integer"}},
		{"max_delete garbage", roots + "max_delete = \"lots\"\n", []string{"t.toml:2: key max_delete: max-delete \"lots\""}},
		{"max_delete over 100%", roots + "max_delete = \"150%\"\n", []string{"t.toml:2: key max_delete:", "cannot exceed 100%"}},
		{"max_delete negative", roots + "max_delete = -5\n", []string{"t.toml:2: key max_delete: -5 is negative"}},
		{"max_delete float", roots + "max_delete = 2.5\n", []string{"t.toml:2: key max_delete:", "not a float"}},
		{"max_backups negative", roots + "backup_dir = \"b\"\nmax_backups = -1\n", []string{"t.toml:3: key max_backups: -1 is negative"}},
		{"max_backups without dir", roots + "max_backups = 2\n", []string{"t.toml:2: key max_backups: set without backup_dir"}},
		{"report extension", roots + "report = \"/tmp/report.txt\"\n", []string{"t.toml:2: key report:", ".json, .csv, .md or .html"}},
		{"timeout not a duration", roots + "[ssh]\nconnect_timeout = \"soon\"\n", []string{"t.toml:3: key ssh.connect_timeout: \"soon\" is not a duration"}},
		{"timeout an integer", roots + "[ssh]\nconnect_timeout = 5\n", []string{"t.toml:3: key ssh.connect_timeout: want a string, not a TOML integer"}},
		{"timeout zero", roots + "ssh.connect_timeout = \"0s\"\n", []string{"t.toml:2: key ssh.connect_timeout: \"0s\" must be positive"}},
		{"error in inline table", roots + "ssh = { connect_timeout = \"x\" }\n", []string{"t.toml:2: key ssh.connect_timeout"}},
		{"keepalive_max negative", roots + "[ssh]\nkeepalive_max = -1\n", []string{"t.toml:3: key ssh.keepalive_max: -1 is negative"}},
		{"ssh not a table", roots + "ssh = 3\n", []string{"t.toml:2: key ssh: want a table, not a TOML integer"}},
		{"syntax error", "roots = [\"/a\", \"/b\"\n", []string{"t.toml:1:"}},
		{"duplicate key", roots + "roots = [\"/c\", \"/d\"]\n", []string{"t.toml:2: key roots:", "already defined"}},
		{"ignore with NUL", roots + "ignore = [\"a\\u0000b\"]\n", []string{"t.toml:2: key ignore:", "NUL"}},
		{"several problems at once", roots + "prefer = \"x\"\nforce = \"y\"\n", []string{"t.toml:2: key prefer", "t.toml:3: key force"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("t", "t.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if !strings.HasPrefix(err.Error(), "t.toml") {
				t.Errorf("error does not start with the file name: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("error is not a *profile.Error: %T", err)
			}
		})
	}
}

func TestParseMaxDelete(t *testing.T) {
	tests := []struct {
		in      string
		n       int
		percent bool
		ok      bool
	}{
		{"0", 0, false, true},
		{"200", 200, false, true},
		{"10%", 10, true, true},
		{"100%", 100, true, true},
		{"0%", 0, true, true},
		{"101%", 0, false, false},
		{"", 0, false, false},
		{"%", 0, false, false},
		{"-1", 0, false, false},
		{"+5", 0, false, false},
		{"1.5%", 0, false, false},
		{" 5", 0, false, false},
		{"5 %", 0, false, false},
		{"10%%", 0, false, false},
		{"99999999999999999999", 0, false, false},
	}
	for _, tc := range tests {
		n, pct, err := ParseMaxDelete(tc.in)
		if (err == nil) != tc.ok || n != tc.n || pct != tc.percent {
			t.Errorf("ParseMaxDelete(%q) = %d, %v, %v; want %d, %v, ok=%v", tc.in, n, pct, err, tc.n, tc.percent, tc.ok)
		}
	}
}

func TestSameRootHomeRelative(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"web2:a", "ssh://web2/~/a", true},
		{"web2:a", "web2:~/a/", true},
		{"web2:a", "ssh://web2/a", false},
		{"u@web2:a", "ssh://u@web2/~/a", true},
		{"ssh://web2:22/srv", "ssh://web2:22/srv/", true},
		{"./b", "b", true},
		{"b", "web2:b", false},
	} {
		if got := sameRoot(tc.a, tc.b); got != tc.want {
			t.Errorf("sameRoot(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	const r1, r2 = "/srv/a", "web2:/srv/a"
	sides := []struct {
		in   string
		want reconcile.Side
		ok   bool
	}{
		{"ROOT1", reconcile.One, true},
		{"root2", reconcile.Two, true},
		{"/srv/a", reconcile.One, true},
		{"/srv/a//", reconcile.One, true},
		{"web2:/srv/a", reconcile.Two, true},
		{"web2:/srv/a/", reconcile.Two, true},
		{"ssh://web2/srv/a", reconcile.Two, true},
		{"ssh://WEB2/srv/a/", reconcile.Two, true},
		{"ssh://web2//srv/./a", reconcile.Two, true},
		{"ssh://root@web2/srv/a", reconcile.None, false}, // another login, maybe
		{"ssh://web2:2222/srv/a", reconcile.None, false},
		{"ssh://web3/srv/a", reconcile.None, false},
		{"web2:srv/a", reconcile.None, false}, // under the remote home
		{"/srv", reconcile.None, false},
		{"1", reconcile.None, false},
		{"", reconcile.None, false},
	}
	for _, tc := range sides {
		got, err := ResolveSide(tc.in, r1, r2)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ResolveSide(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	prefers := []struct {
		in   string
		want reconcile.Prefer
		ok   bool
	}{
		{"", reconcile.PreferNone, true},
		{"newer", reconcile.PreferNewer, true},
		{"OLDER", reconcile.PreferOlder, true},
		{"ROOT1", reconcile.PreferOne, true},
		{"web2:/srv/a", reconcile.PreferTwo, true},
		{"biggest", reconcile.PreferNone, false},
	}
	for _, tc := range prefers {
		got, err := ResolvePrefer(tc.in, r1, r2)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ResolvePrefer(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestOptionsForce(t *testing.T) {
	p, err := Parse("m", "m.toml", []byte("roots = [\"/a\", \"/b\"]\nforce = \"/b\"\nno_creation = \"ROOT1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := p.Options()
	if err != nil {
		t.Fatal(err)
	}
	if o.Force != reconcile.Two || !o.NoCreation[1] || o.NoCreation[2] {
		t.Errorf("Options = %+v", o)
	}
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"web", "web-2", "nightly.backup", "日本"} {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "a/b", "host:path", ".hidden", "-v", "a\nb", `a\b`} {
		if err := ValidName(n); err == nil {
			t.Errorf("ValidName(%q) accepted", n)
		}
	}
}

func writeProfile(t *testing.T, dir, name, body string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDirLoadList(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	dir := filepath.Join(cfg, "concord")
	if Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", Dir(), dir)
	}

	// No directory yet: no profiles, no error.
	names, err := List()
	if err != nil || names != nil {
		t.Fatalf("List() with no directory = %v, %v", names, err)
	}
	if _, err := Load("web"); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "web.toml")) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing profile: %v", err)
	}

	writeProfile(t, dir, "web.toml", "roots = [\"/a\", \"/b\"]\n")
	writeProfile(t, dir, "backup.toml", "roots = [\"/c\", \"/d\"]\nunknown = 1\n")
	writeProfile(t, dir, "notes.txt", "not a profile")
	writeProfile(t, dir, ".hidden.toml", "roots = [\"/a\", \"/b\"]\n")
	if err := os.Mkdir(filepath.Join(dir, "dir.toml"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "web.toml"), filepath.Join(dir, "alias.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "dangling.toml")); err != nil {
		t.Fatal(err)
	}

	names, err = List()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alias", "backup", "web"}; !reflect.DeepEqual(names, want) {
		t.Errorf("List() = %q, want %q", names, want)
	}

	p, err := Load("web")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "web" || p.File != filepath.Join(dir, "web.toml") || p.Roots[1] != "/b" {
		t.Errorf("Load(web) = %+v", p)
	}
	if _, err := Load("backup"); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "backup.toml")+":2: key unknown") {
		t.Errorf("Load(backup) error = %v, want it to name the file, line and key", err)
	}
	if _, err := Load("../web"); err == nil {
		t.Error("Load accepted a name with a slash")
	}

	for arg, want := range map[string]bool{
		"web": true, "alias": true, "backup": true, "nothere": false, "dir": false,
		"./web": false, "host:web": false, "/abs/web": false, "": false, "web.toml": false,
	} {
		if got := IsProfileName(arg); got != want {
			t.Errorf("IsProfileName(%q) = %v, want %v", arg, got, want)
		}
	}
}

func TestDirFallback(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, x := range []string{"", "relative/config"} {
		t.Setenv("XDG_CONFIG_HOME", x)
		if got, want := Dir(), filepath.Join(home, ".config", "concord"); got != want {
			t.Errorf("XDG_CONFIG_HOME=%q: Dir() = %q, want %q", x, got, want)
		}
	}
}

func TestLoadFileTooLarge(t *testing.T) {
	p := writeProfile(t, t.TempDir(), "big.toml", "# "+strings.Repeat("x", maxFileSize)+"\n")
	if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("LoadFile of a huge file: %v", err)
	}
}

// FuzzLoad feeds arbitrary bytes to the profile parser: it must never
// panic, every error must name the file, and whatever it accepts must hold
// two roots and canonical values.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("roots = [\"/a\", \"/b\"]\nmax_delete = 5\n"))
	f.Add([]byte("roots = [\"/a\", \"/b\"]\nssh = { connect_timeout = \"1s\" }\n"))
	f.Add([]byte("roots = [\"/a\", \"/b\"]\n[[ssh]]\n[ssh.x]\n"))
	f.Add([]byte("a.b.c = 1\n[a]\n"))
	f.Add([]byte("roots = [\"\xff\", '/b']\nprefer = \"\xff\"\n"))
	f.Add([]byte("x = [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz", "fuzz.toml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(p.Roots) != 2 {
			t.Fatalf("accepted %d roots", len(p.Roots))
		}
		switch p.Prefer {
		case "", Root1, Root2, Newer, Older:
		default:
			t.Fatalf("prefer %q not canonical", p.Prefer)
		}
		if p.MaxDelete != "" {
			if _, _, err := ParseMaxDelete(p.MaxDelete); err != nil {
				t.Fatalf("max_delete %q accepted but does not parse: %v", p.MaxDelete, err)
			}
		}
		if _, err := p.Options(); err != nil {
			t.Fatalf("accepted profile gives bad options: %v", err)
		}
	})
}

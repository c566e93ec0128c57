package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/report"
)

// Ext is the file-name extension of a profile.
const Ext = ".toml"

// maxFileSize bounds what Load reads: a profile is a few hundred bytes, and
// anything much larger is not one.
const maxFileSize = 1 << 20

// The canonical values Profile holds for root-naming settings. A root
// written out in full in the file is turned into Root1 or Root2 by Load.
const (
	Root1 = "ROOT1"
	Root2 = "ROOT2"
	Newer = "newer"
	Older = "older"
)

// Profile is a named set of sync settings, loaded from NAME.toml. Empty
// strings, nil slices, false and zero mean "not set in the profile": the
// command line or the built-in default applies. Flags given on the command
// line override the profile.
type Profile struct {
	// Name is the profile's name (the file name without ".toml").
	Name string
	// File is the path the profile was read from, for messages.
	File string
	// Roots holds exactly two roots as written (a local path, ssh:// or
	// scp-like), except that a local root starting with "~/" is expanded
	// to the home directory.
	Roots []string
	// Ignore holds gitignore-style patterns, relative to each root.
	Ignore []string
	// Prefer is "" or one of Root1, Root2, Newer, Older (a root written in
	// full in the file is normalised to Root1 or Root2).
	Prefer string
	// Force is "", Root1 or Root2.
	Force string
	// NoDeletion, NoUpdate and NoCreation list the sides (Root1, Root2) on
	// which nothing may be deleted, overwritten or created.
	NoDeletion, NoUpdate, NoCreation []string
	// MaxDelete is the --max-delete guard in its canonical form, "N" or
	// "P%" (see ParseMaxDelete); "" means the default.
	MaxDelete string
	// Report is the file the run's report is written to; its extension
	// picks the format. Log is the file the structured log is appended to.
	// A leading "~/" is expanded in both.
	Report, Log string
	// Batch runs without asking anything, as --batch does.
	Batch bool
	// DryRun plans and reports but changes nothing, as --dry-run does.
	DryRun bool
	// BackupDir keeps the previous version of every overwritten or deleted
	// file on that side (relative paths are taken under each root), at most
	// MaxBackups per path (0: unlimited).
	BackupDir  string
	MaxBackups int
	// Compress asks for zstd compression on remote links.
	Compress bool
	// SSH holds the settings of the [ssh] table.
	SSH SSH
}

// SSH holds how remote roots are reached; zero values mean the defaults
// (~/.ssh/config, its ConnectTimeout and ServerAlive* settings). Host keys
// and identities are configured in the ssh_config file, as for OpenSSH.
type SSH struct {
	// ConfigFile replaces ~/.ssh/config, as OpenSSH's -F ("none" reads no
	// file at all).
	ConfigFile string
	// ConnectTimeout bounds how long connecting to a host may take.
	ConnectTimeout time.Duration
	// KeepAlive is the interval between keepalive requests and
	// KeepAliveMax how many may go unanswered before the connection is
	// declared lost.
	KeepAlive    time.Duration
	KeepAliveMax int
}

// file is the TOML shape of a profile. Values that accept more than one
// TOML type are decoded into any and checked by Parse.
type file struct {
	Roots      []string `toml:"roots"`
	Ignore     any      `toml:"ignore"`
	Prefer     string   `toml:"prefer"`
	Force      string   `toml:"force"`
	NoDeletion any      `toml:"no_deletion"`
	NoUpdate   any      `toml:"no_update"`
	NoCreation any      `toml:"no_creation"`
	MaxDelete  any      `toml:"max_delete"`
	Report     string   `toml:"report"`
	Log        string   `toml:"log"`
	Batch      bool     `toml:"batch"`
	DryRun     bool     `toml:"dry_run"`
	BackupDir  string   `toml:"backup_dir"`
	MaxBackups int      `toml:"max_backups"`
	Compress   bool     `toml:"compress"`
	SSH        fileSSH  `toml:"ssh"`
}

type fileSSH struct {
	ConfigFile        string `toml:"config_file"`
	ConnectTimeout    string `toml:"connect_timeout"`
	KeepAliveInterval string `toml:"keepalive_interval"`
	KeepAliveMax      int    `toml:"keepalive_max"`
}

// Error is a problem in a profile file: the file, the line (0 when not
// known) and the dotted key it concerns ("" for a syntax error).
type Error struct {
	File string
	Line int
	// Column is set for syntax errors only.
	Column int
	Key    string
	Msg    string
}

// Error formats e as "FILE:LINE: key KEY: MSG".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		fmt.Fprintf(&b, "key %s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Dir returns the directory holding profiles: $XDG_CONFIG_HOME/concord, or
// ~/.config/concord when XDG_CONFIG_HOME is unset or not absolute (as the
// XDG specification asks). It returns "" if neither that variable nor the
// home directory is known.
func Dir() string {
	d, _ := dir()
	return d
}

func dir() (string, error) {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "concord"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the profile directory: %w; set HOME or XDG_CONFIG_HOME", err)
	}
	return filepath.Join(home, ".config", "concord"), nil
}

// ValidName checks that name can be a profile name: not empty, no '/' or
// ':' (which would make it a root), no leading '.', no control characters.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("empty profile name")
	case strings.ContainsAny(name, "/:\\"):
		return fmt.Errorf("profile name %q contains '/', ':' or '\\'", name)
	case name[0] == '.' || name[0] == '-':
		return fmt.Errorf("profile name %q starts with %q", name, name[:1])
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("profile name %q contains a control character", name)
		}
	}
	return nil
}

// IsProfileName reports whether arg names an existing profile: a bare name
// (no '/' or ':', so it cannot be a root) for which Dir()/arg.toml exists.
func IsProfileName(arg string) bool {
	if ValidName(arg) != nil {
		return false
	}
	d, err := dir()
	if err != nil {
		return false
	}
	fi, err := os.Stat(filepath.Join(d, arg+Ext))
	return err == nil && fi.Mode().IsRegular()
}

// List returns the names of the profiles in Dir(), sorted. A missing
// directory is no error: there are simply no profiles yet.
func List() ([]string, error) {
	d, err := dir()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(d)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list profiles in %s: %w", d, err)
	}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), Ext)
		if !ok || ValidName(n) != nil {
			continue
		}
		if !e.Type().IsRegular() {
			// Follow symlinks: a profile linked from elsewhere counts.
			fi, err := os.Stat(filepath.Join(d, e.Name()))
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
		}
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Load reads and checks the profile called name from Dir().
func Load(name string) (*Profile, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	d, err := dir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(d, name+Ext)
	p, err := LoadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("profile %s: %s does not exist; create it (see docs/guide.md) or give two roots: %w", name, path, err)
	}
	return p, err
}

// LoadFile reads and checks the profile in the file at path; its name is
// the file name without the extension.
func LoadFile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read profile %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("larger than %d bytes; is this really a profile?", maxFileSize)}
	}
	name := strings.TrimSuffix(filepath.Base(path), Ext)
	return Parse(name, path, data)
}

// Parse decodes and checks a profile's TOML text. path names the source in
// error messages. Every error is an *Error or a join of them.
func Parse(name, path string, data []byte) (*Profile, error) {
	// A byte-order mark, as some editors write, is not part of TOML.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	var raw file
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, decodeError(path, err)
	}
	c := checker{file: path, lines: keyLines(data)}
	p := c.build(name, &raw)
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeError turns a go-toml error into *Error values.
func decodeError(file string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for i := range strict.Errors {
			de := &strict.Errors[i]
			line, _ := de.Position()
			errs = append(errs, &Error{File: file, Line: line, Key: strings.Join(de.Key(), "."),
				Msg: "unknown key; see docs/guide.md for the keys a profile may hold"})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		key := strings.Join(de.Key(), ".")
		e := &Error{File: file, Line: line, Key: key, Msg: friendly(strings.TrimPrefix(de.Error(), "toml: "))}
		if key == "" {
			e.Column = col
		}
		return e
	}
	return &Error{File: file, Msg: friendly(strings.TrimPrefix(err.Error(), "toml: "))}
}

// friendly rewrites go-toml's type mismatch message in the profile's terms.
func friendly(msg string) string {
	rest, ok := strings.CutPrefix(msg, "cannot decode TOML ")
	if !ok {
		return msg
	}
	got, want, ok := strings.Cut(rest, " into ")
	if !ok {
		return msg
	}
	if i := strings.LastIndex(want, " of type "); i >= 0 {
		want = want[i+len(" of type "):]
	}
	switch {
	case strings.HasPrefix(want, "[]"):
		want = "a list"
	case want == "string":
		want = "a string"
	case want == "bool":
		want = "true or false"
	case strings.HasPrefix(want, "int"):
		want = "an integer"
	case strings.HasPrefix(want, "profile."):
		want = "a table"
	}
	return fmt.Sprintf("want %s, not a TOML %s", want, got)
}

// checker validates a decoded file, collecting every problem.
type checker struct {
	file  string
	lines map[string]int
	errs  []error
}

func (c *checker) fail(key, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.file, Line: c.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// line returns the line of key, or of the nearest enclosing key written in
// the file (an inline table), or 0.
func (c *checker) line(key string) int {
	for k := key; k != ""; {
		if l, ok := c.lines[k]; ok {
			return l
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func (c *checker) build(name string, f *file) *Profile {
	p := &Profile{
		Name:       name,
		File:       c.file,
		Prefer:     f.Prefer,
		Force:      f.Force,
		Report:     expandHome(f.Report),
		Log:        expandHome(f.Log),
		Batch:      f.Batch,
		DryRun:     f.DryRun,
		BackupDir:  f.BackupDir,
		MaxBackups: f.MaxBackups,
		Compress:   f.Compress,
	}

	switch {
	case f.Roots == nil:
		c.fail("roots", `missing: a profile needs roots = ["ROOT1", "ROOT2"]`)
	case len(f.Roots) != 2:
		c.fail("roots", "want exactly two roots, not %d", len(f.Roots))
	default:
		for i, r := range f.Roots {
			switch {
			case r == "":
				c.fail("roots", "root %d is empty", i+1)
			case strings.IndexByte(r, 0) >= 0:
				c.fail("roots", "root %d contains a NUL byte", i+1)
			}
		}
		if f.Roots[0] != "" && sameRoot(f.Roots[0], f.Roots[1]) {
			c.fail("roots", "both roots are %q; a pair needs two different trees", f.Roots[0])
		}
		p.Roots = []string{expandHome(f.Roots[0]), expandHome(f.Roots[1])}
	}
	var r1, r2 string
	if len(p.Roots) == 2 {
		r1, r2 = p.Roots[0], p.Roots[1]
	}

	p.Ignore = c.stringList("ignore", f.Ignore)
	for _, pat := range p.Ignore {
		if strings.IndexByte(pat, 0) >= 0 || strings.ContainsAny(pat, "\n\r") {
			c.fail("ignore", "pattern %q contains a NUL or line break", pat)
		}
	}

	if f.Prefer != "" {
		switch {
		case strings.EqualFold(f.Prefer, Newer):
			p.Prefer = Newer
		case strings.EqualFold(f.Prefer, Older):
			p.Prefer = Older
		default:
			s, err := ResolveSide(f.Prefer, r1, r2)
			if err != nil {
				c.fail("prefer", "%q is not ROOT1, ROOT2, newer, older or one of the roots", f.Prefer)
			} else {
				p.Prefer = sideName(s)
			}
		}
	}
	if f.Force != "" {
		s, err := ResolveSide(f.Force, r1, r2)
		switch {
		case err != nil:
			c.fail("force", "%q is not ROOT1, ROOT2 or one of the roots", f.Force)
		case f.Prefer != "":
			c.fail("force", "force and prefer contradict each other: force already decides every difference; keep one")
		default:
			p.Force = sideName(s)
		}
	}
	p.NoDeletion = c.sides("no_deletion", f.NoDeletion, r1, r2)
	p.NoUpdate = c.sides("no_update", f.NoUpdate, r1, r2)
	p.NoCreation = c.sides("no_creation", f.NoCreation, r1, r2)

	switch v := f.MaxDelete.(type) {
	case nil:
	case int64:
		if v < 0 {
			c.fail("max_delete", "%d is negative; want a number of entries (200) or a percentage (\"10%%\")", v)
		} else {
			p.MaxDelete = strconv.FormatInt(v, 10)
		}
	case string:
		n, pct, err := ParseMaxDelete(v)
		if err != nil {
			c.fail("max_delete", "%v", err)
		} else if pct {
			p.MaxDelete = strconv.Itoa(n) + "%"
		} else {
			p.MaxDelete = strconv.Itoa(n)
		}
	default:
		c.fail("max_delete", "want a number of entries (200) or a percentage string (\"10%%\"), not %s", tomlType(v))
	}

	if p.Report != "" {
		if _, err := report.FormatFromPath(p.Report); err != nil {
			c.fail("report", "%v", err)
		}
	}
	if f.MaxBackups < 0 {
		c.fail("max_backups", "%d is negative; want 0 (unlimited) or more", f.MaxBackups)
	}
	if f.MaxBackups > 0 && f.BackupDir == "" {
		c.fail("max_backups", "set without backup_dir; say where backups go")
	}

	s := &f.SSH
	p.SSH = SSH{ConfigFile: expandHome(s.ConfigFile), KeepAliveMax: s.KeepAliveMax}
	if s.KeepAliveMax < 0 {
		c.fail("ssh.keepalive_max", "%d is negative; want 0 (the default) or more", s.KeepAliveMax)
	}
	p.SSH.ConnectTimeout = c.duration("ssh.connect_timeout", s.ConnectTimeout, false)
	p.SSH.KeepAlive = c.duration("ssh.keepalive_interval", s.KeepAliveInterval, true)
	return p
}

// stringList accepts a TOML string or array of strings.
func (c *checker) stringList(key string, v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				c.fail(key, "element %d is %s; want strings", i+1, tomlType(e))
				return nil
			}
			out = append(out, s)
		}
		return out
	}
	c.fail(key, "want a string or a list of strings, not %s", tomlType(v))
	return nil
}

// sides resolves a list of root names to canonical side names, without
// duplicates, in side order.
func (c *checker) sides(key string, v any, r1, r2 string) []string {
	var seen [3]bool
	for _, s := range c.stringList(key, v) {
		side, err := ResolveSide(s, r1, r2)
		if err != nil {
			c.fail(key, "%q is not ROOT1, ROOT2 or one of the roots", s)
			continue
		}
		seen[side] = true
	}
	var out []string
	for _, s := range []reconcile.Side{reconcile.One, reconcile.Two} {
		if seen[s] {
			out = append(out, sideName(s))
		}
	}
	return out
}

func (c *checker) duration(key, v string, zeroOK bool) time.Duration {
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		c.fail(key, "%q is not a duration; write it like \"10s\" or \"1m30s\"", v)
	case d < 0 || (d == 0 && !zeroOK):
		c.fail(key, "%q must be positive", v)
	}
	return d
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return "a date or time"
}

// ParseMaxDelete parses a --max-delete value: a non-negative number of
// entries ("200") or a percentage of the archived entries from 0 to 100
// ("10%").
func ParseMaxDelete(s string) (n int, percent bool, err error) {
	num, percent := strings.CutSuffix(s, "%")
	bad := func() (int, bool, error) {
		return 0, false, fmt.Errorf("max-delete %q: want a number of entries (200) or a percentage (10%%)", s)
	}
	if num == "" || len(num) > 18 {
		return bad()
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return bad()
		}
	}
	v, err := strconv.Atoi(num)
	if err != nil {
		return bad()
	}
	if percent && v > 100 {
		return 0, false, fmt.Errorf("max-delete %q: a percentage cannot exceed 100%%", s)
	}
	return v, percent, nil
}

// ResolveSide maps a value naming a root to its side: "ROOT1" or "ROOT2"
// (in any case), or the root itself as written (a trailing slash is
// ignored). root1 and root2 may be empty when the roots are not known.
func ResolveSide(value, root1, root2 string) (reconcile.Side, error) {
	switch {
	case strings.EqualFold(value, Root1):
		return reconcile.One, nil
	case strings.EqualFold(value, Root2):
		return reconcile.Two, nil
	case root1 != "" && sameRoot(value, root1):
		return reconcile.One, nil
	case root2 != "" && sameRoot(value, root2):
		return reconcile.Two, nil
	}
	return reconcile.None, fmt.Errorf("%q names neither root: want ROOT1, ROOT2 or one of %q and %q", value, root1, root2)
}

// ResolvePrefer maps a --prefer value (ROOT1, ROOT2, newer, older, or a
// root as written) to reconcile's Prefer; "" is PreferNone.
func ResolvePrefer(value, root1, root2 string) (reconcile.Prefer, error) {
	switch {
	case value == "":
		return reconcile.PreferNone, nil
	case strings.EqualFold(value, Newer):
		return reconcile.PreferNewer, nil
	case strings.EqualFold(value, Older):
		return reconcile.PreferOlder, nil
	}
	s, err := ResolveSide(value, root1, root2)
	if err != nil {
		return reconcile.PreferNone, fmt.Errorf("prefer: %w, newer or older", err)
	}
	if s == reconcile.One {
		return reconcile.PreferOne, nil
	}
	return reconcile.PreferTwo, nil
}

// Options returns the profile's policy settings as reconcile options.
func (p *Profile) Options() (reconcile.Options, error) {
	var o reconcile.Options
	var r1, r2 string
	if len(p.Roots) == 2 {
		r1, r2 = p.Roots[0], p.Roots[1]
	}
	var err error
	// Settings from the command line have no profile name to cite.
	where := "--"
	if p.Name != "" {
		where = "profile " + p.Name + ": "
	}
	if o.Prefer, err = ResolvePrefer(p.Prefer, r1, r2); err != nil {
		return o, fmt.Errorf("%s%w", where, err)
	}
	if p.Force != "" {
		if o.Force, err = ResolveSide(p.Force, r1, r2); err != nil {
			return o, fmt.Errorf("%sforce: %w", where, err)
		}
	}
	for _, g := range []struct {
		key  string
		vals []string
		dst  *[3]bool
	}{
		{"no_deletion", p.NoDeletion, &o.NoDeletion},
		{"no_update", p.NoUpdate, &o.NoUpdate},
		{"no_creation", p.NoCreation, &o.NoCreation},
	} {
		for _, v := range g.vals {
			s, err := ResolveSide(v, r1, r2)
			if err != nil {
				key := g.key
				if p.Name == "" {
					key = strings.ReplaceAll(key, "_", "-")
				}
				return o, fmt.Errorf("%s%s: %w", where, key, err)
			}
			g.dst[s] = true
		}
	}
	return o, nil
}

func sideName(s reconcile.Side) string {
	if s == reconcile.One {
		return Root1
	}
	return Root2
}

// sameRoot reports whether two roots as written name the same directory:
// equal but for trailing slashes, two spellings of one local directory
// ("b", "./b", "/abs/b"), or two spellings of one remote directory
// ("web2:/srv/a", "ssh://web2/srv/a", "ssh://web2/srv/a/"; "web2:a" and
// "ssh://web2/~/a"). Remote roots must agree on user, host (in any case)
// and port as written: "web2" and "root@web2" may be one login, but only
// ~/.ssh/config knows, so they do not match.
func sameRoot(a, b string) bool {
	a, b = trimSlash(expandHome(a)), trimSlash(expandHome(b))
	if a == b {
		return true
	}
	ra, err1 := remote.ParseRoot(a)
	rb, err2 := remote.ParseRoot(b)
	if err1 != nil || err2 != nil || ra.Local != rb.Local {
		return false
	}
	if ra.Local {
		aa, err1 := filepath.Abs(a)
		ab, err2 := filepath.Abs(b)
		return err1 == nil && err2 == nil && aa == ab
	}
	return ra.User == rb.User && strings.EqualFold(ra.Host, rb.Host) && ra.Port == rb.Port &&
		ra.HomeRelative == rb.HomeRelative && ra.Path == rb.Path
}

func trimSlash(s string) string {
	for len(s) > 1 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// expandHome replaces a leading "~/" (or a lone "~") with the home
// directory. Remote roots never start with "~", so only local paths change.
func expandHome(s string) string {
	if s != "~" && !strings.HasPrefix(s, "~/") {
		return s
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return s
	}
	return filepath.Join(home, s[1:])
}

package tui

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/reconcile"
)

func TestSideWord(t *testing.T) {
	f := file("a", 0)
	for _, tc := range []struct {
		name      string
		base, cur *state.Entry
		want      string
	}{
		{"absent always", nil, nil, ""},
		{"deleted", f, nil, "deleted"},
		{"new file", nil, f, "new file"},
		{"new dir", nil, dir(), "new dir"},
		{"new link", nil, link("x"), "new link"},
		{"file replaced by dir", f, dir(), "new dir"},
		{"contents changed", f, file("b", 0), "changed"},
		{"link retargeted", link("x"), link("y"), "changed"},
		{"mode changed", f, withMode(f, 0o600), "props"},
		{"time changed", f, file("a", 5), "props"},
		{"unchanged", f, f.Clone(), "unchanged"},
		{"dir mode changed", dir(), withMode(dir(), 0o700), "props"},
	} {
		if got := sideWord(tc.base, tc.cur); got != tc.want {
			t.Errorf("%s: sideWord = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCheckAction(t *testing.T) {
	f := file("a", 0)
	guards := &reconcile.Options{NoDeletion: [3]bool{false, false, true}, NoUpdate: [3]bool{false, true, false},
		NoCreation: [3]bool{false, false, true}}
	for _, tc := range []struct {
		name    string
		one     *state.Entry
		two     *state.Entry
		action  reconcile.Action
		guards  *reconcile.Options
		wantErr string
	}{
		{"absent on both sides", nil, nil, reconcile.OneToTwo, nil, "absent on both sides"},
		{"deletion is a propagation", nil, f, reconcile.OneToTwo, nil, ""},
		{"creation", f, nil, reconcile.OneToTwo, nil, ""},
		{"no-deletion on side 2", nil, f, reconcile.OneToTwo, guards, "--no-deletion forbids deleting p on side 2"},
		{"no-creation on side 2", f, nil, reconcile.OneToTwo, guards, "--no-creation forbids creating p on side 2"},
		{"no-update on side 1", f, file("b", 0), reconcile.TwoToOne, guards, "--no-update forbids overwriting p on side 1"},
		{"update on side 2 allowed", f, file("b", 0), reconcile.OneToTwo, guards, ""},
		{"skip is always allowed", nil, nil, reconcile.Skip, guards, ""},
	} {
		it := &reconcile.Item{Path: "p", One: tc.one, Two: tc.two}
		err := checkAction(it, tc.action, tc.guards)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestMoveBytes(t *testing.T) {
	big, small := file(strings.Repeat("x", 1000), 0), file("yy", 0)
	for _, tc := range []struct {
		name string
		it   reconcile.Item
		a    reconcile.Action
		want int64
	}{
		{"file 1 to 2", reconcile.Item{One: big, Two: small}, reconcile.OneToTwo, 1000},
		{"file 2 to 1", reconcile.Item{One: big, Two: small}, reconcile.TwoToOne, 2},
		{"deletion", reconcile.Item{Two: small}, reconcile.OneToTwo, 0},
		{"conflict moves nothing", reconcile.Item{One: big, Two: small}, reconcile.Conflict, 0},
		{"time only", reconcile.Item{One: big, Two: small, TimeOnly: true}, reconcile.OneToTwo, 0},
		{"same contents, other mode", reconcile.Item{One: big, Two: withMode(big, 0o600)}, reconcile.OneToTwo, 0},
		{"directory with files below", reconcile.Item{One: dir(), Sub: []reconcile.Path{
			{Path: "d/a", One: big}, {Path: "d/b", One: small}, {Path: "d/c", One: dir()}}}, reconcile.OneToTwo, 1002},
	} {
		if got := moveBytes(&tc.it, tc.a); got != tc.want {
			t.Errorf("%s: moveBytes = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestPermText(t *testing.T) {
	for mode, want := range map[uint32]string{
		0o644: "0644 rw-r--r--", 0o755: "0755 rwxr-xr-x", 0o4711: "4711 rwx--x--x", 0: "0000 ---------",
	} {
		if got := permText(mode); got != want {
			t.Errorf("permText(%o) = %q, want %q", mode, got, want)
		}
	}
}

func TestSanitizeLine(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                "plain",
		"a\tb":                 "a       b",
		"ab\tc\td":             "ab      c       d",
		"\x1b[31mred":          `\x1b[31mred`,
		"bell\x07":             `bell\x07`,
		"crlf\r":               `crlf\r`,
		"bad \xff utf8":        `bad \xff utf8`,
		"c1 \u009b":            `c1 \u009b`,
		"bidi \u202eevil":      `bidi \u202eevil`,
		"ünïcödé stays":        "ünïcödé stays",
		"back\\slash is kept":  "back\\slash is kept",
		"del\x7f":              `del\x7f`,
		"\ttab at the start":   "        tab at the start",
		"日本\tafter wide runes": "日本    after wide runes",
	} {
		if got := sanitizeLine(in); got != want {
			t.Errorf("sanitizeLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSanitizeLine checks that no file contents can put a control
// character or invalid UTF-8 on the terminal.
func FuzzSanitizeLine(f *testing.F) {
	for _, s := range []string{"", "a\tb", "\x1b[2J", "\xff\xfe", "\u202e", "\r\n", "\x9b31m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitizeLine(s)
		if !utf8.ValidString(got) {
			t.Fatalf("sanitizeLine(%q) = %q is not valid UTF-8", s, got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
				t.Fatalf("sanitizeLine(%q) = %q holds %U", s, got, r)
			}
		}
	})
}

// errRunner fails every read.
type errRunner struct{}

func (errRunner) Plan() *reconcile.Plan   { return &reconcile.Plan{} }
func (errRunner) Roots() (string, string) { return "a", "b" }
func (errRunner) Execute(context.Context, func(engine.Progress)) (*engine.Result, error) {
	return nil, errors.New("not used")
}
func (errRunner) ReadFile(context.Context, reconcile.Side, string, *state.Entry) (io.ReadCloser, error) {
	return nil, errors.New("connection lost")
}

func TestCompare(t *testing.T) {
	f := newFixture()
	r := newFakeRunner(f)
	large := file("", 0)
	large.Size = diffMaxSize + 1
	text1, text2 := file("one\n", 0), file("two\n", 0)
	f.files[reconcile.One]["t"] = "one\n"
	f.files[reconcile.Two]["t"] = "two\n"
	f.files[reconcile.One]["grown"] = strings.Repeat("x", diffMaxSize+1)
	f.files[reconcile.Two]["grown"] = "small"
	for _, tc := range []struct {
		name   string
		runner Runner
		it     reconcile.Item
		want   string // a line of the diff or of the notes
		err    string
	}{
		{"text", r, reconcile.Item{Path: "t", One: text1, Two: text2}, "+two", ""},
		{"new text file on side 1", r, reconcile.Item{Path: "t", One: text1}, "+++ /dev/null (absent on side 2)", ""},
		{"large", r, reconcile.Item{Path: "t", One: large, Two: text2}, "Side 1 is larger: 1.0 MB against 4 B.", ""},
		{"grew past the limit while read", r, reconcile.Item{Path: "grown", One: text1, Two: text2}, "Not compared line by line: over 1 MiB.", ""},
		{"same contents", r, reconcile.Item{Path: "t", One: text1, Two: withMode(text1, 0o600)}, "Both sides have the same contents; only properties differ.", ""},
		{"same contents, permissions named", r, reconcile.Item{Path: "t", One: text1, Two: withMode(text1, 0o600)}, "Permissions: side 1 0644 rw-r--r--, side 2 0600 rw-------.", ""},
		{"same contents, copied within a second", r, reconcile.Item{Path: "t", One: text1, Two: withMTime(text1, text1.MTime+36_000_001)},
			"on side 2 at " + t0.UTC().Format("2006-01-02 15:04:05") + ".036000001: side 2 is newer by 36.000001ms.", ""},
		{"dirs", r, reconcile.Item{Path: "d", One: dir(), Two: dir()}, "No file contents to compare.", ""},
		{"file against link", r, reconcile.Item{Path: "t", One: text1, Two: link("x")}, "The sides hold different kinds of entry; see the table above.", ""},
		{"read error", errRunner{}, reconcile.Item{Path: "t", One: text1, Two: text2}, "", "read t on side 1: connection lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := compare(context.Background(), tc.runner, &tc.it, time.UTC)
			if tc.err != "" {
				if c.err == nil || c.err.Error() != tc.err {
					t.Fatalf("error %v, want %q", c.err, tc.err)
				}
				return
			}
			if c.err != nil {
				t.Fatal(c.err)
			}
			all := append(append([]string{}, c.diff...), c.notes...)
			for _, l := range all {
				if l == tc.want {
					return
				}
			}
			t.Errorf("no line %q in %q", tc.want, all)
		})
	}
}

func TestCapLine(t *testing.T) {
	long := strings.Repeat("é", maxLineBytes) // two bytes each
	got := capLine(long)
	if !utf8.ValidString(got) || len(got) > maxLineBytes+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("capLine cut badly: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if capLine("short") != "short" {
		t.Error("capLine changed a short line")
	}
}

func TestNoColorStyles(t *testing.T) {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.TrueColor)
	colored := newStyles(r, true).arrowConflict.Render("<-?->")
	plain := newStyles(r, false).arrowConflict.Render("<-?->")
	if !strings.Contains(colored, "\x1b[") || !strings.Contains(colored, "31") {
		t.Errorf("coloured conflict arrow %q has no colour", colored)
	}
	if strings.Contains(plain, "31") || strings.Contains(plain, "38;") {
		t.Errorf("NO_COLOR conflict arrow %q still has a colour", plain)
	}
	if !strings.Contains(plain, "\x1b[1m") {
		t.Errorf("NO_COLOR conflict arrow %q lost its bold attribute", plain)
	}
	sel := newStyles(r, false).selected.Render("row")
	if !strings.Contains(sel, "\x1b[7m") {
		t.Errorf("NO_COLOR selection %q is not in reverse video", sel)
	}
}

func TestPager(t *testing.T) {
	var p pager
	p.SetSize(10, 3)
	p.SetLines([]string{"1", "2", "3", "4", "5", "a very long line indeed"})
	keys := newNavKeys()
	steps := []struct {
		key  string
		want string
	}{
		{"<down>", "2\n3\n4"},
		{"<end>", "4\n5\na very lo…"},
		{"<pgup>", "1\n2\n3"},
		{"<pgdown>", "4\n5\na very lo…"},
		{"<home>", "1\n2\n3"},
		{"<up>", "1\n2\n3"},
	}
	for _, s := range steps {
		if !p.handle(keyMsg(s.key), keys) {
			t.Fatalf("%s not handled", s.key)
		}
		if got := p.View(); got != s.want {
			t.Errorf("after %s: %q, want %q", s.key, got, s.want)
		}
	}
	if got := p.position(); got != "lines 1-3 of 6" {
		t.Errorf("position %q", got)
	}
}

package report

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/concord-sync/concord/archive/state"
)

// attr returns n's attribute key.
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, c string) bool {
	for _, f := range strings.Fields(attr(n, "class")) {
		if f == c {
			return true
		}
	}
	return false
}

// find returns every element below n for which match is true.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

func parseHTML(t *testing.T, r *Report) (*html.Node, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return doc, buf.String()
}

func TestHTMLStructure(t *testing.T) {
	r := sample()
	doc, src := parseHTML(t, r)

	tables := find(doc, func(n *html.Node) bool { return n.Data == "table" && attr(n, "id") == "items" })
	if len(tables) != 1 {
		t.Fatalf("%d tables with id=items, want 1", len(tables))
	}
	bodies := find(tables[0], func(n *html.Node) bool { return n.Data == "tbody" && hasClass(n, "item") })
	if len(bodies) != len(r.Items) {
		t.Fatalf("%d item bodies, want one per item (%d)", len(bodies), len(r.Items))
	}
	rows := find(tables[0], func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "row") })
	if len(rows) != len(r.Items) {
		t.Fatalf("%d item rows, want %d", len(rows), len(r.Items))
	}
	heads := find(tables[0], tag("th"))
	for i, tb := range bodies {
		it := r.Items[i]
		cells := find(rows[i], tag("td"))
		if len(cells) != len(heads) {
			t.Errorf("row %d has %d cells for %d headers", i, len(cells), len(heads))
		}
		if got, want := textOf(cells[0]), state.Display(it.Path); !strings.HasSuffix(got, want) {
			t.Errorf("row %d path cell = %q, want it to end with %q", i, got, want)
		}
		if attr(tb, "data-status") != it.Status {
			t.Errorf("row %d data-status = %q", i, attr(tb, "data-status"))
		}
		if !strings.Contains(textOf(tb), it.Reason) {
			t.Errorf("row %d lacks its reason %q", i, it.Reason)
		}
		if it.Side1 != nil && it.Side1.Hash != "" && !strings.Contains(textOf(tb), it.Side1.Hash) {
			t.Errorf("row %d lacks side 1's full hash", i)
		}
		diffs := find(tb, func(n *html.Node) bool { return n.Data == "pre" && hasClass(n, "diff") })
		if (it.Diff != "") != (len(diffs) == 1) {
			t.Errorf("row %d: %d diff blocks, diff set = %v", i, len(diffs), it.Diff != "")
		}
	}
	// The diff is coloured line by line.
	adds := find(bodies[0], func(n *html.Node) bool { return n.Data == "span" && hasClass(n, "add") })
	dels := find(bodies[0], func(n *html.Node) bool { return n.Data == "span" && hasClass(n, "del") })
	if len(adds) != 2 || len(dels) != 1 || textOf(dels[0]) != "-beta" {
		t.Errorf("diff lines: %d added, %d deleted, want 2 and 1", len(adds), len(dels))
	}

	// Self-contained: one inline script, one inline style, nothing fetched.
	scripts := find(doc, tag("script"))
	if len(scripts) != 1 || attr(scripts[0], "src") != "" {
		t.Errorf("want exactly one inline script (a file name must not inject one), got %d", len(scripts))
	}
	for _, n := range find(doc, func(n *html.Node) bool { return true }) {
		for _, a := range n.Attr {
			if (a.Key == "src" || a.Key == "href") && a.Val != "" {
				t.Errorf("<%s %s=%q> loads something; the page must be self-contained", n.Data, a.Key, a.Val)
			}
		}
		if n.Data == "link" || n.Data == "img" || n.Data == "iframe" {
			t.Errorf("<%s> in a self-contained page", n.Data)
		}
	}
	if regexp.MustCompile(`(?i)url\(|@import|https?://`).MatchString(src) {
		t.Errorf("the page references an external resource")
	}
	if !strings.Contains(src, `odd/line\nbreak | pipe &lt;script&gt;alert(1)&lt;/script&gt;`) {
		t.Errorf("a hostile name is not shown escaped")
	}
	if !strings.Contains(src, "日本/é café.txt") || !strings.Contains(src, `raw/bad\xff\xfename`) {
		t.Errorf("names are not shown as on a terminal")
	}
}

func TestHTMLEmpty(t *testing.T) {
	doc, _ := parseHTML(t, &Report{Root1: "/a", Root2: "/b"})
	if n := len(find(doc, tag("table"))); n != 0 {
		t.Errorf("an empty report has %d tables", n)
	}
	empty := find(doc, func(n *html.Node) bool { return hasClass(n, "empty") })
	if len(empty) != 1 || !strings.Contains(textOf(empty[0]), "No unresolved") {
		t.Errorf("an empty report does not say it is empty")
	}
}

// chromium runs headless Chromium on page (a file URL, possibly with a
// fragment) and returns the DOM after scripts ran and the browser's log.
func chromium(t *testing.T, bin, url string) (dom, log string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--enable-logging=stderr", "--v=0",
		"--virtual-time-budget=3000", "--dump-dom", url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", url, err, errb.String())
	}
	return out.String(), errb.String()
}

func TestHTMLInChromium(t *testing.T) {
	bin := "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("skipping: headless Chromium not found at %s (apt-get install chromium)", bin)
	}
	if testing.Short() {
		t.Skip("skipping the browser test in -short mode")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	r := sample()
	if err := WriteFile(page, r); err != nil {
		t.Fatal(err)
	}
	order := regexp.MustCompile(`<tbody class="item[^"]*" data-i="(\d)"`)
	tests := []struct {
		name, fragment string
		shown          string
		order          string // data-i of the item bodies in DOM order
	}{
		{"plain", "", "5", "01234"},
		{"filter", "#q=" + "%E6%97%A5%E6%9C%AC", "1", "01234"},
		{"filter no match", "#q=nothing-matches-this", "0", "01234"},
		{"hide conflicts", "#hide=conflict", "2", "01234"},
		{"sort path descending", "#sort=path&dir=desc", "5", "12340"},
		{"sort size ascending", "#sort=side2&dir=asc", "5", "14203"},
		{"expand the shown rows", "#expand=1&hide=skipped,failed", "3", "01234"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dom, log := chromium(t, bin, "file://"+page+tc.fragment)
			// The page never writes to the console, so any console line
			// (Chromium logs them as INFO:CONSOLE or ERROR:CONSOLE) is an
			// error, as is an uncaught exception.
			for _, bad := range []string{"Uncaught", ":CONSOLE", "SyntaxError", "TypeError"} {
				if strings.Contains(log, bad) {
					t.Errorf("browser log has %q:\n%s", bad, log)
				}
			}
			if !strings.Contains(dom, `data-ready="1"`) {
				t.Fatalf("the page's script did not run to the end:\n%s", dom)
			}
			if !strings.Contains(dom, `class="js"`) {
				t.Errorf("the no-js class was not replaced")
			}
			if !strings.Contains(dom, `data-shown="`+tc.shown+`"`) {
				m := regexp.MustCompile(`data-shown="\d+"`).FindString(dom)
				t.Errorf("%s shown, want data-shown=%q", m, tc.shown)
			}
			var got strings.Builder
			for _, m := range order.FindAllStringSubmatch(dom, -1) {
				got.WriteString(m[1])
			}
			if got.String() != tc.order {
				t.Errorf("item order %q, want %q", got.String(), tc.order)
			}
			open, wantOpen := strings.Count(dom, `aria-expanded="true"`), 0
			if strings.Contains(tc.fragment, "expand=1") {
				wantOpen, _ = strconv.Atoi(tc.shown)
			}
			if open != wantOpen || strings.Count(dom, `class="item open"`) != wantOpen {
				t.Errorf("%d rows open, want %d", open, wantOpen)
			}
		})
	}
}

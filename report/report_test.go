package report

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Names that every format must carry: spaces, a newline, non-ASCII, markup
// and table syntax, and bytes that are not UTF-8.
const (
	nameSpace   = "docs/read me.txt"
	nameUnicode = "日本/é café.txt"
	nameBad     = "raw/bad\xff\xfename"
	nameHostile = "odd/line\nbreak | pipe <script>alert(1)</script> `tick` *star*"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func hash(b byte) string { return strings.Repeat(string("0123456789abcdef"[b%16]), 64) }

// sample returns a report with one item of every shape.
func sample() *Report {
	diff, ok := UnifiedDiff([]byte("alpha\nbeta\ngamma\n"), []byte("alpha\nBETA\ngamma\ndelta\n"), "1/"+nameSpace, "2/"+nameSpace)
	if !ok {
		panic("sample diff is not text")
	}
	return &Report{
		SchemaVersion: SchemaVersion,
		Generated:     at("2026-12-02T06:00:00Z"),
		Root1:         "/srv/www",
		Root2:         "ssh://web2.example/srv/www",
		Run: RunInfo{
			Start: at("2026-12-02T02:00:00Z"), End: at("2026-12-02T02:00:07.25Z"),
			ExitCode: 2, Propagated: 41, Conflicts: 3, Skipped: 1, Failed: 1, Bytes: 3 << 20,
		},
		Items: []Item{
			{
				Path: nameSpace, Status: StatusConflict, Action: "conflict", Reason: "both sides modified",
				FirstSeen: at("2026-11-28T02:00:00Z"), TimesSeen: 5,
				Base:  &Side{Kind: "file", Size: 17, MTime: at("2026-11-20T10:00:00Z"), Mode: "0644", Hash: hash(0)},
				Side1: &Side{Kind: "file", Size: 17, MTime: at("2026-11-27T09:15:00.123456789Z"), Mode: "0644", Hash: hash(1)},
				Side2: &Side{Kind: "file", Size: 23, MTime: at("2026-11-27T11:40:00Z"), Mode: "0664", Hash: hash(2)},
				Diff:  diff,
			},
			{
				Path: nameUnicode, Status: StatusSkipped, Action: "2to1", Reason: "--no-deletion on side 1",
				FirstSeen: at("2026-12-02T02:00:00Z"), TimesSeen: 1,
				Side1: &Side{Kind: "file", Size: 1 << 20, MTime: at("2026-12-01T08:00:00Z"), Mode: "0600", Hash: hash(3)},
			},
			{
				Path: nameBad, Status: StatusFailed, Action: "1to2", Reason: "changed during sync",
				FirstSeen: at("2026-12-02T02:00:00Z"), TimesSeen: 1,
				Side1: &Side{Kind: "file", Size: 4, MTime: at("2026-12-01T08:00:00Z"), Mode: "0644", Hash: hash(4)},
				Side2: &Side{Kind: "file", Size: 0, MTime: at("2026-12-01T07:00:00Z"), Mode: "0644", Hash: hash(5)},
			},
			{
				Path: nameHostile, Status: StatusConflict, Action: "conflict", Reason: "a symlink on side 1, a file on side 2",
				FirstSeen: at("2026-12-01T02:00:00Z"), TimesSeen: 2,
				Side1: &Side{Kind: "symlink", MTime: at("2026-11-30T08:00:00Z"), Hash: hash(6), Target: "../t\xffarget"},
				Side2: &Side{Kind: "file", Size: 99, MTime: at("2026-11-30T09:00:00Z"), Mode: "0755", Hash: hash(7)},
			},
			{
				Path: "gone", Status: StatusConflict, Action: "conflict", Reason: "directory deleted on side 2 while something below it changed on side 1",
				Side1: &Side{Kind: "dir", MTime: at("2026-11-30T08:00:00Z"), Mode: "0755"},
			},
		},
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sample()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(buf.Bytes()) {
		t.Fatalf("WriteJSON wrote invalid JSON:\n%s", buf.String())
	}
	got, err := ReadJSON(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", got, r)
	}

	// The schema as a plain JSON consumer sees it.
	var doc struct {
		SchemaVersion *int   `json:"schema_version"`
		Root1B64      string `json:"root1_b64"`
		Items         []map[string]any
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != SchemaVersion {
		t.Errorf("schema_version = %v, want %d", doc.SchemaVersion, SchemaVersion)
	}
	if len(doc.Items) != len(r.Items) {
		t.Fatalf("%d items in JSON, want %d", len(doc.Items), len(r.Items))
	}
	for i, m := range doc.Items {
		want := r.Items[i].Path
		enc, ok := m["path_b64"].(string)
		if !ok {
			t.Errorf("item %d: path_b64 missing", i)
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || string(raw) != want {
			t.Errorf("item %d: path_b64 decodes to %q (%v), want %q", i, raw, err, want)
		}
		if m["path"] != Text(want) {
			t.Errorf("item %d: path = %q, want %q", i, m["path"], Text(want))
		}
		for _, k := range []string{"status", "action", "reason", "times_seen", "side1", "side2", "base"} {
			if _, ok := m[k]; !ok {
				t.Errorf("item %d: field %q missing", i, k)
			}
		}
	}
	if !strings.Contains(buf.String(), `"path": "raw/bad\\xff\\xfename"`) {
		t.Errorf("a non-UTF-8 path is not written with \\xNN escapes:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), `"path": "日本/é café.txt"`) {
		t.Errorf("a UTF-8 path is not written as itself")
	}
}

func TestReadJSONErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"not JSON", `{`, "unexpected EOF"},
		{"no version", `{"items": []}`, "schema_version missing"},
		{"newer version", `{"schema_version": 99}`, "upgrade concord"},
		{"bad base64", `{"schema_version": 1, "items": [{"path": "a", "path_b64": "!!"}]}`, "item 1: path_b64"},
		{"bad target", `{"schema_version": 1, "items": [{"path": "a", "side1": {"kind": "symlink", "target": "x", "target_b64": "%"}}]}`, "item 1 side1: target_b64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadJSON(strings.NewReader(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadJSON(%s) error = %v, want one containing %q", tc.doc, err, tc.want)
			}
		})
	}
	// Without path_b64 (a hand-written report), the text is the path;
	// unknown fields are ignored.
	r, err := ReadJSON(strings.NewReader(`{"schema_version": 1, "future": true, "items": [{"path": "a b", "status": "conflict"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Items) != 1 || r.Items[0].Path != "a b" {
		t.Errorf("items = %+v", r.Items)
	}
}

func TestEmptyReportJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, &Report{Root1: "a", Root2: "b"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"items": []`) {
		t.Errorf("an empty report must have an empty items list, not null:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), `"schema_version": 1`) {
		t.Errorf("schema_version not defaulted:\n%s", buf.String())
	}
}

func TestCSV(t *testing.T) {
	r := sample()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, r); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(r.Items)+1 {
		t.Fatalf("%d rows, want a header and %d items", len(rows), len(r.Items))
	}
	if !reflect.DeepEqual(rows[0], CSVHeader) {
		t.Errorf("header = %q", rows[0])
	}
	col := map[string]int{}
	for i, h := range CSVHeader {
		col[h] = i
	}
	for i, row := range rows[1:] {
		it := r.Items[i]
		raw, err := base64.StdEncoding.DecodeString(row[col["path_b64"]])
		if err != nil || string(raw) != it.Path {
			t.Errorf("row %d: path_b64 gives %q (%v), want %q", i+1, raw, err, it.Path)
		}
		checks := map[string]string{
			"path": Text(it.Path), "status": it.Status, "action": it.Action, "reason": it.Reason,
		}
		for k, want := range checks {
			if row[col[k]] != want {
				t.Errorf("row %d: %s = %q, want %q", i+1, k, row[col[k]], want)
			}
		}
		if it.Side2 == nil && row[col["side2_kind"]] != "absent" {
			t.Errorf("row %d: side2_kind = %q, want absent", i+1, row[col["side2_kind"]])
		}
		if it.Side1 != nil && row[col["side1_hash"]] != it.Side1.Hash {
			t.Errorf("row %d: side1_hash = %q, want the full hash %q", i+1, row[col["side1_hash"]], it.Side1.Hash)
		}
	}
	if got := rows[1][col["side1_mtime"]]; got != "2026-11-27T09:15:00.123456789Z" {
		t.Errorf("side1_mtime = %q, want nanoseconds in UTC", got)
	}
}

func TestMarkdownGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, sample()); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.md")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if buf.String() != string(want) {
		t.Errorf("Markdown differs from %s (run go test -update if the change is intended):\n%s", golden, buf.String())
	}
}

func TestMarkdownTable(t *testing.T) {
	r := sample()
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, r); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| Path ") {
			rows = append(rows, l)
		}
	}
	if len(rows) != len(r.Items) {
		t.Fatalf("%d table rows, want %d:\n%s", len(rows), len(r.Items), buf.String())
	}
	for i, row := range rows {
		if n := unescapedPipes(row); n != 9 {
			t.Errorf("row %d has %d cell boundaries, want 9: %s", i, n, row)
		}
		if strings.ContainsAny(row, "\x00\x1b\r") {
			t.Errorf("row %d carries a control character: %q", i, row)
		}
	}
	for _, want := range []string{
		`odd/line\\nbreak \| pipe \<script\>alert(1)\</script\> \` + "`tick\\` \\*star\\*",
		`raw/bad\\xff\\xfename`,
		`日本/é café.txt`,
		"`" + hash(1) + "`",
		"1.0 MiB (1,048,576 B)",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	if err := WriteMarkdown(&buf, &Report{Root1: "a", Root2: "b"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "No unresolved conflicts or failures.") || strings.Contains(buf.String(), "| Path") {
		t.Errorf("an empty report should say so without a table:\n%s", buf.String())
	}
}

// unescapedPipes counts the '|' in a Markdown row that are not escaped.
func unescapedPipes(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n
}

func TestFormatFromPath(t *testing.T) {
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"r.json", "json", true},
		{"/var/log/concord/web.CSV", "csv", true},
		{"report.md", "md", true},
		{"x.markdown", "md", true},
		{"a.b/report.html", "html", true},
		{"r.htm", "html", true},
		{"report", "", false},
		{"report.txt", "", false},
		{"json", "", false},
	}
	for _, tc := range tests {
		got, err := FormatFromPath(tc.path)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("FormatFromPath(%q) = %q, %v; want %q, ok=%v", tc.path, got, err, tc.want, tc.ok)
		}
	}
}

func TestWriteEveryFormat(t *testing.T) {
	r := sample()
	for _, f := range append(Formats, "markdown", "HTML") {
		var buf bytes.Buffer
		if err := Write(&buf, f, r); err != nil {
			t.Errorf("Write(%s): %v", f, err)
		}
		if !strings.Contains(buf.String(), "read me") {
			t.Errorf("Write(%s) lacks the first item", f)
		}
	}
	if err := Write(&bytes.Buffer{}, "xml", r); err == nil || !strings.Contains(err.Error(), "json, csv, md, html") {
		t.Errorf("Write(xml) error = %v, want one listing the formats", err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	r := sample()
	for _, name := range []string{"r.json", "r.csv", "r.md", "r.html"} {
		p := filepath.Join(dir, name)
		if err := WriteFile(p, r); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 || fi.Size() == 0 {
			t.Errorf("%s: mode %v size %d", name, fi.Mode(), fi.Size())
		}
	}
	if err := os.Chmod(filepath.Join(dir, "r.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "r.json"), r); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "r.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("replacing a report changed its mode to %v", fi.Mode())
	}
	if err := WriteFile(filepath.Join(dir, "r.txt"), r); err == nil {
		t.Error("WriteFile(r.txt) succeeded")
	}
	if err := WriteFile(filepath.Join(dir, "missing", "r.json"), r); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("WriteFile into a missing directory: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestNewSideAndItem(t *testing.T) {
	var h [32]byte
	h[0], h[31] = 0xab, 0x01
	file := &state.Entry{Kind: state.File, Mode: 0o100644, Size: 12, MTime: at("2026-01-02T03:04:05.5Z").UnixNano(), Hash: h, Ino: 7}
	link := &state.Entry{Kind: state.Symlink, Target: "../x", Hash: h}
	dir := &state.Entry{Kind: state.Dir, Mode: 0o2755}
	tests := []struct {
		name string
		e    *state.Entry
		want *Side
	}{
		{"absent", nil, nil},
		{"file", file, &Side{Kind: "file", Size: 12, MTime: at("2026-01-02T03:04:05.5Z"), Mode: "0644",
			Hash: "ab" + strings.Repeat("00", 30) + "01"}},
		{"symlink", link, &Side{Kind: "symlink", Target: "../x", Hash: "ab" + strings.Repeat("00", 30) + "01"}},
		{"dir", dir, &Side{Kind: "dir", Mode: "2755"}},
	}
	for _, tc := range tests {
		if got := NewSide(tc.e); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: NewSide = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	it := &reconcile.Item{Path: "a/b", One: file, Two: nil, Base: file, Action: reconcile.Skip, Reason: "--no-deletion on side 1"}
	got := NewItem(it, StatusSkipped, "")
	if got.Path != "a/b" || got.Action != "skip" || got.Reason != "--no-deletion on side 1" || got.Side2 != nil || got.Side1 == nil || got.Base == nil {
		t.Errorf("NewItem = %+v", got)
	}
	if got := NewItem(it, StatusFailed, "disk full"); got.Reason != "disk full" {
		t.Errorf("NewItem kept the plan's reason over the given one: %q", got.Reason)
	}
}

func TestUnifiedDiff(t *testing.T) {
	big := bytes.Repeat([]byte("x\n"), maxDiffInput/2+1)
	nul := append(bytes.Repeat([]byte("a"), 100), 0)
	lateNul := append(bytes.Repeat([]byte("a\n"), sniffLen), 0)
	tests := []struct {
		name         string
		a, b         string
		nameA, nameB string
		text         bool
		contains     []string
	}{
		{"edit", "one\ntwo\nthree\n", "one\n2\nthree\n", "1/f", "2/f", true,
			[]string{"--- 1/f\n", "+++ 2/f\n", "@@ -1,3 +1,3 @@\n", "-two\n", "+2\n", " one\n"}},
		{"equal", "same\n", "same\n", "a", "b", true, nil},
		{"no final newline", "a", "b", "a", "b", true, []string{"-a\n", "+b\n", `\ No newline at end of file`}},
		{"created from empty", "", "new\n", "a", "b", true, []string{"+new\n"}},
		{"utf-8", "日本\n", "日本語\n", "a", "b", true, []string{"-日本\n", "+日本語\n"}},
		{"invalid utf-8", "caf\xe9\n", "cafe\n", "a", "b", true, []string{"-caf\uFFFD\n"}},
		{"label with newline", "a\n", "b\n", "1/x\ny", "2/x\ny", true, []string{`--- 1/x\ny` + "\n"}},
		{"binary", string(nul), "text\n", "a", "b", false, nil},
		{"binary other side", "text\n", string(nul), "a", "b", false, nil},
		{"NUL after the first 8 KiB", string(lateNul), "a\n", "a", "b", true, []string{"@@"}},
		{"too large", string(big), "x\n", "a", "b", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := UnifiedDiff([]byte(tc.a), []byte(tc.b), tc.nameA, tc.nameB)
			if ok != tc.text {
				t.Fatalf("text = %v, want %v", ok, tc.text)
			}
			if !tc.text || tc.contains == nil {
				if d != "" {
					t.Errorf("diff = %q, want empty", d)
				}
				return
			}
			for _, c := range tc.contains {
				if !strings.Contains(d, c) {
					t.Errorf("diff lacks %q:\n%s", c, d)
				}
			}
			if strings.Count(d, "\n--- ")+boolInt(strings.HasPrefix(d, "--- ")) != 1 {
				t.Errorf("diff should have exactly one --- header:\n%s", d)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func FuzzReadJSON(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sample()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"schema_version":1,"items":[{"path":"a","path_b64":"YQ=="}]}`))
	f.Add([]byte(`{"schema_version":1,"items":[{"side1":{"target_b64":"/w=="}}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever was read writes and reads back the same.
		var out bytes.Buffer
		if err := WriteJSON(&out, r); err != nil {
			t.Fatalf("WriteJSON of a report ReadJSON accepted: %v", err)
		}
		again, err := ReadJSON(&out)
		if err != nil {
			t.Fatalf("ReadJSON of WriteJSON output: %v\n%s", err, out.String())
		}
		if len(again.Items) != len(r.Items) || again.Root1 != r.Root1 || again.Root2 != r.Root2 {
			t.Fatalf("round trip changed the report")
		}
		for i := range r.Items {
			if again.Items[i].Path != r.Items[i].Path {
				t.Fatalf("item %d path %q became %q", i, r.Items[i].Path, again.Items[i].Path)
			}
		}
	})
}

// TestStoppedRun checks that a run that stopped says why in every format
// that shows the run, and that JSON reads it back.
func TestStoppedRun(t *testing.T) {
	start := time.Date(2026, 12, 3, 2, 0, 0, 0, time.UTC)
	r := &Report{Root1: "/a", Root2: "web2:/b", Run: RunInfo{Start: start, End: start.Add(time.Second),
		ExitCode: 3, Error: "root /a does not exist <b>"}}
	var js, md, ht bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"error": "root /a does not exist \u003cb\u003e"`) {
		t.Errorf("JSON does not carry the error:\n%s", js.String())
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Run.Error != r.Run.Error || back.Run.ExitCode != 3 {
		t.Errorf("read back: %v, run %+v", err, back.Run)
	}
	if err := WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "- **Stopped:** root /a does not exist") {
		t.Errorf("Markdown does not say why the run stopped:\n%s", md.String())
	}
	if err := WriteHTML(&ht, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ht.String(), "The run stopped:</b> root /a does not exist &lt;b&gt;") {
		t.Errorf("HTML does not say (escaped) why the run stopped")
	}
	js.Reset()
	r.Run.Error = ""
	if err := WriteJSON(&js, r); err != nil || strings.Contains(js.String(), `"error"`) {
		t.Errorf("a finished run's JSON has an error field (%v):\n%s", err, js.String())
	}
}

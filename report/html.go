package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
)

//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Parse(htmlSource))

// htmlView is what the HTML template renders: the report with every
// string already made displayable.
type htmlView struct {
	Version                    int
	Root1, Root2               string
	Generated                  string
	HasRun                     bool
	RunStart, Duration         string
	ExitCode                   int
	ExitClass                  string
	Error                      string
	DryRun, AllRuns            bool
	Conflicts, Skipped, Failed int
	Propagated                 int
	Bytes                      string
	Items                      []htmlItem
}

type htmlItem struct {
	Index                int
	Path, Status, Action string
	Arrow, Reason        string
	FirstSeen            string
	FirstSort            int64
	TimesSeen            int
	Base                 *htmlSide
	Side1, Side2         htmlSide
	Diff                 []diffLine
	DiffNote             string
}

type htmlSide struct {
	Title, Root string
	Absent      bool
	Kind        string
	Size        string
	MTimeShort  string
	Sort        int64
	Fields      []htmlField
}

type htmlField struct {
	Label, Value  string
	Mono, Changed bool
}

type diffLine struct{ Class, Text string }

// WriteHTML writes r as one self-contained HTML page: inline CSS and
// JavaScript, no external resources. The table can be sorted by clicking a
// column header and filtered by a text box and by status; clicking a row
// shows both sides in full and, when Item.Diff is set, the coloured diff.
// The view (filter, hidden statuses, sort order, all rows expanded) is kept
// in the URL fragment (#q=...&hide=...&sort=...&dir=...&expand=1) so a link
// can point at it. Every string goes through html/template.
func WriteHTML(w io.Writer, r *Report) error {
	if err := htmlTemplate.Execute(w, newHTMLView(r)); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}

func newHTMLView(r *Report) *htmlView {
	v := &htmlView{
		Version:    r.version(),
		Root1:      displayText(r.Root1),
		Root2:      displayText(r.Root2),
		Generated:  humanTime(r.Generated),
		HasRun:     !r.Run.Start.IsZero(),
		RunStart:   humanTime(r.Run.Start),
		Duration:   runDuration(r.Run),
		ExitCode:   r.Run.ExitCode,
		ExitClass:  exitClass(r.Run.ExitCode),
		Error:      displayText(r.Run.Error),
		DryRun:     r.Run.DryRun,
		AllRuns:    r.AllRuns,
		Conflicts:  r.Count(StatusConflict),
		Skipped:    r.Count(StatusSkipped),
		Failed:     r.Count(StatusFailed),
		Propagated: r.Run.Propagated,
		Bytes:      humanize.IBytes(uint64(max(r.Run.Bytes, 0))),
		Items:      make([]htmlItem, len(r.Items)),
	}
	if v.Generated == "" {
		v.Generated = humanTime(time.Now())
	}
	for i := range r.Items {
		it := &r.Items[i]
		hi := htmlItem{
			Index:     i,
			Path:      state.Display(it.Path),
			Status:    displayText(it.Status),
			Action:    displayText(it.Action),
			Arrow:     arrow(it.Action),
			Reason:    displayText(it.Reason),
			FirstSeen: humanTime(it.FirstSeen),
			TimesSeen: it.TimesSeen,
			Side1:     newHTMLSide("Side 1", v.Root1, it.Side1, it.Side2),
			Side2:     newHTMLSide("Side 2", v.Root2, it.Side2, it.Side1),
			Diff:      diffLines(it.Diff),
		}
		if !it.FirstSeen.IsZero() {
			hi.FirstSort = it.FirstSeen.Unix()
		}
		if it.Base != nil {
			b := newHTMLSide("Ancestor", "last agreed state", it.Base, nil)
			hi.Base = &b
		}
		if hi.Diff == nil {
			hi.DiffNote = diffNote(it)
		}
		v.Items[i] = hi
	}
	return v
}

func exitClass(code int) string {
	switch code {
	case 0:
		return "ok"
	case 1:
		return "skipped"
	case 2:
		return "failed"
	}
	return "fatal"
}

// arrow shows an action the way a Unison user reads it.
func arrow(action string) string {
	for _, a := range []reconcile.Action{reconcile.OneToTwo, reconcile.TwoToOne, reconcile.Conflict, reconcile.Skip, reconcile.Record} {
		if a.String() == action {
			return a.Arrow()
		}
	}
	return displayText(action)
}

// newHTMLSide describes s; other is the opposite side, used to mark the
// fields that differ.
func newHTMLSide(title, root string, s, other *Side) htmlSide {
	h := htmlSide{Title: title, Root: root, Sort: -1}
	if s == nil {
		h.Absent = true
		return h
	}
	h.Kind = s.Kind
	h.Sort = s.Size
	if s.Kind == "file" {
		h.Size = humanize.IBytes(uint64(max(s.Size, 0)))
	}
	if !s.MTime.IsZero() {
		h.MTimeShort = s.MTime.UTC().Format("2006-01-02 15:04")
	}
	changed := func(f func(*Side) string) bool {
		return other != nil && f(s) != f(other)
	}
	add := func(label, value string, mono bool, f func(*Side) string) {
		if value == "" {
			return
		}
		h.Fields = append(h.Fields, htmlField{Label: label, Value: value, Mono: mono, Changed: f != nil && changed(f)})
	}
	add("Kind", s.Kind, false, func(x *Side) string { return x.Kind })
	if s.Kind == "file" {
		add("Size", sizeText(s.Size), false, func(x *Side) string { return strconv.FormatInt(x.Size, 10) })
	}
	if !s.MTime.IsZero() {
		add("Modified", s.MTime.UTC().Format("2006-01-02 15:04:05.999999999 UTC"), false,
			func(x *Side) string { return x.MTime.UTC().String() })
	}
	add("Mode", s.Mode, true, func(x *Side) string { return x.Mode })
	add("Target", displayText(s.Target), true, func(x *Side) string { return x.Target })
	add("BLAKE3", s.Hash, true, func(x *Side) string { return x.Hash })
	return h
}

// diffLines splits a unified diff into classed lines for colouring.
func diffLines(d string) []diffLine {
	if d == "" {
		return nil
	}
	d = strings.TrimSuffix(d, "\n")
	lines := strings.Split(d, "\n")
	out := make([]diffLine, len(lines))
	for i, l := range lines {
		c := "ctx"
		switch {
		case strings.HasPrefix(l, "+++ "), strings.HasPrefix(l, "--- "):
			c = "file"
		case strings.HasPrefix(l, "@@"):
			c = "hunk"
		case strings.HasPrefix(l, "+"):
			c = "add"
		case strings.HasPrefix(l, "-"):
			c = "del"
		case strings.HasPrefix(l, `\`):
			c = "meta"
		}
		out[i] = diffLine{Class: c, Text: l}
	}
	return out
}

// diffNote says why an item shows no diff.
func diffNote(it *Item) string {
	a, b := it.Side1, it.Side2
	switch {
	case a == nil || b == nil:
		return "No diff: the path is absent on one side."
	case a.Kind != "file" || b.Kind != "file":
		if a.Kind == b.Kind {
			return "No diff: not a regular file."
		}
		return fmt.Sprintf("No diff: a %s on side 1 and a %s on side 2.", displayText(a.Kind), displayText(b.Kind))
	case a.Hash != "" && a.Hash == b.Hash:
		return "Same contents on both sides; only properties differ."
	}
	return "No diff: binary or large files, or the contents were not available when the report was made."
}

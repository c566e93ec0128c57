package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/concord-sync/concord/archive/state"
)

// WriteMarkdown writes r as a Markdown document: a heading, the run's
// summary and one table row per item. Paths and reasons are shown as
// state.Display shows them on a terminal (control characters and invalid
// bytes escaped), then escaped for Markdown, so a name can neither break
// the table nor inject markup. The diff is not included (use HTML).
func WriteMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	b.WriteString("# concord conflict report\n\n")
	fmt.Fprintf(&b, "- **Roots:** %s ⇄ %s\n", mdText(r.Root1), mdText(r.Root2))
	if !r.Run.Start.IsZero() {
		fmt.Fprintf(&b, "- **Run:** %s, %s, exit code %d%s\n", humanTime(r.Run.Start),
			runDuration(r.Run), r.Run.ExitCode, dryRun(r.Run))
	}
	if r.Run.Error != "" {
		fmt.Fprintf(&b, "- **Stopped:** %s\n", mdText(r.Run.Error))
	}
	fmt.Fprintf(&b, "- **Items:** %s\n", runCounts(r))
	scope := "the last run"
	if r.AllRuns {
		scope = "every run in the history"
	}
	fmt.Fprintf(&b, "- **Covers:** %s\n", scope)
	if !r.Generated.IsZero() {
		fmt.Fprintf(&b, "- **Generated:** %s\n", humanTime(r.Generated))
	}
	b.WriteString("\n")
	if len(r.Items) == 0 {
		b.WriteString("No unresolved conflicts or failures.\n")
	} else {
		b.WriteString("| Path | Status | Action | Reason | First seen | Runs | Side 1 | Side 2 |\n")
		b.WriteString("|---|---|---|---|---|--:|---|---|\n")
		for i := range r.Items {
			it := &r.Items[i]
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
				mdText(it.Path), mdText(it.Status), mdAction(it.Action),
				mdText(it.Reason), mdText(humanTime(it.FirstSeen)), timesSeen(it.TimesSeen),
				mdSide(it.Side1), mdSide(it.Side2))
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write Markdown report: %w", err)
	}
	return nil
}

// mdSide summarises one side in a table cell.
func mdSide(s *Side) string {
	if s == nil {
		return "absent"
	}
	parts := []string{mdText(s.Kind)}
	if s.Kind == "file" {
		parts = append(parts, mdText(sizeText(s.Size)))
	}
	if !s.MTime.IsZero() {
		parts = append(parts, mdText(humanTime(s.MTime)))
	}
	if s.Mode != "" {
		parts = append(parts, mdText(s.Mode))
	}
	if s.Target != "" {
		parts = append(parts, "→ "+mdText(s.Target))
	}
	if s.Hash != "" {
		parts = append(parts, "`"+s.Hash+"`")
	}
	return strings.Join(parts, " · ")
}

// mdAction shows a known action as its arrow in a code span.
func mdAction(action string) string {
	if a := arrow(action); a != displayText(action) {
		return "`" + a + "`"
	}
	return mdText(action)
}

// mdText makes s safe inside a Markdown table cell: control characters are
// escaped as on a terminal and every character Markdown could read as
// markup (or as a cell boundary) is backslash-escaped.
func mdText(s string) string {
	if s == "" {
		return ""
	}
	s = displayText(s)
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '|', '~', '&', '#', '!', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// displayText escapes control characters and invalid UTF-8 in free text as
// state.Display does for paths (an empty string stays empty).
func displayText(s string) string {
	if s == "" {
		return ""
	}
	return state.Display(s)
}

func humanTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func timesSeen(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

func sizeText(n int64) string {
	if n < 1024 {
		return humanize.Comma(n) + " B"
	}
	return fmt.Sprintf("%s (%s B)", humanize.IBytes(uint64(n)), humanize.Comma(n))
}

func runDuration(r RunInfo) string {
	if r.End.IsZero() || r.End.Before(r.Start) {
		return "unfinished"
	}
	return "took " + r.End.Sub(r.Start).Round(time.Millisecond).String()
}

func dryRun(r RunInfo) string {
	if r.DryRun {
		return " (dry run)"
	}
	return ""
}

func runCounts(r *Report) string {
	return fmt.Sprintf("%s, %d skipped, %d failed in this report; the run propagated %s (%s)",
		plural(r.Count(StatusConflict), "conflict"), r.Count(StatusSkipped), r.Count(StatusFailed),
		plural(r.Run.Propagated, "item"), humanize.IBytes(uint64(max(r.Run.Bytes, 0))))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"
)

// CSVHeader is the header row of a CSV report. One row follows per item;
// an absent side has kind "absent" and empty fields. Times are RFC 3339 in
// UTC with nanoseconds; path is text (see Text) and path_b64 the exact
// bytes. The diff is not part of the CSV (use JSON or HTML).
var CSVHeader = []string{
	"path", "status", "action", "reason", "first_seen", "times_seen",
	"side1_kind", "side1_size", "side1_mtime", "side1_mode", "side1_hash", "side1_target",
	"side2_kind", "side2_size", "side2_mtime", "side2_mode", "side2_hash", "side2_target",
	"path_b64",
}

// WriteCSV writes r as CSV (RFC 4180): the CSVHeader row, then one row per
// item. Run information is not repeated on every row; use JSON for it.
func WriteCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("write CSV report: %w", err)
	}
	row := make([]string, 0, len(CSVHeader))
	for i := range r.Items {
		it := &r.Items[i]
		row = append(row[:0], Text(it.Path), it.Status, it.Action, it.Reason,
			csvTime(it.FirstSeen), strconv.Itoa(it.TimesSeen))
		row = appendCSVSide(row, it.Side1)
		row = appendCSVSide(row, it.Side2)
		row = append(row, b64(it.Path))
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write CSV report: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write CSV report: %w", err)
	}
	return nil
}

func appendCSVSide(row []string, s *Side) []string {
	if s == nil {
		return append(row, "absent", "", "", "", "", "")
	}
	return append(row, s.Kind, strconv.FormatInt(s.Size, 10), csvTime(s.MTime), s.Mode, s.Hash, Text(s.Target))
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

package report

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Formats lists the report formats, as accepted by Write and --format.
var Formats = []string{"json", "csv", "md", "html"}

// Write writes r in format: "json", "csv", "md" (or "markdown") or "html".
func Write(w io.Writer, format string, r *Report) error {
	switch strings.ToLower(format) {
	case "json":
		return WriteJSON(w, r)
	case "csv":
		return WriteCSV(w, r)
	case "md", "markdown":
		return WriteMarkdown(w, r)
	case "html":
		return WriteHTML(w, r)
	}
	return fmt.Errorf("unknown report format %q; want one of %s", format, strings.Join(Formats, ", "))
}

// FormatFromPath picks the format from a file name's extension: .json,
// .csv, .md (or .markdown) and .html (or .htm), in any case.
func FormatFromPath(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return "json", nil
	case ".csv":
		return "csv", nil
	case ".md", ".markdown":
		return "md", nil
	case ".html", ".htm":
		return "html", nil
	}
	return "", fmt.Errorf("report file %s: cannot tell the format from the extension; end the name with .json, .csv, .md or .html", path)
}

// WriteFile writes r to path in the format its extension names. The file is
// replaced atomically (a temporary file in the same directory, flushed and
// renamed), so a reader never sees half a report. A new file gets mode
// 0644; a replaced one keeps its mode.
func WriteFile(path string, r *Report) (err error) {
	format, err := FormatFromPath(path)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriter(f)
	if err = Write(bw, format, r); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	mode := os.FileMode(0o644)
	if fi, serr := os.Stat(path); serr == nil {
		mode = fi.Mode().Perm()
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

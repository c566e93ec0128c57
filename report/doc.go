// Package report turns the unresolved items of a sync (conflicts, skipped
// and failed items) into a report a person or a script can read: JSON with
// a versioned schema (docs/report-schema.md), CSV with a header row, a
// Markdown table, or one self-contained HTML page with a sortable,
// filterable table and the diff of text files.
//
// The Report type is the data model shared by every format. It is filled by
// the caller (from a run's outcomes or from the run history in the archive);
// this package only formats it, and never truncates: every item, every
// hash and every byte of a path is written out.
//
// Paths are byte strings. Where a format needs text, invalid UTF-8 bytes
// are written as \xNN; the JSON and CSV formats add the exact bytes in
// base64 beside every path so that nothing is lost.
package report

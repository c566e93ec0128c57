package report

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// The JSON shape of a report, documented in docs/report-schema.md. Every
// byte-string field X (a root, a path, a symlink target) is written twice:
// X as text (exact when the bytes are valid UTF-8, otherwise with each
// invalid byte written as \xNN) and X_b64 with the exact bytes in standard
// base64. Readers that need the exact name use X_b64.
type jsonReport struct {
	SchemaVersion int        `json:"schema_version"`
	Generated     time.Time  `json:"generated"`
	Root1         string     `json:"root1"`
	Root1B64      string     `json:"root1_b64"`
	Root2         string     `json:"root2"`
	Root2B64      string     `json:"root2_b64"`
	AllRuns       bool       `json:"all_runs"`
	Run           jsonRun    `json:"run"`
	Items         []jsonItem `json:"items"`
}

type jsonRun struct {
	Start      time.Time `json:"start,omitzero"`
	End        time.Time `json:"end,omitzero"`
	ExitCode   int       `json:"exit_code"`
	DryRun     bool      `json:"dry_run"`
	Propagated int       `json:"propagated"`
	Conflicts  int       `json:"conflicts"`
	Skipped    int       `json:"skipped"`
	Failed     int       `json:"failed"`
	Bytes      int64     `json:"bytes"`
	Error      string    `json:"error,omitempty"`
}

type jsonItem struct {
	Path      string    `json:"path"`
	PathB64   *string   `json:"path_b64"`
	Status    string    `json:"status"`
	Action    string    `json:"action"`
	Reason    string    `json:"reason"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	TimesSeen int       `json:"times_seen"`
	Base      *jsonSide `json:"base"`
	Side1     *jsonSide `json:"side1"`
	Side2     *jsonSide `json:"side2"`
	Diff      string    `json:"diff,omitempty"`
}

type jsonSide struct {
	Kind      string    `json:"kind"`
	Size      int64     `json:"size"`
	MTime     time.Time `json:"mtime,omitzero"`
	Mode      string    `json:"mode,omitempty"`
	Hash      string    `json:"hash,omitempty"`
	Target    string    `json:"target,omitempty"`
	TargetB64 string    `json:"target_b64,omitempty"`
}

// Text returns s as valid UTF-8 text: s itself when it is valid UTF-8,
// otherwise s with every byte that is not part of a valid sequence written
// as \xNN. It is the "path" field of JSON and CSV reports; only the _b64
// field is exact for such names.
func Text(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[0])
		} else {
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// exact returns the bytes of a byte-string field from its _b64 sibling, or
// the text when the sibling is absent.
func exact(field, text string, enc *string) (string, error) {
	if enc == nil {
		return text, nil
	}
	raw, err := base64.StdEncoding.DecodeString(*enc)
	if err != nil {
		return "", fmt.Errorf("%s_b64 %q: %w", field, *enc, err)
	}
	return string(raw), nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func toJSONSide(s *Side) *jsonSide {
	if s == nil {
		return nil
	}
	j := &jsonSide{Kind: s.Kind, Size: s.Size, MTime: utc(s.MTime), Mode: s.Mode, Hash: s.Hash}
	if s.Target != "" {
		j.Target = Text(s.Target)
		j.TargetB64 = b64(s.Target)
	}
	return j
}

func fromJSONSide(j *jsonSide) (*Side, error) {
	if j == nil {
		return nil, nil
	}
	s := &Side{Kind: j.Kind, Size: j.Size, MTime: j.MTime, Mode: j.Mode, Hash: j.Hash, Target: j.Target}
	if j.TargetB64 != "" {
		t, err := exact("target", j.Target, &j.TargetB64)
		if err != nil {
			return nil, err
		}
		s.Target = t
	}
	return s, nil
}

// MarshalJSON writes r in the documented schema (docs/report-schema.md).
func (r Report) MarshalJSON() ([]byte, error) {
	j := jsonReport{
		SchemaVersion: r.version(),
		Generated:     utc(r.Generated),
		Root1:         Text(r.Root1),
		Root1B64:      b64(r.Root1),
		Root2:         Text(r.Root2),
		Root2B64:      b64(r.Root2),
		AllRuns:       r.AllRuns,
		Run: jsonRun{
			Start: utc(r.Run.Start), End: utc(r.Run.End), ExitCode: r.Run.ExitCode,
			DryRun: r.Run.DryRun, Propagated: r.Run.Propagated, Conflicts: r.Run.Conflicts,
			Skipped: r.Run.Skipped, Failed: r.Run.Failed, Bytes: r.Run.Bytes, Error: r.Run.Error,
		},
		Items: make([]jsonItem, len(r.Items)),
	}
	for i := range r.Items {
		it := &r.Items[i]
		enc := b64(it.Path)
		j.Items[i] = jsonItem{
			Path: Text(it.Path), PathB64: &enc, Status: it.Status, Action: it.Action,
			Reason: it.Reason, FirstSeen: utc(it.FirstSeen), TimesSeen: it.TimesSeen,
			Base: toJSONSide(it.Base), Side1: toJSONSide(it.Side1), Side2: toJSONSide(it.Side2),
			Diff: it.Diff,
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a report written in the documented schema. Paths,
// roots and targets are taken from their _b64 fields when present. A
// schema_version newer than SchemaVersion is refused.
func (r *Report) UnmarshalJSON(data []byte) error {
	var j struct {
		jsonReport
		Root1B64 *string `json:"root1_b64"`
		Root2B64 *string `json:"root2_b64"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	switch {
	case j.SchemaVersion < 1:
		return errors.New("not a concord report: schema_version missing or below 1")
	case j.SchemaVersion > SchemaVersion:
		return fmt.Errorf("report schema_version %d is newer than this concord understands (%d); upgrade concord", j.SchemaVersion, SchemaVersion)
	}
	out := Report{
		SchemaVersion: j.SchemaVersion,
		Generated:     j.Generated,
		AllRuns:       j.AllRuns,
		Run: RunInfo{
			Start: j.Run.Start, End: j.Run.End, ExitCode: j.Run.ExitCode, DryRun: j.Run.DryRun,
			Propagated: j.Run.Propagated, Conflicts: j.Run.Conflicts, Skipped: j.Run.Skipped,
			Failed: j.Run.Failed, Bytes: j.Run.Bytes, Error: j.Run.Error,
		},
	}
	var err error
	if out.Root1, err = exact("root1", j.Root1, j.Root1B64); err != nil {
		return err
	}
	if out.Root2, err = exact("root2", j.Root2, j.Root2B64); err != nil {
		return err
	}
	if len(j.Items) > 0 {
		out.Items = make([]Item, len(j.Items))
	}
	for i := range j.Items {
		ji := &j.Items[i]
		it := Item{Status: ji.Status, Action: ji.Action, Reason: ji.Reason,
			FirstSeen: ji.FirstSeen, TimesSeen: ji.TimesSeen, Diff: ji.Diff}
		if it.Path, err = exact("path", ji.Path, ji.PathB64); err != nil {
			return fmt.Errorf("item %d: %w", i+1, err)
		}
		if it.Base, err = fromJSONSide(ji.Base); err != nil {
			return fmt.Errorf("item %d base: %w", i+1, err)
		}
		if it.Side1, err = fromJSONSide(ji.Side1); err != nil {
			return fmt.Errorf("item %d side1: %w", i+1, err)
		}
		if it.Side2, err = fromJSONSide(ji.Side2); err != nil {
			return fmt.Errorf("item %d side2: %w", i+1, err)
		}
		out.Items[i] = it
	}
	*r = out
	return nil
}

// WriteJSON writes r as one indented JSON document (docs/report-schema.md).
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON. Fields it does not know
// are ignored, so reports from a later concord with the same schema
// version still read.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("read JSON report: %w", err)
	}
	return &r, nil
}

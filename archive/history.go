package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/concord-sync/concord/archive/state"
)

// Run is one row of run history.
type Run struct {
	ID                          int64
	Start, End                  time.Time
	Root1, Root2                string
	Propagated, Skipped, Failed int
	Bytes                       int64
	ExitCode                    int
	DryRun                      bool
}

// RunItem is an item of a run that needs a person: a conflict, a skipped
// action or a failure, with both sides' state and since when it stands.
type RunItem struct {
	Path         string
	Status       string // "conflict", "skipped" or "failed"
	Action       string
	Reason       string
	Side1, Side2 *state.Entry
	// FirstSeen and TimesSeen tell since when, and in how many runs, the
	// path has needed attention (filled in by Items).
	FirstSeen time.Time
	TimesSeen int
}

// BeginRun records the start of a run and returns its id.
func (d *DB) BeginRun(ctx context.Context, r Run) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res, err := d.db.ExecContext(ctx, "INSERT INTO runs(start_ns, root1, root2, dry_run) VALUES(?,?,?,?)",
		r.Start.UnixNano(), r.Root1, r.Root2, r.DryRun)
	if err != nil {
		return 0, d.wrap("write", err)
	}
	return res.LastInsertId()
}

// FinishRun completes run r (r.ID from BeginRun) with its counts and the
// items that need a person, and updates the standing problems: a path seen
// again keeps its first-seen time; a path no longer listed is resolved.
func (d *DB) FinishRun(ctx context.Context, r Run, items []RunItem) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return d.wrap("write", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET end_ns=?, propagated=?, skipped=?, failed=?, bytes=?, exit_code=? WHERE id=?`,
		r.End.UnixNano(), r.Propagated, r.Skipped, r.Failed, r.Bytes, r.ExitCode, r.ID); err != nil {
		return d.wrap("write", err)
	}
	ins, err := tx.PrepareContext(ctx, "INSERT OR REPLACE INTO run_items(run_id, path, status, action, reason, side1, side2) VALUES(?,?,?,?,?,?,?)")
	if err != nil {
		return d.wrap("write", err)
	}
	defer ins.Close()
	prob, err := tx.PrepareContext(ctx, `INSERT INTO problems(path, status, first_seen, last_seen, times_seen) VALUES(?,?,?,?,1)
		ON CONFLICT(path) DO UPDATE SET status=excluded.status, last_seen=excluded.last_seen, times_seen=times_seen+1`)
	if err != nil {
		return d.wrap("write", err)
	}
	defer prob.Close()
	now := r.End.UnixNano()
	for _, it := range items {
		s1, _ := json.Marshal(it.Side1)
		s2, _ := json.Marshal(it.Side2)
		if _, err := ins.ExecContext(ctx, r.ID, []byte(it.Path), it.Status, it.Action, it.Reason, s1, s2); err != nil {
			return d.wrap("write", err)
		}
		if !r.DryRun {
			if _, err := prob.ExecContext(ctx, []byte(it.Path), it.Status, now, now); err != nil {
				return d.wrap("write", err)
			}
		}
	}
	if !r.DryRun {
		// Problems not seen in this run are resolved.
		if _, err := tx.ExecContext(ctx, "DELETE FROM problems WHERE last_seen <> ?", now); err != nil {
			return d.wrap("write", err)
		}
	}
	// Keep the history bounded: the last 1000 runs.
	if _, err := tx.ExecContext(ctx, "DELETE FROM runs WHERE id <= (SELECT max(id) FROM runs) - 1000"); err != nil {
		return d.wrap("write", err)
	}
	return d.wrap("commit", tx.Commit())
}

// Runs returns the recorded runs, newest first; with limit > 0 at most that
// many.
func (d *DB) Runs(ctx context.Context, limit int) ([]Run, error) {
	q := "SELECT id, start_ns, end_ns, root1, root2, propagated, skipped, failed, bytes, exit_code, dry_run FROM runs ORDER BY id DESC"
	if limit > 0 {
		q += " LIMIT ?"
	} else {
		q += " LIMIT -1 OFFSET ?"
		limit = 0
	}
	rows, err := d.db.QueryContext(ctx, q, limit)
	if err != nil {
		return nil, d.wrap("read", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		var r Run
		var s, e int64
		if err := rows.Scan(&r.ID, &s, &e, &r.Root1, &r.Root2, &r.Propagated, &r.Skipped, &r.Failed, &r.Bytes, &r.ExitCode, &r.DryRun); err != nil {
			return nil, d.wrap("read", err)
		}
		r.Start = time.Unix(0, s)
		if e != 0 {
			r.End = time.Unix(0, e)
		}
		out = append(out, r)
	}
	return out, d.wrap("read", rows.Err())
}

// Items returns the items recorded for run id, with first-seen times and
// counts from the standing problems.
func (d *DB) Items(ctx context.Context, id int64) ([]RunItem, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT i.path, i.status, i.action, i.reason, i.side1, i.side2,
		coalesce(p.first_seen, r.start_ns), coalesce(p.times_seen, 1)
		FROM run_items i JOIN runs r ON r.id = i.run_id LEFT JOIN problems p ON p.path = i.path AND p.first_seen <= r.end_ns
		WHERE i.run_id = ? ORDER BY i.path`, id)
	if err != nil {
		return nil, d.wrap("read", err)
	}
	defer rows.Close()
	var out []RunItem
	for rows.Next() {
		var it RunItem
		var path, s1, s2 []byte
		var first int64
		if err := rows.Scan(&path, &it.Status, &it.Action, &it.Reason, &s1, &s2, &first, &it.TimesSeen); err != nil {
			return nil, d.wrap("read", err)
		}
		it.Path = string(path)
		it.FirstSeen = time.Unix(0, first)
		if err := decodeSide(s1, &it.Side1); err != nil {
			return nil, d.wrap("read", err)
		}
		if err := decodeSide(s2, &it.Side2); err != nil {
			return nil, d.wrap("read", err)
		}
		out = append(out, it)
	}
	return out, d.wrap("read", rows.Err())
}

func decodeSide(b []byte, e **state.Entry) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return json.Unmarshal(b, e)
}

// LastRun returns the newest finished run (ok false when there is none).
func (d *DB) LastRun(ctx context.Context) (Run, bool, error) {
	row := d.db.QueryRowContext(ctx, "SELECT id FROM runs WHERE end_ns <> 0 ORDER BY id DESC LIMIT 1")
	var id int64
	if err := row.Scan(&id); errors.Is(err, sql.ErrNoRows) {
		return Run{}, false, nil
	} else if err != nil {
		return Run{}, false, d.wrap("read", err)
	}
	runs, err := d.Runs(ctx, 0)
	if err != nil {
		return Run{}, false, err
	}
	for _, r := range runs {
		if r.ID == id {
			return r, true, nil
		}
	}
	return Run{}, false, nil
}

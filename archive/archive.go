package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/zeebo/blake3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/concord-sync/concord/archive/state"
)

// SchemaVersion is the current version of the archive schema, stored in
// SQLite's user_version.
const SchemaVersion = 2

// ErrCorrupt marks an archive that SQLite cannot read.
var ErrCorrupt = errors.New("archive is damaged")

// DB is one side's archive for one pair. Reads may run concurrently; writes
// go through a single connection, one transaction at a time.
type DB struct {
	path string
	db   *sql.DB

	mu     sync.Mutex // serialises writers and guards digest
	digest [32]byte
	count  int64

	childStmt *sql.Stmt
}

// migrations brings a database from version i to i+1.
var migrations = []string{
	// 0 → 1: entries and metadata.
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
	 CREATE TABLE entries (
		dir    BLOB NOT NULL,
		name   BLOB NOT NULL,
		kind   INTEGER NOT NULL,
		mode   INTEGER NOT NULL,
		size   INTEGER NOT NULL,
		mtime  INTEGER NOT NULL,
		hash   BLOB NOT NULL,
		target BLOB NOT NULL,
		ino    INTEGER NOT NULL,
		ctime  INTEGER NOT NULL,
		PRIMARY KEY (dir, name)
	 ) WITHOUT ROWID;`,
	// 1 → 2: run history and standing problems for reports.
	`CREATE TABLE runs (
		id         INTEGER PRIMARY KEY,
		start_ns   INTEGER NOT NULL,
		end_ns     INTEGER NOT NULL DEFAULT 0,
		root1      TEXT NOT NULL,
		root2      TEXT NOT NULL,
		propagated INTEGER NOT NULL DEFAULT 0,
		skipped    INTEGER NOT NULL DEFAULT 0,
		failed     INTEGER NOT NULL DEFAULT 0,
		bytes      INTEGER NOT NULL DEFAULT 0,
		exit_code  INTEGER NOT NULL DEFAULT -1,
		dry_run    INTEGER NOT NULL DEFAULT 0
	 );
	 CREATE TABLE run_items (
		run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
		path   BLOB NOT NULL,
		status TEXT NOT NULL,
		action TEXT NOT NULL,
		reason TEXT NOT NULL,
		side1  BLOB,
		side2  BLOB,
		PRIMARY KEY (run_id, path)
	 ) WITHOUT ROWID;
	 CREATE TABLE problems (
		path       BLOB PRIMARY KEY,
		status     TEXT NOT NULL,
		first_seen INTEGER NOT NULL,
		last_seen  INTEGER NOT NULL,
		times_seen INTEGER NOT NULL
	 ) WITHOUT ROWID;`,
}

// Open opens or creates the archive at path. With readOnly set, a missing
// file is not created and nothing is written (dry runs, reports).
func Open(path string, readOnly bool) (*DB, error) {
	if readOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open archive %s: %w", path, err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", filepath.Dir(path), err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	if readOnly {
		dsn = "file:" + path + "?mode=ro&_pragma=busy_timeout(10000)"
	}
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(8)
	sdb.SetMaxIdleConns(8)
	d := &DB{path: path, db: sdb}
	if err := d.init(readOnly); err != nil {
		sdb.Close()
		return nil, d.wrap("open", err)
	}
	return d, nil
}

// wrap turns SQLite corruption errors into a message that says what to do.
func (d *DB) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %s %s: %v; nothing was changed. Move it aside (mv %q %q.damaged) and run again: "+
				"without an archive the next run is a first sync, which never deletes and reports every difference as a conflict",
				ErrCorrupt, what, d.path, err, d.path, d.path)
		}
	}
	if strings.Contains(err.Error(), "malformed") || strings.Contains(err.Error(), "not a database") {
		return fmt.Errorf("%w: %s %s: %v; nothing was changed. Move it aside (mv %q %q.damaged) and run again",
			ErrCorrupt, what, d.path, err, d.path, d.path)
	}
	return fmt.Errorf("%s archive %s: %w", what, d.path, err)
}

func (d *DB) init(readOnly bool) error {
	ctx := context.Background()
	var version int
	if err := d.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this concord understands (%d): upgrade concord", version, SchemaVersion)
	}
	if version < SchemaVersion {
		if readOnly {
			if version == 0 {
				return fmt.Errorf("not a concord archive (empty schema)")
			}
			return fmt.Errorf("schema version %d is older than %d: run a sync once to migrate it", version, SchemaVersion)
		}
		for v := version; v < SchemaVersion; v++ {
			tx, err := d.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				tx.Rollback()
				return fmt.Errorf("migrate schema %d→%d: %w", v, v+1, err)
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
				tx.Rollback()
				return err
			}
			if err := tx.Commit(); err != nil {
				return err
			}
		}
	}
	dg, err := d.Meta(ctx, "digest")
	if err != nil {
		return err
	}
	copy(d.digest[:], dg)
	if c, err := d.Meta(ctx, "count"); err != nil {
		return err
	} else if len(c) > 0 {
		fmt.Sscan(string(c), &d.count)
	}
	if d.childStmt, err = d.db.PrepareContext(ctx,
		"SELECT name, kind, mode, size, mtime, hash, target, ino, ctime FROM entries WHERE dir = ?"); err != nil {
		return err
	}
	return nil
}

// Path returns the archive's file name.
func (d *DB) Path() string { return d.path }

// Close closes the database.
func (d *DB) Close() error {
	if d.childStmt != nil {
		d.childStmt.Close()
	}
	return d.db.Close()
}

// Meta returns the value stored under key (nil when absent).
func (d *DB) Meta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := d.db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, d.wrap("read", err)
	}
	return v, nil
}

// SetMeta stores value under key.
func (d *DB) SetMeta(ctx context.Context, key string, value []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, err := d.db.ExecContext(ctx, "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value)
	return d.wrap("write", err)
}

// Digest returns the digest of every archived entry: the XOR of each
// entry's fingerprint. Two archives with equal digests agree on every path.
func (d *DB) Digest() [32]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.digest
}

// Count returns how many paths the archive records.
func (d *DB) Count() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count
}

// Fingerprint hashes everything about e that must agree between the two
// sides' archives (never the host-local inode or ctime).
func Fingerprint(path string, e *state.Entry) [32]byte {
	var buf [64]byte
	h := blake3.New()
	h.Write([]byte(path))
	b := buf[:0]
	b = append(b, 0, byte(e.Kind))
	mode, size, mtime := e.Mode&state.PermMask, e.Size, e.MTime
	switch e.Kind {
	case state.Dir:
		size, mtime = 0, 0
	case state.Symlink:
		mode, size, mtime = 0, 0, 0
	}
	b = appendUint(b, uint64(mode))
	b = appendUint(b, uint64(size))
	b = appendUint(b, uint64(mtime))
	h.Write(b)
	if e.Kind != state.Dir {
		h.Write(e.Hash[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func appendUint(b []byte, v uint64) []byte {
	for i := 0; i < 8; i++ {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func xor(dst *[32]byte, src [32]byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// Children returns the archived entries directly inside dir ("" is the
// root), keyed by name.
func (d *DB) Children(ctx context.Context, dir string) (map[string]*state.Entry, error) {
	rows, err := d.childStmt.QueryContext(ctx, []byte(dir))
	if err != nil {
		return nil, d.wrap("read", err)
	}
	defer rows.Close()
	out := make(map[string]*state.Entry)
	for rows.Next() {
		var name []byte
		e, err := scanEntry(rows, &name)
		if err != nil {
			return nil, d.wrap("read", err)
		}
		out[string(name)] = e
	}
	return out, d.wrap("read", rows.Err())
}

type scanner interface{ Scan(...any) error }

func scanEntry(rows scanner, name *[]byte) (*state.Entry, error) {
	var (
		e            state.Entry
		kind         int
		mode         int64
		hash, target []byte
		ino          int64
	)
	if err := rows.Scan(name, &kind, &mode, &e.Size, &e.MTime, &hash, &target, &ino, &e.CTime); err != nil {
		return nil, err
	}
	e.Kind, e.Mode, e.Ino, e.Target = state.Kind(kind), uint32(mode), uint64(ino), string(target)
	copy(e.Hash[:], hash)
	return &e, nil
}

// Get returns the archived entry for p (nil when absent).
func (d *DB) Get(ctx context.Context, p string) (*state.Entry, error) {
	row := d.db.QueryRowContext(ctx,
		"SELECT name, kind, mode, size, mtime, hash, target, ino, ctime FROM entries WHERE dir = ? AND name = ?",
		[]byte(state.Parent(p)), []byte(state.Base(p)))
	var name []byte
	e, err := scanEntry(row, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, d.wrap("read", err)
	}
	return e, nil
}

// subtreeRange returns the bounds of the dir column for everything strictly
// below p: dir = p, or p+"/" <= dir < p+"0" ('0' follows '/').
func subtreeArgs(p string) (string, []any) {
	if p == "" {
		return "1=1", nil
	}
	return "(dir = ? OR (dir >= ? AND dir < ?))", []any{[]byte(p), []byte(p + "/"), []byte(p + "0")}
}

// Subtree calls fn for every archived entry strictly below p, in no
// particular order.
func (d *DB) Subtree(ctx context.Context, p string, fn func(path string, e *state.Entry) error) error {
	where, args := subtreeArgs(p)
	rows, err := d.db.QueryContext(ctx,
		"SELECT dir, name, kind, mode, size, mtime, hash, target, ino, ctime FROM entries WHERE "+where, args...)
	if err != nil {
		return d.wrap("read", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dir, name []byte
		e, err := scanEntry(prefixScanner{rows, &dir}, &name)
		if err != nil {
			return d.wrap("read", err)
		}
		if err := fn(state.Join(string(dir), string(name)), e); err != nil {
			return err
		}
	}
	return d.wrap("read", rows.Err())
}

// CountBelow returns how many entries lie strictly below p.
func (d *DB) CountBelow(ctx context.Context, p string) (int64, error) {
	where, args := subtreeArgs(p)
	var n int64
	err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM entries WHERE "+where, args...).Scan(&n)
	return n, d.wrap("read", err)
}

type prefixScanner struct {
	rows *sql.Rows
	dir  *[]byte
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.rows.Scan(append([]any{p.dir}, dest...)...)
}

// All returns every archived entry sorted by state.ComparePaths. It is used
// only when two archives disagree and must be compared path by path.
func (d *DB) All(ctx context.Context) ([]string, []*state.Entry, error) {
	type pe struct {
		p string
		e *state.Entry
	}
	var all []pe
	err := d.Subtree(ctx, "", func(p string, e *state.Entry) error {
		all = append(all, pe{p, e})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(all, func(i, j int) bool { return state.ComparePaths(all[i].p, all[j].p) < 0 })
	paths := make([]string, len(all))
	entries := make([]*state.Entry, len(all))
	for i, x := range all {
		paths[i], entries[i] = x.p, x.e
	}
	return paths, entries, nil
}

// Update is one change to the archive: set Path to Entry, or forget Path
// and everything below it when Entry is nil.
type Update struct {
	Path  string
	Entry *state.Entry
}

// Apply writes updates in one transaction and keeps the digest current.
func (d *DB) Apply(ctx context.Context, ups []Update) error {
	if len(ups) == 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	digest, count := d.digest, d.count
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return d.wrap("write", err)
	}
	defer tx.Rollback()
	get, err := tx.PrepareContext(ctx, "SELECT name, kind, mode, size, mtime, hash, target, ino, ctime FROM entries WHERE dir = ? AND name = ?")
	if err != nil {
		return d.wrap("write", err)
	}
	defer get.Close()
	put, err := tx.PrepareContext(ctx, `INSERT INTO entries(dir, name, kind, mode, size, mtime, hash, target, ino, ctime)
		VALUES(?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(dir, name) DO UPDATE SET kind=excluded.kind, mode=excluded.mode, size=excluded.size,
		mtime=excluded.mtime, hash=excluded.hash, target=excluded.target, ino=excluded.ino, ctime=excluded.ctime`)
	if err != nil {
		return d.wrap("write", err)
	}
	defer put.Close()
	del, err := tx.PrepareContext(ctx, "DELETE FROM entries WHERE dir = ? AND name = ?")
	if err != nil {
		return d.wrap("write", err)
	}
	defer del.Close()
	for _, u := range ups {
		dir, name := []byte(state.Parent(u.Path)), []byte(state.Base(u.Path))
		var n []byte
		old, err := scanEntry(get.QueryRowContext(ctx, dir, name), &n)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return d.wrap("write", err)
		}
		if old != nil {
			xor(&digest, Fingerprint(u.Path, old))
			count--
		}
		if u.Entry == nil || u.Entry.Kind != state.Dir {
			// Forget everything below: the path is gone or no longer a
			// directory.
			if old != nil && old.Kind == state.Dir {
				if err := d.forgetBelow(ctx, tx, u.Path, &digest, &count); err != nil {
					return err
				}
			}
		}
		if u.Entry == nil {
			if old != nil {
				if _, err := del.ExecContext(ctx, dir, name); err != nil {
					return d.wrap("write", err)
				}
			}
			continue
		}
		e := u.Entry
		if _, err := put.ExecContext(ctx, dir, name, int(e.Kind), int64(e.Mode), e.Size, e.MTime, e.Hash[:], []byte(e.Target), int64(e.Ino), e.CTime); err != nil {
			return d.wrap("write", err)
		}
		xor(&digest, Fingerprint(u.Path, e))
		count++
	}
	if err := d.saveDigest(ctx, tx, digest, count); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return d.wrap("commit", err)
	}
	d.digest, d.count = digest, count
	return nil
}

func (d *DB) forgetBelow(ctx context.Context, tx *sql.Tx, p string, digest *[32]byte, count *int64) error {
	where, args := subtreeArgs(p)
	rows, err := tx.QueryContext(ctx, "SELECT dir, name, kind, mode, size, mtime, hash, target, ino, ctime FROM entries WHERE "+where, args...)
	if err != nil {
		return d.wrap("write", err)
	}
	for rows.Next() {
		var dir, name []byte
		e, err := scanEntry(prefixScanner{rows, &dir}, &name)
		if err != nil {
			rows.Close()
			return d.wrap("write", err)
		}
		xor(digest, Fingerprint(state.Join(string(dir), string(name)), e))
		*count--
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d.wrap("write", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM entries WHERE "+where, args...); err != nil {
		return d.wrap("write", err)
	}
	return nil
}

func (d *DB) saveDigest(ctx context.Context, tx *sql.Tx, digest [32]byte, count int64) error {
	const q = "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
	if _, err := tx.ExecContext(ctx, q, "digest", digest[:]); err != nil {
		return d.wrap("write", err)
	}
	if _, err := tx.ExecContext(ctx, q, "count", []byte(fmt.Sprint(count))); err != nil {
		return d.wrap("write", err)
	}
	return nil
}

// Reset forgets every entry (used when the pair identity changed and the
// archive describes another pairing).
func (d *DB) Reset(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return d.wrap("write", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM entries"); err != nil {
		return d.wrap("write", err)
	}
	var zero [32]byte
	if err := d.saveDigest(ctx, tx, zero, 0); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return d.wrap("commit", err)
	}
	d.digest, d.count = zero, 0
	return nil
}

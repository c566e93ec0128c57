package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/zeebo/blake3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/concord-sync/concord/archive/state"
)

// SchemaVersion is the current version of the archive schema, stored in
// SQLite's user_version.
const SchemaVersion = 5

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
	// Statements of Apply, prepared once: preparing them afresh for each
	// directory of each commit was 7% of a local first sync's CPU time.
	keysStmt, loadStmt, upsertStmt, deleteStmt, deleteRangeStmt, metaStmt *sql.Stmt
}

// migrations brings a database from version i to i+1.
var migrations = []string{
	// 0 → 1: entries (one row per directory, see pack.go) and metadata.
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
	 CREATE TABLE dirs (
		path     BLOB PRIMARY KEY,
		children BLOB NOT NULL
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
	// 2 → 3: a large directory may be stored in several rows (chunks.go).
	// Existing rows are valid as they are, so nothing is converted; the
	// version keeps an older concord, which would take a chunk's key for
	// a directory, from reading an archive that has chunks.
	`UPDATE meta SET value = value WHERE 0`,
	// 3 → 4: delta signatures of large files as this side last wrote
	// them (sigs.go).
	`CREATE TABLE sigs (
		path  BLOB PRIMARY KEY,
		mode  INTEGER NOT NULL,
		size  INTEGER NOT NULL,
		mtime INTEGER NOT NULL,
		ino   INTEGER NOT NULL,
		ctime INTEGER NOT NULL,
		hash  BLOB NOT NULL,
		sig   BLOB NOT NULL
	 );`,
	// 4 → 5: dirs becomes a rowid table with a unique index on path. As a
	// WITHOUT ROWID table its interior b-tree cells held whole records, a
	// directory's packed entries included, so every lookup by path read
	// the overflow pages of a dozen other directories on its way down: 26
	// page reads per directory, 46 ms for the 1,000 directories of a
	// 100,000-file tree, against 2 reads and 29 ms now.
	`CREATE TABLE dirs_new (
		path     BLOB NOT NULL UNIQUE,
		children BLOB NOT NULL
	 );
	 INSERT INTO dirs_new(path, children) SELECT path, children FROM dirs ORDER BY path;
	 DROP TABLE dirs;
	 ALTER TABLE dirs_new RENAME TO dirs;`,
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
	// The DSN is a URI: a '?', '#' or '%' in the path must be escaped, or
	// SQLite opens another file (the path cut at the '?').
	uriPath := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + uriPath + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	if readOnly {
		dsn = "file:" + uriPath + "?mode=ro&_pragma=busy_timeout(10000)"
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
	for _, st := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&d.childStmt, "SELECT children FROM dirs WHERE path >= ? AND path < ? ORDER BY path"},
		{&d.keysStmt, "SELECT path FROM dirs WHERE path >= ? AND path < ? ORDER BY path"},
		{&d.loadStmt, "SELECT children FROM dirs WHERE path = ?"},
		{&d.upsertStmt, "INSERT INTO dirs(path, children) VALUES(?, ?) ON CONFLICT(path) DO UPDATE SET children = excluded.children"},
		{&d.deleteStmt, "DELETE FROM dirs WHERE path = ?"},
		{&d.deleteRangeStmt, "DELETE FROM dirs WHERE path >= ? AND path < ?"},
		{&d.metaStmt, "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"},
	} {
		if readOnly && st.stmt != &d.childStmt && st.stmt != &d.keysStmt && st.stmt != &d.loadStmt {
			continue
		}
		if *st.stmt, err = d.db.PrepareContext(ctx, st.sql); err != nil {
			return err
		}
	}
	return nil
}

// Path returns the archive's file name.
func (d *DB) Path() string { return d.path }

// Close closes the database.
func (d *DB) Close() error {
	for _, st := range []*sql.Stmt{d.keysStmt, d.loadStmt, d.upsertStmt, d.deleteStmt, d.deleteRangeStmt, d.metaStmt} {
		if st != nil {
			st.Close()
		}
	}
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
	// One Sum256 over the bytes laid out in a buffer, not a Hasher: a
	// Hasher is several kilobytes to allocate and clear, for each of the
	// 100,000 records of a first sync on each side. The bytes hashed are the
	// same as ever, so archived digests stay valid.
	var buf [256]byte
	b := append(buf[:0], path...)
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
	if e.Kind != state.Dir {
		b = append(b, e.Hash[:]...)
	}
	return blake3.Sum256(b)
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

package archive

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/concord-sync/concord/archive/state"
)

// Children returns the archived entries directly inside dir ("" is the
// root), keyed by name.
func (d *DB) Children(ctx context.Context, dir string) (map[string]*state.Entry, error) {
	list, err := d.ChildList(ctx, dir)
	if err != nil || list == nil {
		return nil, err
	}
	out := make(map[string]*state.Entry, len(list))
	for i := range list {
		out[list[i].Name] = &list[i].Entry
	}
	return out, nil
}

// ChildList returns the archived entries directly inside dir, sorted by
// name (nil when none).
func (d *DB) ChildList(ctx context.Context, dir string) ([]Child, error) {
	c, err := d.Cursor(ctx, dir)
	if err != nil {
		return nil, err
	}
	return c.list()
}

// chunks returns the records of dir, in key order.
func (d *DB) chunks(ctx context.Context, dir string) ([][]byte, error) {
	lo, hi := dirRange(dir)
	rows, err := d.childStmt.QueryContext(ctx, lo, hi)
	if err != nil {
		return nil, d.wrap("read", err)
	}
	defer rows.Close()
	var chunks [][]byte
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return nil, d.wrap("read", err)
		}
		chunks = append(chunks, blob)
	}
	if err := rows.Err(); err != nil {
		return nil, d.wrap("read", err)
	}
	return chunks, nil
}

func (d *DB) damaged(dir string, err error) error {
	return fmt.Errorf("%w: archive %s: directory %s: %v; nothing was changed. Move it aside (mv %q %q.damaged) and run again: "+
		"without an archive the next run is a first sync, which never deletes", ErrCorrupt, d.path, state.Display(dir), err, d.path, d.path)
}

// Get returns the archived entry for p (nil when absent).
func (d *DB) Get(ctx context.Context, p string) (*state.Entry, error) {
	if p == "" {
		return nil, nil
	}
	ch, err := d.Children(ctx, state.Parent(p))
	if err != nil {
		return nil, err
	}
	return ch[state.Base(p)], nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// subtreeDirs selects the directory rows (all chunks) at and below p.
func subtreeDirs(p string) (string, []any) {
	if p == "" {
		return "SELECT path, children FROM dirs", nil
	}
	lo, hi := dirRange(p)
	return "SELECT path, children FROM dirs WHERE (path >= ? AND path < ?) OR (path >= ? AND path < ?)",
		[]any{lo, hi, []byte(p + "/"), []byte(p + "0")}
}

// eachDir calls fn for every directory record (chunk) at and below p, with
// the directory it belongs to.
func (d *DB) eachDir(ctx context.Context, q querier, p string, fn func(dir string, blob []byte) error) error {
	query, args := subtreeDirs(p)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return d.wrap("read", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dir, blob []byte
		if err := rows.Scan(&dir, &blob); err != nil {
			return d.wrap("read", err)
		}
		if err := fn(keyDir(string(dir)), blob); err != nil {
			return err
		}
	}
	return d.wrap("read", rows.Err())
}

// Subtree calls fn for every archived entry strictly below p, in no
// particular order.
func (d *DB) Subtree(ctx context.Context, p string, fn func(path string, e *state.Entry) error) error {
	return d.eachDir(ctx, d.db, p, func(dir string, blob []byte) error {
		var ferr error
		if _, err := unpackDir(blob, func(name string, e *state.Entry) {
			if ferr == nil {
				ferr = fn(state.Join(dir, name), e)
			}
		}); err != nil {
			return d.damaged(dir, err)
		}
		return ferr
	})
}

// CountBelow returns how many entries lie strictly below p.
func (d *DB) CountBelow(ctx context.Context, p string) (int64, error) {
	var n int64
	err := d.eachDir(ctx, d.db, p, func(dir string, blob []byte) error {
		c, err := packedCount(blob)
		if err != nil {
			return d.damaged(dir, err)
		}
		n += c
		return nil
	})
	return n, err
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
	slices.SortFunc(all, func(a, b pe) int { return state.ComparePaths(a.p, b.p) })
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

// batch holds the directory chunks an Apply changes, in memory until the
// transaction writes them back.
type batch struct {
	d      *DB
	ctx    context.Context
	tx     *sql.Tx
	dirs   map[string]*dirChunks
	digest [32]byte
	count  int64
	// sigsAdded: the batch stored signatures (trimSigs then checks the
	// table's size).
	sigsAdded bool
}

// forgetBelow drops every record at and below directory p: their entries
// leave the digest and the count, and the directories' rows are deleted
// when the batch is written back.
func (b *batch) forgetBelow(p string) error {
	drop := func(dir, name string, e *state.Entry) {
		xor(&b.digest, Fingerprint(state.Join(dir, name), e))
		b.count--
	}
	if err := b.forgetSigsBelow(p); err != nil {
		return err
	}
	gone := map[string]bool{}
	// Rows in the database, except those whose entries the batch holds in
	// memory (they may differ from the row) or already forgot.
	query, args := subtreeDirs(p)
	rows, err := b.tx.QueryContext(b.ctx, query, args...)
	if err != nil {
		return b.d.wrap("write", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key, blob []byte
		if err := rows.Scan(&key, &blob); err != nil {
			return b.d.wrap("write", err)
		}
		dir, first := keyDir(string(key)), keyFirst(string(key))
		gone[dir] = true
		if dc := b.dirs[dir]; dc != nil && (dc.wipe || (dc.chunks[first] != nil && dc.chunks[first].m != nil)) {
			continue
		}
		if _, err := unpackDir(blob, func(n string, e *state.Entry) { drop(dir, n, e) }); err != nil {
			return b.d.damaged(dir, err)
		}
	}
	if err := rows.Err(); err != nil {
		return b.d.wrap("write", err)
	}
	// What the batch holds in memory.
	for dir, dc := range b.dirs {
		if dir != p && !state.IsBelow(dir, p) {
			continue
		}
		for _, c := range dc.chunks {
			for n, e := range c.m {
				drop(dir, n, e)
			}
		}
		gone[dir] = true
	}
	for dir := range gone {
		dc := newDirChunks(dir)
		dc.wipe = true
		b.dirs[dir] = dc
	}
	return nil
}

// Apply writes updates in one transaction and keeps the digest current.
func (d *DB) Apply(ctx context.Context, ups []Update) error {
	return d.ApplySigs(ctx, ups, nil)
}

// ApplySigs is Apply, also keeping sigs[path], the encoded delta signature
// (delta.Sig.Encode) of the file an update records at path, as this side
// wrote it: the next delta against that file then need not read it (see
// SigFor). Any other update of a large file's path drops the signature
// kept for it.
func (d *DB) ApplySigs(ctx context.Context, ups []Update, sigs map[string][]byte) error {
	if len(ups) == 0 {
		return nil
	}
	for _, u := range ups {
		if u.Entry != nil && u.Entry.Unhashed {
			// The archive says what both sides agreed on, contents
			// included; a file never read cannot be part of that.
			return fmt.Errorf("archive %s: %s recorded without its hash (a bug in the caller)", d.path, state.Display(u.Path))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return d.wrap("write", err)
	}
	defer tx.Rollback()
	b := &batch{d: d, ctx: ctx, tx: tx, dirs: map[string]*dirChunks{}, digest: d.digest, count: d.count}
	for _, u := range ups {
		if u.Path == "" {
			continue // the root itself is not archived
		}
		parent, name := state.Parent(u.Path), state.Base(u.Path)
		c, err := b.chunkFor(parent, name)
		if err != nil {
			return err
		}
		if err := b.sigUpdate(u, sigs[u.Path], c.m[name]); err != nil {
			return err
		}
		if old := c.m[name]; old != nil {
			xor(&b.digest, Fingerprint(u.Path, old))
			b.count--
			delete(c.m, name)
			c.dirty = true
			if old.Kind == state.Dir && (u.Entry == nil || u.Entry.Kind != state.Dir) {
				if err := b.forgetBelow(u.Path); err != nil {
					return err
				}
			}
		}
		if u.Entry != nil {
			e := *u.Entry
			c.m[name] = &e
			c.dirty = true
			xor(&b.digest, Fingerprint(u.Path, &e))
			b.count++
		}
	}
	for _, dc := range b.dirs {
		if err := b.writeBack(dc); err != nil {
			return err
		}
	}
	if err := b.trimSigs(); err != nil {
		return err
	}
	if err := d.saveDigest(ctx, tx, b.digest, b.count); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return d.wrap("commit", err)
	}
	d.digest, d.count = b.digest, b.count
	return nil
}

func (d *DB) saveDigest(ctx context.Context, tx *sql.Tx, digest [32]byte, count int64) error {
	st := tx.StmtContext(ctx, d.metaStmt)
	if _, err := st.ExecContext(ctx, "digest", digest[:]); err != nil {
		return d.wrap("write", err)
	}
	if _, err := st.ExecContext(ctx, "count", []byte(fmt.Sprint(count))); err != nil {
		return d.wrap("write", err)
	}
	return nil
}

// Reset forgets every entry.
func (d *DB) Reset(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return d.wrap("write", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM dirs"); err != nil {
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

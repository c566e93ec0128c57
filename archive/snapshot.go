package archive

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
)

// A scan of the whole tree asks for every directory's record once, in the
// order its workers reach them. One query per directory costs about 15 µs
// of SQLite and database/sql overhead on top of the read; reading all the
// records in one sequential pass costs a fifth of that (6 ms against 16–24
// ms for the 1,000 directories of a 100,000-file tree, 0.7 MB/ms). A
// Snapshot does that pass in the background while the scan reads the root
// directory; the scan waits for it (letting directories fall back to one
// query each while it ran left it with a fraction of a core and did not
// save the queries), and an archive too large to hold is queried
// directory by directory as before.

// preloadMax is the largest archive, in entries, that Preload reads into
// memory (about 70 bytes an entry: 35 MiB at the limit).
var preloadMax = 500_000 // a variable for tests

// errTooLarge stops a preload that outgrew its limit.
var errTooLarge = errors.New("archive too large to preload")

// Snapshot answers Cursor from directory records read in one pass. It
// must not outlive a write to the archive: the scan that uses it runs
// before anything is applied.
type Snapshot struct {
	d      *DB
	cancel context.CancelFunc
	done   chan struct{}
	ready  atomic.Bool
	// recs maps a directory to its records (chunks) in key order; it is
	// written only before ready is set.
	recs map[string][][]byte
	err  error
}

// Preload starts reading the archive's directory records in the
// background. The result serves Cursor and CountBelow like the DB;
// Close stops the reading and frees the records.
func (d *DB) Preload(ctx context.Context) *Snapshot {
	ctx, cancel := context.WithCancel(ctx)
	s := &Snapshot{d: d, cancel: cancel, done: make(chan struct{})}
	if d.Count() > int64(preloadMax) {
		s.err = errTooLarge
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		recs, err := d.readAllRecords(ctx, preloadMax*128)
		if err != nil {
			s.err = err
			return
		}
		s.recs = recs
		s.ready.Store(true)
	}()
	return s
}

// readAllRecords reads every directory record, giving up past maxBytes.
// The rows are read in storage (rowid) order, a sequential pass over the
// table (in key order each row was a lookup through the path index, 40%
// slower); the chunks of a split directory are then put in key order.
func (d *DB) readAllRecords(ctx context.Context, maxBytes int) (map[string][][]byte, error) {
	rows, err := d.db.QueryContext(ctx, "SELECT path, children FROM dirs")
	if err != nil {
		return nil, d.wrap("read", err)
	}
	defer rows.Close()
	type chunk struct {
		key  string
		blob []byte
	}
	recs := make(map[string][][]byte, d.Count()/64+16)
	split := map[string][]chunk{}
	total := 0
	// The records are copied into blocks of 1 MiB: scanned as []byte,
	// database/sql made a copy of each of its own (8 MB for 100,000
	// entries).
	var block []byte
	keep := func(b []byte) []byte {
		const size = 1 << 20
		if len(b) > size/4 {
			return bytes.Clone(b)
		}
		if cap(block)-len(block) < len(b) {
			block = make([]byte, 0, size)
		}
		start := len(block)
		block = append(block, b...)
		return block[start:len(block):len(block)]
	}
	for rows.Next() {
		var key, raw sql.RawBytes
		if err := rows.Scan(&key, &raw); err != nil {
			return nil, d.wrap("read", err)
		}
		if total += len(key) + len(raw); total > maxBytes {
			return nil, errTooLarge
		}
		blob := keep(raw)
		dir := keyDir(string(key))
		if len(key) != len(dir) {
			split[dir] = append(split[dir], chunk{string(key), blob})
			continue
		}
		recs[dir] = append(recs[dir], blob)
	}
	if err := rows.Err(); err != nil {
		return nil, d.wrap("read", err)
	}
	// A directory's chunk 0 has the directory's own key, which sorts
	// before the keys of its other chunks.
	for dir, cs := range split {
		slices.SortFunc(cs, func(a, b chunk) int { return strings.Compare(a.key, b.key) })
		for _, c := range cs {
			recs[dir] = append(recs[dir], c.blob)
		}
	}
	return recs, nil
}

// Cursor returns a cursor over the archived entries directly inside dir,
// from memory once the snapshot is read (it waits for that), and from the
// database when the archive was too large.
func (s *Snapshot) Cursor(ctx context.Context, dir string) (Cursor, error) {
	select {
	case <-s.done:
	case <-ctx.Done():
		return Cursor{}, ctx.Err()
	}
	if !s.ready.Load() {
		return s.d.Cursor(ctx, dir)
	}
	return Cursor{d: s.d, dir: dir, chunks: s.recs[dir]}, nil
}

// CountBelow counts the archived entries strictly below p.
func (s *Snapshot) CountBelow(ctx context.Context, p string) (int64, error) {
	return s.d.CountBelow(ctx, p)
}

// Close stops a preload still running and waits for it.
func (s *Snapshot) Close() {
	s.cancel()
	<-s.done
	s.recs = nil
}

// loaded waits for the preload to finish and reports whether it holds the
// records (for tests).
func (s *Snapshot) loaded() bool {
	<-s.done
	return s.ready.Load()
}

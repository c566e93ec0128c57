package archive

import (
	"context"
	"database/sql"
	"errors"

	"github.com/concord-sync/concord/archive/state"
)

// SigMinSize is the size from which a file's delta signature is kept in the
// archive when this side writes the file by delta. Below it a signature
// costs little to compute again.
const SigMinSize = 8 << 20

// maxSigBytes bounds the signatures an archive keeps, about 20 bytes per
// block of 2–128 KiB (640 KiB for a 1 GiB file): beyond it the oldest are
// dropped.
var maxSigBytes int64 = 256 << 20

// SigFor returns the encoded delta signature kept for the file at p and the
// entry (stat data and hash) of the file it was taken of, or nil, nil when
// none is kept. The caller must check that the file still matches the entry
// (state.StatSame and the hash) before trusting the signature.
func (d *DB) SigFor(ctx context.Context, p string) (*state.Entry, []byte, error) {
	e := &state.Entry{Kind: state.File}
	var hash, sig []byte
	err := d.db.QueryRowContext(ctx, "SELECT mode, size, mtime, ino, ctime, hash, sig FROM sigs WHERE path = ?", []byte(p)).
		Scan(&e.Mode, &e.Size, &e.MTime, &e.Ino, &e.CTime, &hash, &sig)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, d.wrap("read", err)
	}
	if len(hash) != len(e.Hash) {
		return nil, nil, nil
	}
	copy(e.Hash[:], hash)
	return e, sig, nil
}

// DropSig forgets the signature kept for p, if any: it turned out not to
// describe the file (a delta built on it did not give the expected hash).
func (d *DB) DropSig(ctx context.Context, p string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.db.ExecContext(ctx, "DELETE FROM sigs WHERE path = ?", []byte(p)); err != nil {
		return d.wrap("write", err)
	}
	return nil
}

// sigUpdate keeps sig, the signature of the file u records, or drops the
// one kept for its path when the path held or now holds a large file (old
// is the archived entry).
func (b *batch) sigUpdate(u Update, sig []byte, old *state.Entry) error {
	e := u.Entry
	if sig != nil && e != nil && e.Kind == state.File {
		_, err := b.tx.ExecContext(b.ctx, "INSERT OR REPLACE INTO sigs(path, mode, size, mtime, ino, ctime, hash, sig) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
			[]byte(u.Path), e.Mode, e.Size, e.MTime, int64(e.Ino), e.CTime, e.Hash[:], sig)
		if err != nil {
			return b.d.wrap("write", err)
		}
		b.sigsAdded = true
		return nil
	}
	big := func(e *state.Entry) bool { return e != nil && e.Kind == state.File && e.Size >= SigMinSize }
	if !big(old) && !big(e) {
		return nil
	}
	if _, err := b.tx.ExecContext(b.ctx, "DELETE FROM sigs WHERE path = ?", []byte(u.Path)); err != nil {
		return b.d.wrap("write", err)
	}
	return nil
}

// forgetSigsBelow drops the signatures kept for files below directory p.
func (b *batch) forgetSigsBelow(p string) error {
	var err error
	if p == "" {
		_, err = b.tx.ExecContext(b.ctx, "DELETE FROM sigs")
	} else {
		_, err = b.tx.ExecContext(b.ctx, "DELETE FROM sigs WHERE path >= ? AND path < ?", []byte(p+"/"), []byte(p+"0"))
	}
	if err != nil {
		return b.d.wrap("write", err)
	}
	return nil
}

// trimSigs drops the oldest signatures while they take more than
// maxSigBytes.
func (b *batch) trimSigs() error {
	if !b.sigsAdded {
		return nil
	}
	for {
		var total int64
		if err := b.tx.QueryRowContext(b.ctx, "SELECT CAST(total(length(sig)) AS INTEGER) FROM sigs").Scan(&total); err != nil {
			return b.d.wrap("write", err)
		}
		if total <= maxSigBytes {
			return nil
		}
		res, err := b.tx.ExecContext(b.ctx, "DELETE FROM sigs WHERE rowid = (SELECT min(rowid) FROM sigs)")
		if err != nil {
			return b.d.wrap("write", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
	}
}

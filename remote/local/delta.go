package local

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote/delta"
)

// Signature returns the rsync-style block signature of the file at p,
// which must still match expect; the sender uses it to send only what
// differs.
//
// A large file this side last wrote by delta has its signature kept in the
// archive (derived while the delta was applied, see delta.Resigner): while
// the file's stat data and hash are still those it was kept for, it is
// served from there instead of reading and hashing the whole file (a
// second or more per GiB, and the whole file read from disk when it is not
// cached).
func (e *Endpoint) Signature(ctx context.Context, p string, expect *state.Entry) (*delta.Sig, error) {
	held, err := e.fds.hold(ctx, 1)
	if err != nil {
		return nil, err
	}
	defer e.fds.release(held)
	f, st, err := e.openChecked(p, expect)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cur, _ := scan.EntryFromStat(st)
	if cur != nil && expect != nil && !expect.Unhashed {
		cur.Hash = expect.Hash
		if sig := e.keptSig(ctx, p, cur); sig != nil {
			e.sigs.handedOut(p, cur, sig, true)
			return sig, nil
		}
	}
	sigsRead.Add(1)
	sig, err := delta.Signature(f, st.Size)
	if err != nil {
		return nil, err
	}
	if cur != nil && expect != nil && !expect.Unhashed {
		e.sigs.handedOut(p, cur, sig, false)
	}
	return sig, nil
}

// sigsRead counts the signatures computed by reading a file (tests check
// that a kept one was served instead).
var sigsRead atomic.Int64

// keptSig returns the signature the archive keeps for the file at p if it
// still describes cur (stat data and hash), else nil.
func (e *Endpoint) keptSig(ctx context.Context, p string, cur *state.Entry) *delta.Sig {
	if e.db == nil || cur.Size < archive.SigMinSize {
		return nil
	}
	ent, blob, err := e.db.SigFor(ctx, p)
	if err != nil || ent == nil || !state.StatSame(ent, cur) || ent.Hash != cur.Hash {
		return nil
	}
	sig, err := delta.DecodeSig(bytes.NewReader(blob), cur.Size)
	if err != nil {
		return nil
	}
	return sig
}

// sigMemory holds, during a run, the signatures this side handed out (a
// delta built on one of them may follow, whose result's signature is then
// derived from it) and the derived signatures of files written, until the
// archive records those files.
type sigMemory struct {
	mu    sync.Mutex
	basis map[string]basisSig
	fresh map[string]freshSig
	held  int64 // bytes of basis blocks and fresh encodings held
}

// maxSigMemory bounds sigMemory.held: beyond it signatures are not kept,
// which only costs a full read of the file next time.
const maxSigMemory = 64 << 20

type basisSig struct {
	ent    *state.Entry // the file signed: stat data and hash
	sig    *delta.Sig
	cached bool // served from the archive
}

type freshSig struct {
	ent  *state.Entry // the file written, as installed
	blob []byte       // its signature, encoded
}

func sigBlocksBytes(s *delta.Sig) int64 { return int64(len(s.Blocks)) * 20 }

// handedOut remembers sig, the signature of the file ent at p given out.
func (m *sigMemory) handedOut(p string, ent *state.Entry, sig *delta.Sig, cached bool) {
	if ent.Size < archive.SigMinSize {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.basis == nil {
		m.basis = map[string]basisSig{}
	}
	if old, ok := m.basis[p]; ok {
		m.held -= sigBlocksBytes(old.sig)
		delete(m.basis, p)
	}
	if n := sigBlocksBytes(sig); m.held+n <= maxSigMemory {
		m.basis[p] = basisSig{ent: ent, sig: sig, cached: cached}
		m.held += n
	}
}

// takeBasis returns, and forgets, the signature handed out for p.
func (m *sigMemory) takeBasis(p string) (basisSig, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.basis[p]
	if ok {
		delete(m.basis, p)
		m.held -= sigBlocksBytes(b.sig)
	}
	return b, ok
}

// wrote remembers blob, the encoded signature of the file ent just
// installed at p, until Commit records it.
func (m *sigMemory) wrote(p string, ent *state.Entry, blob []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fresh == nil {
		m.fresh = map[string]freshSig{}
	}
	if old, ok := m.fresh[p]; ok {
		m.held -= int64(len(old.blob))
		delete(m.fresh, p)
	}
	if m.held+int64(len(blob)) <= maxSigMemory {
		m.fresh[p] = freshSig{ent: ent, blob: blob}
		m.held += int64(len(blob))
	}
}

// forRecords returns the signatures to keep with recs: those of files
// written this run that the records describe as installed.
func (m *sigMemory) forRecords(recs []archive.Update) map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.fresh) == 0 {
		return nil
	}
	var out map[string][]byte
	for _, r := range recs {
		f, ok := m.fresh[r.Path]
		if !ok {
			continue
		}
		delete(m.fresh, r.Path)
		m.held -= int64(len(f.blob))
		if r.Entry != nil && state.StatSame(f.ent, r.Entry) && f.ent.Hash == r.Entry.Hash {
			if out == nil {
				out = map[string][]byte{}
			}
			out[r.Path] = f.blob
		}
	}
	return out
}

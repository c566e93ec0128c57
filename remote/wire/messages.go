package wire

import (
	"context"
	"errors"
	"fmt"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// The message bodies. All are CBOR arrays (toarray) of a fixed length:
// any change to one needs a new ProtocolVersion.

// wEntry is a state.Entry on the wire; a nil *wEntry (CBOR null) is an
// absent path.
type wEntry struct {
	_      struct{} `cbor:",toarray"`
	Kind   uint8
	Mode   uint32
	Size   int64
	MTime  int64
	Hash   []byte
	Target string
	Ino    uint64
	CTime  int64
}

func toWire(e *state.Entry) *wEntry {
	if e == nil {
		return nil
	}
	w := &wEntry{Kind: uint8(e.Kind), Mode: e.Mode, Size: e.Size, MTime: e.MTime, Hash: e.Hash[:],
		Target: e.Target, Ino: e.Ino, CTime: e.CTime}
	if e.Unhashed {
		w.Hash = []byte{} // a file not read: its hash is unknown
	}
	return w
}

// fromWire converts and checks an entry received from the peer.
func fromWire(w *wEntry) (*state.Entry, error) {
	if w == nil {
		return nil, nil
	}
	k := state.Kind(w.Kind)
	if k != state.File && k != state.Dir && k != state.Symlink {
		return nil, fmt.Errorf("%w: entry of unknown kind %d", ErrProtocol, w.Kind)
	}
	if w.Size < 0 {
		return nil, fmt.Errorf("%w: entry of negative size %d", ErrProtocol, w.Size)
	}
	e := &state.Entry{Kind: k, Mode: w.Mode, Size: w.Size, MTime: w.MTime, Target: w.Target, Ino: w.Ino, CTime: w.CTime}
	switch {
	case len(w.Hash) == 32:
		copy(e.Hash[:], w.Hash)
	case len(w.Hash) == 0 && k == state.File:
		e.Unhashed = true
	default:
		return nil, fmt.Errorf("%w: entry hash of %d bytes", ErrProtocol, len(w.Hash))
	}
	return e, nil
}

type wInfo struct {
	_         struct{} `cbor:",toarray"`
	ReplicaID string
	Host      string
	Root      string
	Protocol  int
	Version   string
}

type wOpenRequest struct {
	_          struct{} `cbor:",toarray"`
	PeerID     string
	PeerRoot   string
	Ignore     []string
	DryRun     bool
	BackupDir  string
	MaxBackups int
}

type wOpenReply struct {
	_       struct{} `cbor:",toarray"`
	PairID  string
	Digest  []byte
	Entries int64
	Path    string
}

type wProgress struct {
	_           struct{} `cbor:",toarray"`
	Entries     int64
	Hashed      int64
	HashedBytes int64
}

type wChange struct {
	_     struct{} `cbor:",toarray"`
	Path  string
	Old   *wEntry
	New   *wEntry
	Below int64
}

type wProblem struct {
	_       struct{} `cbor:",toarray"`
	Path    string
	Err     string
	Warning bool
}

// wScanItems is one batch of a scan's result.
type wScanItems struct {
	_       struct{} `cbor:",toarray"`
	Changes []wChange
	Skipped []wProblem
	// Hashing lists large files the scan is about to hash (sent while it
	// runs, before the changes): Old is the archived entry, New the state
	// now.
	Hashing []wChange
}

// wScanReply ends a scan, after its batches.
type wScanReply struct {
	_           struct{} `cbor:",toarray"`
	Entries     int64
	Hashed      int64
	HashedBytes int64
}

type wPathEntry struct {
	_     struct{} `cbor:",toarray"`
	Path  string
	Entry *wEntry
}

type wPaths struct {
	_     struct{} `cbor:",toarray"`
	Paths []string
}

type wEntries struct {
	_       struct{} `cbor:",toarray"`
	Entries []*wEntry
}

type wPathEntries struct {
	_       struct{} `cbor:",toarray"`
	Entries []wPathEntry
}

// wPathExpect asks about one path that must match expect: read-file,
// signature, read-delta (BasisSize: the size of the basis the signature
// that follows describes; Confirm: the delta.Confirm to compute the delta
// with), list (Expect unused).
type wPathExpect struct {
	_         struct{} `cbor:",toarray"`
	Path      string
	Expect    *wEntry
	BasisSize int64
	Confirm   uint8
}

type wOp struct {
	_      struct{} `cbor:",toarray"`
	Kind   uint8
	Path   string
	Expect *wEntry
	New    *wEntry
	Delta  bool
	// Inline marks a put whose whole contents are the request frame's
	// data (a small file), with no byte stream after it.
	Inline bool
	// Stage is 1 for a put that only stages a delta's result
	// (remote.Op.Stage), 2 for one that installs what was staged
	// (remote.Op.FromStage), 0 otherwise.
	Stage uint8
}

// wPutBatch puts several small files; the frame's data holds their
// contents one after another (each op's New.Size bytes).
type wPutBatch struct {
	_   struct{} `cbor:",toarray"`
	Ops []wOp
}

// wPutBatchReply answers a wPutBatch: one result per op, in order.
type wPutBatchReply struct {
	_       struct{} `cbor:",toarray"`
	Results []wPutResult
}

// wPutResult is one file's outcome: its installed entry, or an error.
type wPutResult struct {
	_     struct{} `cbor:",toarray"`
	Entry *wEntry
	Err   *errBody
}

type wApplyReply struct {
	_     struct{} `cbor:",toarray"`
	Entry *wEntry
}

type wRecord struct {
	_     struct{} `cbor:",toarray"`
	Path  string
	Entry *wEntry
}

type wRecords struct {
	_       struct{} `cbor:",toarray"`
	Records []wRecord
}

type wCredit struct {
	_ struct{} `cbor:",toarray"`
	N int64
}

// wSetup is the client's first frame, right after the magic.
type wSetup struct {
	_        struct{} `cbor:",toarray"`
	Compress bool
	Version  string
}

// wEmpty is the body of replies that carry nothing.
type wEmpty struct {
	_ struct{} `cbor:",toarray"`
}

// errBody carries an error across: its classes and its text.
type errBody struct {
	_     struct{} `cbor:",toarray"`
	Class uint32
	Msg   string
}

// The classes of error a peer reports, as bits of errBody.Class.
var errClasses = []error{
	remote.ErrFatal,
	remote.ErrLocked,
	remote.ErrChanged,
	remote.ErrUnsafePath,
	context.Canceled,
	context.DeadlineExceeded,
	delta.ErrCorrupt,
	remote.ErrBlocked,
	remote.ErrMismatch,
}

func encodeError(err error) *errBody {
	b := &errBody{Msg: err.Error()}
	for i, c := range errClasses {
		if errors.Is(err, c) {
			b.Class |= 1 << i
		}
	}
	return b
}

// PeerError is an error reported by the peer. Its text is the peer's
// message as it was; it matches with errors.Is every class of error the
// peer's error matched (remote.ErrChanged, remote.ErrLocked,
// remote.ErrFatal, remote.ErrUnsafePath, context.Canceled,
// context.DeadlineExceeded, delta.ErrCorrupt, remote.ErrBlocked,
// remote.ErrMismatch).
type PeerError struct {
	// Msg is the peer's error text.
	Msg string
	// Class holds one bit per class of error matched, in the order of the
	// table in docs/protocol.md.
	Class uint32
	// Remote, when set, names the peer (the client's WithName); the
	// client sets it on fatal errors.
	Remote string
}

// Error returns the peer's message. After the peer's name, when it has one,
// the message loses the class prefixes it starts with ("fatal: "), which
// belong at the start of a message, where people's output drops them.
func (e *PeerError) Error() string {
	if e.Remote == "" {
		return e.Msg
	}
	return e.Remote + ": " + remote.TrimClasses(e.Msg, e.Unwrap()...)
}

// Unwrap returns the classes the error belongs to.
func (e *PeerError) Unwrap() []error {
	var errs []error
	for i, c := range errClasses {
		if e.Class&(1<<i) != 0 {
			errs = append(errs, c)
		}
	}
	return errs
}

func decodeError(f *frame) error {
	var b errBody
	if err := unmarshalBody(f, &b); err != nil {
		return err
	}
	return &PeerError{Msg: b.Msg, Class: b.Class}
}

package remote

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/concord-sync/concord/archive/state"
)

// Endpoint is one side of a pair: a root directory on this machine (Local)
// or on another one reached over SSH. The engine drives two Endpoints and
// never touches a file system itself. Every method that changes something
// re-checks the path against what the scan saw first (SPEC guarantee 1).
//
// Methods may be called concurrently from several goroutines once Open has
// returned; implementations over a connection pipeline such calls.
type Endpoint interface {
	// Hello checks the root and returns the replica's identity. A missing
	// root, or one that is not a directory, is an error wrapping ErrFatal.
	Hello(ctx context.Context) (Info, error)
	// Open opens (creating if needed) this side's archive for the pair with
	// the given peer and takes the pair lock. A held lock returns an error
	// wrapping ErrLocked naming the holder.
	Open(ctx context.Context, req OpenRequest) (OpenReply, error)
	// Scan walks the root against the archive and returns the paths whose
	// state differs from it (new, changed, deleted). Progress, if non-nil,
	// is called from time to time with running counts.
	Scan(ctx context.Context, req ScanRequest, progress func(ScanProgress)) (ScanReply, error)
	// ArchiveList calls fn for every archived path in path order. It is
	// used only when the two archives disagree (their digests differ).
	ArchiveList(ctx context.Context, fn func(path string, e *state.Entry) error) error
	// Stat returns the current state of each path (nil where absent),
	// hashing files whose stat data differ from the archive.
	Stat(ctx context.Context, paths []string) ([]*state.Entry, error)
	// List returns the current state of p and everything below it, in path
	// order, the first element being p itself.
	List(ctx context.Context, p string) ([]PathEntry, error)
	// ReadFile opens the file at p for reading, which must match expect (by
	// stat data). The reader fails with ErrChanged at the end if the file
	// changed while it was read.
	ReadFile(ctx context.Context, p string, expect *state.Entry) (io.ReadCloser, error)
	// Apply carries out op on this side and returns the entry now at
	// op.Path (nil after a removal), with this side's stat data, for the
	// archive. content supplies a file's bytes for OpPut (the whole file,
	// or a delta stream when op.Delta is set).
	Apply(ctx context.Context, op Op, content io.Reader) (*state.Entry, error)
	// Commit records in the archive what is now true on both sides: for
	// each record, the path's new entry, or its removal (and that of
	// everything below it) when Entry is nil.
	Commit(ctx context.Context, recs []Record) error
	// Close releases the lock and the archive. It is safe to call twice.
	Close() error
}

// BatchPutter is implemented by endpoints that can install many small files
// at once, sharing one flush to disk (the local endpoint; the wire server
// uses it for a client's put-batch requests).
type BatchPutter interface {
	// PutBatch installs each op (an OpPut, not a delta) with contents[i]
	// as its whole contents, as Apply would, and returns each file's new
	// entry or error. The error is for the batch as a whole.
	PutBatch(ctx context.Context, ops []Op, contents [][]byte) ([]*state.Entry, []error, error)
}

// AsyncPutter is implemented by endpoints that take a small file's whole
// contents and report its outcome later (the wire client, which gathers
// such puts into batches): the caller need not hold a goroutine per file
// while the other side writes and flushes it.
type AsyncPutter interface {
	// MaxAsyncPut is the size of the largest file PutAsync takes.
	MaxAsyncPut() int64
	// PutAsync installs op (a whole-file OpPut of at most MaxAsyncPut
	// bytes, not a delta nor staged) with content as its whole contents,
	// as Apply would, and calls done once, from another goroutine, with
	// the file's new entry or error. When ctx ends first, done gets ctx's
	// error at once and the file may still be installed. content must not
	// change until done is called, nor afterwards if ctx had ended.
	PutAsync(ctx context.Context, op Op, content []byte, done func(*state.Entry, error))
}

// Info identifies a replica: a root on a host.
type Info struct {
	// ReplicaID is a random identifier created the first time this root is
	// synced on this host and kept in the host's state directory, so a
	// replica is recognised whatever name or address reaches it.
	ReplicaID string
	// Host is the host name of the machine holding the root.
	Host string
	// Root is the absolute, symlink-resolved path of the root on that host.
	Root string
	// Protocol is the endpoint's protocol version.
	Protocol int
	// Version is the concord version running there.
	Version string
}

// OpenRequest asks an endpoint to open its archive for a pair.
type OpenRequest struct {
	// PeerID is the other side's ReplicaID.
	PeerID string
	// PeerRoot is how the other side was named (for reports and logs).
	PeerRoot string
	// Ignore lists gitignore-style patterns applied to the scan.
	Ignore []string
	// DryRun opens the archive without taking the lock for writing and
	// without creating anything on disk.
	DryRun bool
	// BackupDir, when set, keeps the previous version of every file this
	// side overwrites or deletes in that directory (relative paths are
	// taken under the root), at most MaxBackups per path (0: unlimited).
	BackupDir  string
	MaxBackups int
}

// OpenReply describes a side's archive.
type OpenReply struct {
	// PairID is the pair identity stored in the archive ("" for a new one).
	PairID string
	// Digest summarises every archived entry; equal digests mean the two
	// archives agree on every path.
	Digest [32]byte
	// Entries is how many paths the archive records.
	Entries int64
	// Path is the archive's file name on its host, for messages.
	Path string
}

// ScanRequest parameterises a scan.
type ScanRequest struct {
	// Hashing, if set, is called (from any goroutine) just before the scan
	// reads a file to hash it because its stat data no longer match the
	// archived file entry old; cur is its state now. The engine uses it
	// to fetch the other side's delta signature meanwhile. Endpoints may
	// leave out files smaller than HashingMin (old or now): the wire client
	// calls it only for those its peer reports, which are at least that
	// large.
	Hashing func(p string, old, cur *state.Entry)
	// Proceed, if set, is called by a local endpoint once its scan has
	// looked at everything and before it changes anything (the archive's
	// stat data of unchanged files, temporary files left by runs that
	// died); an error ends the scan with that error and nothing changed.
	// The engine uses it to scan a local side while still connecting to
	// the other, on a guess the connection must confirm first.
	Proceed func(ctx context.Context) error
	// Narrow, if set, has a local endpoint's scan read directories with
	// fewer workers than processors until the channel is closed, so that
	// a processor stays free for the connection to the other side (the
	// Go runtime looks for network events only when a processor has
	// nothing else to run, or every 10 ms). The engine sets it while the
	// remote side of a speculative scan connects.
	Narrow <-chan struct{}
}

// HashingMin is the size (before and now) from which a scan over the wire
// reports the files it is about to hash (ScanRequest.Hashing): below it a
// delta signature costs too little to be worth fetching ahead.
const HashingMin = 1 << 20

// ScanProgress carries running counts during a scan.
type ScanProgress struct {
	Entries     int64 // paths seen so far
	Hashed      int64 // files read and hashed
	HashedBytes int64 // bytes read to hash
}

// Change is one path whose current state differs from the archive.
type Change struct {
	Path string
	Old  *state.Entry // archived (nil: not archived)
	New  *state.Entry // current (nil: absent). A deleted directory is
	// reported once, without its descendants.
	// Below counts the archived entries below Path when Old is a directory
	// that is gone or replaced, so guards can count what a deletion removes.
	Below int64
}

// ScanReply is the result of a scan.
type ScanReply struct {
	Changes []Change // in path order
	// Entries is how many paths exist now under the root.
	Entries int64
	// Skipped lists paths the scan could not or would not handle (an
	// unreadable file, a FIFO), with the reason; they are left alone.
	Skipped []Problem
	// Stats for the summary.
	Hashed      int64
	HashedBytes int64
}

// Problem is a path and what went wrong with it.
type Problem struct {
	Path string
	Err  string
	// Warning marks a problem that is not a failure (a FIFO or socket
	// skipped on purpose); it is shown but does not change the exit code.
	Warning bool
}

// PathEntry is a path and its state.
type PathEntry struct {
	Path  string
	Entry *state.Entry
}

// Record is one archive update.
type Record struct {
	Path  string
	Entry *state.Entry // nil: forget the path and everything below it
}

// OpKind says what an Op does.
type OpKind uint8

// The operations an endpoint applies.
const (
	// OpPut installs a file from content (atomically: temporary file in the
	// same directory, fsync, rename).
	OpPut OpKind = iota + 1
	// OpMkdir creates a directory (replacing whatever Expect describes).
	OpMkdir
	// OpSymlink creates a symlink with New.Target.
	OpSymlink
	// OpRemove removes the path (a whole tree for a directory, each entry
	// checked against the archive first).
	OpRemove
	// OpSetMeta sets permissions and, for files, the modification time,
	// leaving contents alone.
	OpSetMeta
)

// Op is one change to apply on a side.
type Op struct {
	Kind OpKind
	Path string
	// Expect is what the scan saw at Path on this side (nil: absent). The
	// endpoint refuses with ErrChanged if the path no longer matches.
	Expect *state.Entry
	// New is the state to install (kind, mode, mtime, size, hash, target).
	New *state.Entry
	// Delta marks an OpPut whose content is a delta against the file now at
	// Path (which must match Expect) rather than the whole file.
	Delta bool
	// Stage marks an OpPut with Delta set that only builds the new file:
	// the endpoint writes and flushes it under a temporary name and keeps
	// it for a later OpPut with FromStage set, changing nothing at Path.
	// New gives the source's stat data (its hash may be unknown). The
	// engine stages a large file's delta while the scans still run, so
	// that the destination rebuilds it meanwhile. What is not installed by
	// the end of the session is removed.
	Stage bool
	// FromStage marks an OpPut, without contents, that installs what a
	// Stage of the same Path and Expect built, once its size and hash are
	// New's (otherwise it fails, and the staged file is dropped).
	FromStage bool
}

// ErrFatal marks errors that stop the whole run with exit code 3.
var ErrFatal = errors.New("fatal")

// ErrLocked marks an error returned when another run holds the pair lock.
var ErrLocked = errors.New("locked")

// TrimClasses drops from the start of msg the "class: " prefixes that
// wrapping an error class first (fmt.Errorf("%w: ...", ErrFatal)) puts
// there, for any of classes, in any order: a message for a person says
// what went wrong, not its class.
func TrimClasses(msg string, classes ...error) string {
	for again := true; again; {
		again = false
		for _, c := range classes {
			if p := c.Error() + ": "; len(msg) > len(p) && strings.HasPrefix(msg, p) {
				msg, again = msg[len(p):], true
			}
		}
	}
	return msg
}

// ErrChanged marks an item whose path changed after the scan saw it; the
// item fails and nothing is touched.
var ErrChanged = errors.New("changed during sync")

// ErrMismatch marks an item whose new contents, as written at the
// destination, do not have the hash the source's scan gave; it comes with
// ErrChanged. A delta whose blocks were matched on weak checksums alone
// (delta.ConfirmResync) can end so, as can a source changed in a way its
// stat data do not show: the engine then sends the file again with every
// block confirmed.
var ErrMismatch = errors.New("contents differ from the source's hash")

// ErrBlocked marks an item the destination cannot carry out without a
// person: something concord does not synchronize (a FIFO, socket or device,
// or an ignored path inside a directory to delete) is in the way. Nothing is
// touched, and the item is skipped rather than failed: running again changes
// nothing until someone removes the obstacle.
var ErrBlocked = errors.New("blocked")

// ErrUnsafePath marks a path refused because it would leave the root.
var ErrUnsafePath = errors.New("unsafe path")

package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/zeebo/blake3"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// fakeEP is an in-memory remote.Endpoint (and delta.Signer): a map from
// path to entry and file contents, and a map for the archive.
type fakeEP struct {
	mu      sync.Mutex
	tree    map[string]*state.Entry
	data    map[string][]byte
	archive map[string]*state.Entry
	ino     uint64

	calls  atomic.Int64 // every call but Close
	closed atomic.Int64
	// failWith, if set, is returned by every call but Close.
	failWith error
	// scanBlock makes Scan wait for its context to end.
	scanBlock bool
	// readStarted counts bytes handed out by ReadFile readers.
	readBytes atomic.Int64
	// readerClosed is signalled when a ReadFile reader is closed.
	readerClosed chan struct{}
	// scanChanges is how many extra synthetic changes Scan reports.
	scanChanges int
	// hashing lists the files Scan says it is about to hash.
	hashing []remote.Change
}

func newFake() *fakeEP {
	return &fakeEP{
		tree:         map[string]*state.Entry{},
		data:         map[string][]byte{},
		archive:      map[string]*state.Entry{},
		readerClosed: make(chan struct{}, 100),
	}
}

// put stores a file directly.
func (f *fakeEP) put(p string, content []byte) *state.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.putLocked(p, content, 0o644, 1000)
}

func (f *fakeEP) putLocked(p string, content []byte, mode uint32, mtime int64) *state.Entry {
	f.ino++
	e := &state.Entry{Kind: state.File, Mode: mode, Size: int64(len(content)), MTime: mtime,
		Hash: blake3.Sum256(content), Ino: f.ino, CTime: int64(f.ino)}
	f.tree[p] = e
	f.data[p] = bytes.Clone(content)
	return e.Clone()
}

func (f *fakeEP) enter() error {
	f.calls.Add(1)
	return f.failWith
}

func (f *fakeEP) Hello(ctx context.Context) (remote.Info, error) {
	if err := f.enter(); err != nil {
		return remote.Info{}, err
	}
	return remote.Info{ReplicaID: "replica-1", Host: "fakehost", Root: "/srv/root", Protocol: ProtocolVersion, Version: "test"}, nil
}

func (f *fakeEP) Open(ctx context.Context, req remote.OpenRequest) (remote.OpenReply, error) {
	if err := f.enter(); err != nil {
		return remote.OpenReply{}, err
	}
	if req.PeerID == "held" {
		return remote.OpenReply{}, fmt.Errorf("pair lock held by pid 42 on otherhost: %w: %w", remote.ErrLocked, remote.ErrFatal)
	}
	var d [32]byte
	copy(d[:], req.PeerID+"|"+req.PeerRoot+"|"+fmt.Sprint(req.Ignore, req.DryRun, req.BackupDir, req.MaxBackups))
	f.mu.Lock()
	defer f.mu.Unlock()
	return remote.OpenReply{PairID: "pair-1", Digest: d, Entries: int64(len(f.archive)), Path: "/state/concord/pair-1.db"}, nil
}

func (f *fakeEP) Scan(ctx context.Context, req remote.ScanRequest, progress func(remote.ScanProgress)) (remote.ScanReply, error) {
	if err := f.enter(); err != nil {
		return remote.ScanReply{}, err
	}
	if progress != nil {
		progress(remote.ScanProgress{Entries: 7, Hashed: 3, HashedBytes: 300})
	}
	if req.Hashing != nil {
		for _, c := range f.hashing {
			req.Hashing(c.Path, c.Old, c.New)
		}
	}
	if f.scanBlock {
		<-ctx.Done()
		return remote.ScanReply{}, fmt.Errorf("scan interrupted: %w", ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var rep remote.ScanReply
	paths := f.sortedLocked(f.tree)
	for _, p := range paths {
		if !state.Equal(f.archive[p], f.tree[p]) {
			rep.Changes = append(rep.Changes, remote.Change{Path: p, Old: f.archive[p].Clone(), New: f.tree[p].Clone()})
		}
	}
	for i := range f.scanChanges {
		p := fmt.Sprintf("synthetic/%06d/%s", i, bytes.Repeat([]byte("n"), 100))
		rep.Changes = append(rep.Changes, remote.Change{Path: p, New: &state.Entry{Kind: state.File, Size: int64(i)}})
	}
	rep.Skipped = []remote.Problem{{Path: "fifo", Err: "a FIFO, skipped", Warning: true}}
	rep.Entries = int64(len(f.tree))
	rep.Hashed, rep.HashedBytes = 3, 300
	return rep, nil
}

func (f *fakeEP) sortedLocked(m map[string]*state.Entry) []string {
	var paths []string
	for p := range m {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return state.ComparePaths(paths[i], paths[j]) < 0 })
	return paths
}

func (f *fakeEP) ArchiveList(ctx context.Context, fn func(string, *state.Entry) error) error {
	if err := f.enter(); err != nil {
		return err
	}
	f.mu.Lock()
	paths := f.sortedLocked(f.archive)
	entries := make([]*state.Entry, len(paths))
	for i, p := range paths {
		entries[i] = f.archive[p].Clone()
	}
	f.mu.Unlock()
	for i, p := range paths {
		if err := fn(p, entries[i]); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeEP) Stat(ctx context.Context, paths []string) ([]*state.Entry, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*state.Entry, len(paths))
	for i, p := range paths {
		out[i] = f.tree[p].Clone()
	}
	return out, nil
}

func (f *fakeEP) List(ctx context.Context, p string) ([]remote.PathEntry, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []remote.PathEntry
	if p == "" {
		out = append(out, remote.PathEntry{Path: "", Entry: &state.Entry{Kind: state.Dir, Mode: 0o755}})
	}
	for _, q := range f.sortedLocked(f.tree) {
		if q == p || state.IsBelow(q, p) {
			out = append(out, remote.PathEntry{Path: q, Entry: f.tree[q].Clone()})
		}
	}
	return out, nil
}

// check returns ErrChanged unless the path is as expect says.
func (f *fakeEP) checkLocked(p string, expect *state.Entry) error {
	if !state.StatSame(f.tree[p], expect) {
		return fmt.Errorf("%s: %w", state.Display(p), remote.ErrChanged)
	}
	return nil
}

// fakeReader hands out a file's bytes, counting them.
type fakeReader struct {
	f *fakeEP
	r io.Reader
	// failAtEnd is returned instead of io.EOF.
	failAtEnd error
}

func (r *fakeReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.f.readBytes.Add(int64(n))
	if err == io.EOF && r.failAtEnd != nil {
		return n, r.failAtEnd
	}
	return n, err
}

func (r *fakeReader) Close() error {
	select {
	case r.f.readerClosed <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeEP) ReadFile(ctx context.Context, p string, expect *state.Entry) (io.ReadCloser, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkLocked(p, expect); err != nil {
		return nil, err
	}
	r := &fakeReader{f: f, r: bytes.NewReader(f.data[p])}
	if bytes.HasPrefix(f.data[p], []byte("CHANGING")) {
		r.failAtEnd = fmt.Errorf("read %s: file changed while read: %w", p, remote.ErrChanged)
	}
	return r, nil
}

func (f *fakeEP) Apply(ctx context.Context, op remote.Op, content io.Reader) (*state.Entry, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	err := f.checkLocked(op.Path, op.Expect)
	var basis []byte
	if err == nil && op.Delta {
		basis = f.data[op.Path]
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	switch op.Kind {
	case remote.OpPut:
		var buf bytes.Buffer
		if op.Delta {
			if err := delta.ApplyStream(bytes.NewReader(basis), content, &buf); err != nil {
				return nil, fmt.Errorf("apply delta to %s: %w", op.Path, err)
			}
		} else if _, err := io.Copy(&buf, content); err != nil {
			return nil, fmt.Errorf("receive %s: %w", op.Path, err)
		}
		if op.New != nil && blake3.Sum256(buf.Bytes()) != op.New.Hash {
			return nil, fmt.Errorf("%s: contents do not match the source's hash: %w", op.Path, remote.ErrChanged)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		mode, mtime := uint32(0o644), int64(0)
		if op.New != nil {
			mode, mtime = op.New.Mode, op.New.MTime
		}
		return f.putLocked(op.Path, buf.Bytes(), mode, mtime), nil
	case remote.OpMkdir:
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ino++
		f.tree[op.Path] = &state.Entry{Kind: state.Dir, Mode: op.New.Mode, Ino: f.ino}
		return f.tree[op.Path].Clone(), nil
	case remote.OpSymlink:
		f.mu.Lock()
		defer f.mu.Unlock()
		f.ino++
		f.tree[op.Path] = &state.Entry{Kind: state.Symlink, Target: op.New.Target, Hash: blake3.Sum256([]byte(op.New.Target)), Ino: f.ino}
		return f.tree[op.Path].Clone(), nil
	case remote.OpRemove:
		f.mu.Lock()
		defer f.mu.Unlock()
		for q := range f.tree {
			if q == op.Path || state.IsBelow(q, op.Path) {
				delete(f.tree, q)
				delete(f.data, q)
			}
		}
		return nil, nil
	case remote.OpSetMeta:
		f.mu.Lock()
		defer f.mu.Unlock()
		e := f.tree[op.Path]
		e.Mode, e.MTime = op.New.Mode, op.New.MTime
		return e.Clone(), nil
	}
	return nil, errors.New("unknown op")
}

func (f *fakeEP) Commit(ctx context.Context, recs []remote.Record) error {
	if err := f.enter(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range recs {
		if r.Entry == nil {
			for q := range f.archive {
				if q == r.Path || state.IsBelow(q, r.Path) {
					delete(f.archive, q)
				}
			}
			continue
		}
		f.archive[r.Path] = r.Entry.Clone()
	}
	return nil
}

func (f *fakeEP) Close() error {
	f.closed.Add(1)
	return nil
}

func (f *fakeEP) Signature(ctx context.Context, p string, expect *state.Entry) (*delta.Sig, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkLocked(p, expect); err != nil {
		return nil, err
	}
	return delta.Signature(bytes.NewReader(f.data[p]), int64(len(f.data[p])))
}

func (f *fakeEP) content(p string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.data[p])
}

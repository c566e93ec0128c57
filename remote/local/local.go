package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/scan"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
)

// Protocol is the endpoint protocol version this build speaks.
const Protocol = 1

// Options configure a local endpoint.
type Options struct {
	// StateDir holds archives, locks and replica ids (default
	// archive.StateDir()).
	StateDir string
	// Version is the concord version, reported by Hello.
	Version string
	// KeepSigs makes the endpoint sign the large files it receives whole
	// and keep the signature with the archive, so that the first delta
	// against such a file needs no pass over it. Only a pair with a remote
	// root sends deltas: a local pair leaves it off and saves the hashing.
	KeepSigs bool
}

// Endpoint is a root on this machine.
type Endpoint struct {
	rootArg  string
	root     string
	rootfd   int // the root, held open for the whole run
	opts     Options
	id       string
	db       *archive.DB
	lock     *archive.Lock
	ignore   *scan.Matcher
	patterns []string
	dryRun   bool
	backup   string // absolute backup directory, or ""
	maxBack  int
	backRel  string // backup directory relative to the root when inside it
	scanMu   sync.Mutex
	scanned  map[string]*state.Entry // the last scan's changes: path → new state
	closeMu  sync.Mutex
	closed   bool
	putCount int64
	putMu    sync.Mutex
	syncOnce sync.Once
	syncer   *groupSync
	fds      descriptorBudget
	sigs     sigMemory
	cloned   atomic.Int64 // bytes of deltas cloned from their basis (see cloneOut)
	preMu    sync.Mutex
	pre      map[string]*prebuilt // files staged ahead, by path (see prebuild)
	// preClosed is set (under preMu) once Close has removed the staged
	// files: one staged after that is removed at once.
	preClosed bool
}

// New returns an endpoint for the local directory root.
func New(root string, opts Options) *Endpoint {
	return &Endpoint{rootArg: root, opts: opts}
}

// Root returns the resolved absolute root (after Hello).
func (e *Endpoint) Root() string { return e.root }

// Archive returns the open archive (nil before Open or in a dry run
// without an archive). The engine keeps run history in it.
func (e *Endpoint) Archive() *archive.DB { return e.db }

func fatalf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{remote.ErrFatal}, args...)...)
}

// Hello checks the root and loads or creates the replica identity.
func (e *Endpoint) Hello(ctx context.Context) (remote.Info, error) {
	abs, err := filepath.Abs(e.rootArg)
	if err != nil {
		return remote.Info{}, fatalf("root %s: %v", e.rootArg, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return remote.Info{}, fatalf("root %s does not exist: create it (mkdir -p %s), or check that its disk is mounted", abs, abs)
	case err != nil:
		return remote.Info{}, fatalf("root %s: %v", abs, err)
	case !fi.IsDir():
		return remote.Info{}, fatalf("root %s is not a directory", abs)
	}
	// A root that is itself a symlink is followed once, here.
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return remote.Info{}, fatalf("root %s: %v", abs, err)
	}
	e.root = resolved
	if e.rootfd > 0 {
		unix.Close(e.rootfd)
	}
	if e.rootfd, err = unix.Open(resolved, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return remote.Info{}, fatalf("open root %s: %v", resolved, err)
	}
	if e.opts.StateDir == "" {
		if e.opts.StateDir, err = archive.StateDir(); err != nil {
			return remote.Info{}, fatalf("%v", err)
		}
	}
	if e.id, err = archive.ReplicaID(e.opts.StateDir, e.root, true); err != nil {
		return remote.Info{}, fatalf("%v", err)
	}
	host, _ := os.Hostname()
	return remote.Info{ReplicaID: e.id, Host: host, Root: e.root, Protocol: Protocol, Version: e.opts.Version}, nil
}

func (e *Endpoint) flusher() *groupSync {
	e.syncOnce.Do(func() { e.syncer = newGroupSync() })
	return e.syncer
}

// openDir opens the directory rel below the root, never following a
// symlink and never leaving the root.
func (e *Endpoint) openDir(rel string) (int, error) {
	return scan.OpenDirAt(e.rootfd, rel)
}

// PairID names the pair of two replicas, the same on both sides.
func PairID(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return a + ":" + b
}

// Open opens this side's archive for the pair and takes the lock.
func (e *Endpoint) Open(ctx context.Context, req remote.OpenRequest) (remote.OpenReply, error) {
	if e.root == "" {
		return remote.OpenReply{}, fatalf("open before hello")
	}
	if req.PeerID == "" || req.PeerID == e.id {
		return remote.OpenReply{}, fatalf("both roots are the same directory (%s): nothing to synchronize", e.root)
	}
	e.dryRun = req.DryRun
	e.patterns = append([]string(nil), req.Ignore...)
	if err := e.setBackup(req.BackupDir, req.MaxBackups); err != nil {
		return remote.OpenReply{}, err
	}
	m, err := scan.NewMatcher(e.patterns)
	if err != nil {
		return remote.OpenReply{}, fatalf("%v", err)
	}
	e.ignore = m
	path := archive.ArchivePath(e.opts.StateDir, e.id, req.PeerID)
	reply := remote.OpenReply{Path: path}
	if !req.DryRun {
		if err := os.MkdirAll(e.opts.StateDir, 0o700); err != nil {
			return reply, fatalf("create state directory %s: %v", e.opts.StateDir, err)
		}
		l, err := archive.AcquireLock(archive.LockPath(path))
		if err != nil {
			if errors.Is(err, archive.ErrLockHeld) {
				return reply, fmt.Errorf("%w: %w: another run of this pair is in progress: %v", remote.ErrFatal, remote.ErrLocked, err)
			}
			return reply, fatalf("%v", err)
		}
		e.lock = l
	}
	if _, err := os.Stat(path); err == nil || !req.DryRun {
		db, err := archive.Open(path, req.DryRun)
		if err != nil {
			e.lock.Release()
			return reply, fatalf("%v", err)
		}
		e.db = db
	}
	if e.db != nil {
		pair := PairID(e.id, req.PeerID)
		got, err := e.db.Meta(ctx, "pair")
		if err != nil {
			return reply, fatalf("%v", err)
		}
		if !req.DryRun && string(got) != pair {
			if err := e.db.SetMeta(ctx, "pair", []byte(pair)); err != nil {
				return reply, fatalf("%v", err)
			}
			e.db.SetMeta(ctx, "root", []byte(e.root))
			e.db.SetMeta(ctx, "peer_root", []byte(req.PeerRoot))
		}
		reply.PairID = pair
		reply.Digest = e.db.Digest()
		reply.Entries = e.db.Count()
	}
	return reply, nil
}

// PeerHint returns the replica id that the root named peerRoot led to the
// last time this replica synchronized with it, or "" (see
// archive.PeerHint). Hello must have been called.
func (e *Endpoint) PeerHint(peerRoot string) string {
	if e.id == "" {
		return ""
	}
	return archive.PeerHint(e.opts.StateDir, e.id, peerRoot)
}

// RememberPeer records that the root named peerRoot led to replica peer,
// for PeerHint. Hello must have been called.
func (e *Endpoint) RememberPeer(peerRoot, peer string) error {
	if e.id == "" {
		return fatalf("remember peer before hello")
	}
	return archive.RememberPeer(e.opts.StateDir, e.id, peerRoot, peer)
}

func (e *Endpoint) setBackup(dir string, max int) error {
	e.backup, e.maxBack, e.backRel = "", max, ""
	if dir == "" {
		return nil
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(e.root, dir)
	}
	// The root is symlink-resolved: resolve the backup directory too, or
	// one named through the same symlink looks outside the root.
	dir = resolveExisting(filepath.Clean(dir))
	if rel, err := filepath.Rel(e.root, dir); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		if rel == "." {
			return fatalf("backup directory %s is the root itself: choose a directory inside or outside it", dir)
		}
		e.backRel = filepath.ToSlash(rel)
		// The backup directory is never synchronized.
		e.patterns = append(e.patterns, "/"+globEscape(e.backRel)+"/")
	}
	e.backup = dir
	return nil
}

// globEscape quotes the characters special in an ignore pattern, so a
// directory name is matched literally.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`).Replace(s)
}

// resolveExisting resolves the symlinks in the longest existing prefix of
// the absolute path p; the part that does not exist yet is kept as is.
func resolveExisting(p string) string {
	rest := ""
	for q := p; ; q = filepath.Dir(q) {
		if r, err := filepath.EvalSymlinks(q); err == nil {
			return filepath.Join(r, rest)
		}
		if q == filepath.Dir(q) {
			return p
		}
		rest = filepath.Join(filepath.Base(q), rest)
	}
}

func (e *Endpoint) archiveOrNil() scan.Archive {
	if e.db == nil {
		return nil
	}
	return e.db
}

// Scan walks the root against the archive.
func (e *Endpoint) Scan(ctx context.Context, req remote.ScanRequest, progress func(remote.ScanProgress)) (remote.ScanReply, error) {
	// The whole tree is scanned: read the archive in one pass alongside.
	arch := e.archiveOrNil()
	if e.db != nil {
		snap := e.db.Preload(ctx)
		defer snap.Close()
		arch = snap
	}
	res, err := scan.Scan(ctx, e.root, "", arch, scan.Options{Ignore: e.ignore, Progress: progress, LazyNew: true, Hashing: req.Hashing, Narrow: req.Narrow})
	if err != nil {
		return remote.ScanReply{}, fatalf("scan %s: %v", e.root, err)
	}
	if req.Proceed != nil {
		if err := req.Proceed(ctx); err != nil {
			return remote.ScanReply{}, err
		}
	}
	scanned := make(map[string]*state.Entry, len(res.Changes))
	for _, c := range res.Changes {
		scanned[c.Path] = c.New
	}
	e.scanMu.Lock()
	e.scanned = scanned
	e.scanMu.Unlock()
	if !e.dryRun {
		// Remember the new stat data of unchanged files so they are not
		// read again next time.
		if len(res.Refresh) > 0 && e.db != nil {
			ups := make([]archive.Update, len(res.Refresh))
			for i, r := range res.Refresh {
				ups[i] = archive.Update{Path: r.Path, Entry: r.Entry}
			}
			if err := e.db.Apply(ctx, ups); err != nil {
				return remote.ScanReply{}, fatalf("%v", err)
			}
		}
		// Remove temporary files left by runs that died.
		for _, t := range res.Temps {
			fd, err := e.openDir(state.Parent(t))
			if err != nil {
				continue
			}
			if tempOwnerDead(fd, state.Base(t)) && unix.Unlinkat(fd, state.Base(t), 0) != nil {
				unix.Unlinkat(fd, state.Base(t), unix.AT_REMOVEDIR)
			}
			unix.Close(fd)
		}
	}
	return res.ScanReply, nil
}

// ArchiveList lists every archived entry in path order.
func (e *Endpoint) ArchiveList(ctx context.Context, fn func(string, *state.Entry) error) error {
	if e.db == nil {
		return nil
	}
	paths, entries, err := e.db.All(ctx)
	if err != nil {
		return fatalf("%v", err)
	}
	for i := range paths {
		if err := fn(paths[i], entries[i]); err != nil {
			return err
		}
	}
	return nil
}

// Stat returns the current state of each path.
func (e *Endpoint) Stat(ctx context.Context, paths []string) ([]*state.Entry, error) {
	for _, p := range paths {
		if err := state.ValidatePath(p); err != nil {
			return nil, fmt.Errorf("%w: %v", remote.ErrUnsafePath, err)
		}
	}
	out := make([]*state.Entry, len(paths))
	// Files new to the archive are hashed here when the other side has
	// them too (a first sync between two copies of a tree hashes every
	// file this way): on all cores, as the scan does, each worker taking a
	// run of consecutive paths so that a directory is opened once for all
	// of its files.
	const run = 64
	runs := (len(paths) + run - 1) / run
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(min(runtime.NumCPU(), runs), 1) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			d := &dirCache{e: e, fd: -1}
			defer d.close()
			for {
				r := int(next.Add(1)) - 1
				if r >= runs || ctx.Err() != nil {
					return
				}
				for i := r * run; i < min((r+1)*run, len(paths)); i++ {
					ent, err := e.current(ctx, d, paths[i], buf)
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						next.Store(int64(runs))
						return
					}
					out[i] = ent
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// dirCache keeps the directory descriptor of the latest parent opened.
type dirCache struct {
	e   *Endpoint
	dir string
	fd  int
	err error
}

func (d *dirCache) open(dir string) (int, error) {
	if d.fd >= 0 && d.dir == dir || d.err != nil && d.dir == dir {
		return d.fd, d.err
	}
	d.close()
	d.dir = dir
	d.fd, d.err = d.e.openDir(dir)
	if d.err != nil {
		d.fd = -1
	}
	return d.fd, d.err
}

func (d *dirCache) close() {
	if d.fd >= 0 {
		unix.Close(d.fd)
	}
	d.fd, d.err = -1, nil
}

// current returns the state of p now, hashing a file whose stat data
// differ from the archive's.
func (e *Endpoint) current(ctx context.Context, d *dirCache, p string, buf []byte) (*state.Entry, error) {
	dirfd, err := d.open(state.Parent(p))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil, nil
		}
		return nil, pathErr("stat", p, err)
	}
	name := state.Base(p)
	cur, _, err := lstatAt(dirfd, name)
	if err != nil || cur == nil {
		if err != nil {
			return nil, pathErr("stat", p, err)
		}
		return nil, nil
	}
	switch cur.Kind {
	case state.Symlink:
		t, err := scan.Readlinkat(dirfd, name)
		if err != nil {
			return nil, pathErr("readlink", p, err)
		}
		cur.Target = t
		cur.Hash = hashString(t)
	case state.File:
		e.scanMu.Lock()
		seen := e.scanned[p]
		e.scanMu.Unlock()
		if seen != nil && seen.Unhashed && state.StatSame(seen, cur) {
			// The scan found it new to the archive, and it has not
			// changed since: there is nothing to look up.
		} else if e.db != nil {
			old, err := e.db.Get(ctx, p)
			if err != nil {
				return nil, err
			}
			if old != nil && state.StatSame(old, cur) {
				cur.Hash = old.Hash
				return cur, nil
			}
		}
		h, st, _, err := scan.HashAt(dirfd, name, buf)
		if err != nil {
			return nil, pathErr("read", p, err)
		}
		cur, _ = scan.EntryFromStat(st)
		cur.Hash = h
	}
	return cur, nil
}

// List returns p and everything below it as they are now.
func (e *Endpoint) List(ctx context.Context, p string) ([]remote.PathEntry, error) {
	if err := state.ValidatePath(p); err != nil {
		return nil, fmt.Errorf("%w: %v", remote.ErrUnsafePath, err)
	}
	res, err := scan.Scan(ctx, e.root, p, e.archiveOrNil(), scan.Options{Ignore: e.ignore, All: true})
	if err != nil {
		return nil, pathErr("list", p, err)
	}
	return res.All, nil
}

// ReadFile opens the file at p, which must still match expect.
// Its descriptor counts against the endpoint's budget until Close.
func (e *Endpoint) ReadFile(ctx context.Context, p string, expect *state.Entry) (io.ReadCloser, error) {
	held, err := e.fds.hold(ctx, 1)
	if err != nil {
		return nil, err
	}
	f, st, err := e.openChecked(p, expect)
	if err != nil {
		e.fds.release(held)
		return nil, err
	}
	return &checkedReader{f: f, path: p, before: *st, fds: &e.fds, held: held}, nil
}

// openChecked opens the regular file at p for reading, without following a
// symlink, and checks that it is still what expect (the scan) describes.
func (e *Endpoint) openChecked(p string, expect *state.Entry) (scan.RawFile, *unix.Stat_t, error) {
	if err := state.ValidatePath(p); err != nil {
		return -1, nil, fmt.Errorf("%w: %v", remote.ErrUnsafePath, err)
	}
	fd, err := scan.OpenFileAt(e.rootfd, p)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP):
			return -1, nil, changedErr(p, "it is gone or was replaced")
		case errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV):
			return -1, nil, changedErr(p, "its directory is gone or replaced")
		}
		return -1, nil, pathErr("open", p, err)
	}
	f := scan.RawFile(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return -1, nil, pathErr("stat", p, err)
	}
	cur, _ := scan.EntryFromStat(&st)
	if expect = e.localView(p, expect); expect != nil && (cur == nil || !matches(expect, cur)) {
		f.Close()
		return -1, nil, changedErr(p, "it was modified after the scan")
	}
	return f, &st, nil
}

// checkedReader reads a file and fails at the end if the file changed while
// it was being read, so a torn copy is never installed. It stops at the size
// the file had when opened: a file still that size with the same mtime and
// ctime then was not written meanwhile (one read(2) for a small file, not a
// second one to see the end).
type checkedReader struct {
	f      scan.RawFile
	path   string
	before unix.Stat_t
	n      int64
	err    error
	fds    *descriptorBudget // the descriptor is given back on Close
	held   int64
}

func (r *checkedReader) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if rest := r.before.Size - r.n; int64(len(b)) > rest {
		b = b[:rest]
	}
	var n int
	var err error
	if len(b) > 0 {
		n, err = r.f.Read(b)
		r.n += int64(n)
	} else {
		err = io.EOF
	}
	if err == io.EOF {
		var st unix.Stat_t
		if serr := unix.Fstat(int(r.f), &st); serr != nil {
			r.err = pathErr("stat", r.path, serr)
			return n, r.err
		}
		if st.Size != r.before.Size || st.Mtim != r.before.Mtim || st.Ctim != r.before.Ctim || r.n != st.Size {
			r.err = changedErr(r.path, "the source changed while it was read")
			return n, r.err
		}
		r.err = io.EOF
	} else if err != nil {
		r.err = pathErr("read", r.path, err)
	}
	return n, r.err
}

func (r *checkedReader) Close() error {
	err := r.f.Close()
	if r.held > 0 {
		r.fds.release(r.held)
		r.held = 0
	}
	return err
}

// ReadAt exposes random access for delta encoding.
func (r *checkedReader) ReadAt(b []byte, off int64) (int, error) { return r.f.ReadAt(b, off) }

func changedErr(p, why string) error {
	return fmt.Errorf("%s: %w (%s); it was left alone and will be looked at again next run", state.Display(p), remote.ErrChanged, why)
}

// mismatchErr reports a file written at p whose contents do not have the
// source's hash (remote.ErrMismatch, with remote.ErrChanged).
func mismatchErr(p string) error {
	return fmt.Errorf("%s: %w (%w: the source changed while it was copied); it was left alone and will be looked at again next run", state.Display(p), remote.ErrChanged, remote.ErrMismatch)
}

// ignored reports whether the ignore patterns select path p.
func (e *Endpoint) ignored(p string, isDir bool) bool {
	return e.ignore.Active() && e.ignore.Match(strings.Split(p, "/"), isDir)
}

// blockedErr reports an item that something concord does not synchronize
// stands in the way of (remote.ErrBlocked): why says what and what to do.
func blockedErr(p, why string) error {
	return fmt.Errorf("%s: %w: %s", state.Display(p), remote.ErrBlocked, why)
}

// specialErr turns lstatAt's error for a special file at p into a blocked
// item's error; other errors are reported as a failed stat.
func specialErr(p string, err error) error {
	if errors.Is(err, errSpecial) {
		return blockedErr(p, "a FIFO, socket or device is there, which concord does not synchronize; it was left alone: remove or rename it for this item to go through")
	}
	return pathErr("stat", p, err)
}

// Commit records entries in the archive.
func (e *Endpoint) Commit(ctx context.Context, recs []remote.Record) error {
	if e.dryRun {
		return nil
	}
	if e.db == nil {
		return fatalf("commit without an open archive")
	}
	ups := make([]archive.Update, len(recs))
	for i, r := range recs {
		ups[i] = archive.Update{Path: r.Path, Entry: r.Entry}
	}
	return e.db.ApplySigs(ctx, ups, e.sigs.forRecords(ups))
}

// Close releases the lock and closes the archive.
func (e *Endpoint) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.dropAllPrebuilt()
	var errs []error
	if e.db != nil {
		errs = append(errs, e.db.Close())
	}
	errs = append(errs, e.lock.Release())
	if e.rootfd > 0 {
		unix.Close(e.rootfd)
	}
	return errors.Join(errs...)
}

// sortEntries sorts path entries in path order.
func sortEntries(es []remote.PathEntry) {
	slices.SortFunc(es, func(a, b remote.PathEntry) int { return state.ComparePaths(a.Path, b.Path) })
}

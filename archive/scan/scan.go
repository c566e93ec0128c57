package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/internal/fdlimit"
	"github.com/concord-sync/concord/remote"
)

// Archive is what the scanner needs from an archive. A nil Archive is an
// empty one (a first sync).
type Archive interface {
	// Cursor returns a cursor over the archived entries directly inside
	// dir, in name order.
	Cursor(ctx context.Context, dir string) (archive.Cursor, error)
	CountBelow(ctx context.Context, p string) (int64, error)
}

// Options tune a scan.
type Options struct {
	// Ignore selects paths that are neither reported nor descended into.
	Ignore *Matcher
	// Workers is how many directories are read at once (default 8), and
	// Hashers how many files are hashed at once (default: number of CPUs,
	// at least 2).
	Workers, Hashers int
	// Progress, if set, is called about every 100 ms with running counts.
	Progress func(remote.ScanProgress)
	// All reports every path, changed or not (used to list a subtree).
	All bool
	// Hashing, if set, is called before a file the archive records as a
	// file is read to hash it (see remote.ScanRequest.Hashing).
	Hashing func(p string, old, cur *state.Entry)
	// LazyNew leaves files the archive does not record unread: they are
	// reported with state.Entry.Unhashed set. A first sync then reads each
	// file once, to copy it, instead of twice.
	LazyNew bool
	// Narrow, until closed, keeps all but narrowWorkers() directory
	// workers waiting (see remote.ScanRequest.Narrow).
	Narrow <-chan struct{}
}

// narrowWorkers is how many directory workers run while Options.Narrow is
// open: one processor fewer than there are, at least one. With every
// processor busy scanning, the SSH handshake of a speculative scan's other
// side saw each packet up to 10 ms late (the runtime's background network
// poll) and took 100–190 ms instead of 40 on 2 cores.
func narrowWorkers() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// Result is what a scan found.
type Result struct {
	remote.ScanReply
	// Refresh lists unchanged paths whose stat data (inode, ctime) moved:
	// the archive may record the new stat data to avoid re-reading them.
	Refresh []remote.PathEntry
	// Temps lists concord temporary files found in the tree.
	Temps []string
	// All holds every path's current state when Options.All was set.
	All []remote.PathEntry
}

type scanner struct {
	ctx     context.Context
	root    string
	rootfd  int
	sub     string
	arch    Archive
	opts    Options
	entries atomic.Int64
	hashed  atomic.Int64
	hbytes  atomic.Int64

	mu     sync.Mutex
	res    Result
	errOne error

	dirs   dirQueue
	hashCh chan hashJob
	hashWG sync.WaitGroup
	// open holds a token per directory descriptor the scan holds (see
	// dirTokens).
	open chan struct{}
}

// dirTokens is how many directories one scan holds open at once: a
// directory stays open until its files are hashed, and with a file to hash
// in each of many directories those waiting for the hashers exhausted a
// low limit of open files (ulimit -n 128 failed a first sync with "cannot
// read directory"). Half of what the limit leaves, as the two sides of a
// local sync scan at once; at most 1,024.
func dirTokens() int {
	return int(min(max(fdlimit.Available()/2, 8), 1024))
}

type hashJob struct {
	path  string
	dirfd int
	name  string
	old   *state.Entry
	done  func()
}

// Scan walks root (an absolute directory path) below sub ("" for the whole
// tree) against arch.
func Scan(ctx context.Context, root, sub string, arch Archive, opts Options) (*Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Hashers <= 0 {
		opts.Hashers = max(2, runtime.NumCPU())
	}
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	s := &scanner{ctx: ctx, root: root, rootfd: rootfd, sub: sub, arch: arch, opts: opts, open: make(chan struct{}, dirTokens())}
	s.hashCh = make(chan hashJob, 256)
	for i := 0; i < opts.Hashers; i++ {
		go s.hashWorker()
	}
	stopProgress := s.startProgress()
	s.dirs.init()
	var components []string
	if sub != "" {
		components = splitPath(sub)
	}
	if sub == "" {
		s.dirs.push(dirJob{path: "", components: components})
	} else {
		// Scanning a subtree: report its top itself first.
		if err := s.scanTop(sub); err != nil {
			close(s.hashCh)
			stopProgress()
			return nil, err
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if opts.Narrow != nil && i >= narrowWorkers() {
				select {
				case <-opts.Narrow:
				case <-s.dirs.drained:
					return
				case <-ctx.Done():
					return
				}
			}
			sc := newDirScratch()
			for {
				j, ok := s.dirs.pop()
				if !ok {
					return
				}
				s.scanDir(j, sc)
				s.dirs.done()
			}
		}()
	}
	wg.Wait()
	s.hashWG.Wait()
	close(s.hashCh)
	stopProgress()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.errOne != nil {
		return nil, s.errOne
	}
	r := &s.res
	r.Entries = s.entries.Load()
	r.Hashed = s.hashed.Load()
	r.HashedBytes = s.hbytes.Load()
	slices.SortFunc(r.Changes, func(a, b remote.Change) int { return state.ComparePaths(a.Path, b.Path) })
	slices.SortFunc(r.Skipped, func(a, b remote.Problem) int { return state.ComparePaths(a.Path, b.Path) })
	slices.SortFunc(r.All, func(a, b remote.PathEntry) int { return state.ComparePaths(a.Path, b.Path) })
	return r, nil
}

func (s *scanner) startProgress() func() {
	if s.opts.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				s.opts.Progress(s.progress())
				return
			case <-t.C:
				s.opts.Progress(s.progress())
			}
		}
	}()
	return func() { close(stop); <-done }
}

func (s *scanner) progress() remote.ScanProgress {
	return remote.ScanProgress{Entries: s.entries.Load(), Hashed: s.hashed.Load(), HashedBytes: s.hbytes.Load()}
}

func splitPath(p string) []string {
	var out []string
	for p != "" {
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		out = append(out, p[:i])
		if i == len(p) {
			break
		}
		p = p[i+1:]
	}
	return out
}

func (s *scanner) fatal(err error) {
	s.mu.Lock()
	if s.errOne == nil {
		s.errOne = err
	}
	s.mu.Unlock()
}

func (s *scanner) problem(p string, err error, warning bool) {
	s.mu.Lock()
	s.res.Skipped = append(s.res.Skipped, remote.Problem{Path: p, Err: err.Error(), Warning: warning})
	s.mu.Unlock()
}

func (s *scanner) change(c remote.Change) {
	if c.Old != nil && c.Old.Kind == state.Dir && (c.New == nil || c.New.Kind != state.Dir) && s.arch != nil {
		n, err := s.arch.CountBelow(s.ctx, c.Path)
		if err != nil {
			s.fatal(err)
			return
		}
		c.Below = n
	}
	s.mu.Lock()
	s.res.Changes = append(s.res.Changes, c)
	s.mu.Unlock()
}

func (s *scanner) record(p string, cur, old *state.Entry) {
	if s.opts.All && cur != nil {
		s.mu.Lock()
		s.res.All = append(s.res.All, remote.PathEntry{Path: p, Entry: cur})
		s.mu.Unlock()
	}
	switch {
	case !state.Equal(old, cur):
		s.change(remote.Change{Path: p, Old: old, New: cur})
	case !state.StatSame(old, cur):
		s.mu.Lock()
		s.res.Refresh = append(s.res.Refresh, remote.PathEntry{Path: p, Entry: cur})
		s.mu.Unlock()
	}
}

// entryFromStat builds an entry from lstat data (without hash or target).
func entryFromStat(st *unix.Stat_t) (*state.Entry, bool) {
	e := &state.Entry{
		Mode:  st.Mode & state.PermMask,
		MTime: st.Mtim.Nano(),
		Ino:   st.Ino,
		CTime: st.Ctim.Nano(),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Kind = state.File
		e.Size = st.Size
	case unix.S_IFDIR:
		e.Kind = state.Dir
	case unix.S_IFLNK:
		e.Kind = state.Symlink
		e.Mode = 0
	default:
		return nil, false
	}
	return e, true
}

// EntryFromStat builds an entry from lstat data; ok is false for kinds
// concord does not sync. Files get no hash and symlinks no target.
func EntryFromStat(st *unix.Stat_t) (*state.Entry, bool) { return entryFromStat(st) }

func kindName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	}
	return "a special file"
}

// scanTop handles the top of a subtree scan.
func (s *scanner) scanTop(p string) error {
	parent, err := OpenDirAt(s.rootfd, state.Parent(p))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var old *state.Entry
	if s.arch != nil {
		c, err := s.arch.Cursor(s.ctx, state.Parent(p))
		if err != nil {
			unix.Close(parent)
			return err
		}
		for c.Next() {
			if string(c.Name()) == state.Base(p) {
				e := c.Entry
				old = &e
				break
			}
		}
		if err := c.Err(); err != nil {
			unix.Close(parent)
			return err
		}
	}
	s.handleName(parent, state.Parent(p), splitPath(state.Parent(p)), state.Base(p), old, nil)
	s.hashWG.Wait()
	unix.Close(parent)
	return nil
}

type dirJob struct {
	path       string
	components []string
}

// scanDirHook, if set (by tests), is called as a worker starts and ends
// a directory.
var scanDirHook func(start bool)

func (s *scanner) scanDir(j dirJob, sc *dirScratch) {
	if scanDirHook != nil {
		scanDirHook(true)
		defer scanDirHook(false)
	}
	if s.ctx.Err() != nil {
		return
	}
	select {
	case s.open <- struct{}{}:
	case <-s.ctx.Done():
		return
	}
	fd, err := OpenDirAt(s.rootfd, j.path)
	if err != nil {
		<-s.open
		if j.path == "" {
			s.fatal(fmt.Errorf("open root %s: %w", s.root, err))
			return
		}
		// Unreadable: report and leave the subtree alone (never taken
		// as deleted).
		s.problem(j.path, fmt.Errorf("cannot read directory: %w", err), false)
		return
	}
	closeDir := func() {
		unix.Close(fd)
		<-s.open
	}
	names, err := readNames(fd, sc)
	if err != nil {
		closeDir()
		s.problem(j.path, fmt.Errorf("cannot list directory: %w", err), false)
		return
	}
	var old archive.Cursor
	if s.arch != nil {
		if old, err = s.arch.Cursor(s.ctx, j.path); err != nil {
			closeDir()
			s.fatal(err)
			return
		}
	}
	// Merge the sorted names on disk with the sorted archived names. The
	// archived entry is copied only when the file changed.
	var pending dirPending
	var seen int64
	more := old.Next()
	for _, name := range names {
		for more && string(old.Name()) < name {
			s.gone(j, string(old.Name()), old.Entry)
			more = old.Next()
		}
		var o *state.Entry
		matched := more && string(old.Name()) == name
		if matched {
			o = &old.Entry
		}
		if s.unchanged(sc, fd, name, o) {
			seen++
		} else {
			if matched {
				e := old.Entry
				o = &e
			}
			s.handleName(fd, j.path, j.components, name, o, &pending)
		}
		if matched {
			more = old.Next()
		}
	}
	for more {
		s.gone(j, string(old.Name()), old.Entry)
		more = old.Next()
	}
	if err := old.Err(); err != nil {
		s.fatal(err)
	}
	s.entries.Add(seen)
	// The directory fd must stay open until its files are hashed.
	if pending.queued == 0 {
		closeDir()
		return
	}
	go func() {
		pending.Wait()
		closeDir()
	}()
}

// dirPending counts the files of one directory sent to the hashers.
type dirPending struct {
	sync.WaitGroup
	queued int // files sent (only the directory's worker touches it)
}

// gone reports an archived name no longer on disk as deleted, unless it is
// ignored.
func (s *scanner) gone(j dirJob, name string, o state.Entry) {
	if s.opts.Ignore.Active() && s.opts.Ignore.Match(append(append([]string(nil), j.components...), name), o.Kind == state.Dir) {
		return
	}
	s.change(remote.Change{Path: state.Join(j.path, name), Old: &o})
}

// unchanged is the scan's fast path: a file whose lstat data match its
// archived entry exactly is unchanged, and nothing about it is allocated or
// reported (the common case of every file in a no-change sync).
func (s *scanner) unchanged(sc *dirScratch, dirfd int, name string, old *state.Entry) bool {
	if old == nil || old.Kind != state.File || s.opts.All || IsTemp(name) {
		return false
	}
	var st unix.Stat_t
	var err error
	if sc.nb, err = lstatAt(dirfd, name, &st, sc.nb); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == old.Size && st.Mtim.Nano() == old.MTime &&
		st.Mode&state.PermMask == old.Mode && st.Ino == old.Ino && st.Ctim.Nano() == old.CTime
}

// handleName examines one name in directory dirPath (open as dirfd).
func (s *scanner) handleName(dirfd int, dirPath string, components []string, name string, old *state.Entry, pending *dirPending) {
	p := state.Join(dirPath, name)
	if IsTemp(name) {
		s.mu.Lock()
		s.res.Temps = append(s.res.Temps, p)
		s.mu.Unlock()
		return
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			if old != nil {
				s.change(remote.Change{Path: p, Old: old})
			}
			return
		}
		s.problem(p, fmt.Errorf("cannot stat: %w", err), false)
		return
	}
	cur, ok := entryFromStat(&st)
	if !ok {
		s.problem(p, fmt.Errorf("skipped: %s is not synchronized", kindName(st.Mode)), true)
		return
	}
	if s.opts.Ignore.Active() {
		comps := append(append(make([]string, 0, len(components)+1), components...), name)
		if s.opts.Ignore.Match(comps, cur.Kind == state.Dir) {
			return
		}
	}
	s.entries.Add(1)
	switch cur.Kind {
	case state.Dir:
		s.record(p, cur, old)
		comps := make([]string, 0, len(components)+1)
		comps = append(append(comps, components...), name)
		// A directory that is new, or was something else, has no archived
		// children: everything below it is reported as new.
		s.dirs.push(dirJob{path: p, components: comps})
	case state.Symlink:
		target, err := readlinkat(dirfd, name)
		if err != nil {
			s.problem(p, fmt.Errorf("cannot read symlink: %w", err), false)
			return
		}
		cur.Target = target
		cur.Hash = blake3.Sum256([]byte(target))
		s.record(p, cur, old)
	case state.File:
		if old != nil && old.Kind == state.File && state.StatSame(old, cur) {
			cur.Hash = old.Hash
			s.record(p, cur, old)
			return
		}
		if old == nil && s.opts.LazyNew {
			cur.Unhashed = true
			s.record(p, cur, old)
			return
		}
		if s.opts.Hashing != nil && old != nil && old.Kind == state.File {
			s.opts.Hashing(p, old, cur)
		}
		if pending != nil {
			pending.Add(1)
			pending.queued++
		}
		s.hashWG.Add(1)
		s.hashCh <- hashJob{path: p, dirfd: dirfd, name: name, old: old, done: func() {
			if pending != nil {
				pending.Done()
			}
		}}
	}
}

func (s *scanner) hashWorker() {
	buf := make([]byte, 256<<10)
	for j := range s.hashCh {
		s.hashOne(j, buf)
		j.done()
		s.hashWG.Done()
	}
}

func (s *scanner) hashOne(j hashJob, buf []byte) {
	for attempt := 0; ; attempt++ {
		h, st, n, err := HashAt(j.dirfd, j.name, buf)
		if err != nil && !errors.Is(err, errChanging) {
			if errors.Is(err, unix.ENOENT) {
				if j.old != nil {
					s.change(remote.Change{Path: j.path, Old: j.old})
				}
				return
			}
			s.problem(j.path, fmt.Errorf("cannot read: %w", err), false)
			return
		}
		s.hashed.Add(1)
		s.hbytes.Add(n)
		cur, ok := entryFromStat(st)
		if !ok || cur.Kind != state.File {
			s.problem(j.path, fmt.Errorf("changed kind while being scanned"), false)
			return
		}
		if errors.Is(err, errChanging) || cur.Size != n {
			if attempt < 2 {
				continue
			}
			s.problem(j.path, fmt.Errorf("keeps changing while being read; it will be picked up by the next run"), false)
			return
		}
		cur.Hash = h
		s.record(j.path, cur, j.old)
		return
	}
}

// HashAt reads the regular file name in dirfd and returns its BLAKE3 hash,
// its stat data taken after reading, and the number of bytes read. The file
// is opened without following symlinks and without blocking on FIFOs.
func HashAt(dirfd int, name string, buf []byte) ([32]byte, *unix.Stat_t, int64, error) {
	var sum [32]byte
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return sum, nil, 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return sum, nil, 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return sum, &st, 0, fmt.Errorf("not a regular file")
	}
	before := st
	// Read up to the size fstat gave, not to end of file: a small file
	// then takes one read(2), not two. A file that grew, shrank or was
	// written meanwhile shows in the second fstat (size, mtime, ctime).
	var n int64
	if before.Size <= int64(len(buf)) {
		// Most files fit the buffer: one call hashes them, without a
		// hasher to allocate.
		if n, err = readFull(fd, buf[:before.Size]); err != nil {
			return sum, nil, n, err
		}
		sum = blake3.Sum256(buf[:n])
	} else {
		h := blake3.New()
		for n < before.Size {
			b := buf[:min(int64(len(buf)), before.Size-n)]
			k, err := readFull(fd, b)
			h.Write(b[:k])
			n += k
			if err != nil {
				return sum, nil, n, err
			}
			if k < int64(len(b)) {
				break // the file ended early: the fstat below says so
			}
		}
		h.Sum(sum[:0])
	}
	if err := unix.Fstat(fd, &st); err != nil {
		return sum, nil, n, err
	}
	if st.Size != before.Size || st.Mtim != before.Mtim || st.Ctim != before.Ctim || n != st.Size {
		return sum, &st, n, errChanging
	}
	return sum, &st, n, nil
}

// readFull reads into b until it is full or the file ends, and returns how
// many bytes it read.
func readFull(fd int, b []byte) (int64, error) {
	var n int64
	for n < int64(len(b)) {
		k, err := RawFile(fd).Read(b[n:])
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		n += int64(k)
	}
	return n, nil
}

// errChanging reports a file that changed while it was read.
var errChanging = errors.New("file changed while being read")

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Readlinkat returns the target of the symlink name in dirfd.
func Readlinkat(dirfd int, name string) (string, error) { return readlinkat(dirfd, name) }

// OpenDir opens the directory rel below root without following any symlink
// on the way, so a path can never lead outside the root. It returns a file
// descriptor to close.
func OpenDir(root, rel string) (int, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	if rel == "" {
		return fd, nil
	}
	defer unix.Close(fd)
	return OpenDirAt(fd, rel)
}

// OpenFileAt opens the file rel below the directory rootfd for reading,
// O_NONBLOCK (a FIFO put there cannot block), without following any
// symlink and without leaving rootfd: one openat2 call where the kernel has
// it, else the parent through OpenDirAt and the file with O_NOFOLLOW.
//
// Like HashAt it asks for O_NOATIME, falling back without it where the
// kernel refuses (EPERM: a file of another user, without CAP_FOWNER).
// Reading a file to copy it is not an access its owner cares about, and
// updating the atime dirties every inode read: in a remote first sync of
// 100,000 files that was 3% of the client's time and 100,000 more inodes
// for the flush before the renames to write back when both roots share a
// file system.
func OpenFileAt(rootfd int, rel string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := openFileAt(rootfd, rel, flags|unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) {
		fd, err = openFileAt(rootfd, rel, flags)
	}
	return fd, err
}

func openFileAt(rootfd int, rel string, flags uint64) (int, error) {
	if fd, ok, err := openat2Beneath(rootfd, rel, flags); ok {
		return fd, err
	}
	dirfd, err := OpenDirAt(rootfd, state.Parent(rel))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return -1, pe.Err
		}
		return -1, err
	}
	defer unix.Close(dirfd)
	return unix.Openat(dirfd, state.Base(rel), int(flags), 0)
}

// openat2Missing is set once the kernel has said it lacks openat2.
var openat2Missing atomic.Bool

// openat2Beneath opens rel below rootfd with openat2, never following a
// symlink and never leaving rootfd. ok is false when the kernel lacks
// openat2 (Linux before 5.6): the caller then walks the path itself.
func openat2Beneath(rootfd int, rel string, flags uint64) (fd int, ok bool, err error) {
	if openat2Missing.Load() {
		return -1, false, nil
	}
	fd, err = unix.Openat2(rootfd, rel, &unix.OpenHow{
		Flags:   flags,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		openat2Missing.Store(true)
		return -1, false, nil
	}
	return fd, true, err
}

// OpenDirAt opens the directory rel below the directory rootfd without
// following any symlink and without leaving it: with openat2's
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS in one system call where the kernel
// has it (Linux 5.6), else one O_NOFOLLOW component at a time.
func OpenDirAt(rootfd int, rel string) (int, error) {
	if rel == "" {
		return unix.Dup(rootfd)
	}
	if fd, ok, err := openat2Beneath(rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW); ok {
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV):
			return -1, &fs.PathError{Op: "open", Path: rel, Err: fmt.Errorf("%w: a component is a symlink or not a directory", err)}
		default:
			return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
		}
	}
	fd, err := unix.Dup(rootfd)
	if err != nil {
		return -1, err
	}
	for _, c := range splitPath(rel) {
		if c == "" || c == "." || c == ".." {
			// O_NOFOLLOW does not stop "..": refuse it as openat2 would.
			unix.Close(fd)
			return -1, &fs.PathError{Op: "open", Path: rel, Err: fmt.Errorf("%w: the path leaves the root or is not clean", unix.EXDEV)}
		}
		nfd, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return -1, &fs.PathError{Op: "open", Path: rel, Err: fmt.Errorf("%w: a component is a symlink or not a directory", err)}
			}
			return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
		}
		fd = nfd
	}
	return fd, nil
}

// dirQueue is a LIFO of directories to scan that knows when all work,
// including work still being discovered, is finished.
type dirQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	jobs    []dirJob
	working int
	// drained is closed once the last directory is done.
	drained    chan struct{}
	wasDrained bool
}

func (q *dirQueue) init() {
	q.cond = sync.NewCond(&q.mu)
	q.drained = make(chan struct{})
}

func (q *dirQueue) push(j dirJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *dirQueue) pop() (dirJob, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) == 0 {
		if q.working == 0 {
			q.cond.Broadcast()
			if !q.wasDrained {
				q.wasDrained = true
				close(q.drained)
			}
			return dirJob{}, false
		}
		q.cond.Wait()
	}
	j := q.jobs[len(q.jobs)-1]
	q.jobs = q.jobs[:len(q.jobs)-1]
	q.working++
	return j, true
}

func (q *dirQueue) done() {
	q.mu.Lock()
	q.working--
	if q.working == 0 && len(q.jobs) == 0 {
		q.cond.Broadcast()
	}
	q.mu.Unlock()
}

package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/archive/state"
)

// expectedBelow returns what the last scan saw strictly below p: the
// archived entries, overridden by the scan's changes.
func (e *Endpoint) expectedBelow(ctx context.Context, p string) (map[string]*state.Entry, error) {
	want := make(map[string]*state.Entry)
	if e.db != nil {
		if err := e.db.Subtree(ctx, p, func(q string, ent *state.Entry) error {
			want[q] = ent
			return nil
		}); err != nil {
			return nil, err
		}
	}
	e.scanMu.Lock()
	for q, ent := range e.scanned {
		if state.IsBelow(q, p) {
			if ent == nil {
				delete(want, q)
				for k := range want {
					if state.IsBelow(k, q) {
						delete(want, k)
					}
				}
			} else {
				want[q] = ent
			}
		}
	}
	e.scanMu.Unlock()
	return want, nil
}

// removeChecked removes p (a file, symlink or whole directory) after
// checking that everything in it is what the scan saw; otherwise nothing is
// removed and the error says which path changed.
func (e *Endpoint) removeChecked(ctx context.Context, dirfd int, p string, expect *state.Entry) error {
	name := state.Base(p)
	if expect.Kind != state.Dir {
		if err := e.backupFile(dirfd, p); err != nil {
			return err
		}
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return pathErr("remove", p, err)
		}
		return nil
	}
	want, err := e.expectedBelow(ctx, p)
	if err != nil {
		return err
	}
	// Phase 1: verify. Phase 2: remove, deepest first.
	var order []string
	if err := e.verifyTree(dirfd, name, p, want, &order); err != nil {
		return err
	}
	for i := len(order) - 1; i >= 0; i-- {
		q := order[i]
		rel := strings.TrimPrefix(q, p)
		rel = strings.TrimPrefix(rel, "/")
		pfd, err := e.openDir(state.Parent(q))
		if err != nil {
			return pathErr("remove", q, err)
		}
		ent := want[q]
		flags := 0
		if q == p || (ent != nil && ent.Kind == state.Dir) {
			flags = unix.AT_REMOVEDIR
		} else if ent != nil && ent.Kind == state.File {
			if err := e.backupFile(pfd, q); err != nil {
				unix.Close(pfd)
				return err
			}
		}
		err = unix.Unlinkat(pfd, state.Base(q), flags)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
				return changedErr(q, "something was added to it during the sync")
			}
			return pathErr("remove", q, err)
		}
		_ = rel
	}
	return nil
}

// verifyTree walks directory name (path p) in dirfd and checks every entry
// against want, appending paths in pre-order to order.
func (e *Endpoint) verifyTree(dirfd int, name, p string, want map[string]*state.Entry, order *[]string) error {
	*order = append(*order, p)
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathErr("open", p, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return pathErr("list", p, err)
	}
	sort.Strings(names)
	for _, n := range names {
		q := state.Join(p, n)
		if tempOwnerDead(fd, n) {
			unix.Unlinkat(fd, n, 0)
			continue
		}
		cur, _, err := lstatAt(fd, n)
		if errors.Is(err, errSpecial) {
			return blockedErr(q, "a FIFO, socket or device is there, which concord does not synchronize, so the directory was not deleted: remove it by hand for the deletion to go through")
		}
		if err != nil {
			return pathErr("stat", q, err)
		}
		w, ok := want[q]
		if !ok || !matches(w, cur) {
			if !ok && e.ignored(q, cur.Kind == state.Dir) {
				return blockedErr(q, "it is ignored, and concord does not delete what it ignores, so the directory was not deleted: remove it by hand, or stop ignoring it, for the deletion to go through")
			}
			if !ok {
				return changedErr(q, "it is not known to the last scan (it appeared since); the directory was not deleted")
			}
			return changedErr(q, "it was modified after the scan; the directory was not deleted")
		}
		if cur.Kind == state.Dir {
			if err := e.verifyTree(fd, n, q, want, order); err != nil {
				return err
			}
		} else {
			*order = append(*order, q)
		}
	}
	return nil
}

// backupFile keeps a copy of the file at p (in dirfd) in the backup
// directory, named path.TIMESTAMP, and prunes older copies beyond the limit.
func (e *Endpoint) backupFile(dirfd int, p string) error {
	if e.backup == "" {
		return nil
	}
	name := state.Base(p)
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil
	}
	dst := filepath.Join(e.backup, filepath.FromSlash(p)) + "." + time.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("keep a backup of %s in %s: %w", state.Display(p), e.backup, err)
	}
	if err := unix.Linkat(dirfd, name, unix.AT_FDCWD, dst, 0); err != nil {
		// Another file system: copy.
		if err := copyAt(dirfd, name, dst, st.Mode&state.PermMask); err != nil {
			return fmt.Errorf("keep a backup of %s in %s: %w", state.Display(p), e.backup, err)
		}
	}
	if e.maxBack > 0 {
		pruneBackups(filepath.Dir(dst), filepath.Base(filepath.FromSlash(p))+".", e.maxBack)
	}
	return nil
}

func copyAt(dirfd int, name, dst string, mode uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	src := os.NewFile(uintptr(fd), name)
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(mode))
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// pruneBackups keeps the newest max backups named prefix+TIMESTAMP in dir.
func pruneBackups(dir, prefix string, max int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var ours []string
	for _, de := range ents {
		n := de.Name()
		if strings.HasPrefix(n, prefix) && isStamp(n[len(prefix):]) {
			ours = append(ours, n)
		}
	}
	sort.Strings(ours)
	for len(ours) > max {
		os.Remove(filepath.Join(dir, ours[0]))
		ours = ours[1:]
	}
}

// isStamp reports whether s looks like a backup time stamp.
func isStamp(s string) bool {
	_, err := time.Parse("20060102T150405.000000000Z", s)
	return err == nil
}

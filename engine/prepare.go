package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
)

// Session is one run between two endpoints: prepared (connected, scanned,
// reconciled) by Prepare, then carried out by Execute.
type Session struct {
	cfg   Config
	ep    [3]remote.Endpoint // index 1 and 2
	info  [3]remote.Info
	open  [3]remote.OpenReply
	scan  [3]remote.ScanReply
	agree bool
	plan  *reconcile.Plan
	// below counts archived entries under deleted or replaced
	// directories, from the scans.
	below map[string]int64
	// forget lists paths that only one archive still records while both
	// sides lack them; both archives drop them.
	forget []string
	// prefetch fetches delta signatures during the scan (nil: never).
	prefetch *prefetcher
	// spec is the scan of a local side started while connecting to the
	// other (nil: none, or abandoned).
	spec *speculation
	// progress receives scan events (nil: none); progressMu serializes it.
	progress   func(ScanEvent)
	progressMu sync.Mutex
}

// Prepare connects to both roots, opens their archives, scans both sides
// concurrently and reconciles. scan, if set, receives progress events.
// Errors that stop the run wrap remote.ErrFatal.
func Prepare(ctx context.Context, cfg Config, scan func(ScanEvent)) (*Session, error) {
	s := &Session{cfg: cfg, progress: scan}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	s.prefetch = newPrefetcher(ctx, s)
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	if err := s.scanBoth(ctx); err != nil {
		return nil, err
	}
	paths, err := s.inputs(ctx)
	if err != nil {
		return nil, err
	}
	s.plan = reconcile.Reconcile(paths, cfg.Options)
	if err := s.guardDeletes(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// Plan returns the plan; a user interface may change items' Action.
func (s *Session) Plan() *reconcile.Plan { return s.plan }

// Roots returns the two roots as the user named them.
func (s *Session) Roots() (string, string) { return s.cfg.Root1, s.cfg.Root2 }

// Endpoint returns the endpoint of side 1 or 2.
func (s *Session) Endpoint(side reconcile.Side) remote.Endpoint { return s.ep[side] }

// ScanReplies returns both sides' scan results.
func (s *Session) ScanReplies() (remote.ScanReply, remote.ScanReply) { return s.scan[1], s.scan[2] }

// Close closes both endpoints, releasing their locks.
func (s *Session) Close() error {
	s.abandon(errAbandoned)
	s.prefetch.stop()
	var errs []error
	for i := 1; i <= 2; i++ {
		if s.ep[i] != nil {
			errs = append(errs, s.ep[i].Close())
			s.ep[i] = nil
		}
	}
	return errors.Join(errs...)
}

func (s *Session) dial(ctx context.Context, root string) (remote.Endpoint, error) {
	if s.cfg.Dial != nil {
		return s.cfg.Dial(ctx, root)
	}
	return local.New(root, local.Options{Version: s.cfg.Version}), nil
}

// both runs f for sides 1 and 2 concurrently and returns the first error.
func both(f func(side int) error) error {
	var wg sync.WaitGroup
	var errs [3]error
	for i := 1; i <= 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs[1], errs[2])
}

func (s *Session) connect(ctx context.Context) error {
	err := both(func(i int) error {
		if err := s.hello(ctx, i); err != nil {
			return err
		}
		s.speculate(ctx, i)
		return nil
	})
	if err == nil {
		err = s.checkRoots()
	}
	if err != nil {
		s.abandon(err)
		return asFatal(err)
	}
	if sp := s.spec; sp != nil && sp.peer != s.info[3-sp.side].ReplicaID {
		// The remote root leads to another replica than last time: the
		// scan compared with the wrong archive. Start that side over.
		s.abandon(errAbandoned)
		if err := s.restart(ctx, sp.side); err != nil {
			return asFatal(err)
		}
	}
	// Open one side after the other, in lockOrder: each takes its lock.
	for _, i := range s.lockOrder() {
		if sp := s.spec; sp != nil && sp.side == i {
			<-sp.opened
			if sp.openErr != nil {
				err := sp.openErr
				s.abandon(err)
				return asFatal(err)
			}
			s.open[i] = sp.open
			continue
		}
		reply, err := s.ep[i].Open(ctx, s.openRequest(i, s.info[3-i].ReplicaID))
		if err != nil {
			s.abandon(err)
			return asFatal(err)
		}
		s.open[i] = reply
	}
	s.agree = s.open[1].Digest == s.open[2].Digest && s.open[1].PairID == s.open[2].PairID
	if sp := s.spec; sp != nil {
		sp.decide(nil)
		sp.widen()
	}
	s.rememberPeers()
	return nil
}

// lockOrder returns the sides in the order their archives are opened, and
// so their locks taken.
//
// Two local roots are opened in the order of their replica ids, whatever
// the order of the roots on the command line: of two runs of the pair
// started at the same moment ("sync a b" and "sync b a"), each taking the
// lock of its own first root, each could get one lock and then find the
// other held, and both would exit 3. In one order for all runs, whichever
// takes the first lock finds the second free (a run that failed the first
// lock never tries the second), so one run always goes ahead.
//
// With a remote root the sides are opened in root order, as before: the
// remote lock is taken by concord serve on the far side and the local one
// here, and the local archive is usually opened, its lock taken, while the
// remote side is still connecting (a speculation, see speculate.go), before
// its replica id is known. No order holds across runs there, so two runs
// in opposite root orders started together may still both exit 3 (a rare
// race; the next run goes through).
func (s *Session) lockOrder() [2]int {
	if isRemoteRoot(s.root(1)) || isRemoteRoot(s.root(2)) || s.info[1].ReplicaID < s.info[2].ReplicaID {
		return [2]int{1, 2}
	}
	return [2]int{2, 1}
}

// checkRoots refuses two roots that are one directory or nested.
func (s *Session) checkRoots() error {
	if s.info[1].ReplicaID == s.info[2].ReplicaID {
		return Fatal("%s and %s are the same directory: nothing to synchronize", s.cfg.Root1, s.cfg.Root2)
	}
	if strings.HasPrefix(s.info[1].Root+"/", s.info[2].Root+"/") || strings.HasPrefix(s.info[2].Root+"/", s.info[1].Root+"/") {
		if s.info[1].Host == s.info[2].Host {
			return Fatal("one root lies inside the other (%s, %s): choose two separate directories", s.info[1].Root, s.info[2].Root)
		}
	}
	return nil
}

// restart replaces side i's endpoint, after an abandoned speculation, by a
// fresh one that has answered Hello and opened nothing.
func (s *Session) restart(ctx context.Context, i int) error {
	err := s.ep[i].Close()
	s.ep[i] = nil
	if err != nil {
		return err
	}
	// The abandoned scan may have asked for signatures against the
	// wrong archive's entries: drop them with the prefetcher.
	s.prefetch.stop()
	s.prefetch = newPrefetcher(ctx, s)
	return s.hello(ctx, i)
}

// hello dials side i and asks it who it is.
func (s *Session) hello(ctx context.Context, i int) error {
	ep, err := s.dial(ctx, s.root(i))
	if err != nil {
		return err
	}
	s.ep[i] = ep
	info, err := ep.Hello(ctx)
	if err != nil {
		return err
	}
	s.info[i] = info
	return nil
}

// rememberPeers records, for each local side whose other root is remote,
// which replica that root led to, so that the next run may scan while it
// connects. It is only an optimization: failing to record is not an error.
func (s *Session) rememberPeers() {
	if s.cfg.DryRun || s.cfg.Dial == nil {
		return
	}
	for i := 1; i <= 2; i++ {
		ep, ok := s.ep[i].(*local.Endpoint)
		if !ok || !isRemoteRoot(s.root(3-i)) {
			continue
		}
		if peer := s.info[3-i].ReplicaID; ep.PeerHint(s.root(3-i)) != peer {
			ep.RememberPeer(s.root(3-i), peer)
		}
	}
}

// root returns root i as the user wrote it.
func (s *Session) root(i int) string {
	if i == 1 {
		return s.cfg.Root1
	}
	return s.cfg.Root2
}

// openRequest returns the request that opens side i's archive for its
// pairing with replica peer.
func (s *Session) openRequest(i int, peer string) remote.OpenRequest {
	return remote.OpenRequest{
		PeerID:     peer,
		PeerRoot:   s.root(3 - i),
		Ignore:     s.cfg.Ignore,
		DryRun:     s.cfg.DryRun,
		BackupDir:  s.cfg.BackupDir,
		MaxBackups: s.cfg.MaxBackups,
	}
}

// asFatal marks connection and setup errors as fatal.
func asFatal(err error) error {
	if err == nil || IsFatal(err) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", remote.ErrFatal, err)
}

// scanRequest returns the scan request of side i.
func (s *Session) scanRequest(i int) remote.ScanRequest { return s.prefetch.scanRequest(i) }

// scanProgress returns side i's scan progress callback (nil when nobody
// listens).
func (s *Session) scanProgress(i int) func(remote.ScanProgress) {
	if s.progress == nil {
		return nil
	}
	return func(p remote.ScanProgress) {
		s.progressMu.Lock()
		defer s.progressMu.Unlock()
		s.progress(ScanEvent{Side: reconcile.Side(i), ScanProgress: p})
	}
}

func (s *Session) scanBoth(ctx context.Context) error {
	err := both(func(i int) error {
		var reply remote.ScanReply
		var err error
		if sp := s.spec; sp != nil && sp.side == i {
			select {
			case <-sp.done:
			case <-ctx.Done():
				// The speculation's context derives from ctx: its
				// scan is ending too.
				<-sp.done
			}
			reply, err = sp.reply, sp.err
		} else {
			reply, err = s.ep[i].Scan(ctx, s.scanRequest(i), s.scanProgress(i))
		}
		if err != nil {
			s.prefetch.scanDone(i, false)
			return err
		}
		s.scan[i] = reply
		s.prefetch.scanDone(i, true)
		if s.progress != nil {
			s.progressMu.Lock()
			s.progress(ScanEvent{Side: reconcile.Side(i), ScanProgress: remote.ScanProgress{
				Entries: reply.Entries, Hashed: reply.Hashed, HashedBytes: reply.HashedBytes}, Done: true})
			s.progressMu.Unlock()
		}
		return nil
	})
	if err != nil {
		return asFatal(err)
	}
	// Guard: a root that is empty while its archive knows entries is most
	// likely an unmounted disk; going on would delete everything on the
	// other side.
	for i := 1; i <= 2; i++ {
		if s.scan[i].Entries == 0 && s.open[i].Entries > 0 {
			return Fatal("root %s is empty, but the last sync recorded %d entries there: if its disk is not mounted, mount it and run again; "+
				"if you really emptied it, delete the same files on the other side too, or move the archive %s aside to start afresh (a first sync never deletes)",
				s.root(i), s.open[i].Entries, s.open[i].Path)
		}
	}
	return nil
}

type sideView struct {
	// gone holds directories that are deleted or replaced on this side.
	gone    map[string]bool
	archive map[string]*state.Entry // only when the archives disagree
}

func newView(r remote.ScanReply) *sideView {
	v := &sideView{gone: make(map[string]bool)}
	for _, c := range r.Changes {
		if c.Old != nil && c.Old.Kind == state.Dir && (c.New == nil || c.New.Kind != state.Dir) {
			v.gone[c.Path] = true
		}
	}
	return v
}

// goneAbove reports whether some directory above p is deleted or replaced.
func (v *sideView) goneAbove(p string) bool {
	if len(v.gone) == 0 {
		return false
	}
	for q := state.Parent(p); q != ""; q = state.Parent(q) {
		if v.gone[q] {
			return true
		}
	}
	return false
}

// archived returns the side's archived entry for p, as far as known, given
// the side's change of p (nil if its scan found none).
func (v *sideView) archived(p string, c *remote.Change) (*state.Entry, bool) {
	if c != nil {
		return c.Old, true
	}
	if v.archive != nil {
		return v.archive[p], true
	}
	return nil, false
}

// current returns the side's state of p now, given its change (nil if
// none) and its archived entry.
func (v *sideView) current(p string, c *remote.Change, archived *state.Entry) *state.Entry {
	if c != nil {
		return c.New
	}
	if v.goneAbove(p) {
		return nil
	}
	return archived
}

// pathChanges is one path inputs looks at, with the change each side's
// scan found there (nil: none), indexed by side.
type pathChanges struct {
	path string
	c    [3]*remote.Change
}

// inputs builds the reconciler's input: every path that changed on a side,
// or on which the archives disagree, with its ancestor and both states.
func (s *Session) inputs(ctx context.Context) ([]reconcile.Path, error) {
	v := [3]*sideView{nil, newView(s.scan[1]), newView(s.scan[2])}
	s.below = make(map[string]int64)
	for i := 1; i <= 2; i++ {
		for _, c := range s.scan[i].Changes {
			if c.Below > 0 && c.Below > s.below[c.Path] {
				s.below[c.Path] = c.Below
			}
		}
	}
	var paths []pathChanges
	if s.agree {
		paths = mergeChanges(s.scan[1].Changes, s.scan[2].Changes)
	}
	if paths == nil {
		var err error
		if paths, err = s.pathSet(ctx, v); err != nil {
			return nil, err
		}
	}
	out := make([]reconcile.Path, 0, len(paths))
	for _, pc := range paths {
		p := pc.path
		a1, ok1 := v[1].archived(p, pc.c[1])
		a2, ok2 := v[2].archived(p, pc.c[2])
		// When the archives agree, a path known to one side's scan has
		// the same archived entry on the other.
		if !ok1 {
			a1 = a2
		}
		if !ok2 {
			a2 = a1
		}
		in := reconcile.Path{Path: p, One: v[1].current(p, pc.c[1], a1), Two: v[2].current(p, pc.c[2], a2)}
		if state.Equal(a1, a2) {
			in.Base = a1
		} else if in.One == nil && in.Two == nil {
			s.forget = append(s.forget, p)
		}
		out = append(out, in)
	}
	if err := s.hashShared(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// pathSet collects the paths inputs looks at with maps and a sort: those
// that changed on either side and, when the archives disagree, those on
// which they differ (filling v's archive maps).
func (s *Session) pathSet(ctx context.Context, v [3]*sideView) ([]pathChanges, error) {
	set := make(map[string]*pathChanges)
	add := func(p string) *pathChanges {
		pc := set[p]
		if pc == nil {
			pc = &pathChanges{path: p}
			set[p] = pc
		}
		return pc
	}
	for i := 1; i <= 2; i++ {
		for j := range s.scan[i].Changes {
			c := &s.scan[i].Changes[j]
			add(c.Path).c[i] = c
		}
	}
	if !s.agree {
		// The archives disagree (one is new, lost, restored from a backup,
		// or a run stopped between the two commits): compare them path by
		// path. Where they differ there is no ancestor.
		for i := 1; i <= 2; i++ {
			v[i].archive = make(map[string]*state.Entry)
			m := v[i].archive
			if err := s.ep[i].ArchiveList(ctx, func(p string, e *state.Entry) error {
				m[p] = e
				return nil
			}); err != nil {
				return nil, asFatal(err)
			}
		}
		for p, e := range v[1].archive {
			if !state.Equal(e, v[2].archive[p]) {
				add(p)
			}
		}
		for p, e := range v[2].archive {
			if !state.Equal(e, v[1].archive[p]) {
				add(p)
			}
		}
	}
	paths := make([]pathChanges, 0, len(set))
	for _, pc := range set {
		paths = append(paths, *pc)
	}
	slices.SortFunc(paths, func(a, b pathChanges) int { return state.ComparePaths(a.path, b.path) })
	return paths, nil
}

// mergeChanges returns the paths of a (side 1's changes) and b (side 2's),
// each once with its changes, in state.ComparePaths order, merging the two
// lists in one pass. It returns nil if either list is not strictly in that
// order (a peer's scan might not be) or both are empty. A first sync of
// 100,000 files spent 0.2 s of one processor putting the paths in maps and
// sorting them, while the far side waited.
func mergeChanges(a, b []remote.Change) []pathChanges {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make([]pathChanges, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var pc pathChanges
		c := 0
		switch {
		case j == len(b):
			c = -1
		case i == len(a):
			c = 1
		default:
			c = state.ComparePaths(a[i].Path, b[j].Path)
		}
		if c <= 0 {
			pc.path, pc.c[1] = a[i].Path, &a[i]
			i++
		}
		if c >= 0 {
			pc.path, pc.c[2] = b[j].Path, &b[j]
			j++
		}
		if len(out) > 0 && state.ComparePaths(out[len(out)-1].path, pc.path) >= 0 {
			return nil
		}
		out = append(out, pc)
	}
	return out
}

// hashShared asks each side for the hash of the files its scan left unread
// (new to its archive) where the other side has something at the same
// path: there the reconciler compares contents (both sides created the
// same file?) and a conflict report shows both hashes. Files only one side
// has are hashed by the copy that reads them anyway.
func (s *Session) hashShared(ctx context.Context, in []reconcile.Path) error {
	var paths [3][]string
	var idx [3][]int
	for k := range in {
		one, two := in[k].One, in[k].Two
		if one != nil && one.Unhashed && two != nil {
			paths[1], idx[1] = append(paths[1], in[k].Path), append(idx[1], k)
		}
		if two != nil && two.Unhashed && one != nil {
			paths[2], idx[2] = append(paths[2], in[k].Path), append(idx[2], k)
		}
	}
	var got [3][]*state.Entry
	err := both(func(i int) error {
		if len(paths[i]) == 0 {
			return nil
		}
		es, err := s.ep[i].Stat(ctx, paths[i])
		if err != nil {
			return asFatal(err)
		}
		if len(es) != len(paths[i]) {
			return Fatal("stat on side %d returned %d entries for %d paths", i, len(es), len(paths[i]))
		}
		got[i] = es
		return nil
	})
	if err != nil {
		return err
	}
	// The file may have changed or gone since the scan: what Stat saw
	// now is what the plan works from.
	for j, k := range idx[1] {
		in[k].One = got[1][j]
	}
	for j, k := range idx[2] {
		in[k].Two = got[2][j]
	}
	return nil
}

// guardDeletes refuses a plan that deletes more than --max-delete allows.
func (s *Session) guardDeletes() error {
	archived := max(s.open[1].Entries, s.open[2].Entries)
	limit := int64(-1)
	desc := ""
	switch md := strings.TrimSpace(s.cfg.MaxDelete); {
	case md == "":
		if archived > 100 {
			limit = archived / 2
			desc = "the default limit of 50% of the archived entries"
		}
	case strings.HasSuffix(md, "%"):
		pct, err := strconv.ParseFloat(strings.TrimSuffix(md, "%"), 64)
		if err != nil || pct < 0 || pct > 100 {
			return Fatal("--max-delete %q: give a count (500) or a percentage (20%%)", md)
		}
		limit = int64(float64(archived) * pct / 100)
		desc = fmt.Sprintf("--max-delete %s (%d of %d archived entries)", md, limit, archived)
	default:
		n, err := strconv.ParseInt(md, 10, 64)
		if err != nil || n < 0 {
			return Fatal("--max-delete %q: give a count (500) or a percentage (20%%)", md)
		}
		limit = n
		desc = fmt.Sprintf("--max-delete %d", n)
	}
	if limit < 0 {
		return nil
	}
	var del [3]int64
	for i := range s.plan.Items {
		it := &s.plan.Items[i]
		// reconcile.Deletes counts what the plan knows; a removed
		// directory also takes its unchanged contents, which only the
		// archive counted (Change.Below).
		n := int64(reconcile.Deletes(it))
		if reconcile.RemovesDir(it) {
			n = max(n, 1+s.below[it.Path])
		}
		if n == 0 {
			continue
		}
		if it.Action == reconcile.OneToTwo {
			del[2] += n
		} else {
			del[1] += n
		}
	}
	roots := [3]string{"", s.cfg.Root1, s.cfg.Root2}
	for i := 1; i <= 2; i++ {
		if del[i] > limit {
			entries := "entries"
			if del[i] == 1 {
				entries = "entry"
			}
			return Fatal("the plan would delete %d %s on %s, more than %s; nothing was changed. "+
				"Check that %s is complete (a disk not mounted, a half-restored backup); if the deletions are intended, run again with --max-delete %d",
				del[i], entries, roots[i], desc, roots[3-i], del[i])
		}
	}
	return nil
}

// ReadFile opens a file on one side for reading (for diffs and reports);
// e is the state the caller expects there.
func (s *Session) ReadFile(ctx context.Context, side reconcile.Side, p string, e *state.Entry) (io.ReadCloser, error) {
	if side != reconcile.One && side != reconcile.Two {
		return nil, fmt.Errorf("read %s: no side %d", state.Display(p), side)
	}
	return s.ep[side].ReadFile(ctx, p, e)
}

// History returns the archive on this machine that keeps the pair's run
// history (nil when neither root is local).
func (s *Session) History() *archive.DB { return s.historyDB() }

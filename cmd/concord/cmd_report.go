package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/profile"
	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/report"
)

// maxDiffSize bounds the files whose diff goes into a report.
const maxDiffSize = 1 << 20

// writeRunReport writes the report of the run just finished.
func writeRunReport(ctx context.Context, path string, sess *engine.Session, res *engine.Result) error {
	r := &report.Report{Generated: time.Now(), Root1: res.Root1, Root2: res.Root2}
	r.Run = report.RunInfo{Start: res.Start, End: res.End, ExitCode: res.ExitCode(), DryRun: res.DryRun,
		Propagated: res.Propagated, Skipped: res.Skipped, Failed: res.Failed, Bytes: res.Bytes}
	seen := map[string]archive.RunItem{}
	if db := sess.History(); db != nil {
		if run, ok, err := db.LastRun(ctx); err == nil && ok {
			if items, err := db.Items(ctx, run.ID); err == nil {
				for _, it := range items {
					seen[it.Path] = it
				}
			}
		}
	}
	for _, o := range res.Outcomes {
		if o.Status == engine.Done {
			continue
		}
		status, reason := report.StatusSkipped, o.Reason
		switch {
		case o.Status == engine.Failed:
			status, reason = report.StatusFailed, oneLine(o.Err)
		case o.Item.Action == reconcile.Conflict:
			status = report.StatusConflict
			r.Run.Conflicts++
		}
		item := report.NewItem(o.Item, status, reason)
		if h, ok := seen[o.Item.Path]; ok {
			item.FirstSeen, item.TimesSeen = h.FirstSeen, h.TimesSeen
		}
		if status == report.StatusConflict {
			item.Diff = sessionDiff(ctx, sess, o.Item)
		}
		r.Items = append(r.Items, item)
	}
	for _, p := range res.ScanProblems {
		if p.Warning {
			continue
		}
		r.Items = append(r.Items, report.Item{Path: p.Path, Status: report.StatusFailed, Action: "scan", Reason: p.Err})
	}
	return report.WriteFile(path, r)
}

// sessionDiff returns the unified diff between both sides' versions of a
// text file (empty for other items).
func sessionDiff(ctx context.Context, sess *engine.Session, it *reconcile.Item) string {
	if !diffable(it.One, it.Two) {
		return ""
	}
	a, err := readAll(ctx, sess, reconcile.One, it.Path, it.One)
	if err != nil {
		return ""
	}
	b, err := readAll(ctx, sess, reconcile.Two, it.Path, it.Two)
	if err != nil {
		return ""
	}
	d, _ := report.UnifiedDiff(a, b, "side1/"+it.Path, "side2/"+it.Path)
	return d
}

func diffable(a, b *state.Entry) bool {
	return a != nil && b != nil && a.Kind == state.File && b.Kind == state.File && a.Size <= maxDiffSize && b.Size <= maxDiffSize
}

func readAll(ctx context.Context, sess *engine.Session, side reconcile.Side, p string, e *state.Entry) ([]byte, error) {
	rc, err := sess.ReadFile(ctx, side, p, e)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxDiffSize+1))
}

func cmdReport(ctx context.Context, e *env, args []string) error {
	o, err := parseArgs("report", args, e.stderr)
	if err != nil {
		return err
	}
	if len(o.positional) == 0 {
		return usageErr("report needs two roots or a profile name")
	}
	p := o.prof
	if len(p.Roots) != 2 {
		return usageErr("profile %s must name exactly two roots", p.Name)
	}
	format := o.format
	if format == "" && o.output != "" {
		if format, err = report.FormatFromPath(o.output); err != nil {
			return usageErr("%v", err)
		}
	}
	if format == "" {
		format = "md"
	}
	db, err := openHistory(p.Roots[0], p.Roots[1])
	if err != nil {
		return err
	}
	defer db.Close()
	run, ok, err := db.LastRun(ctx)
	if err != nil {
		return usageErr("%v", err)
	}
	if !ok {
		return usageErr("no run of %s ↔ %s is recorded yet: run concord sync first", p.Roots[0], p.Roots[1])
	}
	r := &report.Report{Generated: time.Now(), Root1: p.Roots[0], Root2: p.Roots[1], AllRuns: o.allRuns}
	r.Run = report.RunInfo{Start: run.Start, End: run.End, ExitCode: run.ExitCode, DryRun: run.DryRun,
		Propagated: run.Propagated, Skipped: run.Skipped, Failed: run.Failed, Bytes: run.Bytes}
	runs := []archive.Run{run}
	if o.allRuns {
		if runs, err = db.Runs(ctx, 0); err != nil {
			return usageErr("%v", err)
		}
	}
	byPath := map[string]bool{}
	for _, rn := range runs {
		items, err := db.Items(ctx, rn.ID)
		if err != nil {
			return usageErr("%v", err)
		}
		// A pair is the same pair in either order, and its history is
		// one: a run of "sync b a" is shown as "report a b" asks, side 1
		// being a.
		swap := reversed(rn, p.Roots[0], p.Roots[1])
		for _, it := range items {
			if swap {
				it = swapSides(it)
			}
			if byPath[it.Path] {
				continue // a newer run already reported it
			}
			byPath[it.Path] = true
			ri := report.Item{Path: it.Path, Status: it.Status, Action: it.Action, Reason: it.Reason,
				FirstSeen: it.FirstSeen, TimesSeen: it.TimesSeen,
				Side1: report.NewSide(it.Side1), Side2: report.NewSide(it.Side2)}
			if it.Status == report.StatusConflict {
				ri.Diff = localDiff(p.Roots[0], p.Roots[1], it)
			}
			if rn.ID == run.ID && it.Status == report.StatusConflict {
				r.Run.Conflicts++
			}
			r.Items = append(r.Items, ri)
		}
	}
	sort.SliceStable(r.Items, func(i, j int) bool { return state.ComparePaths(r.Items[i].Path, r.Items[j].Path) < 0 })
	if o.output != "" {
		if o.format != "" {
			if f, err := report.FormatFromPath(o.output); err == nil && f != format {
				return usageErr("--format %s does not match the extension of %s", format, o.output)
			}
		}
		if err := report.WriteFile(o.output, r); err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		return nil
	}
	w := bufio.NewWriter(e.stdout)
	if err := report.Write(w, format, r); err != nil {
		return usageErr("%v", err)
	}
	return w.Flush()
}

// reversed reports whether run rn synchronized root1 and root2 in the
// other order (its ROOT1 is root2 and its ROOT2 root1, however spelled).
func reversed(rn archive.Run, root1, root2 string) bool {
	s1, err1 := profile.ResolveSide(rn.Root1, root1, root2)
	s2, err2 := profile.ResolveSide(rn.Root2, root1, root2)
	return err1 == nil && err2 == nil && s1 == reconcile.Two && s2 == reconcile.One
}

// sideRef matches "side 1" and "side 2" in the reasons reconcile gives
// ("--no-deletion on side 2", "changed below on side 1 (3 paths)").
var sideRef = regexp.MustCompile(`\bside ([12])\b`)

// swapSides returns it as seen with the roots in the other order: the
// sides exchanged, and the direction of its action and the side its reason
// names with them.
func swapSides(it archive.RunItem) archive.RunItem {
	it.Side1, it.Side2 = it.Side2, it.Side1
	switch it.Action {
	case reconcile.OneToTwo.String():
		it.Action = reconcile.TwoToOne.String()
	case reconcile.TwoToOne.String():
		it.Action = reconcile.OneToTwo.String()
	}
	it.Reason = sideRef.ReplaceAllStringFunc(it.Reason, func(m string) string {
		if m == "side 1" {
			return "side 2"
		}
		return "side 1"
	})
	return it
}

// localDiff diffs the two sides' current files when both roots are local
// and the files still are what the run recorded.
func localDiff(root1, root2 string, it archive.RunItem) string {
	if !diffable(it.Side1, it.Side2) {
		return ""
	}
	r1, err1 := remote.ParseRoot(root1)
	r2, err2 := remote.ParseRoot(root2)
	if err1 != nil || err2 != nil || !r1.Local || !r2.Local {
		return ""
	}
	a, err := os.ReadFile(filepath.Join(r1.Path, filepath.FromSlash(it.Path)))
	if err != nil || int64(len(a)) != it.Side1.Size {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(r2.Path, filepath.FromSlash(it.Path)))
	if err != nil || int64(len(b)) != it.Side2.Size {
		return ""
	}
	d, _ := report.UnifiedDiff(a, b, "side1/"+it.Path, "side2/"+it.Path)
	return d
}

// openHistory finds and opens (read-only) the archive on this machine that
// holds the run history of the pair root1 ↔ root2.
func openHistory(root1, root2 string) (*archive.DB, error) {
	stateDir, err := archive.StateDir()
	if err != nil {
		return nil, usageErr("%v", err)
	}
	roots := []string{root1, root2}
	var parsed [2]remote.Root
	for i, r := range roots {
		if parsed[i], err = remote.ParseRoot(r); err != nil {
			return nil, usageErr("%v", err)
		}
	}
	// With two local roots the history is in the archive of the replica
	// whose id sorts first (see engine.Session.historyDB).
	if parsed[0].Local && parsed[1].Local {
		id0, err0 := replicaOf(stateDir, parsed[0].Path)
		id1, err1 := replicaOf(stateDir, parsed[1].Path)
		if err0 == nil && err1 == nil && id0 != "" && id1 != "" {
			own, peer := id0, id1
			if id1 < id0 {
				own, peer = id1, id0
			}
			if db, err := archive.Open(archive.ArchivePath(stateDir, own, peer), true); err == nil {
				return db, nil
			}
		}
	}
	for i := 0; i < 2; i++ {
		if !parsed[i].Local || parsed[1-i].Local {
			continue
		}
		own, err := replicaOf(stateDir, parsed[i].Path)
		if err != nil || own == "" {
			continue
		}
		// A remote peer: find the archive that names it.
		matches, _ := filepath.Glob(filepath.Join(stateDir, "ar-*.db"))
		for _, m := range matches {
			db, err := archive.Open(m, true)
			if err != nil {
				continue
			}
			ctx := context.Background()
			pair, _ := db.Meta(ctx, "pair")
			pr, _ := db.Meta(ctx, "peer_root")
			if strings.HasPrefix(string(pair), own) || strings.HasSuffix(string(pair), own) {
				if string(pr) == roots[1-i] {
					return db, nil
				}
			}
			db.Close()
		}
	}
	return nil, usageErr("no archive of %s ↔ %s on this machine: run concord sync first (reports are kept where a local root is)", root1, root2)
}

func replicaOf(stateDir, p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	return archive.ReplicaID(stateDir, abs, false)
}

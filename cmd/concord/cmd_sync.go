package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/term"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/profile"
	"github.com/concord-sync/concord/reconcile"
	"github.com/concord-sync/concord/report"
	"github.com/concord-sync/concord/tui"
)

func cmdSync(ctx context.Context, e *env, args []string) error {
	start := time.Now()
	o, err := parseArgs("sync", args, e.stderr)
	if err != nil {
		return err
	}
	if len(o.positional) == 0 {
		return listProfiles(e)
	}
	p := o.prof
	cfg, err := engineConfig(p)
	if err != nil {
		return err
	}
	logger, closeLog, err := openLog(p.Log)
	if err != nil {
		return err
	}
	defer closeLog()
	cfg.Log = logger
	interactive := !p.Batch
	if interactive && !(isTerminal(e.stdin) && isTerminal(e.stdout)) {
		return usageErr("standard input or output is not a terminal, so concord cannot ask about conflicts: " +
			"add --batch to propagate what is safe and leave conflicts for later (the way to run it from cron)")
	}
	notes := e.stderr
	if o.quiet {
		notes = io.Discard // -q: problems only, not "installing concord on host"
	}
	dial := newDialer(p, interactive, notes)
	defer dial.Close()
	cfg.Dial = dial.Dial
	if logger != nil {
		logger.Info("run start", slog.String("root1", cfg.Root1), slog.String("root2", cfg.Root2),
			slog.Bool("batch", !interactive), slog.Bool("dry_run", cfg.DryRun), slog.String("version", Version))
	}
	var res *engine.Result
	var sess *engine.Session
	if interactive {
		res, sess, err = syncInteractive(ctx, cfg, o)
	} else {
		res, sess, err = syncBatch(ctx, cfg, o, e)
	}
	if sess != nil {
		defer sess.Close()
	}
	code := exitFatal
	if res != nil {
		code = res.ExitCode()
		if err != nil && code < exitFailed {
			code = exitFailed
		}
	}
	if errors.Is(err, tui.ErrQuit) {
		code, err = exitOK, nil
		fmt.Fprintln(e.stderr, "concord: quit; nothing was changed")
	}
	if logger != nil {
		attrs := []any{slog.Int("exit_code", code)}
		if err != nil {
			attrs = append(attrs, slog.String("error", cleanFatal(err)))
		}
		if res != nil {
			attrs = append(attrs, slog.Int("propagated", res.Propagated), slog.Int("skipped", res.Skipped),
				slog.Int("failed", res.Failed), slog.Int64("bytes", res.Bytes))
		}
		logger.Info("run end", attrs...)
	}
	if res != nil && p.Report != "" && sess != nil {
		if rerr := writeRunReport(ctx, p.Report, sess, res); rerr != nil {
			fmt.Fprintf(e.stderr, "concord: %v\n", rerr)
			if code < exitFailed {
				code = exitFailed
			}
		}
	}
	if res == nil && err != nil && p.Report != "" {
		// A run that stopped (a guard, a lock, a missing root) still
		// replaces the last report: a dashboard reading it must not go
		// on showing the run before as the latest.
		r := &report.Report{Generated: time.Now(), Root1: p.Roots[0], Root2: p.Roots[1],
			Run: report.RunInfo{Start: start, End: time.Now(), ExitCode: exitFatal, Error: cleanFatal(err)}}
		if rerr := report.WriteFile(p.Report, r); rerr != nil {
			fmt.Fprintf(e.stderr, "concord: %v\n", rerr)
		}
	}
	if err != nil {
		if code == exitFatal {
			return &exitError{code: exitFatal, err: errors.New(cleanFatal(err))}
		}
		return &exitError{code: code, err: err}
	}
	if code != exitOK {
		return &exitError{code: code, err: errQuiet}
	}
	return nil
}

// engineConfig turns a merged profile into the engine's configuration.
func engineConfig(p *profile.Profile) (engine.Config, error) {
	if len(p.Roots) != 2 {
		return engine.Config{}, usageErr("profile %s must name exactly two roots (roots = [\"...\", \"...\"])", p.Name)
	}
	opts, err := p.Options()
	if err != nil {
		return engine.Config{}, usageErr("%v", err)
	}
	if opts.Force != reconcile.None && opts.Prefer != reconcile.PreferNone {
		return engine.Config{}, usageErr("--force and --prefer contradict each other: --force already decides every difference")
	}
	return engine.Config{
		Root1: p.Roots[0], Root2: p.Roots[1],
		Options:    opts,
		Ignore:     p.Ignore,
		DryRun:     p.DryRun,
		MaxDelete:  p.MaxDelete,
		BackupDir:  p.BackupDir,
		MaxBackups: p.MaxBackups,
		Compress:   p.Compress,
		Version:    Version,
	}, nil
}

func isTerminal(x any) bool {
	f, ok := x.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func listProfiles(e *env) error {
	names, err := profile.List()
	if err != nil {
		return usageErr("%v", err)
	}
	if len(names) == 0 {
		fmt.Fprintf(e.stdout, "no profiles in %s\nusage: concord sync [flags] ROOT1 ROOT2 | PROFILE\n", profile.Dir())
		return nil
	}
	fmt.Fprintf(e.stdout, "profiles in %s:\n", profile.Dir())
	for _, n := range names {
		fmt.Fprintf(e.stdout, "  %s\n", n)
	}
	return nil
}

// openLog opens the structured log in append mode (safe to rotate: it is
// opened anew by every run).
func openLog(path string) (*slog.Logger, func(), error) {
	if path == "" {
		return nil, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, usageErr("open log %s: %v", path, err)
	}
	return slog.New(slog.NewJSONHandler(f, nil)), func() { f.Close() }, nil
}

func syncBatch(ctx context.Context, cfg engine.Config, o *options, e *env) (*engine.Result, *engine.Session, error) {
	var scanCB func(engine.ScanEvent)
	if o.verbose {
		scanCB = func(ev engine.ScanEvent) {
			if ev.Done {
				fmt.Fprintf(e.stderr, "scanned side %d: %d entries, %d files read (%s)\n",
					ev.Side, ev.Entries, ev.Hashed, humanize.IBytes(uint64(ev.HashedBytes)))
			}
		}
	}
	start := time.Now()
	sess, err := engine.Prepare(ctx, cfg, scanCB)
	if err != nil {
		return nil, nil, err
	}
	var progress func(engine.Progress)
	if o.verbose {
		progress = func(p engine.Progress) {
			if p.Failed != nil {
				fmt.Fprintf(e.stderr, "failed: %s: %v\n", state.Display(p.Failed.Item.Path), p.Failed.Err)
			}
		}
	}
	res, err := sess.Execute(ctx, progress)
	if res != nil {
		printResult(e.stdout, e.stderr, res, o, time.Since(start))
	}
	return res, sess, err
}

func syncInteractive(ctx context.Context, cfg engine.Config, o *options) (*engine.Result, *engine.Session, error) {
	var sess *engine.Session
	prepare := func(ctx context.Context, scan func(engine.ScanEvent)) (tui.Runner, error) {
		s, err := engine.Prepare(ctx, cfg, scan)
		if err != nil {
			return nil, err
		}
		sess = s
		return s, nil
	}
	res, err := tui.Run(ctx, prepare, tui.Options{NoColor: o.noColor, AltScreen: true, Root1: cfg.Root1, Root2: cfg.Root2, Guards: &cfg.Options})
	return res, sess, err
}

// printResult prints one line per item that was not in sync and a summary:
// on stdout normally, and with -q only problems (on stderr), nothing at all
// when everything is in sync.
func printResult(stdout, stderr io.Writer, res *engine.Result, o *options, took time.Duration) {
	w := stdout
	for _, out := range res.Outcomes {
		it := out.Item
		line := fmt.Sprintf("%-11s %s %-11s  %s", sideWord(it.Base, it.One), it.Action.Arrow(), sideWord(it.Base, it.Two), state.Display(it.Path))
		switch out.Status {
		case engine.Done:
			if o.quiet {
				continue
			}
			fmt.Fprintln(w, line)
		case engine.Skipped:
			if o.quiet && out.Reason == "dry run" {
				continue
			}
			fmt.Fprintf(pick(o.quiet, stderr, w), "%s  [skipped: %s]\n", line, out.Reason)
		case engine.Failed:
			fmt.Fprintf(pick(o.quiet, stderr, w), "%s  [failed: %s]\n", line, oneLine(out.Err))
		}
	}
	for _, p := range res.ScanProblems {
		kind := "failed"
		if p.Warning {
			kind = "warning"
			if o.quiet {
				continue
			}
		}
		fmt.Fprintf(pick(o.quiet, stderr, w), "%s: %s  [%s]\n", state.Display(p.Path), p.Err, kind)
	}
	code := res.ExitCode()
	if o.quiet && code == exitOK {
		return
	}
	var conflicts int
	for _, out := range res.Outcomes {
		if out.Status == engine.Skipped && out.Item.Action == reconcile.Conflict {
			conflicts++
		}
	}
	verb := "propagated"
	if res.DryRun {
		verb = "dry run: nothing changed;"
	}
	summary := fmt.Sprintf("concord: %s %d item(s) (%s), %d skipped (%d conflict(s)), %d failed in %s",
		verb, res.Propagated, humanize.IBytes(uint64(res.Bytes)), res.Skipped, conflicts, res.Failed, took.Round(time.Millisecond))
	if res.DryRun {
		summary = fmt.Sprintf("concord: dry run, nothing changed: %d item(s) to act on (%d conflict(s)) in %s",
			res.Skipped, conflicts, took.Round(time.Millisecond))
	}
	switch code {
	case exitOK:
		summary += "; in sync"
	case exitSkipped:
		summary += "; some items need a person (exit 1)"
	case exitFailed:
		summary += "; some items failed and will be retried next run (exit 2)"
	}
	fmt.Fprintln(pick(o.quiet, stderr, w), summary)
}

func pick(quiet bool, stderr, stdout io.Writer) io.Writer {
	if quiet {
		return stderr
	}
	return stdout
}

func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(cleanFatal(err), "\n", " ")
}

// sideWord describes how a side's state differs from the ancestor, in
// Unison's words (batch output spells symlinks out); an unchanged side
// shows nothing.
func sideWord(base, cur *state.Entry) string {
	switch w := reconcile.Describe(base, cur); w {
	case "unchanged":
		return ""
	case "new link":
		return "new symlink"
	default:
		return w
	}
}

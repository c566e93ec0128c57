package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/concord-sync/concord/profile"
	"github.com/concord-sync/concord/report"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// options are the settings of a sync or report, after merging a profile
// with the command line.
type options struct {
	prof       *profile.Profile
	verbose    bool
	quiet      bool
	output     string // report: --output
	format     string // report: --format
	allRuns    bool   // report: --all-runs
	noColor    bool
	positional []string
}

// endOfFlags reports whether parsed, the arguments one fs.Parse call
// consumed, ended with the terminator "--" rather than with "--" as the
// value of a flag ("--prefer --").
func endOfFlags(fs *flag.FlagSet, parsed []string) bool {
	n := len(parsed)
	if n == 0 || parsed[n-1] != "--" {
		return false
	}
	if n >= 2 && strings.HasPrefix(parsed[n-2], "-") && !strings.Contains(parsed[n-2], "=") {
		if f := fs.Lookup(strings.TrimLeft(parsed[n-2], "-")); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				return false // "--" was that flag's value
			}
		}
	}
	return true
}

// parseArgs parses flags (anywhere among the arguments) for cmd ("sync" or
// "report"), loads the profile if one is named, and lets flags given on the
// command line override it.
func parseArgs(cmd string, args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("concord "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o                                       options
		batch, dryRun, compress                 bool
		prefer, force, maxDelete, reportF, logF string
		backupDir, sshConfig, timeout           string
		maxBackups                              int
		ignore, noDel, noUpd, noCre             listFlag
	)
	fs.BoolVar(&batch, "batch", false, "ask nothing: propagate non-conflicts, skip conflicts (unless --prefer)")
	fs.BoolVar(&dryRun, "dry-run", false, "plan and report, change nothing on either side")
	fs.StringVar(&prefer, "prefer", "", "resolve conflicts without asking: ROOT1, ROOT2 (or the root itself), newer or older")
	fs.StringVar(&force, "force", "", "mirror: every difference goes from that side (ROOT1 or ROOT2) to the other, deletions included")
	fs.Var(&noDel, "no-deletion", "never delete on that side (ROOT1 or ROOT2); repeatable")
	fs.Var(&noUpd, "no-update", "never overwrite on that side; repeatable")
	fs.Var(&noCre, "no-creation", "never create on that side; repeatable")
	fs.Var(&ignore, "ignore", "ignore paths matching this gitignore pattern, relative to the root; repeatable")
	fs.StringVar(&maxDelete, "max-delete", "", "refuse the run if it would delete more than N entries or P% (default 50% above 100 archived entries)")
	fs.StringVar(&reportF, "report", "", "write the run's report to FILE (.json, .csv, .md or .html)")
	fs.StringVar(&logF, "log", "", "append a structured log of the run to FILE (one JSON object per line)")
	fs.StringVar(&backupDir, "backup-dir", "", "keep the previous version of every overwritten or deleted file in DIR (relative: under each root)")
	fs.IntVar(&maxBackups, "max-backups", 0, "keep at most N backups per path (0: all)")
	fs.BoolVar(&compress, "compress", false, "compress traffic to remote roots (zstd)")
	fs.StringVar(&sshConfig, "ssh-config", "", "read this ssh_config instead of ~/.ssh/config")
	fs.StringVar(&timeout, "connect-timeout", "", "give up connecting to a remote host after this long (default 10s)")
	fs.BoolVar(&o.verbose, "v", false, "more output: each side's scan counts, and failures as they happen")
	fs.BoolVar(&o.quiet, "q", false, "less output: only problems (nothing at all when everything is in sync)")
	fs.BoolVar(&o.noColor, "no-color", false, "no colours in the interactive screen (NO_COLOR is honoured too)")
	if cmd == "report" {
		fs.StringVar(&o.format, "format", "", "json, csv, md or html (default: from --output's extension, else md)")
		fs.StringVar(&o.output, "output", "", "write to FILE instead of standard output")
		fs.BoolVar(&o.allRuns, "all-runs", false, "include the items of every recorded run, not just the last")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: concord %s [flags] ROOT1 ROOT2 | PROFILE\n\nflags:\n", cmd)
		fs.PrintDefaults()
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, &exitError{code: exitOK, err: errQuiet}
			}
			return nil, &exitError{code: exitFatal, err: errQuiet}
		}
		rest := fs.Args()
		if endOfFlags(fs, args[:len(args)-len(rest)]) {
			// "--": everything after it is a root, even "-b".
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	o.positional = pos
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	p := &profile.Profile{}
	switch len(pos) {
	case 0:
		return &o, nil
	case 1:
		loaded, err := profile.Load(pos[0])
		if err != nil {
			return nil, usageErr("%v", err)
		}
		p = loaded
	case 2:
		p.Roots = []string{pos[0], pos[1]}
	default:
		return nil, usageErr("%s takes two roots or one profile name, not %d arguments: %q", cmd, len(pos), pos)
	}
	if set["batch"] {
		p.Batch = batch
	}
	if set["dry-run"] {
		p.DryRun = dryRun
	}
	if set["prefer"] {
		p.Prefer = prefer
	}
	if set["force"] {
		p.Force = force
		if !set["prefer"] {
			p.Prefer = "" // the command line's --force settles what a profile's prefer would
		}
	}
	if set["prefer"] && !set["force"] {
		p.Force = "" // and its --prefer replaces a profile's force
	}
	if set["no-deletion"] {
		p.NoDeletion = noDel
	}
	if set["no-update"] {
		p.NoUpdate = noUpd
	}
	if set["no-creation"] {
		p.NoCreation = noCre
	}
	if set["ignore"] {
		p.Ignore = append(p.Ignore, ignore...)
	}
	if set["max-delete"] {
		if _, _, err := profile.ParseMaxDelete(maxDelete); err != nil {
			return nil, usageErr("--max-delete: %v", err)
		}
		p.MaxDelete = maxDelete
	}
	if set["report"] {
		p.Report = reportF
	}
	if set["log"] {
		p.Log = logF
	}
	if set["backup-dir"] {
		p.BackupDir = backupDir
	}
	if set["max-backups"] {
		if maxBackups < 0 {
			return nil, usageErr("--max-backups %d: give 0 (keep all) or a positive count", maxBackups)
		}
		p.MaxBackups = maxBackups
		if p.BackupDir == "" {
			return nil, usageErr("--max-backups %d needs --backup-dir (or backup_dir in the profile): there are no backups to limit", maxBackups)
		}
	}
	if set["compress"] {
		p.Compress = compress
	}
	if set["ssh-config"] {
		p.SSH.ConfigFile = sshConfig
	}
	if set["connect-timeout"] {
		d, err := time.ParseDuration(timeout)
		if err != nil || d <= 0 {
			return nil, usageErr("--connect-timeout %q: give a duration such as 10s", timeout)
		}
		p.SSH.ConnectTimeout = d
	}
	if p.Report != "" {
		if _, err := report.FormatFromPath(p.Report); err != nil {
			return nil, usageErr("--report %s: %v", p.Report, err)
		}
	}
	if o.verbose && o.quiet {
		return nil, usageErr("-v and -q contradict each other: give one")
	}
	o.prof = p
	return &o, nil
}

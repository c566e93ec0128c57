#!/usr/bin/env bash
# bench/run.sh: time concord against Unison, rsync and cp -a, side by side.
#
# Usage (from anywhere; the script finds the repository from its own path):
#
#   bench/run.sh                      # 100,000 files, local and remote cases
#   N=10000 bench/run.sh              # a quicker run
#   N=1000000 REMOTE=0 bench/run.sh   # the 1M-file memory figure
#
# What it does:
#   1. Builds concord and bench/gentree into bench/out/, and generates a
#      deterministic tree of N files (100 B to 4 KiB, DIRS directories) in
#      $BENCH_DIR/src-N-DIRS (kept between runs; never inside the repository).
#   2. Local cases, each tool on its own copy of the tree and with its own
#      HOME / XDG_STATE_HOME / UNISON directory:
#        (a) first sync into an empty replica: concord, unison, rsync -a,
#            rsync -a --fsync (concord fsyncs every file before renaming it
#            into place; plain rsync and cp do not), cp -a (the baseline)
#            and cp -a followed by sync(1);
#        (b) a second sync with nothing changed: concord, unison, rsync -a;
#        (c) a sync after EDITS files were edited on each side: concord and
#            unison; rsync -a only one way, with EDITS files edited on the
#            source side (rsync cannot merge two sides).
#      Warm-cache runs are repeated REPS times and the median is reported;
#      with COLD=1 (and root) one more run of (a) and (b) follows
#      "sync; echo 3 > /proc/sys/vm/drop_caches".
#   3. Remote cases (REMOTE=1) against a throwaway sshd on 127.0.0.1: the
#      first sync of the tree into an empty remote replica (RA_REPS times,
#      tools interleaved, a fresh replica and archive each time), a no-change
#      sync, and a BIG_SIZE file (1 GiB) with 1,000 bytes changed in the
#      middle, counting the bytes that cross loopback. concord takes part
#      only if a probe sync to an ssh:// root succeeds; rsync and unison run
#      either way; rsync --fsync and rsync followed by sync(1) run in the
#      first sync and the big file cases (with nothing to write, the
#      no-change case is plain rsync's).
#   4. Prints a table (case, tool, cache, runs, median seconds, median
#      user+sys CPU seconds, the machine's CPU seconds, the share of time
#      stolen by the hypervisor, peak RSS, notes) and the ratios the targets
#      in issues 2 and 3 use, and writes it to bench/out/results-DATE.txt.
#
# Settings (environment variables):
#   N=100000        files in the tree        DIRS=1000   directories
#   REPS=3          warm repetitions         EDITS=50    files edited per side in (c)
#   RA_REPS=$REPS   repetitions of the remote first sync (ra)
#   COLD=1          also time cold-cache runs (needs root; skipped otherwise)
#   LOCAL=1         run the local cases      REMOTE=1    run the remote cases
#   REMOTE_N=$N     files in the remote tree BIG_SIZE=1073741824 bytes of the big file
#   REMOTE_CASES="tree big"                 which remote cases: "tree" is (ra)
#                   and (rb), "big" is (rc0) and (rc); "big" alone, with
#                   BENCH_DIR on another file system (XFS, say), times the
#                   big file there without the 100,000-file tree
#   TOOLS="concord unison rsync cp"          which tools to time ("rsync"
#                   brings the rsync --fsync rows too, when rsync has --fsync,
#                   and the remote rsync+sync rows; "rsync-fsync" or
#                   "rsync+sync" alone runs only those)
#   SKIP=""         tools to leave out even so, e.g. SKIP=rsync-fsync (its
#                   file-by-file flushes take minutes on some disks)
#   RELAY=1         0: clients reach sshd directly, without the counting
#                   relay; the wire column is then half the loopback bytes
#                   (TCP/IP headers included, and anything else on lo)
#   BENCH_DIR=/tmp/concord-bench             scratch space; the script works
#                   out what the run needs and refuses to start without it
#                   (about 20 GiB for N=100000 with the cold runs, plus
#                   BIG_SIZE x 10)
#   SETTLE=360      seconds that must have passed since the last run emptied
#                   its trash before the first timed run (see below); 0: no wait
#   KEEP=0          keep the scratch replicas afterwards (the source tree is
#                   always kept, to save regenerating it)
#
# Deleted files and the timings: on ext4 without a journal (this machine's
# root filesystem) the inode allocator skips inodes freed in the last 60 s
# (360 s while their inode table block is dirty), at the cost of a lookup
# each, so creating many files soon after deleting many others is several
# times slower, and a tool timed after an rm -rf pays a random penalty. So
# nothing is deleted while the run lasts: a replica that is done with is
# renamed into $BENCH_DIR/trash (same filesystem: a rename frees nothing),
# and the trash is emptied once, at the very end (also when the script
# exits early), recording the time in $BENCH_DIR/trash-emptied. A run that
# starts less than SETTLE seconds after that waits out the rest before its
# first timed run; what an earlier run left behind (KEEP=1, or a run that
# was killed) is removed at the start, before that wait. The price is the
# scratch space: every replica of the run exists at its end.
#
# Peak RSS is the largest resident size of the timed process or of any one
# of its children (/usr/bin/time %M); the far side of a remote sync (sshd,
# concord serve, the unison server, the remote rsync) is not included.
set -euo pipefail

N=${N:-100000}
DIRS=${DIRS:-1000}
REPS=${REPS:-3}
RA_REPS=${RA_REPS:-$REPS}
EDITS=${EDITS:-50}
COLD=${COLD:-1}
LOCAL=${LOCAL:-1}
REMOTE=${REMOTE:-1}
REMOTE_N=${REMOTE_N:-$N}
BIG_SIZE=${BIG_SIZE:-1073741824}
REMOTE_CASES=${REMOTE_CASES:-"tree big"}
TOOLS=${TOOLS:-"concord unison rsync cp"}
BENCH_DIR=${BENCH_DIR:-/tmp/concord-bench}
SETTLE=${SETTLE:-360}
KEEP=${KEEP:-0}
RELAY=${RELAY:-1}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/bench/out
CONCORD=$OUT/concord
GENTREE=$OUT/gentree
TCPCOUNT=$OUT/tcpcount
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$OUT/results-$STAMP.txt
ROWS=$OUT/rows-$STAMP.tsv

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }
has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }
remote_case() { [[ " $REMOTE_CASES " == *" $1 "* ]]; }

mkdir -p "$OUT"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd -P)
case "$BENCH_DIR/" in
"$(cd "$REPO" && pwd -P)/"*) die "BENCH_DIR=$BENCH_DIR is inside the repository; choose a directory outside it" ;;
esac
for t in unison rsync /usr/bin/time; do
	command -v "$t" >/dev/null || die "$t is not installed (apt-get install -y unison rsync time)"
done
[[ $SETTLE =~ ^[0-9]+$ ]] || die "SETTLE=$SETTLE: want a number of seconds (0: no wait)"
for c in $REMOTE_CASES; do [[ $c == tree || $c == big ]] || die "REMOTE_CASES=$REMOTE_CASES: want \"tree\", \"big\" or both"; done
[[ -n ${REMOTE_CASES// /} ]] || die "REMOTE_CASES is empty: want \"tree\", \"big\" or both (REMOTE=0 runs no remote case)"
for v in REPS RA_REPS; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: want a number of runs, at least 1"; done
LOG=$BENCH_DIR/log-$STAMP.txt
TIMEF=$BENCH_DIR/time-$STAMP.out

# ---------------------------------------------------------------- trash

TRASH=$BENCH_DIR/trash
EMPTIED=$BENCH_DIR/trash-emptied
TRASH_SEQ=0

# discard PATH...: renames each PATH that exists into the trash. Nothing is
# freed until empty_trash, so the timed runs do not pay for it (see the
# top of this file).
discard() {
	local p
	mkdir -p "$TRASH"
	for p in "$@"; do
		[[ -e $p || -L $p ]] || continue
		[[ $(stat -c %d "$p") == "$(stat -c %d "$TRASH")" ]] ||
			die "$p is not on the filesystem of $TRASH: moving it there would copy it"
		TRASH_SEQ=$((TRASH_SEQ + 1))
		mv -T "$p" "$TRASH/$STAMP-$TRASH_SEQ-${p##*/}"
	done
}

# empty_trash: deletes the trash (if it holds anything), flushes, and
# records when in $EMPTIED.
empty_trash() {
	local t0
	[[ -d $TRASH ]] || return 0
	if [[ -z $(ls -A "$TRASH") ]]; then
		rmdir "$TRASH"
		return 0
	fi
	say "emptying the trash ($(du -sh "$TRASH" 2>/dev/null | cut -f1), $(find "$TRASH" | wc -l) entries)"
	t0=$(date +%s)
	rm -rf "$TRASH"
	sync
	date +%s >"$EMPTIED"
	say "trash emptied in $(($(date +%s) - t0)) s"
}

SSHD_PID=""
RELAY_PID=""
stop_sshd() {
	local p
	for p in "$RELAY_PID" "$SSHD_PID"; do
		if [[ -n $p ]]; then
			kill "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	SSHD_PID=""
	RELAY_PID=""
}

# on_exit: stops the bench sshd, and unless KEEP=1 puts the replicas into
# the trash; then empties the trash. On a normal end the report has done
# all that already.
on_exit() {
	stop_sshd
	[[ $KEEP == 1 ]] || discard "$BENCH_DIR/local" "$BENCH_DIR/remote"
	rm -f "$TIMEF"
	empty_trash
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What an earlier run left behind goes now, before the settling wait.
discard "$BENCH_DIR/local" "$BENCH_DIR/remote"
for f in "$BENCH_DIR"/time-*.out; do [[ $f == "$TIMEF" ]] || discard "$f"; done
if [[ -d $TRASH && -n $(ls -A "$TRASH") ]]; then
	say "removing what an earlier run left in $BENCH_DIR (KEEP=1, or the run was killed)"
	empty_trash
fi

# fs_desc: the filesystem type of BENCH_DIR, and for ext4 whether it has a
# journal (without one, freed inodes are avoided for a while; see the top).
fs_desc() {
	local src type
	read -r src type < <(findmnt -no SOURCE,FSTYPE -T "$BENCH_DIR") || true
	if [[ $type == ext4 ]]; then
		if compgen -G "/proc/fs/jbd2/${src##*/}-*" >/dev/null; then
			echo "ext4"
		else
			echo "ext4 without a journal"
		fi
	else
		echo "${type:-unknown filesystem}"
	fi
}
FS_DESC=$(fs_desc)
NOJOURNAL=0
[[ $FS_DESC != "ext4 without a journal" ]] || NOJOURNAL=1

# settle: before the first timed run, waits until SETTLE seconds have
# passed since the last emptying of the trash (on ext4 without a journal;
# SETTLE_UNTIL is set below, once the run is known to go ahead).
SETTLE_UNTIL=0
settle() {
	local left
	((SETTLE_UNTIL > 0)) || return 0
	left=$((SETTLE_UNTIL - $(date +%s)))
	SETTLE_UNTIL=0
	if ((left > 0)); then
		say "waiting $left s for inodes freed by the last emptying of the trash to settle (SETTLE=0 skips this)"
		sleep "$left"
	fi
}

# ---------------------------------------------------------------- tools

# want TOOL: whether TOOL takes part. rsync-fsync (rsync -a --fsync) comes
# with rsync, if this rsync has --fsync (3.2.4 and later); cp+sync with cp,
# rsync+sync (remote cases) with rsync.
RSYNC_FSYNC=0
rsync_help=$(rsync --help 2>&1 || true) # not piped into grep -q: with pipefail, rsync's SIGPIPE would count as "no"
[[ $rsync_help != *--fsync* ]] || RSYNC_FSYNC=1
want() {
	[[ " ${SKIP:-} " != *" $1 "* ]] || return 1
	case $1 in
	rsync-fsync) [[ $RSYNC_FSYNC == 1 ]] && { has_tool rsync-fsync || has_tool rsync; } ;;
	cp+sync) has_tool cp ;;
	rsync+sync) has_tool rsync+sync || has_tool rsync ;;
	*) has_tool "$1" ;;
	esac
}
first_tools=() # (a)
for t in concord unison rsync rsync-fsync cp cp+sync; do want "$t" && first_tools+=("$t"); done
b_tools=() # (b) and (c)
for t in concord unison rsync; do want "$t" && b_tools+=("$t"); done
remote_tools=() # (ra), (rc0), (rc); (rb) leaves rsync-fsync and rsync+sync out
for t in concord unison rsync rsync-fsync rsync+sync; do want "$t" && remote_tools+=("$t"); done

CAN_DROP=0
if [[ $COLD == 1 ]]; then
	if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
		CAN_DROP=1
	else
		say "cannot write /proc/sys/vm/drop_caches (not root?): cold-cache runs skipped"
	fi
fi

# ---------------------------------------------------------------- space

# Every replica of the run exists at its end (in the trash), so the run
# needs room for all of them at once. A tree of n files takes one 4 KiB
# block per file (they are 100 B to 4 KiB) plus its directories; a tool's
# HOME holds its archive, counted at 1 KiB per file (concord's and
# Unison's are well under that).
tree_kib() { echo $((4 * ($1 + DIRS + 64))); }
tree_inodes() { echo $(($1 + DIRS + 64)); }
need_kib=0 need_inodes=0 ntrees=0 nbig=0
add_trees() { # COUNT FILES
	ntrees=$((ntrees + $1))
	need_kib=$((need_kib + $1 * ($(tree_kib "$2") + $2)))
	need_inodes=$((need_inodes + $1 * ($(tree_inodes "$2") + 100)))
}
if [[ $LOCAL == 1 ]]; then
	[[ -f $BENCH_DIR/src-$N-$DIRS.ok ]] || add_trees 1 "$N"
	# per tool: the copy of the source, and one replica (and HOME) per run
	add_trees $((${#first_tools[@]} * (1 + REPS + CAN_DROP))) "$N"
fi
if [[ $REMOTE == 1 ]]; then
	if remote_case tree; then
		[[ -f $BENCH_DIR/src-$REMOTE_N-$DIRS.ok ]] || [[ $LOCAL == 1 && $REMOTE_N == "$N" ]] || add_trees 1 "$REMOTE_N"
		# per tool the copy of the source and one replica per first sync
		add_trees $(((1 + RA_REPS) * ${#remote_tools[@]})) "$REMOTE_N"
	fi
	if remote_case big; then
		# per tool both copies of the big file, one more while a tool
		# writes its new version, and the source if it has to be
		# generated
		nbig=$((2 * ${#remote_tools[@]} + 1))
		[[ -f $BENCH_DIR/big-$BIG_SIZE.bin.ok ]] || nbig=$((nbig + 1))
		need_kib=$((need_kib + nbig * ((BIG_SIZE + 1023) / 1024)))
	fi
fi
need_kib=$((need_kib + need_kib / 10 + 262144)) # 10% and 256 MiB to spare
need_inodes=$((need_inodes + need_inodes / 10 + 1000))
read -r avail_kib avail_inodes < <(df -Pk "$BENCH_DIR" | awk 'NR == 2 { printf "%s ", $4 }'; df -Pi "$BENCH_DIR" | awk 'NR == 2 { print $4 }')
gib() { awk -v k="$1" 'BEGIN { printf "%.1f GiB", k / 1048576 }'; }
if ((avail_kib < need_kib)) || { [[ $avail_inodes =~ ^[0-9]+$ ]] && ((avail_inodes < need_inodes)); }; then
	die "not enough scratch space in $BENCH_DIR: nothing is deleted until the run ends (see the top of $0), so it needs room for $ntrees trees of up to $((N > REMOTE_N ? N : REMOTE_N)) files$( ((nbig == 0)) || echo " and $nbig copies of the $BIG_SIZE-byte file") at once, about $(gib "$need_kib") and $need_inodes inodes, and df shows $(gib "$avail_kib") and $avail_inodes inodes free. Set a smaller N (or REMOTE_N), REPS or BIG_SIZE, run LOCAL=0 or REMOTE=0 separately, or set BENCH_DIR to a directory on a filesystem with more room."
fi
say "scratch space: this run needs about $(gib "$need_kib") and $need_inodes inodes in $BENCH_DIR ($FS_DESC; $(gib "$avail_kib") and $avail_inodes inodes free)"
: >"$LOG"

if [[ $SETTLE != 0 && $NOJOURNAL == 1 && -s $EMPTIED ]]; then
	emptied=$(cat "$EMPTIED")
	ago=$(($(date +%s) - emptied))
	if ((ago >= 0 && ago < SETTLE)); then
		SETTLE_UNTIL=$((emptied + SETTLE))
		say "the trash was emptied $ago s ago; $BENCH_DIR is $FS_DESC, which avoids reusing inodes freed in the last 60-360 s and creates files more slowly meanwhile: the first timed run waits until $SETTLE s have passed (about $((SETTLE - ago)) s from now; SETTLE=0 skips the wait)"
	fi
fi

say "building concord, gentree and tcpcount into $OUT"
BUILT=$(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo '+dirty')
(cd "$REPO" && go build -o "$CONCORD" ./cmd/concord &&
	go build -o "$GENTREE" ./bench/gentree && go build -o "$TCPCOUNT" ./bench/tcpcount)

# ---------------------------------------------------------------- helpers

# envfor HOME_DIR: the environment a tool runs in (own HOME, state, config).
envfor() {
	local h=$1
	mkdir -p "$h"
	echo "HOME=$h XDG_STATE_HOME=$h/.local/state XDG_CONFIG_HOME=$h/.config XDG_CACHE_HOME=$h/.cache UNISON=$h/.unison"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# timed HOME_DIR CMD...: runs CMD in HOME_DIR's environment, output to the
# log; sets SECS (wall), CPU (user+sys), RSS (KiB) and RC.
timed() {
	local h=$1
	shift
	local tf=$TIMEF t0 t1 last
	settle
	echo "### $(date -u +%T) $*" >>"$LOG"
	local m0 m1
	m0=$(machine_ticks)
	t0=$(date +%s%N)
	# shellcheck disable=SC2046 # envfor's words are meant to split
	env $(envfor "$h") /usr/bin/time -f '%M %U %S' -o "$tf" "$@" >>"$LOG" 2>&1 && RC=0 || RC=$?
	t1=$(date +%s%N)
	m1=$(machine_ticks)
	last=$(tail -n 1 "$tf")
	SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	read -r RSS u s <<<"$last"
	CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
	read -r MCPU STEAL < <(awk -v a="$m0" -v b="$m1" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		busy = y[1] - x[1]; steal = y[2] - x[2]; all = y[3] - x[3]
		printf "%.2f %.1f\n", busy / hz, (all > 0 ? 100 * steal / all : 0)
	}')
	echo "### rc=$RC wall=${SECS}s cpu=${CPU}s rss=${RSS}KiB machine-cpu=${MCPU}s steal=${STEAL}%" >>"$LOG"
}

# machine_ticks: the clock ticks (/proc/stat) every processor has spent so
# far busy (user, nice, system, irq, softirq), stolen by the hypervisor,
# and in all, as "busy steal all".
machine_ticks() {
	awk '$1 == "cpu" { busy = $2 + $3 + $4 + $7 + $8; print busy, $9, busy + $5 + $6 + $9; exit }' /proc/stat
}

# record CASE TOOL CACHE NOTE [WIRE]: appends the last timed run (and the
# bytes it put on the wire, for remote cases) to the rows file.
record() {
	local note=$4 wire=${5:-}
	[[ $RC == 0 ]] || note="exit $RC; $note"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$SECS" "$CPU" "$RSS" "$note" "$wire" "$MCPU" "$STEAL" >>"$ROWS"
	say "$(printf '%-38s %-11s %-5s %8ss  cpu %6ss  machine %6ss  steal %4s%%  rss %7s KiB  %s %s' "$1" "$2" "$3" "$SECS" "$CPU" "$MCPU" "$STEAL" "$RSS" "${wire:+wire $wire B}" "$note")"
}

# sync_cmd TOOL A B: the command line that syncs local roots A and B.
sync_cmd() {
	case $1 in
	concord) echo "$CONCORD sync --batch $2 $3" ;;
	unison) echo "unison $2 $3 -batch -auto -fastcheck true -times -terse -ui text -confirmbigdel=false" ;;
	rsync) echo "rsync -a $2/ $3/" ;;
	rsync-fsync) echo "rsync -a --fsync $2/ $3/" ;;
	cp) echo "cp -a $2/. $3/" ;;
	cp+sync) echo "sh -c 'cp -a $2/. $3/ && sync'" ;;
	esac
}

count_files() { find "$1" -type f | wc -l; }

SRC=$BENCH_DIR/src-$N-$DIRS
if [[ ! -f $SRC.ok ]]; then
	say "generating $N files in $DIRS directories into $SRC"
	discard "$SRC"
	"$GENTREE" tree -n "$N" -dirs "$DIRS" "$SRC"
	touch "$SRC.ok"
fi

: >"$ROWS"
[[ $RSYNC_FSYNC == 1 ]] || ! has_tool rsync ||
	echo "rsync-fsync: $(rsync --version | head -n 1 | sed 's/  */ /g') has no --fsync (3.2.4 and later have it); the rsync --fsync rows are left out" >>"$ROWS.notes"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- local

if [[ $LOCAL == 1 ]]; then
	W=$BENCH_DIR/local
	discard "$W"
	mkdir -p "$W"
	for t in "${first_tools[@]}"; do
		say "copying the source tree for $t"
		mkdir -p "$W/$t"
		cp -a "$SRC" "$W/$t/a"
	done

	# reset TOOL: an empty replica b and a fresh HOME (no archive); the old
	# ones go to the trash.
	reset() {
		discard "$W/$1/b" "$W/$1/home"
		mkdir -p "$W/$1/b" "$W/$1/home"
	}

	# (a) first sync into an empty replica; tools interleaved per repetition
	# so that load from other users of the machine spreads over all of them.
	for rep in $(seq "$REPS"); do
		for t in "${first_tools[@]}"; do
			reset "$t"
			sync
			timed "$W/$t/home" bash -c "$(sync_cmd "$t" "$W/$t/a" "$W/$t/b")"
			got=$(count_files "$W/$t/b")
			note=""
			[[ $got == "$N" ]] || note="replica has $got files, want $N"
			record "(a) first sync, $N files" "$t" warm "$note"
		done
	done
	if [[ $CAN_DROP == 1 ]]; then
		for t in "${first_tools[@]}"; do
			reset "$t"
			drop_caches
			timed "$W/$t/home" bash -c "$(sync_cmd "$t" "$W/$t/a" "$W/$t/b")"
			record "(a) first sync, $N files" "$t" cold ""
		done
	fi

	# (b) nothing changed. One untimed run first warms the cache that the
	# cold run of (a) left half empty.
	for t in "${b_tools[@]}"; do
		timed "$W/$t/home" bash -c "$(sync_cmd "$t" "$W/$t/a" "$W/$t/b")"
	done
	for rep in $(seq "$REPS"); do
		for t in "${b_tools[@]}"; do
			timed "$W/$t/home" bash -c "$(sync_cmd "$t" "$W/$t/a" "$W/$t/b")"
			record "(b) no change, $N files" "$t" warm ""
		done
	done
	if [[ $CAN_DROP == 1 ]]; then
		for t in "${b_tools[@]}"; do
			drop_caches
			timed "$W/$t/home" bash -c "$(sync_cmd "$t" "$W/$t/a" "$W/$t/b")"
			record "(b) no change, $N files" "$t" cold ""
		done
	fi

	# (c) EDITS files edited on each side (different files, new seeds per
	# repetition); rsync one way only.
	for rep in $(seq "$REPS"); do
		for t in "${b_tools[@]}"; do
			"$GENTREE" edit -count "$EDITS" -part 0 -seed $((100 + rep)) "$W/$t/a" >>"$LOG"
			note="$EDITS edited on each side"
			if [[ $t == rsync ]]; then
				note="$EDITS edited, one way only"
			else
				"$GENTREE" edit -count "$EDITS" -part 1 -seed $((200 + rep)) "$W/$t/b" >>"$LOG"
			fi
			sync
			timed "$W/$t/home" bash -c "$(sync_cmd "$t" "$W/$t/a" "$W/$t/b")"
			if [[ $rep == "$REPS" ]] && ! diff -rq "$W/$t/a" "$W/$t/b" >>"$LOG" 2>&1; then
				note="REPLICAS DIFFER after the run; $note"
			fi
			record "(c) after edits" "$t" warm "$note"
		done
	done
	[[ $KEEP == 1 ]] || discard "$W"
fi

# ---------------------------------------------------------------- remote

# lo_bytes: received plus transmitted bytes of the loopback interface so
# far (on lo every byte is counted once each way, so half a difference is
# the traffic).
lo_bytes() { awk -F'[: ]+' '$2 == "lo" { printf "%.0f\n", $3 + $11 }' /proc/net/dev; }

# start_sshd DIR: a throwaway sshd on 127.0.0.1 with its own host key,
# accepting only DIR/id_ed25519, behind a tcpcount relay that counts the
# bytes of each connection into DIR/wire.log (with RELAY=0, reached
# directly). Sets PORT (the port clients use: the relay's, or sshd's),
# RHOME, KEY and KNOWN.
start_sshd() {
	local d=$1 attempt
	discard "$d"
	mkdir -p "$d/home"
	RHOME=$d/home
	ssh-keygen -q -t ed25519 -N '' -f "$d/host_key"
	ssh-keygen -q -t ed25519 -N '' -f "$d/id_ed25519"
	cp "$d/id_ed25519.pub" "$d/authorized_keys"
	KEY=$d/id_ed25519
	KNOWN=$d/known_hosts
	[[ $(id -u) != 0 ]] || mkdir -p /run/sshd
	for attempt in 1 2 3 4 5; do
		PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
		cat >"$d/sshd_config" <<-EOF
			ListenAddress 127.0.0.1:$PORT
			HostKey $d/host_key
			AuthorizedKeysFile $d/authorized_keys
			PidFile $d/sshd.pid
			PasswordAuthentication no
			KbdInteractiveAuthentication no
			PubkeyAuthentication yes
			PermitRootLogin prohibit-password
			StrictModes no
			UsePAM no
			UseDNS no
			PrintMotd no
			PrintLastLog no
			PermitUserEnvironment no
			X11Forwarding no
			MaxSessions 64
			MaxStartups 64
			LogLevel VERBOSE
			SetEnv HOME=$RHOME
		EOF
		/usr/sbin/sshd -D -e -f "$d/sshd_config" >>"$d/sshd.log" 2>&1 &
		SSHD_PID=$!
		for _ in $(seq 100); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
				SSHD_PORT=$PORT
				if [[ $RELAY != 0 ]]; then
					: >"$d/wire.log"
					"$TCPCOUNT" -to "127.0.0.1:$PORT" -port-file "$d/relay.port" -log "$d/wire.log" 2>>"$d/sshd.log" &
					RELAY_PID=$!
					for _ in $(seq 100); do
						[[ -s $d/relay.port ]] && break
						sleep 0.1
					done
					[[ -s $d/relay.port ]] || die "tcpcount did not start; see $d/sshd.log"
					PORT=$(cat "$d/relay.port")
				fi
				echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$d/host_key.pub")" >"$KNOWN"
				return 0
			fi
			kill -0 "$SSHD_PID" 2>/dev/null || break
			sleep 0.1
		done
		stop_sshd
	done
	die "sshd did not start; see $d/sshd.log"
}

# client_home TOOL: a HOME for TOOL holding the key, known_hosts and an
# ~/.ssh/config that reaches the bench sshd.
client_home() {
	local h=$RW/$1/home
	mkdir -p "$h/.ssh"
	chmod 700 "$h/.ssh"
	cp "$KEY" "$h/.ssh/id_ed25519"
	cp "$KNOWN" "$h/.ssh/known_hosts"
	cat >"$h/.ssh/config" <<-EOF
		Host 127.0.0.1
		  HostName 127.0.0.1
		  Port $PORT
		  User $(id -un)
		  IdentityFile $h/.ssh/id_ed25519
		  UserKnownHostsFile $h/.ssh/known_hosts
		  StrictHostKeyChecking yes
	EOF
	chmod 600 "$h/.ssh/"*
}

# remote_cmd TOOL A REMOTE_PATH: the command line that syncs local A with
# REMOTE_PATH on the bench sshd.
remote_cmd() {
	local h=$RW/$1/home
	local sshargs="-p $PORT -i $h/.ssh/id_ed25519 -o UserKnownHostsFile=$h/.ssh/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
	case $1 in
	concord) echo "$CONCORD sync --batch $2 ssh://127.0.0.1:$PORT$3" ;;
	unison) echo "unison $2 ssh://$(id -un)@127.0.0.1/$3 -sshargs '$sshargs' -batch -auto -fastcheck true -times -terse -ui text -confirmbigdel=false" ;;
	rsync) echo "rsync -a -e 'ssh $sshargs' $2/ 127.0.0.1:$3/" ;;
	rsync-fsync) echo "rsync -a --fsync -e 'ssh $sshargs' $2/ 127.0.0.1:$3/" ;;
	# The far side is this machine: sync(1) here flushes what it wrote.
	rsync+sync) echo "rsync -a -e 'ssh $sshargs' $2/ 127.0.0.1:$3/ && sync" ;;
	esac
}

# wire_lines: how many connections the relay has logged so far.
wire_lines() { if [[ $RELAY == 0 ]]; then echo 0; else wc -l <"$RW/sshd/wire.log"; fi; }

# wire_bytes FROM: the bytes both ways over the connections the relay
# logged after line FROM.
wire_bytes() {
	tail -n +$(($1 + 1)) "$RW/sshd/wire.log" | awk '{ n += $1 + $2 } END { print n + 0 }'
}

# timed_remote CASE TOOL CMD: runs CMD as TOOL, records time and loopback
# bytes.
timed_remote() {
	local c=$1 t=$2 cmd=$3 before after mark s note
	sync
	mark=$(wire_lines)
	before=$(lo_bytes)
	timed "$RW/$t/home" bash -c "$cmd"
	after=$(lo_bytes)
	if [[ $RELAY == 0 ]]; then
		# Each byte crosses lo once, counted as rx and as tx.
		s=$(((after - before) / 2))
		note="no relay"
	else
		sleep 0.3 # let the relay log the closed connection
		s=$(wire_bytes "$mark")
		note="lo $(numfmt --to=iec --suffix=B $(((after - before) / 4)))"
	fi
	record "$c" "$t" warm "$note" "$s"
}

if [[ $REMOTE == 1 ]]; then
	RW=$BENCH_DIR/remote
	discard "$RW"
	mkdir -p "$RW"
	start_sshd "$RW/sshd"
	if [[ $RELAY == 0 ]]; then
		say "sshd listening on 127.0.0.1:$PORT, reached directly (RELAY=0; log: $RW/sshd/sshd.log)"
	else
		say "sshd listening on 127.0.0.1:$SSHD_PORT behind the counting relay on port $PORT (log: $RW/sshd/sshd.log)"
	fi
	for t in "${remote_tools[@]}"; do client_home "$t"; done

	if has_tool concord; then
		# The probe also lets concord install itself on the far side
		# (~/.cache/concord), so that the timed runs do not include it.
		mkdir -p "$RW/probe/a" "$RW/probe/b"
		echo probe >"$RW/probe/a/file"
		timed "$RW/concord/home" bash -c "$(remote_cmd concord "$RW/probe/a" "$RW/probe/b")"
		if [[ $RC != 0 || ! -f $RW/probe/b/file ]]; then
			say "concord sync to an ssh:// root failed (exit $RC; not supported yet?): concord skipped in the remote cases; see $LOG"
			echo "concord: ssh:// probe failed (exit $RC); remote concord rows skipped" >>"$ROWS.notes"
			remote_tools=("${remote_tools[@]/concord/}")
		fi
	fi
	tools=()
	for t in "${remote_tools[@]}"; do [[ -z $t ]] || tools+=("$t"); done
	rb_tools=() # with nothing to write, rsync --fsync and rsync+sync are plain rsync
	for t in "${tools[@]}"; do [[ $t == rsync-fsync || $t == rsync+sync ]] || rb_tools+=("$t"); done

	RSRC=$BENCH_DIR/src-$REMOTE_N-$DIRS
	if remote_case tree && [[ ! -f $RSRC.ok ]]; then
		say "generating $REMOTE_N files for the remote cases"
		discard "$RSRC"
		"$GENTREE" tree -n "$REMOTE_N" -dirs "$DIRS" "$RSRC"
		touch "$RSRC.ok"
	fi
	remote_case tree && for t in "${tools[@]}"; do
		say "copying the source tree for remote $t"
		cp -a "$RSRC" "$RW/$t/a"
	done

	# (a) first sync into an empty remote replica, RA_REPS times, tools
	# interleaved: each time into a new directory, so a new pair of
	# archives for concord and Unison (the old replica stays until the
	# end: see the top of this file). On a machine whose hypervisor steals
	# a different share of the time in each run, one run per tool decided
	# the ratio by luck.
	remote_case tree && for rep in $(seq "$RA_REPS"); do
		for t in "${tools[@]}"; do
			mkdir -p "$RW/$t/b$rep"
			timed_remote "(ra) remote first sync, $REMOTE_N files" "$t" "$(remote_cmd "$t" "$RW/$t/a" "$RW/$t/b$rep")"
		done
	done
	# (b) nothing changed, against the last first sync's replica.
	remote_case tree && for rep in $(seq "$REPS"); do
		for t in "${rb_tools[@]}"; do
			timed_remote "(rb) remote no change, $REMOTE_N files" "$t" "$(remote_cmd "$t" "$RW/$t/a" "$RW/$t/b$RA_REPS")"
		done
	done
	for t in "${tools[@]}"; do
		discard "$RW/$t/a"
		for rep in $(seq "$RA_REPS"); do discard "$RW/$t/b$rep"; done
	done

	# (c) one big file, 1,000 bytes changed in its middle.
	BIG=$BENCH_DIR/big-$BIG_SIZE.bin
	if remote_case big && [[ ! -f $BIG.ok ]]; then
		say "generating the $BIG_SIZE-byte file"
		"$GENTREE" big -size "$BIG_SIZE" "$BIG"
		touch "$BIG.ok"
	fi
	remote_case big && for t in "${tools[@]}"; do
		mkdir -p "$RW/$t/biga" "$RW/$t/bigb"
		cp -a "$BIG" "$RW/$t/biga/big.bin"
		timed_remote "(rc0) remote first copy, 1 big file" "$t" "$(remote_cmd "$t" "$RW/$t/biga" "$RW/$t/bigb")"
	done
	remote_case big && for rep in $(seq "$REPS"); do
		for t in "${tools[@]}"; do
			"$GENTREE" poke -bytes 1000 -seed $((300 + rep)) "$RW/$t/biga/big.bin"
			timed_remote "(rc) remote big file, 1000 B changed" "$t" "$(remote_cmd "$t" "$RW/$t/biga" "$RW/$t/bigb")"
			if [[ $rep == "$REPS" ]] && ! cmp -s "$RW/$t/biga/big.bin" "$RW/$t/bigb/big.bin"; then
				echo "$t: big file differs after the run" >>"$ROWS.notes"
			fi
		done
	done
	stop_sshd
	[[ $KEEP == 1 ]] || discard "$RW"
fi

# ---------------------------------------------------------------- report

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# table: one line per (case, tool, cache): runs, median wall and CPU, peak
# RSS and the distinct notes.
table() {
	awk -F'\t' '
	function median(list,    a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	{
		k = $1 SUBSEP $2 SUBSEP $3
		if (!(k in runs)) order[++nk] = k
		runs[k]++; secs[k] = secs[k] " " $4; cpu[k] = cpu[k] " " $5
		mcpu[k] = mcpu[k] " " ($9 == "" ? 0 : $9); steal[k] = steal[k] " " ($10 == "" ? 0 : $10)
		if (!(k in best) || $4 + 0 < best[k] + 0) best[k] = $4
		if ($8 != "") wire[k] = wire[k] " " $8
		if ($6 + 0 > rss[k]) rss[k] = $6 + 0
		if ($7 != "" && $8 == "" && index(notes[k], $7) == 0) notes[k] = notes[k] (notes[k] == "" ? "" : "; ") $7
	}
	END {
		printf "%-38s %-11s %-5s %4s %9s %8s %8s %9s %6s %10s %11s  %s\n", "case", "tool", "cache", "runs", "median s", "min s", "cpu s", "machine s", "steal", "peak RSS", "wire", "notes"
		for (i = 1; i <= nk; i++) {
			k = order[i]; split(k, p, SUBSEP)
			m = median(secs[k]); c = median(cpu[k]); mc = median(mcpu[k]); st = median(steal[k])
			w = (k in wire) ? sprintf("%.0f", median(wire[k])) : ""
			ws = w == "" ? "-" : (w + 0 >= 1048576 ? sprintf("%.1f MiB", w / 1048576) : sprintf("%.1f KiB", w / 1024))
			printf "%-38s %-11s %-5s %4d %9.3f %8.3f %8.2f %9.2f %5.1f%% %7.1f MiB %11s  %s\n", p[1], p[2], p[3], runs[k], m, best[k], c, mc, st, rss[k] / 1024, ws, notes[k]
			print p[1] "\t" p[2] "\t" p[3] "\t" m "\t" w "\t" best[k] "\t" mc > "/dev/stderr"
		}
	}' "$ROWS" 2>"$ROWS.medians"
}

# med CASE_PREFIX TOOL CACHE [FIELD]: the median seconds (FIELD 4, the
# default), wire bytes (5), fastest run (6) or median machine CPU seconds
# (7) of that row, or empty.
med() { awk -F'\t' -v c="$1" -v t="$2" -v k="$3" -v f="${4:-4}" 'index($1, c) == 1 && $2 == t && $3 == k { print $f; exit }' "$ROWS.medians"; }

# ratio WHAT CASE_PREFIX TOOL BASE CACHE TARGET [wire|machine]: prints
# TOOL's time over BASE's in that case, of the medians and of the fastest
# runs (or of the wire bytes, or of the machine's CPU time), and whether
# each is at most TARGET ("-": no target); nothing if a row is missing.
ratio() {
	local what=$1 c=$2 t=$3 base=$4 cache=$5 target=$6 unit=${7:-}
	local a b a2 b2
	if [[ -n $unit ]]; then
		local f=5 # wire bytes
		[[ $unit != machine ]] || f=7
		a=$(med "$c" "$t" "$cache" "$f") b=$(med "$c" "$base" "$cache" "$f") a2="" b2=""
	else
		a=$(med "$c" "$t" "$cache") b=$(med "$c" "$base" "$cache")
		a2=$(med "$c" "$t" "$cache" 6) b2=$(med "$c" "$base" "$cache" 6)
	fi
	[[ -n $a && -n $b ]] && awk -v b="$b" 'BEGIN { exit !(b + 0 > 0) }' || return 0
	awk -v w="$what" -v a="$a" -v b="$b" -v a2="$a2" -v b2="$b2" -v t="$target" '
	function verdict(r) { return t == "-" ? "" : (r <= t + 0 ? " met" : " NOT met") }
	BEGIN {
		r = a / b
		line = sprintf("%-50s %s %5.2f%s", w, a2 == "" ? "      " : "median", r, verdict(r))
		if (a2 != "" && b2 + 0 > 0) { r2 = a2 / b2; line = line sprintf(", fastest runs %5.2f%s", r2, verdict(r2)) }
		print line (t == "-" ? "  (no target, for information)" : "  (target " t ")")
	}'
}

{
	echo "concord benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
		"$(free -g | awk '/Mem:/ { print $2 }') GiB RAM, $FS_DESC at $BENCH_DIR;" \
		"load average $LOAD_START at start, $LOAD_END at end"
	echo "versions: concord $BUILT (built at the start), $(unison -version | head -n 1), $(rsync --version | head -n 1 | sed 's/  */ /g')"
	echo "tree: N=$N files of 100 B to 4 KiB in DIRS=$DIRS directories; REPS=$REPS warm runs (median), RA_REPS=$RA_REPS of (ra); cold = after drop_caches, one run"
	echo
	table
	echo
	ratio "(b) concord / unison, no change, warm" "(b)" concord unison warm 0.4
	ratio "(b) concord / unison, no change, cold" "(b)" concord unison cold 0.4
	ratio "(a) concord / cp -a, first sync, warm" "(a)" concord cp warm 1.5
	ratio "(a) concord / (cp -a + sync), first sync, warm" "(a)" concord cp+sync warm 1.5
	ratio "(a) concord / rsync-fsync, first sync, warm" "(a)" concord rsync-fsync warm -
	ratio "(a) concord / cp -a, first sync, cold" "(a)" concord cp cold 1.5
	ratio "(c) concord / unison, after edits" "(c)" concord unison warm -
	ratio "(ra) remote first sync: concord / rsync" "(ra)" concord rsync warm 1
	ratio "(ra) remote first sync: concord / rsync-fsync" "(ra)" concord rsync-fsync warm -
	ratio "(ra) remote first sync: concord / (rsync + sync)" "(ra)" concord rsync+sync warm -
	ratio "(ra) remote first sync: concord / rsync, machine CPU" "(ra)" concord rsync warm - machine
	ratio "(ra) concord / (rsync + sync), machine CPU" "(ra)" concord rsync+sync warm - machine
	ratio "(rb) remote no change: concord / unison" "(rb)" concord unison warm 0.4
	ratio "(rc) remote big file: concord / rsync, time" "(rc)" concord rsync warm 1
	ratio "(rc) remote big file: concord / rsync-fsync, time" "(rc)" concord rsync-fsync warm -
	ratio "(rc) remote big file: concord / (rsync + sync), time" "(rc)" concord rsync+sync warm -
	ratio "(rc) remote big file: concord / rsync, wire bytes" "(rc)" concord rsync warm 2 wire
	[[ ! -s $ROWS.notes ]] || {
		echo
		cat "$ROWS.notes"
	}
	echo
	echo "Seconds are wall-clock: the median and the fastest of the runs (on a busy"
	echo "machine the fastest is the better estimate of a tool's own cost); cpu s is"
	echo "the median user+sys of the timed process tree; machine s the median CPU"
	echo "time of the whole machine during the run (both sides of a remote sync, sshd,"
	echo "the kernel's write-back); steal the median share of the processors' time"
	echo "that the hypervisor gave to other guests during the run (wall times of a"
	echo "run with much steal are longer by about as much)."
	if want rsync-fsync; then
		echo "rsync-fsync is rsync -a --fsync: like concord (and unlike rsync and cp) it"
		echo "flushes every file it writes to disk."
	fi
	if [[ $REMOTE == 1 ]] && want rsync+sync; then
		echo "rsync+sync is rsync -a followed by sync(1) (the far side is this machine):"
		echo "like concord's, its copy is on disk when it ends, flushed once at the end"
		echo "rather than file by file before each rename."
	fi
	echo "Peak RSS: the largest single process of the client side (/usr/bin/time %M)."
	if [[ $RELAY == 0 ]]; then
		echo "Remote notes: RELAY=0, every tool connected to sshd directly; 'wire' is half"
		echo "the loopback rx+tx bytes during the run (each byte crosses lo once and is"
		echo "counted as rx and tx): TCP/IP headers and anything else on lo included."
	else
		echo "Remote notes: 'wire' is the SSH stream both ways (TCP payload) counted by"
		echo "bench/tcpcount, a relay in front of sshd that every tool connects through;"
		echo "'lo' is a quarter of the loopback rx+tx bytes during the run (each byte"
		echo "crosses lo twice, client-relay and relay-sshd, and is counted as rx and"
		echo "tx): it includes TCP/IP headers and anything else on lo at that time."
	fi
	echo "Raw samples: $ROWS; tool output: $LOG"
} | tee "$RESULTS"
say "results written to $RESULTS"

# Only now is anything deleted (see the top of this file).
rm -f "$TIMEF"
empty_trash

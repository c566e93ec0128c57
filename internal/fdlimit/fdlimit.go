// Package fdlimit tells how many files this process may have open, so that
// the parts of concord that keep many open at once (the scan, the engine's
// workers, an endpoint's reads and writes) stay within a low limit
// (ulimit -n in a container or a cron job) instead of failing with "too
// many open files".
package fdlimit

import (
	"math"

	"golang.org/x/sys/unix"
)

// Reserve is what the callers of Available leave for everything else a run
// keeps open: the archives, the lock, the link, the runtime.
const Reserve = 64

// Available returns the soft limit of open files less Reserve (at least
// zero), or math.MaxInt64 when there is no limit or it cannot be read. Go
// raises the soft limit to the hard one at start-up, so this is what the
// administrator's ulimit -Hn (or LimitNOFILE=) allows.
func Available() int64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY || lim.Cur >= math.MaxInt64/2 {
		return math.MaxInt64
	}
	return max(int64(lim.Cur)-Reserve, 0)
}

package scan

import (
	"math"
	"strconv"
)

// TempPrefix starts the name of every temporary file concord writes. A name
// is one of concord's temporaries only if all of it has the form TempName
// gives (see IsTemp); any other name that starts with TempPrefix is an
// ordinary file or directory, scanned and synchronized like any other.
const TempPrefix = ".concord-tmp-"

// tempLastMax bounds the last number of a temporary name: it is the
// nanoseconds part of a clock reading modulo one million.
const tempLastMax = 1e6 - 1

// TempName returns the name of a temporary file written by the process pid:
// TempPrefix followed by pid, seq and nano modulo one million (nano read as
// unsigned), as decimal numbers without leading zeros joined by hyphens,
// e.g. ".concord-tmp-4242-17-903211". The pid lets a
// later run tell a dead run's leftovers from a live one's. It panics if pid
// is not positive or does not fit in 32 bits, or if seq is zero: IsTemp
// would not recognise such a name.
func TempName(pid int, seq uint64, nano int64) string {
	if pid <= 0 || pid > math.MaxInt32 || seq == 0 {
		panic("scan.TempName: pid " + strconv.Itoa(pid) + ", seq " + strconv.FormatUint(seq, 10))
	}
	b := make([]byte, 0, len(TempPrefix)+32)
	b = append(b, TempPrefix...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, uint64(nano)%(tempLastMax+1), 10)
	return string(b)
}

// IsTemp reports whether name is one of concord's temporary files, that is
// whether TempName can return it.
func IsTemp(name string) bool {
	_, ok := TempOwner(name)
	return ok
}

// TempOwner parses a temporary file name made by TempName and returns the
// pid of the process that wrote it. ok is false for every other name,
// including near misses such as ".concord-tmp-notes", ".concord-tmp-12",
// ".concord-tmp-012-1-2" or ".concord-tmp-12-1-2.bak": exactly the names
// TempName can return are recognised, so that no user's file is taken for
// a leftover and removed.
func TempOwner(name string) (pid int, ok bool) {
	if len(name) <= len(TempPrefix) || name[:len(TempPrefix)] != TempPrefix {
		return 0, false
	}
	rest := name[len(TempPrefix):]
	p, rest, ok := tempNumber(rest, math.MaxInt32)
	if !ok || p == 0 || len(rest) == 0 || rest[0] != '-' {
		return 0, false
	}
	seq, rest, ok := tempNumber(rest[1:], math.MaxUint64)
	if !ok || seq == 0 || len(rest) == 0 || rest[0] != '-' {
		return 0, false
	}
	if _, rest, ok = tempNumber(rest[1:], tempLastMax); !ok || rest != "" {
		return 0, false
	}
	return int(p), true
}

// tempNumber reads a decimal number of at most max at the start of s, in
// the form strconv writes it (digits 0-9, no sign, no leading zero), and
// returns it and what follows it.
func tempNumber(s string, max uint64) (n uint64, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && s[0] == '0') {
		return 0, s, false
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil || n > max {
		return 0, s, false
	}
	return n, s[i:], true
}

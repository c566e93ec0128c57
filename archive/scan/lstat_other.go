//go:build !(linux && (amd64 || arm64))

package scan

import "golang.org/x/sys/unix"

// lstatAt is unix.Fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW); nb is
// unused here (see lstat_fast.go).
func lstatAt(dirfd int, name string, st *unix.Stat_t, nb []byte) ([]byte, error) {
	return nb, unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

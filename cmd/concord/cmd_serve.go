package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/concord-sync/concord/remote/local"
	"github.com/concord-sync/concord/remote/wire"
)

// protocolVersion is the endpoint protocol this build speaks.
const protocolVersion = wire.ProtocolVersion

// stdio joins standard input and output into the connection serve answers.
type stdio struct {
	io.Reader
	io.Writer
}

// cmdServe is the remote side: `concord serve ROOT` answers the wire
// protocol on standard input and output for the root ROOT on this host.
// concord sync starts it over SSH; people do not run it by hand.
func cmdServe(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		return usageErr("usage: concord serve ROOT (concord sync starts it on the remote host over SSH)")
	}
	// A client that dies closes our standard output: writing to it must
	// fail with EPIPE so that Serve ends cleanly (temporary files removed,
	// lock released), not kill the process with SIGPIPE as Go does by
	// default for a broken standard output.
	signal.Ignore(syscall.SIGPIPE)
	widenPipes(e.stdin, e.stdout)
	// The far side of a remote pair: large files it receives whole may
	// get deltas later, so it keeps their signatures.
	ep := local.New(args[0], local.Options{Version: Version, KeepSigs: true})
	defer ep.Close()
	if err := wire.Serve(ctx, stdio{e.stdin, e.stdout}, ep); err != nil {
		fmt.Fprintf(e.stderr, "concord serve: %v\n", err)
		return &exitError{code: exitFatal, err: errQuiet}
	}
	return nil
}

// servePipeSize is the capacity serve asks for its standard input and
// output when they are pipes: 1 MiB, the most an unprivileged process may
// ask by default (/proc/sys/fs/pipe-max-size).
const servePipeSize = 1 << 20

// widenPipes enlarges the pipes among the given streams to servePipeSize,
// as far as the system allows. OpenSSH's sshd joins a session to its
// command with 64 KiB pipes and keeps what does not fit in its own channel
// buffer, which it grows and compacts by copying the whole buffer for each
// packet that arrives. When serve paused (a flush) while a first sync's
// small files poured in, sshd spent a whole processor for 0.4 s copying
// its 2 MiB buffer and fed serve slowly long after the pause; with a pipe
// that holds the channel's window sshd's buffer stays nearly empty (sshd
// used 0.47-0.69 s of CPU instead of 0.81-0.98 s in a first sync of
// 100,000 files). A stream that is not a pipe, or a refusal, changes
// nothing. The two pipes count 2 MiB against the user's pipe allowance
// (/proc/sys/fs/pipe-user-pages-soft, 64 MiB by default): past it, the
// kernel gives that user's new pipes one page, so 32 serve sessions of one
// user at once would start to slow the user's other pipes.
func widenPipes(streams ...any) {
	for _, s := range streams {
		f, ok := s.(*os.File)
		if !ok {
			continue
		}
		rc, err := f.SyscallConn() // unlike Fd, leaves the file's mode alone
		if err != nil {
			continue
		}
		_ = rc.Control(func(fd uintptr) {
			var st unix.Stat_t
			if unix.Fstat(int(fd), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
				_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, servePipeSize)
			}
		})
	}
}

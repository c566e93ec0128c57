package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

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

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/sshx"
	"github.com/concord-sync/concord/remote/wire"
	"github.com/concord-sync/concord/tui"
)

// dialRemote connects to a remote root: SSH to its host, then `concord
// serve ROOT` there (uploading this very binary when the host has no
// concord of this protocol version), then the wire protocol over it.
func (d *dialer) dialRemote(ctx context.Context, r remote.Root) (remote.Endpoint, error) {
	opts := sshx.Options{
		Batch:          !d.interactive,
		ConnectTimeout: d.prof.SSH.ConnectTimeout,
		ConfigFile:     d.prof.SSH.ConfigFile,
		KeepAlive:      d.prof.SSH.KeepAlive,
		KeepAliveMax:   d.prof.SSH.KeepAliveMax,
		Stderr:         d.stderr,
	}
	if d.interactive {
		opts.AskTrust = tui.AskTrust
	}
	c, err := sshx.Dial(ctx, r, opts)
	if err != nil {
		return nil, engine.Fatal("%s: %v", r.Raw, err)
	}
	d.mu.Lock()
	d.closers = append(d.closers, c)
	d.mu.Unlock()
	wopts := []wire.Option{wire.WithVersion(Version), wire.WithCompression(d.prof.Compress)}
	var client *wire.Client
	probe := func(ctx context.Context, s *sshx.Stream) error {
		cl, err := wire.Connect(ctx, s, wopts...)
		var ve *wire.VersionError
		if errors.As(err, &ve) {
			return fmt.Errorf("%w: %v", sshx.ErrVersionMismatch, err)
		}
		if err != nil {
			return err
		}
		client = cl
		return nil
	}
	path := r.Path
	if r.HomeRelative && path == "" {
		path = "."
	}
	if _, err := sshx.StartServer(ctx, c, sshx.Bootstrap{Version: Version, Args: []string{path}, Probe: probe}); err != nil {
		return nil, engine.Fatal("%s: %v", r.Raw, err)
	}
	if client == nil {
		return nil, engine.Fatal("%s: the remote concord did not answer the handshake", r.Raw)
	}
	return client, nil
}

package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/zeebo/blake3"

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
	if _, err := sshx.StartServer(ctx, c, sshx.Bootstrap{Version: Version, Build: devBuild(), Args: []string{path}, Probe: probe}); err != nil {
		return nil, engine.Fatal("%s: %v", r.Raw, err)
	}
	if client == nil {
		return nil, engine.Fatal("%s: the remote concord did not answer the handshake", r.Raw)
	}
	return client, nil
}

// devBuild tells development builds apart, which all carry the version
// "...-dev" and the same protocol version, so that each build installs and
// runs its own copy on a remote (see buildID).
var devBuild = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return buildID(Version, exe)
})

// buildID returns the first 12 hex digits of the BLAKE3 hash of the
// executable exe when version is a development version, and "" for a
// release (and when exe cannot be read: then builds share the remote
// copy, as releases of one version do).
func buildID(version, exe string) string {
	if !strings.HasSuffix(version, "-dev") {
		return ""
	}
	f, err := os.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

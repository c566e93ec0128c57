package main

import (
	"context"
	"io"
	"sync"

	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/profile"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/local"
)

// dialer opens endpoints for roots: local ones directly, remote ones over
// SSH, keeping the connections to close at the end.
type dialer struct {
	prof        *profile.Profile
	interactive bool
	stderr      io.Writer
	mu          sync.Mutex
	closers     []io.Closer
}

func newDialer(p *profile.Profile, interactive bool, stderr io.Writer) *dialer {
	return &dialer{prof: p, interactive: interactive, stderr: stderr}
}

// Dial opens the endpoint for root.
func (d *dialer) Dial(ctx context.Context, root string) (remote.Endpoint, error) {
	r, err := remote.ParseRoot(root)
	if err != nil {
		return nil, engine.Fatal("%v", err)
	}
	if r.Local {
		return local.New(r.Path, local.Options{Version: Version, KeepSigs: d.remotePair()}), nil
	}
	return d.dialRemote(ctx, r)
}

// remotePair reports whether a root of the profile is on another host:
// then deltas may be sent, and the local endpoint keeps the signatures of
// the large files it receives whole.
func (d *dialer) remotePair() bool {
	for _, root := range d.prof.Roots {
		if r, err := remote.ParseRoot(root); err == nil && !r.Local {
			return true
		}
	}
	return false
}

// Close closes every connection opened.
func (d *dialer) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.closers {
		c.Close()
	}
	d.closers = nil
	return nil
}

package main

import (
	"context"

	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/remote"
)

func (d *dialer) dialRemote(ctx context.Context, r remote.Root) (remote.Endpoint, error) {
	return nil, engine.Fatal("%s: remote roots are not available in this build", r.Raw)
}

package main

import (
	"context"
)

const protocolVersion = 1

func cmdServe(ctx context.Context, e *env, args []string) error {
	return usageErr("serve is not available in this build")
}

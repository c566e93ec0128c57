package engine

import (
	"errors"
	"fmt"

	"github.com/concord-sync/concord/remote"
)

// Fatal wraps err as a run-stopping error (exit code 3): nothing has been
// changed on either side.
func Fatal(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{remote.ErrFatal}, args...)...)
}

// IsFatal reports whether err stops the run with exit code 3.
func IsFatal(err error) bool { return errors.Is(err, remote.ErrFatal) }

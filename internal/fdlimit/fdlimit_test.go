package fdlimit_test

import (
	"testing"

	"github.com/concord-sync/concord/internal/fdlimit"
	"github.com/concord-sync/concord/internal/fdlimit/fdlimittest"
)

// TestAvailable checks that Available follows the soft limit.
func TestAvailable(t *testing.T) {
	fdlimittest.Lower(t, 200)
	if got, want := fdlimit.Available(), int64(200-fdlimit.Reserve); got != want {
		t.Errorf("Available() = %d under a limit of 200, want %d", got, want)
	}
	fdlimittest.Lower(t, 10)
	if got := fdlimit.Available(); got != 0 {
		t.Errorf("Available() = %d under a limit of 10, want 0", got)
	}
}

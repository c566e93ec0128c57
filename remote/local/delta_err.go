package local

import "errors"

var errDeltaUnavailable = errors.New("delta transfer is not available")

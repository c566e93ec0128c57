package engine

// Limits the external tests check.
const (
	MaxBig  = maxBig
	BigFile = bigFile
)

// SetInflightBytes sets the budget of smaller files in flight for a test
// and returns a function that restores it.
func SetInflightBytes(n int64) (restore func()) {
	old := inflightBytes
	inflightBytes = n
	return func() { inflightBytes = old }
}

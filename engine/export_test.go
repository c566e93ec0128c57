package engine

// Limits the external tests check.
const (
	MaxBig = maxBig
	// MaxStaged bounds the files staged at once.
	MaxStaged = maxStaged
	BigFile   = bigFile
)

// SetInflightBytes sets the budget of smaller files in flight for a test
// and returns a function that restores it.
func SetInflightBytes(n int64) (restore func()) {
	old := inflightBytes
	inflightBytes = n
	return func() { inflightBytes = old }
}

// PrecomputedDeltas returns how many transfers sent a delta computed ahead.
func PrecomputedDeltas() int64 { return precomputedDeltas.Load() }

// StagedDeltas returns how many transfers installed a delta staged ahead.
func StagedDeltas() int64 { return stagedDeltas.Load() }

// RedoneDeltas returns how many transfers sent a delta again with every
// block confirmed.
func RedoneDeltas() int64 { return redoneDeltas.Load() }

// WaitPrefetch waits until the signatures and deltas fetched ahead are in.
func (s *Session) WaitPrefetch() {
	if s.prefetch != nil {
		s.prefetch.wg.Wait()
	}
}

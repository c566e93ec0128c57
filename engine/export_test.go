package engine

// Limits the external tests check.
const (
	MaxBig  = maxBig
	BigFile = bigFile
)

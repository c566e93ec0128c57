// Package local implements remote.Endpoint for a root on this machine: it
// owns that side's archive and lock, scans the tree, and applies changes
// with the safety re-checks and atomic installs the SPEC guarantees.
package local

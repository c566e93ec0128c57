// Package engine runs one synchronization: it opens both endpoints, scans
// them concurrently, reconciles the differences, applies the guards, carries
// out the plan item by item and records in both archives what really
// happened.
package engine

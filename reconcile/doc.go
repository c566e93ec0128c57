// Package reconcile decides, for every path that differs between two
// replicas, whether to propagate it one way, the other, or hold it back as a
// conflict. It is a pure function from (ancestor, side 1, side 2) to a plan:
// no file system, no SQL, no network, so it can be tested as tables.
package reconcile

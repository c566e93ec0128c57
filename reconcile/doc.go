// Package reconcile decides, for every path that differs between two
// replicas, whether to propagate it one way, the other, or hold it back as a
// conflict. It is a pure function from (ancestor, side 1, side 2) to a plan:
// no file system, no SQL, no network, so it can be tested as tables.
//
// Reconcile applies the SPEC's table and then the user's Options; the
// invariants it keeps are written out at the top of reconcile.go. The plan
// helpers (Plan.Counts, Deletes, RemovesDir, Guarded) answer what the engine
// and the user interfaces ask of a plan: how many items go each way, how
// much a run deletes (for --max-delete), and whether a direction a person
// picks is allowed by --no-deletion, --no-update and --no-creation.
package reconcile

// Package archive keeps one side's record of what a pair last agreed on: a
// SQLite database (WAL mode, one writer, versioned schema) holding, for every
// path, the state.Entry seen when both sides were last in step, a digest that
// tells in one comparison whether two archives agree, and the run history
// that reports are made from. It also owns the pair lock and the replica
// identity files kept beside the archives in the state directory.
package archive

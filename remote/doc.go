// Package remote defines the Endpoint interface through which the engine
// reaches each side of a pair, and holds its implementations: a local tree
// (remote/local) and a peer over SSH speaking the wire protocol.
package remote

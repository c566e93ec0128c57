// Package wire carries the remote.Endpoint interface over a byte stream, so
// that the engine can drive a replica on another machine: NewClient turns
// a connection (an SSH session running `concord serve`) into an Endpoint,
// and Serve answers such a connection with a local Endpoint.
//
// The protocol is described in docs/protocol.md. In short: each side first
// writes the magic bytes "CONCORD\x00" and its protocol version; then both
// exchange length-prefixed frames (at most MaxFrame bytes, optionally zstd
// compressed) holding CBOR messages. Every request carries an identifier,
// so many calls from many goroutines share one connection; file contents
// and long listings travel as streams of chunks under credit-based flow
// control, so neither side ever holds a whole file or buffers without
// bound. Errors keep their class (remote.ErrChanged and the others match
// errors.Is on the client) and their text.
//
// For delta transfers the client has two requests beyond the Endpoint
// interface: Client.Signature (the client implements delta.Signer; the
// server's endpoint must too) for a remote destination, whose delta is then
// sent as an OpPut with Delta set, and Client.ReadDelta for a remote
// source, which has the server compute the delta against a signature the
// client sends.
//
// Neither side trusts the other with paths: the server checks every path
// it receives with state.ValidatePath, and for a component that is one of
// concord's temporary file names (scan.IsTemp), before calling its
// endpoint, and the client checks every path the server sends back,
// refusing with remote.ErrUnsafePath.
package wire

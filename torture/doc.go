// Package torture proves concord's guarantees (SPEC.md, "Guarantees")
// under what real machines do to a sync: processes killed at random
// moments, full disks, refused permissions, dropped SSH connections,
// damaged archives, files edited while they are synced, hostile peers,
// odd names and file types, and long runs of random edits on both sides.
//
// It holds only tests. They drive the real concord binary (built once per
// test run) as a subprocess, locally and over a real OpenSSH sshd on
// 127.0.0.1 (see internal/sshdtest), and the engine in process where a
// test double must sit on the other end of the wire protocol. The default
// `go test ./torture/` is the short version; run.sh is the long one (more
// kill rounds, a 200-round soak and every fuzz target).
package torture

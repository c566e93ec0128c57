// Package scan finds what changed in a tree since its archive was written:
// it walks the root in parallel, compares each path's stat data with its
// archived entry, reads and hashes (BLAKE3) only the files whose stat data
// differ, and reports the paths whose state differs from the archive.
package scan

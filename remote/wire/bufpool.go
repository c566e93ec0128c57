package wire

import "github.com/concord-sync/concord/internal/bufpool"

// Byte buffers for what a first sync of many small files moves on the
// client: each file's contents, the put-batch data that concatenates them,
// and the encoded frame that carries it were three fresh allocations of every
// byte sent, and with 100,000 files the client spent a seventh of its CPU
// time allocating and collecting them (24 collections). They are recycled
// here once nothing refers to them any more.
//
// Buffers come in a few sizes, each with room to spare (a file's contents
// are read with one byte more than its size, to see one that grew: a file
// of 4 KiB must not take the next class up); one larger than the largest
// is allocated and left to the collector.
var bufClasses = [...]int{8 << 10, inlineMax + 8<<10, ChunkSize + 64<<10}

var bufs = bufpool.New(bufClasses[:]...)

// getBuf returns an empty buffer with room for n bytes.
func getBuf(n int) []byte { return bufs.Get(n) }

// putBuf recycles b, which its caller no longer uses and nothing else
// refers to. Buffers not from getBuf's classes are left to the collector.
func putBuf(b []byte) { bufs.Put(b) }

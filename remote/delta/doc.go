// Package delta implements rsync's delta-transfer algorithm, so that a file
// the destination already holds in an older version crosses the network as
// a few block references and the bytes that really changed.
//
// The three steps, and where each runs:
//
//  1. Signature, on the destination: the old file is cut into blocks of
//     BlockSize(size) bytes (about the square root of the size, clamped to
//     [MinBlockSize, MaxBlockSize]); each block gets a rolling weak checksum
//     (rsync's Adler-32-like sum) and a strong hash (BLAKE3, truncated to
//     StrongSize = 16 bytes, plenty to tell blocks of one file apart).
//  2. Delta, on the source: the new file is read once, a window of one block
//     rolling over it byte by byte; where the window's weak sum and then its
//     strong hash match a block of the signature, a Copy instruction names
//     that block, and the bytes in between go out as Literal instructions of
//     at most MaxLiteral bytes. Memory is bounded by the block size and the
//     literal limit, never by the file. With ConfirmResync the block right
//     after a match is taken on its weak sum alone (see Confirm), for a
//     receiver that checks the whole result and asks again if need be.
//  3. Apply, on the destination: Copy instructions are served from the old
//     file (the basis), Literal ones written as they are, into the new file.
//
// Signatures and instruction streams cross the network in the encodings of
// this package (Sig.Encode and DecodeSig, EncodeInstrs and DecodeInstrs): a
// sequence of length-prefixed CBOR items whose decoders refuse oversized
// items and out-of-range values before allocating anything.
package delta

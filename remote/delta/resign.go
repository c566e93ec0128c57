package delta

import "fmt"

// Resigner builds the signature of the file a Patcher rebuilds, so that the
// next delta against that file needs no pass over it. Blocks the delta
// copies whole to where they were in the basis keep the basis signature's
// entries (same bytes at the same place); only the blocks that literals or
// moved copies touch are hashed, from the bytes as they are written. For a
// 1 GiB file with a few edits that is a few blocks instead of the 1 GiB a
// fresh Signature reads and hashes.
//
// The result is exactly what Signature would compute of the new file
// (TestResigner checks it against Signature for inserts, deletions, edits,
// growth and truncation).
type Resigner struct {
	blocks
	basis *Sig
	size  int64 // the size the new file must have
	seen  int64 // bytes of the new file accounted for so far
	kept  int64 // blocks taken over from the basis (for tests)
	// hashed counts the bytes hashed; beyond maxResignShare of the file
	// the Resigner gives up (see Write).
	hashed int64
	gaveUp bool
}

// maxResignShare is the share of a new file a Resigner hashes at most: a
// file mostly rewritten would cost the destination a second full hash
// pass for a signature that a later delta may never use.
const maxResignShare = 4 // one quarter

// NewResigner returns a Resigner for a new file of size bytes rebuilt
// against a basis whose signature is basis, or nil when the new file's
// signature would use another block size (its size moved BlockSize): then
// there is nothing to reuse.
func NewResigner(basis *Sig, size int64) *Resigner {
	if basis == nil || size < 0 || BlockSize(size) != basis.BlockSize {
		return nil
	}
	return &Resigner{blocks: newBlocks(basis.BlockSize, numBlocks(size, basis.BlockSize)), basis: basis, size: size}
}

// inPlace records that the next bytes of the new file are count whole blocks
// of the basis, from block first, written at the offset they have in the
// basis. The Resigner must be at that offset.
func (r *Resigner) inPlace(first, count int64) {
	r.out = append(r.out, r.basis.Blocks[first:first+count]...)
	r.seen += count * int64(r.bs)
	r.kept += count
}

// at reports whether the Resigner stands at a block boundary at offset off
// of the new file, where inPlace may be used.
func (r *Resigner) at(off int64) bool { return r.seen == off && len(r.cur) == 0 }

// Write takes the next bytes of the new file that inPlace does not cover.
// Once more than a quarter of the file went through it, it gives up: Sig
// then fails and further bytes are ignored.
func (r *Resigner) Write(p []byte) (int, error) {
	n := len(p)
	if r.gaveUp {
		return n, nil
	}
	if r.hashed += int64(n); r.hashed > r.size/maxResignShare+int64(2*r.bs) {
		r.gaveUp, r.cur, r.out = true, nil, nil
		return n, nil
	}
	r.seen += int64(n)
	r.write(p)
	return n, nil
}

// Sig returns the new file's signature once all of it went through the
// Resigner; an error if it saw another number of bytes than the size.
func (r *Resigner) Sig() (*Sig, error) {
	if r.gaveUp {
		return nil, fmt.Errorf("delta: resign: more than 1/%d of the file changed", maxResignShare)
	}
	if r.seen != r.size {
		return nil, fmt.Errorf("delta: resign: saw %d bytes of a file of %d", r.seen, r.size)
	}
	r.finish()
	if int64(len(r.out)) != numBlocks(r.size, r.bs) {
		return nil, fmt.Errorf("delta: resign: %d blocks for a file of %d bytes", len(r.out), r.size)
	}
	return &Sig{BlockSize: r.bs, Size: r.size, Blocks: r.out}, nil
}

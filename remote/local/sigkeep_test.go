package local

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/concord-sync/concord/archive"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// randomBytes returns n pseudo-random bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestKeptSignature follows a large file through deltas: the first
// signature is read from the file; the file a delta wrote has its
// signature derived and kept, so the next one is served without reading
// the file, and is what reading it would give; a touched file, or a kept
// signature that turns out wrong, is read again.
func TestKeptSignature(t *testing.T) {
	ctx := context.Background()
	text := randomBytes(31, archive.SigMinSize+12345)
	f := newFixture(t, map[string]string{"big": string(text)}, remote.OpenRequest{})

	// edit changes 100 bytes at off and returns the new contents.
	edit := func(off int) []byte {
		b := bytes.Clone(text)
		for i := off; i < off+100; i++ {
			b[i] ^= 0x5a
		}
		return b
	}
	// sync signs "big" (checking whether the file was read), sends the
	// delta to next, and records what was installed, as the engine does.
	sync := func(next []byte, wantRead bool, wantErr error) {
		t.Helper()
		expect := f.entry("big")
		before := sigsRead.Load()
		sig, err := f.e.Signature(ctx, "big", expect)
		if err != nil {
			t.Fatal(err)
		}
		if read := sigsRead.Load() > before; read != wantRead {
			t.Fatalf("signature read from the file: %v, want %v", read, wantRead)
		}
		var enc bytes.Buffer
		if err := delta.WriteDelta(&enc, sig, bytes.NewReader(next), delta.ConfirmAll); err != nil {
			t.Fatal(err)
		}
		ent, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "big", Expect: expect, New: fileEntry(string(next), 0o644, t0), Delta: true}, &enc)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("Apply = %v, want %v", err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := f.e.Commit(ctx, []remote.Record{{Path: "big", Entry: ent}}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal([]byte(f.read("big")), next) {
			t.Fatal("delta result differs")
		}
		text = next
	}
	// kept checks the signature now kept against one read from the file.
	kept := func() {
		t.Helper()
		want, err := delta.Signature(bytes.NewReader(text), int64(len(text)))
		if err != nil {
			t.Fatal(err)
		}
		got := f.e.keptSig(ctx, "big", f.entry("big"))
		if got == nil {
			t.Fatal("no signature kept for the file a delta wrote")
		}
		if got.BlockSize != want.BlockSize || got.Size != want.Size || !slices.Equal(got.Blocks, want.Blocks) {
			t.Fatal("kept signature differs from the file's")
		}
	}

	sync(edit(1_000_000), true, nil) // nothing kept yet
	kept()
	sync(edit(5_000_000), false, nil) // served from the archive
	kept()

	// Touched: its stat data moved, the kept signature no longer counts.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(f.root, "big"), later, later); err != nil {
		t.Fatal(err)
	}
	f.commitScan()
	sync(edit(2_000_000), true, nil)
	kept()

	// A kept signature that is wrong (of other contents, same stat data;
	// here those of the next version, so that the delta copies blocks
	// the file does not have): the delta's result does not match, the
	// item fails, and the next signature is read from the file again.
	next := edit(3_000_000)
	bogus, err := delta.Signature(bytes.NewReader(next), int64(len(next)))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	bogus.Encode(&b)
	cur := f.entry("big")
	if err := f.e.db.ApplySigs(ctx, []archive.Update{{Path: "big", Entry: cur}}, map[string][]byte{"big": b.Bytes()}); err != nil {
		t.Fatal(err)
	}
	sync(next, false, remote.ErrChanged)
	sync(next, true, nil)
}

// TestSignedWhole checks that a large file received whole is signed on its
// way to disk when the endpoint keeps signatures: the first delta against
// it is served from the archive, without reading the file, and the
// signature is the file's. Without KeepSigs (a local pair) nothing is kept.
func TestSignedWhole(t *testing.T) {
	ctx := context.Background()
	text := randomBytes(41, archive.SigMinSize+54321)
	small := []byte("below the size from which signatures are kept")
	for _, keep := range []bool{true, false} {
		f := newFixtureWith(t, nil, remote.OpenRequest{}, Options{KeepSigs: keep})
		var recs []remote.Record
		for p, data := range map[string][]byte{"big": text, "small": small} {
			ent, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: p, New: fileEntry(string(data), 0o644, t0)}, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, remote.Record{Path: p, Entry: ent})
		}
		if err := f.e.Commit(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if got := f.e.keptSig(ctx, "small", f.entry("small")); got != nil {
			t.Errorf("KeepSigs %v: a signature was kept for a small file", keep)
		}
		got := f.e.keptSig(ctx, "big", f.entry("big"))
		if !keep {
			if got != nil {
				t.Error("a signature was kept without KeepSigs")
			}
			continue
		}
		want, err := delta.Signature(bytes.NewReader(text), int64(len(text)))
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			t.Fatal("no signature kept for a large file received whole")
		}
		if got.BlockSize != want.BlockSize || got.Size != want.Size || !slices.Equal(got.Blocks, want.Blocks) {
			t.Fatal("kept signature differs from the file's")
		}
		before := sigsRead.Load()
		if _, err := f.e.Signature(ctx, "big", f.entry("big")); err != nil {
			t.Fatal(err)
		}
		if sigsRead.Load() != before {
			t.Error("the first signature after a whole copy was read from the file")
		}
	}
}

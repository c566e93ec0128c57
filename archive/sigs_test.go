package archive

import (
	"bytes"
	"context"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

// TestSigs checks that a signature kept with an update comes back with the
// entry it describes, and goes when the path is updated without one,
// deleted, or its directory goes.
func TestSigs(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	big := func(h byte) *state.Entry {
		return &state.Entry{Kind: state.File, Mode: 0o644, Size: SigMinSize + 1, MTime: 5, Ino: 77, CTime: 6, Hash: [32]byte{h}}
	}
	sig := func(s string) []byte { return []byte("sig of " + s) }
	has := func(p string, want *state.Entry, wantSig []byte) {
		t.Helper()
		e, s, err := d.SigFor(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			if e != nil || s != nil {
				t.Errorf("%s: signature %q kept, want none", p, s)
			}
			return
		}
		if e == nil || !state.StatSame(e, want) || e.Hash != want.Hash || !bytes.Equal(s, wantSig) {
			t.Errorf("%s: kept %+v %q, want %+v %q", p, e, s, want, wantSig)
		}
	}
	if err := d.ApplySigs(ctx, []Update{{"d", dirE()}, {"d/a", big(1)}, {"d/b", big(2)}, {"c", big(3)}, {"small", fileE(10, 4)}},
		map[string][]byte{"d/a": sig("a"), "d/b": sig("b"), "c": sig("c")}); err != nil {
		t.Fatal(err)
	}
	has("d/a", big(1), sig("a"))
	has("d/b", big(2), sig("b"))
	has("c", big(3), sig("c"))
	has("small", nil, nil)

	// Updated without a signature: the old one no longer describes it.
	if err := d.Apply(ctx, []Update{{"d/a", big(9)}}); err != nil {
		t.Fatal(err)
	}
	has("d/a", nil, nil)
	// Deleted, and a directory with its files.
	if err := d.Apply(ctx, []Update{{"c", nil}, {"d", nil}}); err != nil {
		t.Fatal(err)
	}
	has("c", nil, nil)
	has("d/b", nil, nil)

	// DropSig.
	if err := d.ApplySigs(ctx, []Update{{"e", big(5)}}, map[string][]byte{"e": sig("e")}); err != nil {
		t.Fatal(err)
	}
	has("e", big(5), sig("e"))
	if err := d.DropSig(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	has("e", nil, nil)
}

// TestSigsTrimmed checks that the oldest signatures go once they take more
// than maxSigBytes.
func TestSigsTrimmed(t *testing.T) {
	defer func(v int64) { maxSigBytes = v }(maxSigBytes)
	maxSigBytes = 250
	ctx := context.Background()
	d := openTemp(t)
	e := &state.Entry{Kind: state.File, Size: SigMinSize, Hash: [32]byte{1}}
	for _, p := range []string{"a", "b", "c"} {
		if err := d.ApplySigs(ctx, []Update{{p, e}}, map[string][]byte{p: bytes.Repeat([]byte{'x'}, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	for p, kept := range map[string]bool{"a": false, "b": true, "c": true} {
		_, s, err := d.SigFor(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if (s != nil) != kept {
			t.Errorf("%s: kept = %v, want %v", p, s != nil, kept)
		}
	}
}

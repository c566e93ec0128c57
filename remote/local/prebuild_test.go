package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// TestStageThenInstall stages a delta's result (OpPut with Stage) and
// installs it (OpPut with FromStage): nothing changes at the path until the
// install, and an install that does not fit what was staged (another
// claimed hash, another basis, nothing staged, a destination edited since)
// fails, using the staged file up.
func TestStageThenInstall(t *testing.T) {
	ctx := context.Background()
	base := strings.Repeat("block of old text that stays the same\n", 4000)
	next := base[:50_000] + "an inserted line\n" + base[50_000:]
	tests := []struct {
		name    string
		claim   string                        // what the install's New claims
		between func(f *fixture) *state.Entry // may change things; returns the install's Expect, if not the stage's
		wantErr error                         // nil: any error
		ok      bool
	}{
		{name: "installs", claim: next, ok: true},
		{name: "size differs", claim: next + "x", wantErr: remote.ErrChanged},
		{name: "hash differs", claim: next[:len(next)-1] + "?", wantErr: remote.ErrMismatch},
		{name: "staged from another version", claim: next, between: func(f *fixture) *state.Entry {
			e := f.entry("f").Clone()
			e.MTime++
			return e
		}},
		{name: "destination edited since", claim: next, between: func(f *fixture) *state.Entry {
			os.WriteFile(filepath.Join(f.root, "f"), []byte(base+"edited"), 0o644)
			return nil
		}, wantErr: remote.ErrChanged},
		{name: "nothing staged", claim: next, between: func(f *fixture) *state.Entry {
			f.e.dropPrebuilt("f")
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, map[string]string{"f": base}, remote.OpenRequest{})
			expect := f.entry("f")
			enc := f.deltaTo("f", expect, next)
			stat := fileEntry(next, 0o640, t0)
			stat.Unhashed = true
			if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: expect, New: stat, Delta: true, Stage: true}, enc); err != nil {
				t.Fatal(err)
			}
			if f.read("f") != base {
				t.Fatal("staging changed the file at the path")
			}
			if tmp := temps(t, f.root); len(tmp) != 1 {
				t.Fatalf("%d temporary files after staging, want 1: %q", len(tmp), tmp)
			}
			installExpect := expect
			if tt.between != nil {
				if e := tt.between(f); e != nil {
					installExpect = e
				}
			}
			was := f.read("f")
			ent, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: installExpect, New: fileEntry(tt.claim, 0o640, t0), FromStage: true}, nil)
			if tmp := temps(t, f.root); len(tmp) != 0 {
				t.Errorf("temporary files left: %q", tmp)
			}
			if !tt.ok {
				if err == nil {
					t.Fatal("install succeeded")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("install = %v, want %v", err, tt.wantErr)
				}
				if f.read("f") != was {
					t.Error("a refused install changed the file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.read("f") != next {
				t.Fatal("installed contents differ from the new version")
			}
			fi, err := os.Stat(filepath.Join(f.root, "f"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(t0) || ent.Hash != fileEntry(next, 0, t0).Hash {
				t.Errorf("installed with mode %v, mtime %v, entry hash %x", fi.Mode().Perm(), fi.ModTime(), ent.Hash[:4])
			}
		})
	}
}

// TestStagedRemovedAtClose: a staged file never installed is removed when
// the endpoint closes; and staging refuses anything but a delta against a
// file there.
func TestStagedRemovedAtClose(t *testing.T) {
	ctx := context.Background()
	base := strings.Repeat("x", 100_000)
	f := newFixture(t, map[string]string{"f": base}, remote.OpenRequest{})
	expect := f.entry("f")
	enc := f.deltaTo("f", expect, base+"y")
	stat := fileEntry(base+"y", 0o644, t0)
	if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: expect, New: stat, Delta: true, Stage: true}, bytes.NewReader(enc.Bytes())); err != nil {
		t.Fatal(err)
	}
	// Staging again replaces the first.
	if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: expect, New: stat, Delta: true, Stage: true}, bytes.NewReader(enc.Bytes())); err != nil {
		t.Fatal(err)
	}
	if tmp := temps(t, f.root); len(tmp) != 1 {
		t.Fatalf("%d temporary files after staging twice, want 1: %q", len(tmp), tmp)
	}
	if _, err := f.e.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "g", New: stat, Stage: true}, strings.NewReader(base)); err == nil {
		t.Error("staged a whole new file")
	}
	if err := f.e.Close(); err != nil {
		t.Fatal(err)
	}
	if tmp := temps(t, f.root); len(tmp) != 0 {
		t.Errorf("temporary files left after Close: %q", tmp)
	}
	if f.read("f") != base {
		t.Error("the file changed")
	}
}

// closingReader reads r and calls close once it has handed out all of r,
// as a client that ends the run while a stage is still being built (a
// Close from another request) does.
type closingReader struct {
	r     *bytes.Reader
	close func()
	done  bool
}

func (c *closingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.r.Len() == 0 && !c.done {
		c.done = true
		c.close()
	}
	return n, err
}

// TestStagedDuringClose: a stage whose building Close overtakes (the run
// ended without the plan sending it) is removed when it is done, not left
// behind with nothing to install or remove it.
func TestStagedDuringClose(t *testing.T) {
	base := strings.Repeat("x", 100_000)
	f := newFixture(t, map[string]string{"f": base}, remote.OpenRequest{})
	expect := f.entry("f")
	enc := f.deltaTo("f", expect, base+"y")
	stat := fileEntry(base+"y", 0o644, t0)
	content := &closingReader{r: bytes.NewReader(enc.Bytes()), close: func() {
		if err := f.e.Close(); err != nil {
			t.Error(err)
		}
	}}
	if _, err := f.e.Apply(context.Background(), remote.Op{Kind: remote.OpPut, Path: "f", Expect: expect, New: stat, Delta: true, Stage: true}, content); err == nil {
		t.Error("a stage finished after Close succeeded")
	}
	if !content.done {
		t.Fatal("the stage's contents were not read to the end")
	}
	if tmp := temps(t, f.root); len(tmp) != 0 {
		t.Errorf("temporary files left: %q", tmp)
	}
	if f.read("f") != base {
		t.Error("the file changed")
	}
}

// deltaTo returns the encoded delta that turns the file at p (now expect)
// into contents, against the signature this endpoint gives of it.
func (f *fixture) deltaTo(p string, expect *state.Entry, contents string) *bytes.Buffer {
	f.t.Helper()
	sig, err := f.e.Signature(context.Background(), p, expect)
	if err != nil {
		f.t.Fatal(err)
	}
	var enc bytes.Buffer
	if err := delta.WriteDelta(&enc, sig, strings.NewReader(contents), delta.ConfirmAll); err != nil {
		f.t.Fatal(err)
	}
	return &enc
}

package archive

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "state", "ar.db"), false)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	return queryOne[int](t, path, "PRAGMA user_version")
}

// queryOne returns the one value query yields on the database at path,
// opened apart from any DB.
func queryOne[T any](t *testing.T, path, query string, args ...any) T {
	t.Helper()
	sdb, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var v T
	if err := sdb.QueryRow(query, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return v
}

func execRaw(t *testing.T, path string, stmts ...string) {
	t.Helper()
	sdb, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	for _, s := range stmts {
		if _, err := sdb.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestOpenCreatesAndMigrates(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"missing file", func(t *testing.T, path string) {}},
		{"empty file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"version 1", func(t *testing.T, path string) {
			execRaw(t, path, migrations[0], "PRAGMA user_version = 1",
				"INSERT INTO dirs(path, children) VALUES(x'', x'00')")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "sub", "ar.db")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, path)
			d, err := Open(path, false)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if d.Path() != path {
				t.Errorf("Path() = %q", d.Path())
			}
			if d.Count() != 0 || d.Digest() != ([32]byte{}) {
				t.Errorf("new archive has count %d digest %x", d.Count(), d.Digest())
			}
			// Every table of the current schema is usable.
			if _, err := d.BeginRun(ctx, Run{Root1: "a", Root2: "b"}); err != nil {
				t.Errorf("BeginRun after migration: %v", err)
			}
			if err := d.Apply(ctx, []Update{{Path: "x", Entry: &state.Entry{Kind: state.Dir, Mode: 0o755}}}); err != nil {
				t.Errorf("Apply after migration: %v", err)
			}
			d.Close()
			if v := userVersion(t, path); v != SchemaVersion {
				t.Errorf("user_version = %d, want %d", v, SchemaVersion)
			}
			// Reopening keeps what was written.
			d, err = Open(path, true)
			if err != nil {
				t.Fatalf("reopen read-only: %v", err)
			}
			defer d.Close()
			if d.Count() != 1 {
				t.Errorf("Count after reopen = %d, want 1", d.Count())
			}
		})
	}
}

func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.db"), true); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only open of a missing file: %v; want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only open created the file")
	}
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	if _, err := Open(empty, true); err == nil || !strings.Contains(err.Error(), "not a concord archive") {
		t.Errorf("read-only open of an empty file: %v", err)
	}
	old := filepath.Join(dir, "old.db")
	execRaw(t, old, migrations[0], "PRAGMA user_version = 1")
	if _, err := Open(old, true); err == nil || !strings.Contains(err.Error(), "run a sync once") {
		t.Errorf("read-only open of an old schema: %v", err)
	}
	if v := userVersion(t, old); v != 1 {
		t.Errorf("read-only open migrated the schema to %d", v)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ar.db")
	d, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	execRaw(t, path, "PRAGMA user_version = 99")
	for _, ro := range []bool{false, true} {
		_, err := Open(path, ro)
		if err == nil {
			t.Fatalf("Open(readOnly=%v) accepted schema version 99", ro)
		}
		if msg := err.Error(); !strings.Contains(msg, "newer") || !strings.Contains(msg, "upgrade concord") || !strings.Contains(msg, path) {
			t.Errorf("Open(readOnly=%v): %q; want a message naming the file and saying to upgrade", ro, msg)
		}
		if errors.Is(err, ErrCorrupt) {
			t.Errorf("a newer schema is reported as damaged: %v", err)
		}
	}
	if v := userVersion(t, path); v != 99 {
		t.Errorf("user_version changed to %d", v)
	}
}

// corruptErr checks that err wraps ErrCorrupt and tells to move the file aside.
func corruptErr(t *testing.T, what string, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: %v; want an error wrapping ErrCorrupt", what, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "Move it aside") || !strings.Contains(msg, path) {
		t.Errorf("%s: %q; want it to name %s and say to move it aside", what, msg, path)
	}
}

func TestOpenDamagedArchive(t *testing.T) {
	ctx := context.Background()
	t.Run("random bytes", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ar.db")
		junk := make([]byte, 64<<10)
		r := rand.New(rand.NewPCG(1, 2))
		for i := range junk {
			junk[i] = byte(r.Uint32())
		}
		if err := os.WriteFile(path, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			_, err := Open(path, ro)
			corruptErr(t, "Open", err, path)
		}
		if b, _ := os.ReadFile(path); len(b) != len(junk) {
			t.Errorf("the damaged file was changed (now %d bytes)", len(b))
		}
	})
	t.Run("truncated to half", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ar.db")
		d, err := Open(path, false)
		if err != nil {
			t.Fatal(err)
		}
		var ups []Update
		for i := 0; i < 300; i++ {
			dir := "d" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "/" + string(rune('a'+i/26))
			ups = append(ups, Update{Path: dir, Entry: &state.Entry{Kind: state.Dir, Mode: 0o755}})
			for j := 0; j < 10; j++ {
				ups = append(ups, Update{Path: dir + "/" + strings.Repeat("f", 20) + string(rune('a'+j)), Entry: &state.Entry{Kind: state.File, Mode: 0o644, Size: int64(j), Hash: hashOf(byte(j))}})
			}
		}
		if err := d.Apply(ctx, ups); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if _, err := os.Stat(path + "-wal"); err == nil {
			t.Log("WAL file still present after Close")
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() < 64<<10 {
			t.Fatalf("archive only %d bytes: too small to truncate meaningfully", fi.Size())
		}
		if err := os.Truncate(path, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		d, err = Open(path, false)
		if err == nil {
			// The header survived: the damage shows when the lost pages
			// are read.
			defer d.Close()
			_, _, err = d.All(ctx)
		}
		corruptErr(t, "Open or All of a truncated archive", err, path)
	})
}

func TestMetaAndReset(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	if v, err := d.Meta(ctx, "pair"); err != nil || v != nil {
		t.Errorf("Meta of a missing key = %q, %v", v, err)
	}
	if err := d.SetMeta(ctx, "pair", []byte("a:b")); err != nil {
		t.Fatal(err)
	}
	if err := d.SetMeta(ctx, "pair", []byte("c:d")); err != nil {
		t.Fatal(err)
	}
	if v, _ := d.Meta(ctx, "pair"); string(v) != "c:d" {
		t.Errorf("Meta after overwrite = %q", v)
	}
	if err := d.Apply(ctx, []Update{{Path: "a", Entry: &state.Entry{Kind: state.Dir}}, {Path: "a/b", Entry: &state.Entry{Kind: state.File, Hash: hashOf(1)}}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Count() != 0 || d.Digest() != ([32]byte{}) {
		t.Errorf("after Reset: count %d digest %x", d.Count(), d.Digest())
	}
	if p, _, _ := d.All(ctx); len(p) != 0 {
		t.Errorf("after Reset All = %q", p)
	}
	if v, _ := d.Meta(ctx, "pair"); string(v) != "c:d" {
		t.Errorf("Reset dropped metadata: %q", v)
	}
	// The reset digest and count survive a reopen.
	d.Close()
	d2, err := Open(d.Path(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if d2.Count() != 0 || d2.Digest() != ([32]byte{}) {
		t.Errorf("after reopen: count %d digest %x", d2.Count(), d2.Digest())
	}
}

func TestFingerprint(t *testing.T) {
	base := &state.Entry{Kind: state.File, Mode: 0o644, Size: 3, MTime: 10, Hash: hashOf(1), Ino: 5, CTime: 6}
	fp := Fingerprint("a", base)
	same := []struct {
		name string
		path string
		e    *state.Entry
	}{
		{"host-local stat data", "a", &state.Entry{Kind: state.File, Mode: 0o644, Size: 3, MTime: 10, Hash: hashOf(1), Ino: 99, CTime: 77}},
		{"non-permission mode bits", "a", &state.Entry{Kind: state.File, Mode: 0o100644, Size: 3, MTime: 10, Hash: hashOf(1)}},
	}
	for _, tt := range same {
		if Fingerprint(tt.path, tt.e) != fp {
			t.Errorf("%s changed the fingerprint", tt.name)
		}
	}
	differ := []struct {
		name string
		path string
		e    *state.Entry
	}{
		{"path", "b", base},
		{"mode", "a", &state.Entry{Kind: state.File, Mode: 0o600, Size: 3, MTime: 10, Hash: hashOf(1)}},
		{"size", "a", &state.Entry{Kind: state.File, Mode: 0o644, Size: 4, MTime: 10, Hash: hashOf(1)}},
		{"mtime", "a", &state.Entry{Kind: state.File, Mode: 0o644, Size: 3, MTime: 11, Hash: hashOf(1)}},
		{"hash", "a", &state.Entry{Kind: state.File, Mode: 0o644, Size: 3, MTime: 10, Hash: hashOf(2)}},
		{"kind", "a", &state.Entry{Kind: state.Symlink, Hash: hashOf(1)}},
	}
	for _, tt := range differ {
		if Fingerprint(tt.path, tt.e) == fp {
			t.Errorf("a different %s gives the same fingerprint", tt.name)
		}
	}
	// Directory times and symlink modes are not synchronized.
	if Fingerprint("d", &state.Entry{Kind: state.Dir, Mode: 0o755, MTime: 1}) != Fingerprint("d", &state.Entry{Kind: state.Dir, Mode: 0o755, MTime: 2, Hash: hashOf(3)}) {
		t.Error("a directory's mtime or hash changed its fingerprint")
	}
	if Fingerprint("l", &state.Entry{Kind: state.Symlink, Mode: 0o777, Hash: hashOf(1)}) != Fingerprint("l", &state.Entry{Kind: state.Symlink, Hash: hashOf(1), MTime: 5}) {
		t.Error("a symlink's mode or mtime changed its fingerprint")
	}
	// Archives keep digests made of fingerprints: the values must not move
	// between versions (these were computed by the first implementation,
	// which streamed the same bytes into a Hasher).
	for _, tt := range []struct {
		path string
		e    *state.Entry
		want string
	}{
		{"a", base, "241ebb92d4b223cab264c57523c0d57c9f5a112ab537e425f30ee7d1f0f611b7"},
		{strings.Repeat("long/", 80) + "name", base, "e2b9b2762923eabd566ea773bb6d921c34f40684452d5ad3e183c86c4579ec47"},
		{"d", &state.Entry{Kind: state.Dir, Mode: 0o755}, "5570504f77696db8fe5191e9a4f9cb78fd0db0cd30fd99dc30ab5582185732b3"},
	} {
		if got := Fingerprint(tt.path, tt.e); hex.EncodeToString(got[:]) != tt.want {
			t.Errorf("Fingerprint(%.20q...) = %x, want %s", tt.path, got, tt.want)
		}
	}
}

// TestOpenOddPaths opens archives whose paths hold characters that are
// special in a URI: each must be the named file, not another one.
func TestOpenOddPaths(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"a?b", "a#b", "a%20b", "a%b", "a b", "a&b=c", "é\xff"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), name)
			path := filepath.Join(dir, "ar.db")
			d, err := Open(path, false)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			err = d.Apply(ctx, []Update{{Path: "x", Entry: &state.Entry{Kind: state.Dir}}})
			d.Close()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("archive not at its path: %v", err)
			}
			ents, _ := os.ReadDir(filepath.Dir(dir))
			if len(ents) != 1 {
				t.Errorf("files beside the state directory: %v", ents)
			}
			d, err = Open(path, true)
			if err != nil {
				t.Fatalf("read-only Open: %v", err)
			}
			defer d.Close()
			if d.Count() != 1 {
				t.Errorf("read-only Open sees %d entries, want 1", d.Count())
			}
		})
	}
}

// TestMigrateDirsToRowid checks that migration 4 → 5 keeps every directory
// record and leaves dirs a rowid table: as WITHOUT ROWID, a lookup read the
// overflow pages of the records on its way down the b-tree.
func TestMigrateDirsToRowid(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ar.db")
	d, err := Open(path, false)
	if err != nil {
		t.Fatal(err)
	}
	var ups []Update
	for i := range 300 {
		dir := fmt.Sprintf("d%02d", i%30)
		if i < 30 {
			ups = append(ups, Update{Path: dir, Entry: &state.Entry{Kind: state.Dir, Mode: 0o755}})
		}
		ups = append(ups, Update{Path: fmt.Sprintf("%s/f%03d", dir, i), Entry: &state.Entry{Kind: state.File, Mode: 0o644, Size: int64(i), Hash: [32]byte{byte(i)}}})
	}
	if err := d.Apply(ctx, ups); err != nil {
		t.Fatal(err)
	}
	want := map[string][]Child{}
	for _, dir := range []string{"", "d00", "d17", "d29"} {
		if want[dir], err = d.ChildList(ctx, dir); err != nil || len(want[dir]) == 0 {
			t.Fatalf("ChildList(%q) = %d entries, %v", dir, len(want[dir]), err)
		}
	}
	d.Close()
	// Turn it back into a version 4 archive.
	execRaw(t, path,
		"CREATE TABLE dirs_old (path BLOB PRIMARY KEY, children BLOB NOT NULL) WITHOUT ROWID",
		"INSERT INTO dirs_old SELECT path, children FROM dirs",
		"DROP TABLE dirs", "ALTER TABLE dirs_old RENAME TO dirs", "PRAGMA user_version = 4")
	if ddl := tableSQL(t, path, "dirs"); !strings.Contains(ddl, "WITHOUT ROWID") {
		t.Fatalf("setup: dirs is %s", ddl)
	}
	d, err = Open(path, false)
	if err != nil {
		t.Fatalf("Open version 4: %v", err)
	}
	defer d.Close()
	for dir, w := range want {
		got, err := d.ChildList(ctx, dir)
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Errorf("after migration ChildList(%q) = %d entries (%v), want %d", dir, len(got), err, len(w))
		}
	}
	if d.Count() != int64(len(ups)) {
		t.Errorf("Count = %d, want %d", d.Count(), len(ups))
	}
	if ddl := tableSQL(t, path, "dirs"); strings.Contains(ddl, "WITHOUT ROWID") || !strings.Contains(ddl, "UNIQUE") {
		t.Errorf("after migration dirs is %s", ddl)
	}
	// Writes still replace a directory's record in place.
	if err := d.Apply(ctx, []Update{{Path: "d00/f000", Entry: nil}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.ChildList(ctx, "d00"); len(got) != len(want["d00"])-1 {
		t.Errorf("after a removal d00 has %d entries, want %d", len(got), len(want["d00"])-1)
	}
}

func tableSQL(t *testing.T, path, table string) string {
	t.Helper()
	return queryOne[string](t, path, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", table)
}

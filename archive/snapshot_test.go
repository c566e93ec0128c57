package archive

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestSnapshot checks that a preloaded snapshot's cursors list exactly
// as the database does, chunked directories included, and that an archive
// over the limit is answered from the database.
func TestSnapshot(t *testing.T) {
	smallChunks(t)
	ctx := context.Background()
	dirs := []string{"", "d", "d/e", "f", "absent", "d/absent"}
	for _, limit := range []int{1 << 20, 3} {
		saved := preloadMax
		preloadMax = limit
		r := rand.New(rand.NewPCG(7, uint64(limit)))
		d := openTemp(t)
		m := model{}
		for round := 0; round < 10; round++ {
			if err := d.Apply(ctx, chunkedUpdates(r, m, 1+r.IntN(30))); err != nil {
				t.Fatal(err)
			}
		}
		if rowCount(t, d) <= 4 {
			t.Fatalf("%d rows: no directory was split into chunks", rowCount(t, d))
		}
		s := d.Preload(ctx)
		if got, want := s.loaded(), limit > len(m); got != want {
			t.Errorf("limit %d, %d entries: snapshot loaded = %v, want %v", limit, len(m), got, want)
		}
		for _, dir := range dirs {
			got, err := collect(s.Cursor(ctx, dir))
			if err != nil {
				t.Fatalf("snapshot Cursor(%q): %v", dir, err)
			}
			want, err := d.ChildList(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("limit %d: snapshot ChildList(%q) = %d entries, database %d", limit, dir, len(got), len(want))
			}
		}
		s.Close()
		preloadMax = saved
	}
}

// TestSnapshotDamaged checks that a damaged record read through a
// snapshot is reported like one read from the database.
func TestSnapshotDamaged(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	if err := d.Apply(ctx, []Update{{"a", dirE()}, {"a/f", fileE(1, 1)}, {"b", fileE(2, 2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.db.Exec("UPDATE dirs SET children = x'05ff' WHERE path = ?", []byte("a")); err != nil {
		t.Fatal(err)
	}
	s := d.Preload(ctx)
	defer s.Close()
	if !s.loaded() {
		t.Fatal("snapshot not loaded")
	}
	if list, err := collect(s.Cursor(ctx, "")); err != nil || len(list) != 2 {
		t.Errorf("Cursor(root) gave %d entries, %v", len(list), err)
	}
	_, err := collect(s.Cursor(ctx, "a"))
	corruptErr(t, "snapshot Cursor", err, d.Path())
}

// collect reads what a cursor lists.
func collect(c Cursor, err error) ([]Child, error) {
	if err != nil {
		return nil, err
	}
	return c.list()
}

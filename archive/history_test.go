package archive

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestHistory(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	if _, ok, err := d.LastRun(ctx); ok || err != nil {
		t.Fatalf("LastRun on an empty archive = %v, %v", ok, err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	side := fileE(3, 1)
	type run struct {
		dryRun bool
		items  []RunItem
		// after the run: path → (first seen run index, times seen)
		want map[string][2]int
	}
	runs := []run{
		{items: []RunItem{
			{Path: "conflict", Status: "conflict", Action: "none", Reason: "both changed", Side1: side, Side2: fileE(4, 2)},
			{Path: "fails", Status: "failed", Action: "copy →", Reason: "permission denied", Side1: side},
			{Path: "\xffodd\nname", Status: "skipped", Action: "delete ←", Reason: "guard"},
		}, want: map[string][2]int{"conflict": {0, 1}, "fails": {0, 1}, "\xffodd\nname": {0, 1}}},
		{items: []RunItem{
			{Path: "conflict", Status: "conflict", Action: "none", Reason: "both changed", Side1: side},
			{Path: "fails", Status: "failed", Action: "copy →", Reason: "disk full"},
		}, want: map[string][2]int{"conflict": {0, 2}, "fails": {0, 2}}},
		// A dry run records its items but leaves standing problems alone.
		{dryRun: true, items: []RunItem{
			{Path: "new", Status: "conflict", Action: "none", Reason: "x"},
		}, want: map[string][2]int{"new": {2, 1}}},
		// "fails" resolved; "conflict" still there.
		{items: []RunItem{
			{Path: "conflict", Status: "conflict", Action: "none", Reason: "both changed"},
		}, want: map[string][2]int{"conflict": {0, 3}}},
		// Everything resolved.
		{want: map[string][2]int{}},
	}
	var ids []int64
	starts := make([]time.Time, len(runs))
	for i, r := range runs {
		starts[i] = t0.Add(time.Duration(i) * time.Hour)
		id, err := d.BeginRun(ctx, Run{Start: starts[i], Root1: "/r1", Root2: "ssh://h/r2", DryRun: r.dryRun})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		// An unfinished run is not the last run.
		if i > 0 {
			last, ok, err := d.LastRun(ctx)
			if err != nil || !ok || last.ID != ids[i-1] {
				t.Errorf("run %d begun: LastRun = %d, %v, %v; want %d", i, last.ID, ok, err, ids[i-1])
			}
		}
		fin := Run{ID: id, End: starts[i].Add(time.Minute), Propagated: i, Skipped: 2 * i, Failed: len(r.items), Bytes: int64(1000 * i), ExitCode: i % 3, DryRun: r.dryRun}
		if err := d.FinishRun(ctx, fin, r.items); err != nil {
			t.Fatal(err)
		}
		items, err := d.Items(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(r.want) {
			t.Fatalf("run %d: %d items, want %d", i, len(items), len(r.want))
		}
		for j, it := range items {
			w, ok := r.want[it.Path]
			if !ok {
				t.Fatalf("run %d: unexpected item %q", i, it.Path)
			}
			if j > 0 && items[j-1].Path >= it.Path {
				t.Errorf("run %d: items not sorted by path", i)
			}
			if !it.FirstSeen.Equal(starts[w[0]]) && !it.FirstSeen.Equal(starts[w[0]].Add(time.Minute)) {
				t.Errorf("run %d: %q first seen %v, want run %d (%v)", i, it.Path, it.FirstSeen, w[0], starts[w[0]])
			}
			if it.TimesSeen != w[1] {
				t.Errorf("run %d: %q seen %d times, want %d", i, it.Path, it.TimesSeen, w[1])
			}
		}
		// Item details round-trip.
		for _, in := range r.items {
			for _, out := range items {
				if out.Path != in.Path {
					continue
				}
				if out.Status != in.Status || out.Action != in.Action || out.Reason != in.Reason ||
					!reflect.DeepEqual(out.Side1, in.Side1) || !reflect.DeepEqual(out.Side2, in.Side2) {
					t.Errorf("run %d: item %q = %+v, want %+v", i, in.Path, out, in)
				}
			}
		}
		last, ok, err := d.LastRun(ctx)
		if err != nil || !ok {
			t.Fatalf("LastRun: %v %v", ok, err)
		}
		if last.ID != id || !last.Start.Equal(starts[i]) || !last.End.Equal(fin.End) || last.Root1 != "/r1" || last.Root2 != "ssh://h/r2" ||
			last.Propagated != fin.Propagated || last.Skipped != fin.Skipped || last.Failed != fin.Failed || last.Bytes != fin.Bytes ||
			last.ExitCode != fin.ExitCode || last.DryRun != fin.DryRun {
			t.Errorf("run %d: LastRun = %+v, want %+v", i, last, fin)
		}
	}
	// Items of an old run whose problems are resolved still list them,
	// first seen at that run's start.
	items, err := d.Items(ctx, ids[0])
	if err != nil || len(items) != 3 {
		t.Fatalf("Items(first run) = %d items, %v", len(items), err)
	}
	for _, it := range items {
		if !it.FirstSeen.Equal(starts[0]) || it.TimesSeen != 1 {
			t.Errorf("resolved item %q: first seen %v times %d", it.Path, it.FirstSeen, it.TimesSeen)
		}
	}
	all, err := d.Runs(ctx, 0)
	if err != nil || len(all) != len(runs) {
		t.Fatalf("Runs(0) = %d, %v", len(all), err)
	}
	if all[0].ID != ids[len(ids)-1] {
		t.Errorf("Runs not newest first: %d", all[0].ID)
	}
	if two, _ := d.Runs(ctx, 2); len(two) != 2 || two[1].ID != ids[len(ids)-2] {
		t.Errorf("Runs(2) = %+v", two)
	}
	if none, err := d.Items(ctx, 12345); err != nil || len(none) != 0 {
		t.Errorf("Items of an unknown run = %v, %v", none, err)
	}
}

func TestHistoryBounded(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	// 998 old runs written directly, each with an item, then a few real
	// ones that push the history past its bound.
	tx, err := d.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 998; i++ {
		if _, err := tx.Exec("INSERT INTO runs(id, start_ns, end_ns, root1, root2) VALUES(?, ?, ?, 'a', 'b')", i, i, i+1); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO run_items(run_id, path, status, action, reason) VALUES(?, x'70', 'conflict', '', '')", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.Exec("INSERT INTO problems(path, status, first_seen, last_seen, times_seen) VALUES(x'70', 'conflict', 2, 999, 998)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := 0; i < 5; i++ {
		id, err := d.BeginRun(ctx, Run{Start: time.Unix(2000+int64(i), 0)})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.FinishRun(ctx, Run{ID: id, End: time.Unix(2000+int64(i), 1)}, []RunItem{{Path: "p", Status: "conflict"}}); err != nil {
			t.Fatal(err)
		}
		last = id
	}
	runs, err := d.Runs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1000 || runs[0].ID != last || runs[len(runs)-1].ID != last-999 {
		t.Errorf("kept %d runs (%d to %d), want the 1000 ending at %d", len(runs), runs[len(runs)-1].ID, runs[0].ID, last)
	}
	var items int
	if err := d.db.QueryRow("SELECT count(*) FROM run_items").Scan(&items); err != nil {
		t.Fatal(err)
	}
	if items != 1000 {
		t.Errorf("%d run items kept after pruning runs, want 1000 (items of pruned runs must go too)", items)
	}
	its, err := d.Items(ctx, last)
	if err != nil || len(its) != 1 || its[0].TimesSeen != 1003 || !its[0].FirstSeen.Equal(time.Unix(0, 2)) {
		t.Errorf("Items(last) = %+v, %v; want first seen at the first run and 1003 times", its, err)
	}
}

// TestHistoryProblemSeenAgain checks an old run's item whose problem was
// resolved and then came back: the old run must not show it as first seen
// after the run itself.
func TestHistoryProblemSeenAgain(t *testing.T) {
	ctx := context.Background()
	d := openTemp(t)
	var ids []int64
	for i, items := range [][]RunItem{{{Path: "x", Status: "conflict"}}, nil, {{Path: "x", Status: "conflict"}}} {
		id, err := d.BeginRun(ctx, Run{Start: time.Unix(int64(100*i), 0)})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.FinishRun(ctx, Run{ID: id, End: time.Unix(int64(100*i+10), 0)}, items); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	tests := []struct {
		run   int
		first time.Time
	}{
		{0, time.Unix(0, 0)},   // the run's own start: its problem was resolved later
		{2, time.Unix(210, 0)}, // the standing problem, first seen at that run's end
	}
	for _, tt := range tests {
		its, err := d.Items(ctx, ids[tt.run])
		if err != nil || len(its) != 1 {
			t.Fatalf("Items(run %d) = %+v, %v", tt.run, its, err)
		}
		if !its[0].FirstSeen.Equal(tt.first) || its[0].TimesSeen != 1 {
			t.Errorf("run %d: first seen %v, %d times; want %v, once", tt.run, its[0].FirstSeen.Unix(), its[0].TimesSeen, tt.first.Unix())
		}
	}
}

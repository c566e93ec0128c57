package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/concord-sync/concord/archive/state"
)

// smallChunks makes directories split into chunks of a few entries for
// the rest of the test.
func smallChunks(t *testing.T) {
	oldMax, oldSplit := chunkMax, chunkSplit
	chunkMax, chunkSplit = 4, 2
	t.Cleanup(func() { chunkMax, chunkSplit = oldMax, oldSplit })
}

// rowCount returns how many rows the dirs table has.
func rowCount(t *testing.T, d *DB) int {
	t.Helper()
	var n int
	if err := d.db.QueryRow("SELECT count(*) FROM dirs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// chunkedUpdates returns n updates over a few directories of many names,
// so that directories grow past chunkMax, shrink and are replaced.
func chunkedUpdates(r *rand.Rand, m model, n int) []Update {
	var ups []Update
	add := func(u Update) {
		ups = append(ups, u)
		m.apply([]Update{u})
	}
	for len(ups) < n {
		dir := []string{"", "d", "d/e", "f"}[r.IntN(4)]
		for q := dir; q != ""; q = state.Parent(q) {
			if e := m[q]; e == nil || e.Kind != state.Dir {
				// Parents first.
				var chain []string
				for c := dir; c != ""; c = state.Parent(c) {
					chain = append(chain, c)
				}
				for i := len(chain) - 1; i >= 0; i-- {
					if e := m[chain[i]]; e == nil || e.Kind != state.Dir {
						add(Update{Path: chain[i], Entry: dirE()})
					}
				}
				break
			}
		}
		p := state.Join(dir, fmt.Sprintf("n%02d", r.IntN(40)))
		switch k := r.IntN(20); {
		case k < 5:
			add(Update{Path: p, Entry: nil})
		case k == 5 && dir != "":
			// Replace a whole directory by a file: its chunks go.
			add(Update{Path: dir, Entry: fileE(1, 1)})
		default:
			add(Update{Path: p, Entry: fileE(int64(r.IntN(9)), byte(r.IntN(4)))})
		}
	}
	return ups
}

// TestChunkedDirectories checks large directories stored in several rows
// against the reference model: listings stay sorted and complete, counts
// and digests stay right, whatever the batches, splits and deletions.
func TestChunkedDirectories(t *testing.T) {
	smallChunks(t)
	ctx := context.Background()
	maxRows := 0
	for seed := uint64(1); seed <= 6; seed++ {
		r := rand.New(rand.NewPCG(seed, 5))
		d := openTemp(t)
		m := model{}
		for round := 0; round < 30; round++ {
			ups := chunkedUpdates(r, m, 1+r.IntN(30))
			if err := d.Apply(ctx, ups); err != nil {
				t.Fatalf("seed %d round %d: Apply: %v", seed, round, err)
			}
			checkAgainst(t, d, m)
			for _, dir := range []string{"", "d", "d/e", "f"} {
				list, err := d.ChildList(ctx, dir)
				if err != nil {
					t.Fatalf("ChildList(%q): %v", dir, err)
				}
				var got, want []string
				for _, c := range list {
					got = append(got, c.Name)
				}
				for p := range m {
					if state.Parent(p) == dir {
						want = append(want, state.Base(p))
					}
				}
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d round %d: ChildList(%q) = %q, want %q", seed, round, dir, got, want)
				}
				n, err := d.CountBelow(ctx, dir)
				below := 0
				for p := range m {
					if dir == "" || state.IsBelow(p, dir) {
						below++
					}
				}
				if err != nil || n != int64(below) {
					t.Fatalf("seed %d round %d: CountBelow(%q) = %d, %v; want %d", seed, round, dir, n, err, below)
				}
			}
			maxRows = max(maxRows, rowCount(t, d))
		}
	}
	// Four directories of up to 40 names, in chunks of at most 4: the
	// test is only worth something if directories were split.
	if maxRows <= 4 {
		t.Fatalf("at most %d rows at a time: directories were never split into chunks", maxRows)
	}
}

// TestChunkedFirstSync checks the pattern of a first sync: names arriving
// in order, in batches, into one flat directory. Each batch must rewrite
// only the chunk it appends to, not the whole directory.
func TestChunkedFirstSync(t *testing.T) {
	smallChunks(t)
	ctx := context.Background()
	d := openTemp(t)
	m := model{}
	for batch := 0; batch < 10; batch++ {
		var ups []Update
		for i := range 5 {
			ups = append(ups, Update{Path: fmt.Sprintf("f%03d", batch*5+i), Entry: fileE(1, 2)})
		}
		m.apply(ups)
		if err := d.Apply(ctx, ups); err != nil {
			t.Fatal(err)
		}
	}
	checkAgainst(t, d, m)
	// 50 entries in chunks of 2 to 4.
	if n := rowCount(t, d); n < 50/4 || n > 50/2 {
		t.Errorf("50 entries in %d rows, want %d to %d", n, 50/4, 50/2)
	}
}

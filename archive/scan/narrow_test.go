package scan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestScanNarrow checks Options.Narrow: while it is open at most
// narrowWorkers() directories are read at once, and more once it is
// closed; a scan that ends while narrowed still ends.
func TestScanNarrow(t *testing.T) {
	if runtime.GOMAXPROCS(0) > 4 {
		// More processors than workers below: nothing would be held back.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	root := t.TempDir()
	for i := range 64 {
		d := filepath.Join(root, fmt.Sprintf("d%02d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range 5 {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", j)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	var now, most int
	widened := false
	var mostNarrow int
	scanDirHook = func(start bool) {
		mu.Lock()
		if !start {
			now--
			mu.Unlock()
			return
		}
		now++
		most = max(most, now)
		if !widened {
			mostNarrow = max(mostNarrow, now)
		}
		mu.Unlock()
		// Long enough for other workers to pile in if they may.
		time.Sleep(2 * time.Millisecond)
	}
	defer func() { scanDirHook = nil }()

	// Narrowed for the whole scan: it ends all the same.
	narrow := make(chan struct{})
	if _, err := Scan(context.Background(), root, "", nil, Options{Workers: 6, Narrow: narrow}); err != nil {
		t.Fatal(err)
	}
	if mostNarrow > narrowWorkers() {
		t.Errorf("narrowed: %d directories at once, want at most %d", mostNarrow, narrowWorkers())
	}

	// Widened after a few directories.
	most, mostNarrow = 0, 0
	narrow = make(chan struct{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		widened = true
		mu.Unlock()
		close(narrow)
	}()
	if _, err := Scan(context.Background(), root, "", nil, Options{Workers: 6, Narrow: narrow}); err != nil {
		t.Fatal(err)
	}
	if mostNarrow > narrowWorkers() || most <= narrowWorkers() {
		t.Errorf("at most %d directories at once before widening (want at most %d), %d after (want more)", mostNarrow, narrowWorkers(), most)
	}
}

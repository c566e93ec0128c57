package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// deadPid is above Linux's largest possible pid (4194304), so no process
// can have it.
const deadPid = 99_999_999

func TestAcquireLock(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	tests := []struct {
		name     string
		existing string // lock file contents before AcquireLock ("" = none)
		ok       bool
		mention  []string // the error names these
	}{
		{"free", "", true, nil},
		// The file names this very process, alive, but nobody holds its
		// flock (a reused pid): stale. TestAcquireLockFlockDecides checks
		// a held flock.
		{"this live pid, flock free", fmt.Sprintf("%s %s\n", me, host), true, nil},
		{"stale: dead process on this host", fmt.Sprintf("%d %s\n", deadPid, host), true, nil},
		{"held on another host", fmt.Sprintf("%d other-host.example\n", deadPid), false, []string{strconv.Itoa(deadPid), "other-host.example", "remove the file"}},
		{"live pid on another host", "1 elsewhere\n", false, []string{"elsewhere"}},
		{"unreadable contents", "garbage\n", false, []string{"garbage", "unreadable", "remove it"}},
		// A creator killed between creating and writing the file leaves it
		// empty; nobody holds its flock, so it is taken over.
		{"empty file", " ", true, nil},
		{"negative pid", fmt.Sprintf("-5 %s\n", host), false, []string{"unreadable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ar.lock")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			l, err := AcquireLock(path)
			if tt.ok {
				if err != nil {
					t.Fatalf("AcquireLock: %v", err)
				}
				b, _ := os.ReadFile(path)
				if want := me + " " + host + "\n"; string(b) != want {
					t.Errorf("lock file holds %q, want %q", b, want)
				}
				if err := l.Release(); err != nil {
					t.Errorf("Release: %v", err)
				}
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("lock file still present after Release: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrLockHeld) {
				t.Fatalf("AcquireLock = %v; want an error wrapping ErrLockHeld", err)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the lock file", err)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.existing {
				t.Errorf("a refused AcquireLock changed the lock file to %q", b)
			}
		})
	}
}

func TestLockSecondAcquireAndRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ar.lock")
	l, err := AcquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(path)
	if !errors.Is(err, ErrLockHeld) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second AcquireLock = %v; want ErrLockHeld naming pid %d", err, os.Getpid())
	}
	if host, _ := os.Hostname(); !strings.Contains(err.Error(), host) {
		t.Errorf("second AcquireLock error %q does not name host %s", err, host)
	}
	for i := 0; i < 2; i++ {
		if err := l.Release(); err != nil {
			t.Fatalf("Release #%d: %v", i+1, err)
		}
	}
	var nilLock *Lock
	if err := nilLock.Release(); err != nil {
		t.Errorf("Release on nil: %v", err)
	}
	// Released: it can be taken again, and releasing the old handle does
	// not remove the new holder's file.
	l2, err := AcquireLock(path)
	if err != nil {
		t.Fatalf("AcquireLock after Release: %v", err)
	}
	l.Release()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("a released lock's second Release removed the new holder's file: %v", err)
	}
	l2.Release()
}

func TestAcquireLockMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "ar.lock")
	_, err := AcquireLock(path)
	if err == nil || errors.Is(err, ErrLockHeld) || !strings.Contains(err.Error(), path) {
		t.Errorf("AcquireLock in a missing directory = %v; want a create error naming the path", err)
	}
}

// FuzzParseLock feeds arbitrary lock file contents to the parser: it must
// never panic, and what it accepts must be a positive pid and a host
// without white space.
func FuzzParseLock(f *testing.F) {
	f.Add("123 host\n")
	f.Add("0 host")
	f.Add("-1 h")
	f.Add("99999999999999999999 h")
	f.Add("12 two words")
	f.Fuzz(func(t *testing.T, s string) {
		pid, host, ok := parseLock(s)
		if !ok {
			return
		}
		if pid <= 0 || host == "" || strings.ContainsAny(host, " \t\n") {
			t.Fatalf("parseLock(%q) = %d, %q", s, pid, host)
		}
		if p2, h2, ok2 := parseLock(fmt.Sprintf("%d %s\n", pid, host)); !ok2 || p2 != pid || h2 != host {
			t.Fatalf("re-parse of %d %q = %d %q %v", pid, host, p2, h2, ok2)
		}
	})
}

// TestStaleLockTakeoverIsExclusive lets several runs find the same stale
// lock at once: exactly one may take it over.
func TestStaleLockTakeoverIsExclusive(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for iter := 0; iter < 300; iter++ {
		path := filepath.Join(t.TempDir(), "ar.lock")
		if err := os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", deadPid, host)), 0o600); err != nil {
			t.Fatal(err)
		}
		var holders atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := AcquireLock(path); err == nil {
					holders.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if n := holders.Load(); n != 1 {
			t.Fatalf("attempt %d: %d runs hold the lock at once", iter, n)
		}
	}
}

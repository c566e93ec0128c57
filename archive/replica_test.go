package archive

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestReplicaID(t *testing.T) {
	roots := []string{"/srv/data", "/srv/data2", "/home/u/\xffodd", "/tmp/with space/x"}
	stateDir := t.TempDir()
	ids := map[string]string{}
	for _, root := range roots {
		if id, err := ReplicaID(stateDir, root, false); err != nil || id != "" {
			t.Errorf("ReplicaID(%q, create=false) before creation = %q, %v; want empty", root, id, err)
		}
		id, err := ReplicaID(stateDir, root, true)
		if err != nil {
			t.Fatalf("ReplicaID(%q): %v", root, err)
		}
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("ReplicaID(%q) = %q: want 32 hex digits", root, id)
		}
		for other, oid := range ids {
			if oid == id {
				t.Errorf("roots %q and %q share id %s", root, other, id)
			}
		}
		ids[root] = id
	}
	for _, root := range roots {
		for _, create := range []bool{true, false} {
			id, err := ReplicaID(stateDir, root, create)
			if err != nil || id != ids[root] {
				t.Errorf("ReplicaID(%q, %v) again = %q, %v; want %q", root, create, id, err, ids[root])
			}
		}
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Join(stateDir, "replicas"))
	if len(ents) != len(roots) {
		t.Errorf("%d files in replicas/, want %d", len(ents), len(roots))
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left", e.Name())
		}
	}
}

// TestReplicaIDRootWithTrailingSpace checks a root whose name ends in white
// space, which a directory name may.
func TestReplicaIDRootWithTrailingSpace(t *testing.T) {
	stateDir := t.TempDir()
	for _, root := range []string{"/data/backup ", "/data/tab\t", "/data/new\nline\n"} {
		id, err := ReplicaID(stateDir, root, true)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ReplicaID(stateDir, root, true)
		if err != nil || again != id {
			t.Errorf("ReplicaID(%q) second call = %q, %v; want %q", root, again, err, id)
		}
	}
}

func TestReplicaIDDamaged(t *testing.T) {
	tests := []struct {
		name     string
		contents string
		mention  string
	}{
		{"garbage", "xyz", "damaged"},
		{"empty", "", "damaged"},
		{"other root", strings.Repeat("a", 32) + "\n/other\n", "/other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stateDir := t.TempDir()
			file := filepath.Join(stateDir, "replicas", shortHash("/root"))
			os.MkdirAll(filepath.Dir(file), 0o700)
			if err := os.WriteFile(file, []byte(tt.contents), 0o600); err != nil {
				t.Fatal(err)
			}
			id, err := ReplicaID(stateDir, "/root", true)
			if err == nil {
				t.Fatalf("ReplicaID accepted %q: %q", tt.contents, id)
			}
			if !strings.Contains(err.Error(), tt.mention) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "remove it") {
				t.Errorf("error %q; want it to name %s, mention %q and say to remove it", err, file, tt.mention)
			}
			if b, _ := os.ReadFile(file); string(b) != tt.contents {
				t.Errorf("damaged file was rewritten to %q", b)
			}
		})
	}
}

func TestStateDirAndPaths(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_STATE_HOME", dir)
	if got, err := StateDir(); err != nil || got != filepath.Join(dir, "concord") {
		t.Errorf("StateDir = %q, %v", got, err)
	}
	t.Setenv("XDG_STATE_HOME", "relative/path")
	t.Setenv("HOME", dir)
	if got, err := StateDir(); err != nil || got != filepath.Join(dir, ".local", "state", "concord") {
		t.Errorf("StateDir with a relative XDG_STATE_HOME = %q, %v; want under HOME", got, err)
	}
	a, b := ArchivePath("/s", "id1", "id2"), ArchivePath("/s", "id2", "id1")
	if a == b {
		t.Errorf("both sides of a pair share the archive path %s", a)
	}
	if filepath.Dir(a) != "/s" || !strings.HasSuffix(a, ".db") {
		t.Errorf("ArchivePath = %s", a)
	}
	if ArchivePath("/s", "id1", "id2") != a {
		t.Error("ArchivePath is not stable")
	}
	if l := LockPath(a); l != strings.TrimSuffix(a, ".db")+".lock" {
		t.Errorf("LockPath = %s", l)
	}
}

// TestReplicaIDConcurrentCreation starts several runs on a new root at
// once: they must all get the one id that is stored.
func TestReplicaIDConcurrentCreation(t *testing.T) {
	for iter := 0; iter < 30; iter++ {
		stateDir := t.TempDir()
		ids := make([]string, 8)
		errs := make([]error, 8)
		var wg sync.WaitGroup
		for g := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[g], errs[g] = ReplicaID(stateDir, "/root", true)
			}()
		}
		wg.Wait()
		stored, err := ReplicaID(stateDir, "/root", false)
		if err != nil || stored == "" {
			t.Fatalf("stored id %q, %v", stored, err)
		}
		for g := range ids {
			if errs[g] != nil || ids[g] != stored {
				t.Fatalf("attempt %d: run %d got %q, %v; the stored id is %q", iter, g, ids[g], errs[g], stored)
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(stateDir, "replicas")); len(ents) != 1 {
			t.Fatalf("replicas/ holds %d files, want 1", len(ents))
		}
	}
}

func TestPeerHint(t *testing.T) {
	dir := t.TempDir()
	own, peer := strings.Repeat("a", 32), strings.Repeat("b", 32)
	const root = "ssh://host/srv/www"
	if got := PeerHint(dir, own, root); got != "" {
		t.Fatalf("nothing remembered: got %q", got)
	}
	if err := RememberPeer(dir, own, root, peer); err != nil {
		t.Fatal(err)
	}
	// No archive of the pairing yet: a guess would make the engine open
	// (and create) one for a pair that may not exist.
	if got := PeerHint(dir, own, root); got != "" {
		t.Fatalf("no archive of the pair: got %q", got)
	}
	if err := os.WriteFile(ArchivePath(dir, own, peer), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := PeerHint(dir, own, root); got != peer {
		t.Fatalf("got %q, want %q", got, peer)
	}
	for _, tc := range []struct{ own, root string }{
		{strings.Repeat("c", 32), root},  // another local replica
		{own, "ssh://host/srv/www/"},     // another name
		{own, "ssh://otherhost/srv/www"}, // another host
	} {
		if got := PeerHint(dir, tc.own, tc.root); got != "" {
			t.Errorf("PeerHint(%q, %q) = %q, want nothing", tc.own, tc.root, got)
		}
	}
	// A changed peer replaces the hint.
	other := strings.Repeat("d", 32)
	if err := RememberPeer(dir, own, root, other); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ArchivePath(dir, own, other), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := PeerHint(dir, own, root); got != other {
		t.Fatalf("after the peer changed: got %q, want %q", got, other)
	}
	// A damaged hint is no hint.
	if err := os.WriteFile(peerFile(dir, own, root), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := PeerHint(dir, own, root); got != "" {
		t.Fatalf("damaged hint: got %q", got)
	}
}

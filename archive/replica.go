package archive

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/zeebo/blake3"
)

// StateDir returns the directory holding archives on this host:
// $XDG_STATE_HOME/concord, by default ~/.local/state/concord.
func StateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "concord"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the state directory: set HOME or XDG_STATE_HOME: %w", err)
	}
	return filepath.Join(home, ".local", "state", "concord"), nil
}

func shortHash(s string) string {
	h := blake3.Sum256([]byte(s))
	return hex.EncodeToString(h[:10])
}

// ReplicaID returns the identity of the replica rooted at root (an absolute,
// symlink-resolved path) on this host, creating and storing a random one the
// first time unless create is false (then a missing identity returns "").
func ReplicaID(stateDir, root string, create bool) (string, error) {
	file := filepath.Join(stateDir, "replicas", shortHash(root))
	b, err := os.ReadFile(file)
	if err == nil {
		// The root is stored verbatim: a directory name may end in white
		// space, so only the final newline is stripped.
		id, rest, _ := strings.Cut(string(b), "\n")
		stored := strings.TrimSuffix(rest, "\n")
		if len(id) == 32 && stored == root {
			return id, nil
		}
		if len(id) == 32 && stored != "" {
			return "", fmt.Errorf("replica file %s names root %q, not %q: remove it", file, stored, root)
		}
		return "", fmt.Errorf("replica file %s is damaged: remove it (the next run is then a first sync, which never deletes)", file)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read replica id %s: %w", file, err)
	}
	if !create {
		return "", nil
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("create state directory %s: %w", filepath.Dir(file), err)
	}
	// Write a private temporary file, then link it into place: when two
	// runs create the identity at once, the first link wins and the other
	// run adopts its id instead of overwriting it.
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".tmp*")
	if err != nil {
		return "", fmt.Errorf("write replica id %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(id + "\n" + root + "\n")
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		return "", fmt.Errorf("write replica id %s: %w", file, errors.Join(werr, cerr))
	}
	err = os.Link(tmp.Name(), file)
	if errors.Is(err, os.ErrExist) {
		return ReplicaID(stateDir, root, false)
	}
	if err != nil {
		// A file system without hard links: rename instead.
		if err := os.Rename(tmp.Name(), file); err != nil {
			return "", fmt.Errorf("write replica id %s: %w", file, err)
		}
	}
	return id, nil
}

// ArchivePath returns the file holding replica own's archive for its pairing
// with replica peer.
func ArchivePath(stateDir, own, peer string) string {
	return filepath.Join(stateDir, "ar-"+shortHash(own+"\n"+peer)+".db")
}

// LockPath returns the lock file for the archive at archivePath.
func LockPath(archivePath string) string {
	return strings.TrimSuffix(archivePath, ".db") + ".lock"
}

// PeerHint returns the replica id that the root named peerRoot (as the user
// wrote it) led to the last time replica own synchronized with it, or ""
// when none is remembered or the archive of that pairing is gone. It is a
// guess, to be confirmed by the peer itself: the engine uses it to start
// scanning this side while it is still connecting to the other.
func PeerHint(stateDir, own, peerRoot string) string {
	b, err := os.ReadFile(peerFile(stateDir, own, peerRoot))
	if err != nil {
		return ""
	}
	id, rest, _ := strings.Cut(string(b), "\n")
	if len(id) != 32 || strings.TrimSuffix(rest, "\n") != peerRoot {
		return ""
	}
	if _, err := os.Stat(ArchivePath(stateDir, own, id)); err != nil {
		return ""
	}
	return id
}

// RememberPeer records that the root named peerRoot led to replica peer
// when replica own synchronized with it (see PeerHint).
func RememberPeer(stateDir, own, peerRoot, peer string) error {
	file := peerFile(stateDir, own, peerRoot)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("create state directory %s: %w", filepath.Dir(file), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("remember peer %s: %w", peerRoot, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(peer + "\n" + peerRoot + "\n")
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		return fmt.Errorf("remember peer %s: %w", peerRoot, errors.Join(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("remember peer %s: %w", peerRoot, err)
	}
	return nil
}

func peerFile(stateDir, own, peerRoot string) string {
	return filepath.Join(stateDir, "peers", shortHash(own+"\n"+peerRoot))
}

package main

import (
	"context"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/concord-sync/concord/engine"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/sshx"
	"github.com/concord-sync/concord/remote/wire"
	"github.com/concord-sync/concord/tui"
)

// dialRemote connects to a remote root: SSH to its host, then `concord
// serve ROOT` there (uploading this very binary when the host has no
// concord of this protocol version), then the wire protocol over it.
func (d *dialer) dialRemote(ctx context.Context, r remote.Root) (remote.Endpoint, error) {
	opts := sshx.Options{
		Batch:          !d.interactive,
		ConnectTimeout: d.prof.SSH.ConnectTimeout,
		ConfigFile:     d.prof.SSH.ConfigFile,
		KeepAlive:      d.prof.SSH.KeepAlive,
		KeepAliveMax:   d.prof.SSH.KeepAliveMax,
		Stderr:         d.stderr,
	}
	if d.interactive {
		opts.AskTrust = tui.AskTrust
	}
	c, err := sshx.Dial(ctx, r, opts)
	if err != nil {
		return nil, engine.Fatal("%s: %v", r.Raw, err)
	}
	d.mu.Lock()
	d.closers = append(d.closers, c)
	d.mu.Unlock()
	wopts := []wire.Option{wire.WithVersion(Version), wire.WithCompression(d.prof.Compress), wire.WithName(r.Raw)}
	var client *wire.Client
	probe := func(ctx context.Context, s *sshx.Stream) error {
		cl, err := wire.Connect(ctx, s, wopts...)
		var ve *wire.VersionError
		if errors.As(err, &ve) {
			return fmt.Errorf("%w: %v", sshx.ErrVersionMismatch, err)
		}
		if err != nil {
			return err
		}
		client = cl
		return nil
	}
	path := r.Path
	if r.HomeRelative && path == "" {
		path = "."
	}
	if _, err := sshx.StartServer(ctx, c, sshx.Bootstrap{Version: Version, Build: devBuild(), Args: []string{path}, Probe: probe}); err != nil {
		return nil, engine.Fatal("%s: %v", r.Raw, err)
	}
	if client == nil {
		return nil, engine.Fatal("%s: the remote concord did not answer the handshake", r.Raw)
	}
	return client, nil
}

// devBuild tells development builds apart, which all carry the version
// "...-dev" and the same protocol version, so that each build installs and
// runs its own copy on a remote (see buildID).
var devBuild = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return buildID(Version, exe)
})

// buildID returns 12 hex digits naming the build of the executable exe
// when version is a development version, and "" for a release (and when
// exe cannot be read: then builds share the remote copy, as releases of one
// version do). It hashes the Go build ID the linker stores in the
// executable (a hash of its contents) rather than the whole file: hashing
// 20 MiB took 40 ms of every remote run; where there is no build ID, the
// file is hashed after all.
func buildID(version, exe string) string {
	if !strings.HasSuffix(version, "-dev") {
		return ""
	}
	h := blake3.New()
	if id := goBuildID(exe); id != "" {
		h.Write([]byte(id))
	} else {
		f, err := os.Open(exe)
		if err != nil {
			return ""
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return ""
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// goBuildID returns the Go build ID in the ELF note of exe ("" if none).
func goBuildID(exe string) string {
	f, err := elf.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	sec := f.Section(".note.go.buildid")
	if sec == nil {
		return ""
	}
	note, err := sec.Data()
	// The note: name size, description size, type (4 bytes each), the
	// name "Go\0\0", then the build ID as the description.
	if err != nil || len(note) < 16 || string(note[12:16]) != "Go\x00\x00" {
		return ""
	}
	n := f.ByteOrder.Uint32(note[4:8])
	if uint64(n) > uint64(len(note)-16) {
		return ""
	}
	return string(note[16 : 16+n])
}

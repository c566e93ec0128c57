package sshx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/concord-sync/concord/archive/state"
)

// ShellQuote quotes s as one word for a POSIX shell (and for bash, zsh,
// fish and csh, which read '...' the same way for the characters concord
// passes).
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shCommand returns a command line that has the remote login shell run
// script with sh after cd "$HOME" (so relative paths are under the
// remote home), with $0 set to name and args as $1...
//
// The script is one line without single quotes, backslashes or '!', so
// any login shell passes it to sh untouched.
func shCommand(name, script string, args ...string) string {
	if strings.ContainsAny(script, "'\\!\n") {
		panic("sshx: script not safe to quote: " + script)
	}
	var b strings.Builder
	b.WriteString(`sh -c 'cd "${HOME:-/}" || exit 1; `)
	b.WriteString(script)
	b.WriteString("' ")
	b.WriteString(ShellQuote(name))
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(ShellQuote(a))
	}
	return b.String()
}

// uploadScript installs its standard input at $1 (relative to $HOME, or
// absolute, or ~/...): it writes a temporary file beside it, checks its
// size ($2) and SHA-256 ($3, when sha256sum or shasum exists), sets its
// mode ($4), and renames it into place.
const uploadScript = `p=$1; case $p in "~/"*) p=$HOME/${p#??};; esac; ` +
	`d=$(dirname -- "$p"); mkdir -p -- "$d" || exit 1; ` +
	`t=$p.concord-upload.$$; ` +
	`cat > "$t" || { rm -f -- "$t"; exit 1; }; ` +
	`n=$(wc -c < "$t" | tr -d " "); ` +
	`[ "$n" = "$2" ] || { rm -f -- "$t"; echo "received $n bytes instead of $2" >&2; exit 1; }; ` +
	`s=; if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum < "$t"); elif command -v shasum >/dev/null 2>&1; then s=$(shasum -a 256 < "$t"); fi; s=${s%% *}; ` +
	`[ -z "$s" ] || [ "$s" = "$3" ] || { rm -f -- "$t"; echo "the received file has SHA-256 $s instead of $3" >&2; exit 1; }; ` +
	`chmod "$4" "$t" && mv -f -- "$t" "$p" || { rm -f -- "$t"; exit 1; }; ` +
	`echo "concord-upload: ok ${s:+sha256}"`

// Upload copies the local file to remotePath on the host (absolute, or
// relative to the remote home, "~/" allowed), creating its directory. The
// bytes go to a temporary file beside the destination, which is checked
// (size, and SHA-256 where the remote has sha256sum or shasum), given
// mode, and renamed into place, so the destination is never seen half
// written. Upload sends no other tool over: it needs only sh and
// coreutils on the remote.
func (c *Client) Upload(ctx context.Context, local, remotePath string, mode fs.FileMode) error {
	f, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("upload to %s: %w", c.host.display(), err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("upload %s to %s: read: %w", state.Display(local), c.host.display(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("upload %s to %s: %w", state.Display(local), c.host.display(), err)
	}
	cmd := shCommand("concord-upload", uploadScript, remotePath, strconv.FormatInt(size, 10),
		hex.EncodeToString(h.Sum(nil)), fmt.Sprintf("%o", mode.Perm()))
	label := fmt.Sprintf("upload of %s to %s", state.Display(local), state.Display(remotePath))
	out, err := c.run(ctx, label, cmd, f)
	if err != nil {
		return err
	}
	if !bytes.Contains(out, []byte("concord-upload: ok")) {
		return fmt.Errorf("%s on %s: the remote shell did not confirm the copy (output %q)", label, c.host.display(), shortOutput(out))
	}
	return nil
}

func shortOutput(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return state.Display(string(b))
}

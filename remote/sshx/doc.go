// Package sshx is concord's SSH transport: it connects to a remote root's
// host with golang.org/x/crypto/ssh the way OpenSSH would (reading
// ~/.ssh/config, ssh-agent, the default keys and known_hosts), runs
// commands there, uploads files, and starts `concord serve` with its
// standard input and output as the protocol stream, installing this very
// executable on the remote when it has no usable concord (zero-install).
//
// Every connection failure (unreachable host, refused key, unknown or
// changed host key, lost connection) is an *Error wrapping remote.ErrFatal
// whose message names the host and says what to do.
//
// Remote commands run through the remote user's login shell, which then
// runs sh -c after cd "$HOME", so the remote side sees its own environment
// (PATH, XDG_STATE_HOME and the like from its shell start-up files), and
// paths relative to the remote home are relative to $HOME.
package sshx

// Package sshdtest starts a real OpenSSH sshd on 127.0.0.1 for tests, with
// throwaway host and user keys, so the SSH transport is tested against the
// server it meets in the field.
//
// The server runs as the current user (root in CI, where sshd_config permits
// key-only root logins) and accepts only the generated user key. Every
// session it starts gets its own home: sshd_config's SetEnv sets HOME to
// Server.RemoteHome (a temporary directory) and PATH to SessionPath (no
// /usr/local/bin, where a concord may be installed), plus whatever
// Config.Env adds or replaces, such as XDG_STATE_HOME or PATH, and SetEnv
// overrides sshd's defaults. The
// session's working directory is still the account's home from the password
// database; code under test that means "the remote home" must use $HOME
// (concord's SSH transport runs its remote commands after cd "$HOME"). Tests
// are skipped with a message when /usr/sbin/sshd is absent.
package sshdtest

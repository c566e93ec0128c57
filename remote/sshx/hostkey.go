package sshx

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/concord-sync/concord/archive/state"
)

// hostKeys checks a host's key against known_hosts and decides, by
// StrictHostKeyChecking, batch mode and AskTrust, about keys it does not
// know.
type hostKeys struct {
	h      *hostConfig
	db     ssh.HostKeyCallback // nil when no known_hosts file exists
	files  []string            // the known_hosts files read
	batch  bool
	ask    func(host, fingerprint, keyType string) (bool, error)
	stderr io.Writer
	// pause stops the connect timer while a person answers AskTrust and
	// returns the function that restarts it.
	pause func() (resume func())

	err error // why the key was refused, for Dial's message
}

func newHostKeys(h *hostConfig, opts *Options) (*hostKeys, error) {
	k := &hostKeys{h: h, batch: opts.Batch || opts.AskTrust == nil, ask: opts.AskTrust, stderr: opts.Stderr}
	for _, f := range append(append([]string(nil), h.userKnownHosts...), h.globalKnownHosts...) {
		if _, err := os.Stat(f); err == nil {
			k.files = append(k.files, f)
		}
	}
	if len(k.files) > 0 {
		db, err := knownhosts.New(k.files...)
		if err != nil {
			return nil, &Error{Host: h.alias, Kind: ErrConfig, Err: err,
				Msg: fmt.Sprintf("read known hosts for %s: %v; fix or remove the file", h.display(), err)}
		}
		k.db = db
	}
	return k, nil
}

// dummyKey is a key no host has, used to list the known keys of a host.
var dummyKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
})

// known returns the keys known_hosts records for the host.
func (k *hostKeys) known() []knownhosts.KnownKey {
	if k.db == nil {
		return nil
	}
	err := k.db(k.h.knownHostsAddr(), &net.TCPAddr{IP: net.IPv4zero, Port: k.h.port}, dummyKey())
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// algorithms returns the host key algorithms to offer: those of the keys
// known_hosts holds for the host, so that a server with several host keys
// presents one we can check (golang/go#29286); nil (the defaults) for an
// unknown host, or when any key is accepted anyway.
func (k *hostKeys) algorithms() []string {
	if k.h.strict == "no" {
		return nil
	}
	have := map[string]bool{}
	for _, kk := range k.known() {
		have[kk.Key.Type()] = true
	}
	var algos []string
	for _, t := range []string{
		ssh.KeyAlgoED25519,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
	} {
		if have[t] {
			algos = append(algos, t)
		}
	}
	if have[ssh.KeyAlgoRSA] {
		algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
	}
	return algos
}

// check is the ssh.HostKeyCallback.
func (k *hostKeys) check(_ string, remote net.Addr, key ssh.PublicKey) error {
	err := errUnknownKey
	if k.db != nil {
		err = k.db(k.h.knownHostsAddr(), remote, key)
	}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		k.err = &Error{Host: k.h.alias, Kind: ErrHostKeyRevoked, Err: err,
			Msg: fmt.Sprintf("the host key of %s is marked @revoked in %s line %d (%s key %s); refusing to connect: ask the server's administrator for its current key",
				k.h.display(), state.Display(re.Revoked.Filename), re.Revoked.Line, key.Type(), ssh.FingerprintSHA256(key))}
	case err == errUnknownKey || errors.As(err, &ke) && len(ke.Want) == 0:
		k.err = k.unknown(key)
	case errors.As(err, &ke):
		k.err = k.changed(key, ke.Want)
	default:
		k.err = &Error{Host: k.h.alias, Kind: ErrHostKeyUnknown, Err: err,
			Msg: fmt.Sprintf("check the host key of %s: %v", k.h.display(), err)}
	}
	return k.err
}

var errUnknownKey = errors.New("knownhosts: key is unknown")

// unknown decides about a host known_hosts does not list; nil accepts the
// key (and records it).
func (k *hostKeys) unknown(key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	line := knownhosts.Line([]string{k.h.knownHostsAddr()}, key)
	target := "~/.ssh/known_hosts"
	if len(k.h.userKnownHosts) > 0 {
		target = k.h.userKnownHosts[0]
	}
	refuse := func(why string) error {
		return &Error{Host: k.h.alias, Kind: ErrHostKeyUnknown,
			Msg: fmt.Sprintf("the host key of %s is not known (%s key %s)%s. Check that fingerprint with the server's administrator, then add this line to %s and run again:\n%s",
				k.h.display(), key.Type(), fp, why, state.Display(target), line)}
	}
	switch {
	case k.h.strict == "yes":
		return refuse(" and StrictHostKeyChecking is yes")
	case k.h.strict == "ask" && k.batch:
		return refuse(" and batch mode asks nothing")
	case k.h.strict == "ask":
		resume := k.pause()
		ok, err := k.ask(k.h.display(), fp, key.Type())
		resume()
		if err != nil {
			return &Error{Host: k.h.alias, Kind: ErrHostKeyUnknown, Err: err,
				Msg: fmt.Sprintf("the host key of %s is not known (%s key %s): %v", k.h.display(), key.Type(), fp, err)}
		}
		if !ok {
			return refuse(" and you did not trust it")
		}
	}
	if len(k.h.userKnownHosts) == 0 {
		fmt.Fprintf(k.stderr, "concord: warning: accepting the host key of %s (%s %s) without recording it (UserKnownHostsFile none)\n", k.h.display(), key.Type(), fp)
		return nil
	}
	if err := appendKnownHost(target, k.h.knownHostsAddr(), key, k.h.hashKnownHosts); err != nil {
		return &Error{Host: k.h.alias, Kind: ErrConfig, Err: err,
			Msg: fmt.Sprintf("record the host key of %s in %s: %v", k.h.display(), state.Display(target), err)}
	}
	fmt.Fprintf(k.stderr, "concord: added the host key of %s (%s %s) to %s\n", k.h.display(), key.Type(), fp, state.Display(target))
	return nil
}

// changed decides about a host whose known key differs; nil accepts it
// (StrictHostKeyChecking=no).
func (k *hostKeys) changed(key ssh.PublicKey, want []knownhosts.KnownKey) error {
	old := want[0]
	for _, w := range want {
		if w.Key.Type() == key.Type() {
			old = w
			break
		}
	}
	if k.h.strict == "no" {
		fmt.Fprintf(k.stderr, "concord: WARNING: the host key of %s changed (%s %s; %s line %d holds another); connecting anyway because StrictHostKeyChecking is no\n",
			k.h.display(), key.Type(), ssh.FingerprintSHA256(key), state.Display(old.Filename), old.Line)
		return nil
	}
	return changedError(k.h, fmt.Sprintf("the server sent %s key %s, but %s line %d holds another key",
		key.Type(), ssh.FingerprintSHA256(key), state.Display(old.Filename), old.Line), old, nil)
}

// changedError is the message for a host whose key is not the recorded
// one.
func changedError(h *hostConfig, what string, old knownhosts.KnownKey, cause error) error {
	return &Error{Host: h.alias, Kind: ErrHostKeyChanged, Err: cause,
		Msg: fmt.Sprintf("the host key of %s has changed: %s. Someone could be intercepting the connection; if the server was reinstalled, remove that line (ssh-keygen -R %q -f %s) and run again",
			h.display(), what, knownhosts.Normalize(h.knownHostsAddr()), state.Display(old.Filename))}
}

// appendKnownHost adds the line for addr and key to file, creating it
// (and its directory) if needed.
func appendKnownHost(file, addr string, key ssh.PublicKey, hash bool) error {
	line := knownhosts.Line([]string{addr}, key)
	if hash {
		line = knownhosts.HashHostname(knownhosts.Normalize(addr)) + line[strings.IndexByte(line, ' '):]
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		return err
	}
	return f.Close()
}

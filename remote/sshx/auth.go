package sshx

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/concord-sync/concord/archive/state"
)

// agentConn is a connection to ssh-agent, shared by every hop of a Dial.
type agentConn struct {
	conn   net.Conn
	client agent.ExtendedAgent
	keys   []*agent.Key
}

// dialAgent connects to the agent at SSH_AUTH_SOCK; nil when there is
// none or it does not answer (as OpenSSH, go on with the key files).
func dialAgent(sock string) *agentConn {
	if sock == "" {
		return nil
	}
	conn, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return nil
	}
	a := &agentConn{conn: conn, client: agent.NewClient(conn)}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	keys, err := a.client.List()
	_ = conn.SetDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil
	}
	a.keys = keys
	return a
}

func (a *agentConn) has(pub ssh.PublicKey) bool {
	if a == nil || pub == nil {
		return false
	}
	for _, k := range a.keys {
		if bytes.Equal(k.Marshal(), pub.Marshal()) {
			return true
		}
	}
	return false
}

// keySet is what a host is offered, and how to describe it in messages.
type keySet struct {
	signers []ssh.Signer
	tried   []string // key files and "N keys from ssh-agent"
}

// keys gathers the signers for h: its identity files (unencrypted, or
// held by the agent), then the agent's other keys unless IdentitiesOnly.
// Notes about files that cannot be used go to note, once each.
func keys(h *hostConfig, a *agentConn, note func(string)) keySet {
	var ks keySet
	seen := map[string]bool{}
	add := func(s ssh.Signer) bool {
		k := string(s.PublicKey().Marshal())
		if seen[k] {
			return false
		}
		seen[k] = true
		ks.signers = append(ks.signers, s)
		return true
	}
	var fromAgent []ssh.Signer
	if a != nil {
		fromAgent, _ = a.client.Signers()
	}
	agentSigner := func(pub ssh.PublicKey) ssh.Signer {
		for _, s := range fromAgent {
			if bytes.Equal(s.PublicKey().Marshal(), pub.Marshal()) {
				return s
			}
		}
		return nil
	}
	for _, f := range h.identityFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			if h.identityExplicit || !errors.Is(err, fs.ErrNotExist) {
				note(fmt.Sprintf("cannot read IdentityFile %s: %v", state.Display(f), unwrapPath(err)))
			}
			continue
		}
		signer, err := ssh.ParsePrivateKey(data)
		var pme *ssh.PassphraseMissingError
		switch {
		case err == nil:
			if add(signer) {
				ks.tried = append(ks.tried, state.Display(f))
			}
		case errors.As(err, &pme):
			pub := pme.PublicKey
			if pub == nil {
				pub = readPublicKey(f + ".pub")
			}
			if s := agentSigner(pub); s != nil {
				if add(s) {
					ks.tried = append(ks.tried, state.Display(f)+" (via ssh-agent)")
				}
				continue
			}
			note(fmt.Sprintf("skipping %s: it is protected by a passphrase and concord does not ask for one; load it into ssh-agent with: ssh-add %s", state.Display(f), state.Display(f)))
		default:
			note(fmt.Sprintf("skipping %s: not a usable private key: %v", state.Display(f), err))
		}
	}
	if !h.identitiesOnly {
		n := 0
		for _, s := range fromAgent {
			if add(s) {
				n++
			}
		}
		if n > 0 {
			ks.tried = append(ks.tried, fmt.Sprintf("%d key(s) from ssh-agent", n))
		}
	}
	return ks
}

func readPublicKey(file string) ssh.PublicKey {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil
	}
	return pub
}

// unwrapPath drops the path from a *fs.PathError, which the message
// already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// authError is the message for a server that accepted none of the keys.
func authError(h *hostConfig, ks keySet, cause error) error {
	var msg string
	if len(ks.signers) == 0 {
		msg = fmt.Sprintf("cannot log in to %s as %s: there is no SSH key to offer (no ssh-agent with keys, and none of %s is usable); create a key with ssh-keygen and add its public key to ~/.ssh/authorized_keys on %s, or load one into ssh-agent",
			h.display(), state.Display(h.user), strings.Join(displayAll(h.identityFiles), ", "), state.Display(h.alias))
	} else {
		msg = fmt.Sprintf("%s refused every key offered for %s (tried %s); add your public key to ~%s/.ssh/authorized_keys on %s, or name the right key with IdentityFile in ~/.ssh/config or load it into ssh-agent",
			h.display(), state.Display(h.user), strings.Join(ks.tried, ", "), state.Display(h.user), state.Display(h.alias))
	}
	return &Error{Host: h.alias, Kind: ErrAuth, Msg: msg, Err: cause}
}

func displayAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = state.Display(s)
	}
	return out
}

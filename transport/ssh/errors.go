package ssh

import (
	"fmt"
	"strings"
)

// HostKeyError is a node whose host key could not be verified against the
// known hosts file: unknown (Known false), or different from the key
// recorded there (Known true). A changed key is always refused.
type HostKeyError struct {
	Host           string // the node as dialled, host[:port]
	Fingerprint    string // "SHA256:..." of the key the node presented
	KeyType        string // e.g. "ssh-ed25519"
	Known          bool   // the host is in KnownHostsFile with another key
	KnownHostsFile string
	// KnownLine is the line of KnownHostsFile holding the recorded key,
	// when Known.
	KnownLine int
	// name is the host as known_hosts spells it ("host" or "[host]:port").
	name string
}

func (e *HostKeyError) Error() string {
	if e.Known {
		loc := e.KnownHostsFile
		if e.KnownLine > 0 {
			loc = fmt.Sprintf("%s:%d", e.KnownHostsFile, e.KnownLine)
		}
		return fmt.Sprintf("ssh to %s: HOST KEY CHANGED: the node presents %s key %s, which is not the key recorded in %s; "+
			"someone may be intercepting the connection, or the node was reinstalled: verify the new fingerprint on the node "+
			"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then remove the old key with: ssh-keygen -R '%s' -f %s",
			e.Host, e.KeyType, e.Fingerprint, loc, e.name, e.KnownHostsFile)
	}
	return fmt.Sprintf("ssh to %s: unknown host key %s %s (not in %s): verify the fingerprint on the node "+
		"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then add it to %s (ssh-keyscan) or accept new host keys on first contact",
		e.Host, e.KeyType, e.Fingerprint, e.KnownHostsFile, e.KnownHostsFile)
}

// AuthError is a node that refused every authentication method tried.
//
// The transport classifies what x/crypto/ssh returns by type wherever it
// has one: *ssh.ExitError for a command's exit status, *ssh.OpenChannelError
// for a refused session, *knownhosts.KeyError and *knownhosts.RevokedError
// for host keys, *ssh.PassphraseMissingError for an encrypted identity.
// The one exception is this error: x/crypto/ssh (v0.45) reports a client
// whose every method was refused with an untyped fmt.Errorf ("ssh: unable
// to authenticate, attempted methods [...], no supported methods remain";
// its ServerAuthError and PartialSuccessError are the server's side), so
// authFailure (auth.go) has to recognise it by that text. The text is the
// library's own, not the node's and not translated.
type AuthError struct {
	Host    string
	User    string
	Methods []string // the methods tried, e.g. ["publickey", "password"]
}

func (e *AuthError) Error() string {
	m := "none"
	if len(e.Methods) > 0 {
		m = strings.Join(e.Methods, ", ")
	}
	return fmt.Sprintf("ssh to %s as %s: authentication failed (tried %s)", e.Host, e.User, m)
}

// LostError is a connection that broke while in use: the node stopped
// answering keepalives, or the TCP connection failed. Every call pending on
// the Conn, and every later one, returns it.
type LostError struct {
	Host   string
	Reason string
}

func (e *LostError) Error() string {
	return fmt.Sprintf("connection to %s lost: %s", e.Host, e.Reason)
}

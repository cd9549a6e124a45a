package ssh

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsMu serialises appends to known hosts files within the process;
// flock does it across processes.
var knownHostsMu sync.Mutex

// probeKey is a key no host has; checking it yields the keys recorded for
// a host.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		panic(err)
	}
	return k
}()

// hostKeys verifies a node's host key against a known hosts file.
type hostKeys struct {
	file   string
	accept bool
	host   string // for messages
	check  ssh.HostKeyCallback
	err    *HostKeyError // the refusal, for Dial to return as is
}

func newHostKeys(file, host string, accept bool) (*hostKeys, error) {
	var files []string
	if _, err := os.Stat(file); err == nil {
		files = append(files, file)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("ssh to %s: known hosts: %w", host, err)
	}
	check, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("ssh to %s: known hosts: %w", host, err)
	}
	return &hostKeys{file: file, accept: accept, host: host, check: check}, nil
}

// algorithms returns the host key algorithms to ask for: those of the keys
// recorded for hostport, so that a node with several host keys presents
// the one we know rather than one that would look like a changed key. Nil
// when the host is unknown.
func (h *hostKeys) algorithms(hostport string) []string {
	err := h.check(hostport, &net.TCPAddr{}, probeKey)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, s := range a {
			if !seen[s] {
				seen[s] = true
				algos = append(algos, s)
			}
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// callback is the ssh.HostKeyCallback.
func (h *hostKeys) callback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := h.check(hostname, remote, key)
	if err == nil {
		return nil
	}
	var re *knownhosts.RevokedError
	if errors.As(err, &re) {
		return fmt.Errorf("ssh to %s: host key %s is revoked in %s:%d", h.host, ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return fmt.Errorf("ssh to %s: check host key: %w", h.host, err)
	}
	herr := &HostKeyError{
		Host:           h.host,
		Fingerprint:    ssh.FingerprintSHA256(key),
		KeyType:        key.Type(),
		Known:          len(ke.Want) > 0,
		KnownHostsFile: h.file,
		name:           knownhosts.Normalize(hostname),
	}
	if herr.Known {
		herr.KnownLine = ke.Want[0].Line
	} else if h.accept {
		if err := appendKnownHost(h.file, herr.name, key); err != nil {
			return fmt.Errorf("ssh to %s: record host key %s: %w", h.host, herr.Fingerprint, err)
		}
		return nil
	}
	h.err = herr
	return herr
}

// appendKnownHost records key for name (a knownhosts.Normalize'd address)
// in file, hashing the name when the file already holds hashed names. The
// file and its directory are created (0600, 0700) when missing.
func appendKnownHost(file, name string, key ssh.PublicKey) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockFile(f); err != nil {
		return fmt.Errorf("lock %s: %w", file, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	host := name
	if hashedFile(data) {
		host = knownhosts.HashHostname(name)
	}
	line := host + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + "\n"
	if len(data) > 0 && data[len(data)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return err
	}
	return f.Close()
}

// hashedFile reports whether a known hosts file uses hashed host names
// (OpenSSH's HashKnownHosts).
func hashedFile(data []byte) bool {
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if line[0] == '@' { // marker
			if i := bytes.IndexByte(line, ' '); i > 0 {
				line = bytes.TrimSpace(line[i:])
			}
		}
		if bytes.HasPrefix(line, []byte("|1|")) {
			return true
		}
	}
	return false
}

// Package tlspin pins the TLS certificates of the endpoints fleetup reaches
// over HTTPS (BMCs, whose certificates are mostly self-signed) the way SSH
// pins host keys: the first certificate an endpoint presents is recorded,
// and only when the user said so (--accept-new-host-keys); from then on the
// endpoint must present a recorded certificate, and a changed one is always
// refused, naming both fingerprints.
//
// The pins live in a file beside the SSH known hosts file (DefaultPath),
// one line per endpoint and certificate:
//
//	# comment
//	198.18.2.2:443 SHA256:n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg
//	[fd42:5e:0:2::2]:443 SHA256:jbvj1lKj3P0yYdN9hxVpP1l3S2VsCq3jBCr9bXRXcOU
//
// A pin is the SHA-256 of the leaf certificate's DER, so a new certificate
// is a change even when it has the same key; a BMC that presents one of two
// certificates has two lines.
//
// The file is trusted as far as it can be: a symbolic link, a file that is
// not a regular file and, on Unix, a file writable by group or others or
// owned by another user (root excepted) is refused, since whoever can
// write the file can pin their own certificate. On Windows, permissions are
// ACLs, which are not checked. A line that cannot be read makes every
// check fail with the file and line, rather than pinning silently turning
// off for the endpoint it was meant to be about.
package tlspin

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// DefaultName is the pin file's name in the directory of the SSH known
// hosts file.
const DefaultName = "fleetup_known_certs"

// DefaultPath is the pin file beside the SSH known hosts file knownHosts
// (e.g. ~/.ssh/known_hosts → ~/.ssh/fleetup_known_certs), so that one
// directory holds what fleetup trusts about nodes.
func DefaultPath(knownHosts string) string {
	return filepath.Join(filepath.Dir(knownHosts), DefaultName)
}

// Store is a file of pinned certificates: one line per endpoint and
// certificate, "host:port SHA256:base64" (base64 of the SHA-256 of the
// leaf certificate's DER, standard alphabet without padding), with '#'
// comment lines and blank lines allowed. Several lines for one endpoint:
// any of them matches (a BMC with two certificates).
//
// A Store is safe for concurrent use, and several processes may share a
// file: it is read at each check, so that each sees the others' additions,
// and appended to under a lock.
type Store struct {
	path      string
	acceptNew bool
}

// Open returns the store of the pin file at path, which need not exist
// yet: it is created (mode 0600, its directory 0700) when the first
// certificate is recorded. With acceptNew, the certificate of an endpoint
// that has none recorded is recorded and trusted (--accept-new-host-keys);
// without, it is refused with an *UnknownCertError. A changed certificate
// is refused either way. Open does no I/O.
func Open(path string, acceptNew bool) *Store {
	return &Store{path: path, acceptNew: acceptNew}
}

// Config returns a client tls.Config that trusts what endpoint presents if
// and only if its leaf certificate is pinned for it (or, with acceptNew,
// when endpoint has no pin yet, after recording it). endpoint is
// "host:port" as dialled, e.g. "198.18.2.2:443" or "[fd42:5e:0:2::2]:443";
// it is normalised (host names in lower case, IPv6 addresses in canonical
// form) before it is looked up or recorded.
//
// The standard chain and name check is off (InsecureSkipVerify) and
// VerifyConnection does the pin check instead, so that it is the one and
// only check: a certificate a public CA signed still has to be pinned, and
// a self-signed one that is pinned is not refused first. The refusal is the
// handshake's error: an *UnknownCertError, a *ChangedCertError, or an
// error about the file. The minimum version is TLS 1.2; ServerName is set
// for SNI when the host is a name. A malformed endpoint gives a config whose
// every handshake fails.
func (s *Store) Config(endpoint string) *tls.Config {
	ep, host, err := normalize(endpoint)
	cfg := &tls.Config{
		// Not insecure: VerifyConnection below checks the pin, and
		// refuses what the pin does not match.
		InsecureSkipVerify: true, //nolint:gosec // replaced by the pin check
		MinVersion:         tls.VersionTLS12,
	}
	if err == nil {
		if _, ipErr := netip.ParseAddr(host); ipErr != nil {
			cfg.ServerName = host
		}
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("tls to %s: the server presented no certificate", ep)
		}
		return s.verify(ep, Fingerprint(cs.PeerCertificates[0]))
	}
	return cfg
}

// Fingerprint is the pin of cert: "SHA256:" and the base64 (standard
// alphabet, no padding) of the SHA-256 of its DER, as OpenSSH writes key
// fingerprints.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return fingerprintPrefix + base64.RawStdEncoding.EncodeToString(sum[:])
}

const fingerprintPrefix = "SHA256:"

// verify checks fp, the fingerprint endpoint ep (normalised) presented,
// against the file, recording it when ep has none and s accepts new ones.
func (s *Store) verify(ep, fp string) error {
	pins, err := s.load()
	if err != nil {
		return fmt.Errorf("tls to %s: pinned certificates: %w", ep, err)
	}
	known := pins[ep]
	switch {
	case slices.Contains(known, fp):
		return nil
	case len(known) > 0:
		return &ChangedCertError{Endpoint: ep, Fingerprint: fp, File: s.path, Known: known}
	case !s.acceptNew:
		return &UnknownCertError{Endpoint: ep, Fingerprint: fp, File: s.path}
	}
	if err := s.record(ep, fp); err != nil {
		var changed *ChangedCertError
		if errors.As(err, &changed) {
			return err
		}
		return fmt.Errorf("tls to %s: record certificate %s in %s: %w", ep, fp, s.path, err)
	}
	return nil
}

// load reads the file's pins; a missing file has none.
func (s *Store) load() (map[string][]string, error) {
	f, err := openFile(s.path, os.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The shared lock keeps out a half-written line of a concurrent
	// record.
	if err := lockFile(f, false); err != nil {
		return nil, fmt.Errorf("lock %s: %w", s.path, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return parse(data, s.path)
}

// recordMu serialises appends within the process; lockFile does it across
// processes (and keeps readers out while a line is written).
var recordMu sync.Mutex

// header starts a new pin file.
const header = "# fleetup: pinned TLS certificates (BMCs), one \"host:port SHA256:fingerprint\" a line.\n" +
	"# Recorded on first contact with --accept-new-host-keys; remove a line to accept a changed certificate.\n"

// record appends the pin fp for ep, unless another process has recorded
// one for ep since it was looked up: then the same pin is success and a
// different one a *ChangedCertError, as if it had been there all along.
func (s *Store) record(ep, fp string) error {
	recordMu.Lock()
	defer recordMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	f, err := openFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockFile(f, true); err != nil {
		return fmt.Errorf("lock %s: %w", s.path, err)
	}
	// Read through the locked file (from its start: O_APPEND moves only
	// writes) what the others wrote before we got the lock.
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	pins, err := parse(data, s.path)
	if err != nil {
		return err
	}
	if known := pins[ep]; slices.Contains(known, fp) {
		return nil
	} else if len(known) > 0 {
		return &ChangedCertError{Endpoint: ep, Fingerprint: fp, File: s.path, Known: known}
	}
	line := ep + " " + fp + "\n"
	switch {
	case len(data) == 0:
		line = header + line
	case data[len(data)-1] != '\n':
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// How the engine waits for its certificate: the manager reads engine.csr
// over SMB, signs it and writes engine.crt.
const (
	certPoll = 200 * time.Millisecond
	certWait = 2 * time.Minute
)

// newKeyAndCSR makes the engine's key (ECDSA P-256, in memory only: it is
// never written anywhere) and a PEM certificate request for it with
// subject CN = node.
func newKeyAndCSR(node string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make the engine's key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: node}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make the certificate request: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// waitCert polls path every poll until it holds a certificate for key
// that the run's CA (pool) signed, and returns it with key as a TLS
// certificate. A file that does not parse yet is read again (the writer
// may not rename); one that parses but is for another key, or not signed
// by the CA, is an error at once. It gives up after wait or when ctx ends.
func waitCert(ctx context.Context, path string, key *ecdsa.PrivateKey, pool *x509.CertPool, poll, wait time.Duration) (tls.Certificate, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var lastErr error
	for {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			cert, perr := parseCert(b, key, pool)
			if perr == nil {
				return cert, nil
			}
			var refused *certRefused
			if errors.As(perr, &refused) {
				return tls.Certificate{}, perr
			}
			lastErr = perr
		case !errors.Is(err, fs.ErrNotExist):
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return tls.Certificate{}, fmt.Errorf("waiting for %s: %w", filepath.Base(path), ctx.Err())
		case <-deadline.C:
			msg := fmt.Sprintf("no certificate in %s after %s: the manager did not sign %s", filepath.Base(path), wait, WinCSRFile)
			if lastErr != nil {
				msg += " (last: " + lastErr.Error() + ")"
			}
			return tls.Certificate{}, errors.New(msg)
		case <-tick.C:
		}
	}
}

type certRefused struct{ msg string }

func (e *certRefused) Error() string { return e.msg }

func parseCert(b []byte, key *ecdsa.PrivateKey, pool *x509.CertPool) (tls.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return tls.Certificate{}, errors.New("no PEM certificate yet")
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse certificate: %w", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return tls.Certificate{}, &certRefused{"the certificate in " + WinCertFile + " is not for the engine's key"}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return tls.Certificate{}, &certRefused{"the certificate in " + WinCertFile + " is not the run's CA's: " + err.Error()}
	}
	return tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: key, Leaf: leaf}, nil
}

// writeFileAtomic writes b to dir/name through dir/name.tmp and a rename,
// so that a reader polling for name never sees half of it.
func writeFileAtomic(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseLeaf parses a leaf certificate and its private key, both PEM
// encoded, as an engine receives them. certPEM holds one CERTIFICATE block
// (further CERTIFICATE blocks are taken as its chain); keyPEM holds one
// PRIVATE KEY (PKCS #8), EC PRIVATE KEY or RSA PRIVATE KEY block. The key must
// match the certificate. Errors say which input and which block is wrong.
func ParseLeaf(certPEM, keyPEM []byte) (tls.Certificate, error) {
	blocks, err := decodeAll(certPEM, "certificate PEM")
	if err != nil {
		return tls.Certificate{}, err
	}
	var out tls.Certificate
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return tls.Certificate{}, fmt.Errorf("certificate PEM: block %d is %q, want CERTIFICATE", i+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("certificate PEM: block %d: %w", i+1, err)
		}
		if i == 0 {
			out.Leaf = c
		}
		out.Certificate = append(out.Certificate, b.Bytes)
	}
	keys, err := decodeAll(keyPEM, "key PEM")
	if err != nil {
		return tls.Certificate{}, err
	}
	if len(keys) != 1 {
		return tls.Certificate{}, fmt.Errorf("key PEM: %d blocks, want exactly 1", len(keys))
	}
	key, err := parseKey(keys[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("key PEM: %w", err)
	}
	if !publicKeyMatches(out.Leaf.PublicKey, key) {
		return tls.Certificate{}, fmt.Errorf("key PEM: private key does not match the certificate of %q", out.Leaf.Subject.CommonName)
	}
	out.PrivateKey = key
	return out, nil
}

// PoolFromPEM returns a pool of the CA certificates in data: one or more
// CERTIFICATE blocks, each a CA certificate, and nothing else but white
// space.
func PoolFromPEM(data []byte) (*x509.CertPool, error) {
	blocks, err := decodeAll(data, "ca PEM")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("ca PEM: block %d is %q, want CERTIFICATE", i+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca PEM: block %d: %w", i+1, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("ca PEM: block %d (%q) is not a CA certificate", i+1, c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// decodeAll decodes every PEM block of data. It refuses empty input and
// anything but white space around and between the blocks.
func decodeAll(data []byte, what string) ([]*pem.Block, error) {
	var blocks []*pem.Block
	rest := data
	for {
		rest = bytes.TrimSpace(rest)
		if len(rest) == 0 {
			break
		}
		b, r := pem.Decode(rest)
		if b == nil {
			if len(blocks) == 0 {
				return nil, fmt.Errorf("%s: no PEM block found", what)
			}
			return nil, fmt.Errorf("%s: data after block %d is not PEM", what, len(blocks))
		}
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("%s: block %d has headers (encrypted keys are not supported)", what, len(blocks)+1)
		}
		blocks = append(blocks, b)
		rest = r
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%s: empty", what)
	}
	return blocks, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("block is %q, want PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s block: %w", b.Type, err)
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, errors.New("unsupported private key type")
}

func publicKeyMatches(pub crypto.PublicKey, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := key.Public().(equaler)
	return ok && e.Equal(pub)
}

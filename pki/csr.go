package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// MaxCSRSize bounds a certificate request read from a node.
const MaxCSRSize = 16 << 10

// oidBasicConstraints names the extension a request for a CA carries.
var oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}

// SignCSR issues a certificate for the key of a PEM "CERTIFICATE REQUEST"
// an engine made on its node (its private key never leaves it), as Issue
// would for name and hosts: the same lifetime, key usage, extended key
// usages (serverAuth, clientAuth) and SANs (the role name EngineName,
// name when it is a DNS name, and hosts). The request must be signed by
// its own key, name the subject CN name, and ask for nothing: a request
// with extensions (a CA, SANs, usages of its own) or for the manager's
// name is refused. It returns the certificate, PEM encoded.
func (ca *CA) SignCSR(csrPEM []byte, name string, hosts []string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("sign certificate request: empty name")
	}
	if name == ManagerName {
		return nil, fmt.Errorf("sign certificate request: %q is the manager's name", name)
	}
	if len(csrPEM) > MaxCSRSize {
		return nil, fmt.Errorf("sign certificate request of %q: more than %d bytes", name, MaxCSRSize)
	}
	block, rest := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("sign certificate request of %q: no PEM CERTIFICATE REQUEST", name)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("sign certificate request of %q: data after the request", name)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sign certificate request of %q: %w", name, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign certificate request of %q: its signature: %w", name, err)
	}
	if csr.Subject.CommonName != name {
		return nil, fmt.Errorf("sign certificate request: it names %q, not %q", csr.Subject.CommonName, name)
	}
	if len(csr.Extensions) > 0 || len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) > 0 {
		what := "extensions"
		for _, e := range csr.Extensions {
			if e.Id.Equal(oidBasicConstraints) {
				what = "a CA certificate"
			}
		}
		return nil, fmt.Errorf("sign certificate request of %q: it asks for %s; an engine's request asks for nothing but its name", name, what)
	}
	// Issue decides the certificate (names, usages, lifetime); its
	// template is signed again for the request's key.
	leaf, err := ca.Issue(name, hosts)
	if err != nil {
		return nil, fmt.Errorf("sign certificate request: %w", err)
	}
	tmpl := *leaf.Cert.Leaf
	tmpl.SubjectKeyId, tmpl.AuthorityKeyId = nil, nil
	tmpl.Extensions, tmpl.ExtraExtensions = nil, nil
	tmpl.PublicKey = nil
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, fmt.Errorf("sign certificate request of %q: %w", name, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate request of %q: %w", name, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func makeCSR(t *testing.T, tmpl *x509.CertificateRequest) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

func TestSignCSR(t *testing.T) {
	ca, err := NewCA("20261202-061500-ab12cd")
	if err != nil {
		t.Fatal(err)
	}
	csr, key := makeCSR(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "win1"}})
	certPEM, err := ca.SignCSR(csr, "win1", []string{"198.18.3.2", "[fd42:5e:0:3::2]"})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatal("the certificate is not for the request's key")
	}
	ref, err := ca.Issue("win1", []string{"198.18.3.2", "[fd42:5e:0:3::2]"})
	if err != nil {
		t.Fatal(err)
	}
	r := ref.Cert.Leaf
	if cert.Subject.CommonName != "win1" || !slices.Equal(cert.DNSNames, r.DNSNames) || len(cert.IPAddresses) != 2 ||
		!cert.IPAddresses[1].Equal(net.ParseIP("fd42:5e:0:3::2")) || !slices.Equal(cert.ExtKeyUsage, r.ExtKeyUsage) ||
		cert.KeyUsage != r.KeyUsage || cert.IsCA || cert.NotAfter.Sub(r.NotAfter).Abs() > time.Minute {
		t.Fatalf("certificate differs from Issue's: %+v", cert)
	}
	if !slices.Contains(cert.DNSNames, EngineName) {
		t.Fatalf("no role name: %v", cert.DNSNames)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: EngineName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestSignCSRRefuses(t *testing.T) {
	ca, err := NewCA("run")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := makeCSR(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "win1"}})
	withSAN, _ := makeCSR(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "win1"}, DNSNames: []string{"evil.example"}})
	bc, _ := asn1Marshal(t)
	asCA, _ := makeCSR(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "win1"}, ExtraExtensions: []pkix.Extension{{Id: oidBasicConstraints, Critical: true, Value: bc}}})
	manager, _ := makeCSR(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: ManagerName}})
	// A request whose signature does not match its key: flip a byte of
	// the signature.
	block, _ := pem.Decode(good)
	bad := append([]byte(nil), block.Bytes...)
	bad[len(bad)-3] ^= 0xff
	tampered := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad})
	for _, tc := range []struct {
		name, node, want string
		csr              []byte
	}{
		{"other node", "win2", `names "win1", not "win2"`, good},
		{"SAN of its own", "win1", "asks for extensions", withSAN},
		{"a CA", "win1", "asks for a CA certificate", asCA},
		{"the manager", ManagerName, "the manager's name", manager},
		{"bad signature", "win1", "", tampered},
		{"not PEM", "win1", "no PEM CERTIFICATE REQUEST", []byte("hello")},
		{"a certificate", "win1", "no PEM CERTIFICATE REQUEST", ca.CertPEM()},
		{"trailing data", "win1", "data after the request", append(append([]byte(nil), good...), "junk"...)},
		{"too large", "win1", "more than", make([]byte, MaxCSRSize+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.SignCSR(tc.csr, tc.node, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func asn1Marshal(t *testing.T) ([]byte, error) {
	t.Helper()
	// BasicConstraints{cA: TRUE}
	return []byte{0x30, 0x03, 0x01, 0x01, 0xff}, nil
}

func FuzzSignCSR(f *testing.F) {
	ca, err := NewCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "n"}}, key)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cert, err := ca.SignCSR(b, "n", nil)
		if err == nil && len(cert) == 0 {
			t.Fatal("no certificate and no error")
		}
	})
}

// Package pki mints the certificates of one run: a certificate authority
// that exists only for the run, and leaf certificates for the manager and
// for every engine it places on a node.
//
// Everything is created in memory and never written to disk by this
// package; the manager hands an engine its leaf (CertPEM, KeyPEM) and the CA
// certificate over the SSH session that places it. Both sides then speak
// TLS 1.3 only and trust nothing but the run's CA: a certificate of another
// run, or of any public CA, is refused in both directions.
//
// Every leaf carries the serverAuth and clientAuth usages, so the same leaf
// serves as a server certificate (engine listening, manager depot) and as a
// client certificate. Its common name is the name given to Issue; its DNS
// names are that name (when it is a valid DNS name), the hosts given, and a
// role name: ManagerName for the leaf named ManagerName, EngineName for every
// other leaf. Clients therefore verify by ServerName (ManagerName or
// EngineName) whatever address they dialled, and an engine's leaf can never
// pass for the manager.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/fleetup/fleetup/wire"
)

// The role names put in every leaf as DNS names, to be used as ServerName.
const (
	ManagerName = "fleetup-manager"
	EngineName  = "fleetup-engine"
)

// Validity bounds of every certificate, relative to its creation: a little
// back-dating for clock skew between the manager and its nodes, and a
// lifetime long enough for any run.
const (
	Backdate = 5 * time.Minute
	Lifetime = 48 * time.Hour
)

// CA is the certificate authority of one run. It is safe for concurrent use.
type CA struct {
	runID   string
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	pool    *x509.CertPool
}

// Leaf is a certificate issued by a run's CA with its private key, both as a
// tls.Certificate (with Leaf set) and PEM encoded (the key as PKCS #8).
type Leaf struct {
	Cert    tls.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA creates the CA of the run runID: an ECDSA P-256 self-signed
// certificate with common name "fleetup run <runID>", valid from five
// minutes ago to 48 hours from now, that may sign leaves only (MaxPathLen 0).
func NewCA(runID string) (*CA, error) {
	if runID == "" {
		return nil, errors.New("new run ca: empty run id")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new run ca %q: generate key: %w", runID, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new run ca %q: %w", runID, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "fleetup run " + runID, Organization: []string{"fleetup"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(Lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new run ca %q: sign: %w", runID, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new run ca %q: parse: %w", runID, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		runID:   runID,
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool:    pool,
	}, nil
}

// RunID returns the run the CA belongs to.
func (ca *CA) RunID() string { return ca.runID }

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate, PEM encoded, for the engines.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Pool returns a certificate pool holding the run's CA only. The pool is
// shared: callers must not add to it.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Issue issues a leaf named name (its common name) for hosts: entries that
// parse as IP addresses become IP SANs, the rest DNS SANs. The role name
// (ManagerName when name is ManagerName, EngineName otherwise) is always
// added, and so is name itself when it is a valid DNS name; the manager's
// leaf also names wire.DepotServerName of the CA's run.
func (ca *CA) Issue(name string, hosts []string) (*Leaf, error) {
	if name == "" {
		return nil, errors.New("issue certificate: empty name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: generate key: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: %w", name, err)
	}
	role := EngineName
	if name == ManagerName {
		role = ManagerName
	}
	var dns []string
	var ips []net.IP
	seen := map[string]bool{}
	addDNS := func(h string) {
		h = strings.ToLower(h)
		if !seen[h] {
			seen[h] = true
			dns = append(dns, h)
		}
	}
	addDNS(role)
	if role == ManagerName {
		// The name the run's engines send for the manager's web server
		// (a manager serving several runs on one port picks the run's
		// certificate by it).
		addDNS(wire.DepotServerName(ca.runID))
	}
	if validDNSName(name) {
		addDNS(name)
	}
	for _, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if !validDNSName(h) {
			return nil, fmt.Errorf("issue certificate %q: host %q is neither an IP address nor a DNS name", name, h)
		}
		if (h == ManagerName || h == EngineName) && h != role {
			return nil, fmt.Errorf("issue certificate %q: host %q is the name of another role", name, h)
		}
		addDNS(h)
	}
	now := time.Now()
	notAfter := now.Add(Lifetime)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"fleetup"}},
		NotBefore:             now.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: sign: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: parse: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: marshal key: %w", name, err)
	}
	return &Leaf{
		Cert: tls.Certificate{
			Certificate: [][]byte{der},
			PrivateKey:  key,
			Leaf:        cert,
		},
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// ServerTLS returns the configuration of a server of the run (an engine, or
// the manager's depot): TLS 1.3 only, presenting leaf, and requiring a client
// certificate that chains to a CA in pool (the run's CA, and nothing else).
// The verified client's identity is its certificate's common name.
func ServerTLS(pool *x509.CertPool, leaf tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{leaf},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
}

// ClientTLS returns the configuration of a client of the run: TLS 1.3 only,
// presenting leaf, and trusting only the CAs in pool (the run's CA) for a
// server certificate valid for serverName (ManagerName, EngineName, or an
// address or name the leaf was issued for).
func ClientTLS(pool *x509.CertPool, leaf tls.Certificate, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{leaf},
		RootCAs:      pool,
		ServerName:   serverName,
	}
}

// PeerName returns the common name of the verified peer certificate of a
// connection, or "" when the peer was not verified.
func PeerName(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return cs.VerifiedChains[0][0].Subject.CommonName
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// validDNSName reports whether s is a plausible DNS name: dot-separated
// labels of letters, digits and hyphens, 1 to 63 characters each, not
// starting or ending with a hyphen, 253 characters at most.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// RequirePeer narrows cfg (from ServerTLS or ClientTLS) to peers whose
// verified certificate has one of the given common names, e.g. an engine
// accepting only ManagerName, so that the engine of one node cannot talk to
// the engine of another. It returns cfg.
func RequirePeer(cfg *tls.Config, names ...string) *tls.Config {
	allowed := append([]string(nil), names...)
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		got := PeerName(&cs)
		for _, n := range allowed {
			if got == n {
				return nil
			}
		}
		if got == "" {
			return errors.New("fleetup pki: peer certificate not verified")
		}
		return fmt.Errorf("fleetup pki: peer %q is not one of %q", got, allowed)
	}
	return cfg
}

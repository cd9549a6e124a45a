package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/fleetup/fleetup/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustCA(t *testing.T, id string) *CA {
	t.Helper()
	ca, err := NewCA(id)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustLeaf(t *testing.T, ca *CA, name string, hosts ...string) *Leaf {
	t.Helper()
	l, err := ca.Issue(name, hosts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// handshake runs a TLS handshake over a real loopback connection and
// returns each side's error. Each side then exchanges one byte so that a
// failure the other side only learns of afterwards (TLS 1.3 client
// certificates) surfaces too.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		if err := tc.HandshakeContext(ctx); err != nil {
			done <- err
			return
		}
		_, err = tc.Write([]byte{1})
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, client)
	clientErr = tc.HandshakeContext(ctx)
	if clientErr == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, clientErr = tc.Read(make([]byte, 1))
	}
	c.Close()
	return <-done, clientErr
}

func TestHandshake(t *testing.T) {
	run := mustCA(t, "run1")
	other := mustCA(t, "run2")
	mgr := mustLeaf(t, run, ManagerName)
	eng := mustLeaf(t, run, "node1", "198.18.1.2", "fd42:5e:0:1::2")
	stranger := mustLeaf(t, other, ManagerName)
	strangerEng := mustLeaf(t, other, "node1")

	tls12 := func(c *tls.Config) *tls.Config {
		c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		return c
	}
	noCert := func(c *tls.Config) *tls.Config { c.Certificates = nil; return c }

	tests := []struct {
		name   string
		server *tls.Config
		client *tls.Config
		ok     bool
	}{
		{"same run, engine serves", ServerTLS(run.Pool(), eng.Cert), ClientTLS(run.Pool(), mgr.Cert, EngineName), true},
		{"same run, manager serves", ServerTLS(run.Pool(), mgr.Cert), ClientTLS(run.Pool(), eng.Cert, ManagerName), true},
		{"same run, by IPv4", ServerTLS(run.Pool(), eng.Cert), ClientTLS(run.Pool(), mgr.Cert, "198.18.1.2"), true},
		{"same run, by IPv6", ServerTLS(run.Pool(), eng.Cert), ClientTLS(run.Pool(), mgr.Cert, "fd42:5e:0:1::2"), true},
		{"same run, by node name", ServerTLS(run.Pool(), eng.Cert), ClientTLS(run.Pool(), mgr.Cert, "node1"), true},
		{"engine cannot pass for manager", ServerTLS(run.Pool(), eng.Cert), ClientTLS(run.Pool(), mgr.Cert, ManagerName), false},
		{"server of another run", ServerTLS(other.Pool(), stranger.Cert), ClientTLS(run.Pool(), eng.Cert, ManagerName), false},
		{"server of another run trusting us", ServerTLS(run.Pool(), stranger.Cert), ClientTLS(run.Pool(), eng.Cert, ManagerName), false},
		{"client of another run", ServerTLS(run.Pool(), mgr.Cert), ClientTLS(other.Pool(), strangerEng.Cert, ManagerName), false},
		{"client of another run trusting us", ServerTLS(run.Pool(), mgr.Cert), ClientTLS(run.Pool(), strangerEng.Cert, ManagerName), false},
		{"client TLS 1.2", ServerTLS(run.Pool(), mgr.Cert), tls12(ClientTLS(run.Pool(), eng.Cert, ManagerName)), false},
		{"server TLS 1.2", tls12(ServerTLS(run.Pool(), mgr.Cert)), ClientTLS(run.Pool(), eng.Cert, ManagerName), false},
		{"client without certificate", ServerTLS(run.Pool(), mgr.Cert), noCert(ClientTLS(run.Pool(), eng.Cert, ManagerName)), false},
		{"engine accepting the manager only", RequirePeer(ServerTLS(run.Pool(), eng.Cert), ManagerName), ClientTLS(run.Pool(), mgr.Cert, EngineName), true},
		{"engine refusing another engine", RequirePeer(ServerTLS(run.Pool(), eng.Cert), ManagerName), ClientTLS(run.Pool(), eng.Cert, EngineName), false},
		{"client requiring a named server", ServerTLS(run.Pool(), eng.Cert), RequirePeer(ClientTLS(run.Pool(), mgr.Cert, EngineName), "node1"), true},
		{"client refusing another server name", ServerTLS(run.Pool(), eng.Cert), RequirePeer(ClientTLS(run.Pool(), mgr.Cert, EngineName), "node2"), false},
		{"server trusting the system roots", &tls.Config{Certificates: []tls.Certificate{mgr.Cert}}, ClientTLS(run.Pool(), eng.Cert, "localhost"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serr, cerr := handshake(t, tt.server, tt.client)
			if tt.ok && (serr != nil || cerr != nil) {
				t.Fatalf("handshake failed: server: %v; client: %v", serr, cerr)
			}
			if !tt.ok && serr == nil && cerr == nil {
				t.Fatal("handshake succeeded, want failure")
			}
		})
	}
}

func TestIssue(t *testing.T) {
	ca := mustCA(t, "r-42")
	if got, want := ca.Certificate().Subject.CommonName, "fleetup run r-42"; got != want {
		t.Errorf("CA CN = %q, want %q", got, want)
	}
	if !ca.Certificate().IsCA || ca.Certificate().MaxPathLen != 0 || !ca.Certificate().MaxPathLenZero {
		t.Errorf("CA constraints: IsCA %v MaxPathLen %d zero %v", ca.Certificate().IsCA, ca.Certificate().MaxPathLen, ca.Certificate().MaxPathLenZero)
	}
	if d := ca.Certificate().NotAfter.Sub(ca.Certificate().NotBefore); d != Lifetime+Backdate {
		t.Errorf("CA validity %v, want %v", d, Lifetime+Backdate)
	}
	l := mustLeaf(t, ca, "node7", "[fd42:5e:0:7::2]", "198.18.7.2", "node7.lab")
	c := l.Cert.Leaf
	if c.Subject.CommonName != "node7" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	if diff := cmp.Diff([]string{EngineName, "node7", "node7.lab"}, c.DNSNames); diff != "" {
		t.Errorf("DNS names (-want +got):\n%s", diff)
	}
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"fd42:5e:0:7::2", "198.18.7.2"}, ips); diff != "" {
		t.Errorf("IP SANs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage); diff != "" {
		t.Errorf("EKU (-want +got):\n%s", diff)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: EngineName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify leaf: %v", err)
	}
	m := mustLeaf(t, ca, ManagerName)
	if diff := cmp.Diff([]string{ManagerName, wire.DepotServerName(ca.RunID())}, m.Cert.Leaf.DNSNames); diff != "" {
		t.Errorf("manager DNS names (-want +got):\n%s", diff)
	}

	bad := []struct{ name, host string }{
		{"node", "bad host!"},
		{"node", ManagerName},
		{"", "x"},
	}
	for _, b := range bad {
		if _, err := ca.Issue(b.name, []string{b.host}); err == nil {
			t.Errorf("Issue(%q, %q) succeeded, want error", b.name, b.host)
		}
	}
	if _, err := NewCA(""); err == nil {
		t.Error("NewCA(\"\") succeeded")
	}
}

func TestParseLeafRoundTrip(t *testing.T) {
	ca := mustCA(t, "run1")
	l := mustLeaf(t, ca, "node1", "198.18.1.2")
	got, err := ParseLeaf(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := PoolFromPEM(ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	mgr := mustLeaf(t, ca, ManagerName)
	if serr, cerr := handshake(t, ServerTLS(pool, got), ClientTLS(ca.Pool(), mgr.Cert, EngineName)); serr != nil || cerr != nil {
		t.Fatalf("handshake with parsed leaf: server %v; client %v", serr, cerr)
	}
}

func TestPEMErrors(t *testing.T) {
	ca := mustCA(t, "run1")
	l := mustLeaf(t, ca, "node1")
	l2 := mustLeaf(t, ca, "node2")
	tests := []struct {
		name     string
		cert     []byte
		key      []byte
		wantErr  string
		poolOnly bool
	}{
		{name: "empty certificate", cert: nil, key: l.KeyPEM, wantErr: "certificate PEM: empty"},
		{name: "garbage certificate", cert: []byte("hello"), key: l.KeyPEM, wantErr: "certificate PEM: no PEM block found"},
		{name: "key as certificate", cert: l.KeyPEM, key: l.KeyPEM, wantErr: `certificate PEM: block 1 is "PRIVATE KEY", want CERTIFICATE`},
		{name: "trailing junk", cert: append(append([]byte{}, l.CertPEM...), "junk"...), key: l.KeyPEM, wantErr: "certificate PEM: data after block 1 is not PEM"},
		{name: "bad der", cert: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), key: l.KeyPEM, wantErr: "certificate PEM: block 1: x509:"},
		{name: "empty key", cert: l.CertPEM, key: nil, wantErr: "key PEM: empty"},
		{name: "certificate as key", cert: l.CertPEM, key: l.CertPEM, wantErr: `key PEM: block is "CERTIFICATE", want PRIVATE KEY`},
		{name: "two keys", cert: l.CertPEM, key: append(append([]byte{}, l.KeyPEM...), l2.KeyPEM...), wantErr: "key PEM: 2 blocks, want exactly 1"},
		{name: "mismatched key", cert: l.CertPEM, key: l2.KeyPEM, wantErr: `key PEM: private key does not match the certificate of "node1"`},
		{name: "pool: leaf is not a CA", cert: l.CertPEM, poolOnly: true, wantErr: `ca PEM: block 1 ("node1") is not a CA certificate`},
		{name: "pool: empty", cert: []byte("  \n"), poolOnly: true, wantErr: "ca PEM: empty"},
		{name: "pool: key", cert: l.KeyPEM, poolOnly: true, wantErr: `ca PEM: block 1 is "PRIVATE KEY", want CERTIFICATE`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.poolOnly {
				_, err = PoolFromPEM(tt.cert)
			} else {
				_, err = ParseLeaf(tt.cert, tt.key)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseLeaf(f *testing.F) {
	ca, err := NewCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	l, err := ca.Issue("node1", []string{"198.18.1.2"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(l.CertPEM, l.KeyPEM)
	f.Add(ca.CertPEM(), l.KeyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte{})
	f.Fuzz(func(t *testing.T, cert, key []byte) {
		c, err := ParseLeaf(cert, key)
		if err != nil {
			return
		}
		if c.Leaf == nil || c.PrivateKey == nil || len(c.Certificate) == 0 {
			t.Fatalf("ParseLeaf succeeded with an incomplete certificate")
		}
	})
}

func FuzzPoolFromPEM(f *testing.F) {
	ca, err := NewCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ca.CertPEM())
	f.Add(append(ca.CertPEM(), ca.CertPEM()...))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := PoolFromPEM(data)
		if err == nil && p == nil {
			t.Fatal("nil pool without error")
		}
	})
}

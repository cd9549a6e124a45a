package tlspin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if file := os.Getenv("TLSPIN_TEST_RECORD"); file != "" {
		os.Exit(recordHelper(file))
	}
	goleak.VerifyTestMain(m)
}

// newCert makes a self-signed certificate for names, as a BMC has.
func newCert(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "bmc"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// server is a TLS server on loopback whose certificate can be changed.
type server struct {
	addr string // host:port to dial
	cert atomic.Pointer[tls.Certificate]
	sni  atomic.Value // string: the last ServerName a client sent
}

// startServer serves TLS handshakes on network ("tcp4" or "tcp6")
// loopback with cert until the test ends. ok is false when the network
// has no loopback.
func startServer(t *testing.T, network string, cert tls.Certificate) (*server, bool) {
	t.Helper()
	host := "127.0.0.1"
	if network == "tcp6" {
		host = "::1"
	}
	s := &server{}
	s.cert.Store(&cert)
	s.sni.Store("")
	cfg := &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		s.sni.Store(hello.ServerName)
		return s.cert.Load(), nil
	}}
	ln, err := tls.Listen(network, net.JoinHostPort(host, "0"), cfg)
	if err != nil {
		if network == "tcp6" {
			return nil, false
		}
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					io.Copy(io.Discard, c) // until the client closes
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return s, true
}

// handshake connects to addr with store's config for endpoint.
func handshake(t *testing.T, store *Store, endpoint, addr string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: store.Config(endpoint)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// pinLines are the non-comment lines of the pin file.
func pinLines(t *testing.T, path string) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(readFile(t, path), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestFirstContact(t *testing.T) {
	cert := newCert(t)
	srv, _ := startServer(t, "tcp4", cert)
	dir := filepath.Join(t.TempDir(), "ssh")
	path := DefaultPath(filepath.Join(dir, "known_hosts"))
	fp := Fingerprint(cert.Leaf)

	// Without --accept-new-host-keys: refused, nothing written.
	err := handshake(t, Open(path, false), srv.addr, srv.addr)
	var unknown *UnknownCertError
	if !errors.As(err, &unknown) {
		t.Fatalf("first contact without accept: %v, want an UnknownCertError", err)
	}
	if diff := cmp.Diff(&UnknownCertError{Endpoint: srv.addr, Fingerprint: fp, File: path}, unknown); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, s := range []string{srv.addr, fp, "--accept-new-host-keys", path} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refusing wrote something: %v", err)
	}

	// With it: recorded, in a file and directory of the user's only.
	if err := handshake(t, Open(path, true), srv.addr, srv.addr); err != nil {
		t.Fatalf("first contact with accept: %v", err)
	}
	if diff := cmp.Diff([]string{srv.addr + " " + fp}, pinLines(t, path)); diff != "" {
		t.Errorf("pin file (-want +got):\n%s", diff)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), want)
			}
		}
	}

	// The next contact, without accept, passes; nothing more is written.
	before := readFile(t, path)
	for _, accept := range []bool{false, true} {
		if err := handshake(t, Open(path, accept), srv.addr, srv.addr); err != nil {
			t.Fatalf("second contact (accept %v): %v", accept, err)
		}
	}
	if got := readFile(t, path); got != before {
		t.Errorf("a known certificate was recorded again:\n%s", got)
	}
}

func TestChangedCertificate(t *testing.T) {
	old, replacement := newCert(t), newCert(t)
	srv, _ := startServer(t, "tcp4", old)
	path := filepath.Join(t.TempDir(), "certs")
	if err := handshake(t, Open(path, true), srv.addr, srv.addr); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)
	srv.cert.Store(&replacement)
	for _, accept := range []bool{false, true} {
		err := handshake(t, Open(path, accept), srv.addr, srv.addr)
		var changed *ChangedCertError
		if !errors.As(err, &changed) {
			t.Fatalf("changed certificate (accept %v): %v, want a ChangedCertError", accept, err)
		}
		want := &ChangedCertError{Endpoint: srv.addr, Fingerprint: Fingerprint(replacement.Leaf), File: path, Known: []string{Fingerprint(old.Leaf)}}
		if diff := cmp.Diff(want, changed); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		for _, s := range []string{srv.addr, Fingerprint(old.Leaf), Fingerprint(replacement.Leaf), "remove", path} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %q", err, s)
			}
		}
	}
	if got := readFile(t, path); got != before {
		t.Errorf("a changed certificate was recorded:\n%s", got)
	}
	// Removing the line, as the error says, lets the new one be accepted.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, Open(path, true), srv.addr, srv.addr); err != nil {
		t.Fatalf("after removing the line: %v", err)
	}
}

func TestTwoCertificates(t *testing.T) {
	a, b, c := newCert(t), newCert(t), newCert(t)
	srv, _ := startServer(t, "tcp4", a)
	path := filepath.Join(t.TempDir(), "certs")
	data := "# two for one\n" + srv.addr + " " + Fingerprint(a.Leaf) + "\n\n  " + srv.addr + "\t" + Fingerprint(b.Leaf) + "  \r\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cert := range []tls.Certificate{a, b} {
		srv.cert.Store(&cert)
		if err := handshake(t, Open(path, false), srv.addr, srv.addr); err != nil {
			t.Errorf("pinned certificate refused: %v", err)
		}
	}
	srv.cert.Store(&c)
	var changed *ChangedCertError
	if err := handshake(t, Open(path, true), srv.addr, srv.addr); !errors.As(err, &changed) {
		t.Fatalf("third certificate: %v, want a ChangedCertError", err)
	}
	if diff := cmp.Diff([]string{Fingerprint(a.Leaf), Fingerprint(b.Leaf)}, changed.Known); diff != "" {
		t.Errorf("Known (-want +got):\n%s", diff)
	}
	if !strings.Contains(changed.Error(), Fingerprint(a.Leaf)+" or "+Fingerprint(b.Leaf)) {
		t.Errorf("error does not name both pins: %v", changed)
	}
}

// TestEndpoint checks that the pin is the endpoint's, not the address
// dialled, and that endpoints are normalised and given as SNI.
func TestEndpoint(t *testing.T) {
	cert := newCert(t, "bmc1.lab")
	srv, _ := startServer(t, "tcp4", cert)
	path := filepath.Join(t.TempDir(), "certs")
	if err := handshake(t, Open(path, true), "BMC1.Lab.:443", srv.addr); err != nil {
		t.Fatal(err)
	}
	if got := srv.sni.Load(); got != "bmc1.lab" {
		t.Errorf("SNI %q, want bmc1.lab", got)
	}
	if diff := cmp.Diff([]string{"bmc1.lab:443 " + Fingerprint(cert.Leaf)}, pinLines(t, path)); diff != "" {
		t.Errorf("pin file (-want +got):\n%s", diff)
	}
	// Another endpoint on the same address is another pin.
	var unknown *UnknownCertError
	if err := handshake(t, Open(path, false), "bmc2.lab:443", srv.addr); !errors.As(err, &unknown) || unknown.Endpoint != "bmc2.lab:443" {
		t.Errorf("other endpoint: %v, want an UnknownCertError for bmc2.lab:443", err)
	}
	// An address is not sent as SNI.
	if err := handshake(t, Open(path, true), srv.addr, srv.addr); err != nil {
		t.Fatal(err)
	}
	if got := srv.sni.Load(); got != "" {
		t.Errorf("SNI %q for an address", got)
	}
	// A malformed endpoint fails every handshake.
	err := handshake(t, Open(path, true), "bmc1.lab", srv.addr)
	if err == nil || !strings.Contains(err.Error(), `endpoint "bmc1.lab" is not host:port`) {
		t.Errorf("endpoint without a port: %v", err)
	}
}

func TestConfig(t *testing.T) {
	s := Open("certs", false)
	for endpoint, serverName := range map[string]string{
		"BMC1.Lab:443": "bmc1.lab", "198.18.2.2:443": "", "[fd42:5e:0:2::2]:443": "", "bmc1:x": "",
	} {
		c := s.Config(endpoint)
		if !c.InsecureSkipVerify || c.VerifyConnection == nil || c.MinVersion != tls.VersionTLS12 || c.ServerName != serverName {
			t.Errorf("Config(%q): InsecureSkipVerify %v, VerifyConnection set %v, MinVersion %x, ServerName %q; want true, true, %x, %q",
				endpoint, c.InsecureSkipVerify, c.VerifyConnection != nil, c.MinVersion, c.ServerName, tls.VersionTLS12, serverName)
		}
		if err := c.VerifyConnection(tls.ConnectionState{}); err == nil {
			t.Errorf("Config(%q): no certificate accepted", endpoint)
		}
	}
}

func TestOldTLSRefused(t *testing.T) {
	cert := newCert(t)
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	defer func() { ln.Close(); <-done }()
	path := filepath.Join(t.TempDir(), "certs")
	if err := handshake(t, Open(path, true), ln.Addr().String(), ln.Addr().String()); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("TLS 1.1 server's certificate recorded: %v", err)
	}
}

func TestIPv6(t *testing.T) {
	cert := newCert(t)
	srv, ok := startServer(t, "tcp6", cert)
	if !ok {
		t.Skip("no IPv6 loopback")
	}
	_, port, _ := net.SplitHostPort(srv.addr)
	path := filepath.Join(t.TempDir(), "certs")
	if err := handshake(t, Open(path, true), srv.addr, srv.addr); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"[::1]:" + port + " " + Fingerprint(cert.Leaf)}, pinLines(t, path)); diff != "" {
		t.Errorf("pin file (-want +got):\n%s", diff)
	}
	// Another spelling of the address is the same endpoint.
	if err := handshake(t, Open(path, false), "[0:0:0::1]:"+port, srv.addr); err != nil {
		t.Errorf("[0:0:0::1]: %v", err)
	}
}

// TestHTTPS reaches an httptest server through net/http, as the Redfish
// clients do, and checks the refusals come through its errors.
func TestHTTPS(t *testing.T) {
	get := func(s *Store, endpoint, url string) error {
		tr := &http.Transport{TLSClientConfig: s.Config(endpoint)}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	a := httptest.NewTLSServer(ok)
	defer a.Close()
	// b has a certificate of its own (httptest's servers share one).
	b := httptest.NewUnstartedServer(ok)
	b.TLS = &tls.Config{Certificates: []tls.Certificate{newCert(t)}}
	b.StartTLS()
	defer b.Close()
	endpoint := a.Listener.Addr().String()
	path := filepath.Join(t.TempDir(), "certs")

	var unknown *UnknownCertError
	if err := get(Open(path, false), endpoint, a.URL); !errors.As(err, &unknown) {
		t.Fatalf("first GET without accept: %v, want an UnknownCertError", err)
	}
	if err := get(Open(path, true), endpoint, a.URL); err != nil {
		t.Fatalf("first GET with accept: %v", err)
	}
	if err := get(Open(path, false), endpoint, a.URL); err != nil {
		t.Fatalf("second GET: %v", err)
	}
	// b at a's endpoint: as if a's certificate had changed.
	var changed *ChangedCertError
	if err := get(Open(path, true), endpoint, b.URL); !errors.As(err, &changed) {
		t.Fatalf("GET with a changed certificate: %v, want a ChangedCertError", err)
	}
}

func TestConcurrentFirstContact(t *testing.T) {
	cert := newCert(t)
	srv, _ := startServer(t, "tcp4", cert)
	path := filepath.Join(t.TempDir(), "d", "certs")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = handshake(t, Open(path, true), srv.addr, srv.addr)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if diff := cmp.Diff([]string{srv.addr + " " + Fingerprint(cert.Leaf)}, pinLines(t, path)); diff != "" {
		t.Errorf("pin file (-want +got):\n%s", diff)
	}
}

// recordHelper is a child process of TestConcurrentProcesses: it records
// the endpoints and fingerprints of TLSPIN_TEST_PINS, each after waiting
// for the start file.
func recordHelper(file string) int {
	start := os.Getenv("TLSPIN_TEST_START")
	for {
		if _, err := os.Stat(start); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s := Open(file, true)
	for _, pin := range strings.Split(os.Getenv("TLSPIN_TEST_PINS"), ",") {
		ep, fp, _ := strings.Cut(pin, " ")
		if err := s.verify(ep, fp); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			return 1
		}
	}
	return 0
}

// TestConcurrentProcesses records pins from several processes at once,
// which only the file lock keeps apart.
func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	path, start := filepath.Join(dir, "certs"), filepath.Join(dir, "start")
	var pins, want []string
	for i := range 20 {
		cert := newCert(t)
		pin := "bmc" + strconv.Itoa(i) + ".lab:443 " + Fingerprint(cert.Leaf)
		pins, want = append(pins, pin), append(want, pin)
	}
	var cmds []*exec.Cmd
	for range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "TLSPIN_TEST_RECORD="+path, "TLSPIN_TEST_START="+start, "TLSPIN_TEST_PINS="+strings.Join(pins, ","))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	if err := os.WriteFile(start, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
	got := pinLines(t, path)
	if len(got) != len(want) {
		t.Errorf("%d pins recorded, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	seen := map[string]bool{}
	for _, l := range got {
		if seen[l] {
			t.Errorf("recorded twice: %s", l)
		}
		seen[l] = true
	}
	for _, p := range want {
		if !seen[p] {
			t.Errorf("not recorded: %s", p)
		}
	}
}

func TestMalformedFile(t *testing.T) {
	cert := newCert(t)
	srv, _ := startServer(t, "tcp4", cert)
	good := srv.addr + " " + Fingerprint(cert.Leaf)
	tests := []struct {
		name     string
		line     string
		errorHas string
	}{
		{name: "one field", line: "bmc1.lab:443", errorHas: `:2: want "host:port SHA256:fingerprint", got 1 fields`},
		{name: "three fields", line: "bmc1.lab:443 SHA256:x y", errorHas: "got 3 fields"},
		{name: "no port", line: "bmc1.lab " + Fingerprint(cert.Leaf), errorHas: `:2: endpoint "bmc1.lab" is not host:port`},
		{name: "bare ipv6", line: "fd42::1:443 " + Fingerprint(cert.Leaf), errorHas: "is not host:port"},
		{name: "bad port", line: "bmc1.lab:0 " + Fingerprint(cert.Leaf), errorHas: `port "0" is not a number in 1-65535`},
		{name: "bad host", line: "bmc_1!:443 " + Fingerprint(cert.Leaf), errorHas: "is not an IP address or host name"},
		{name: "md5", line: "bmc1.lab:443 MD5:00:11", errorHas: `does not start with "SHA256:"`},
		{name: "hex", line: "bmc1.lab:443 SHA256:" + strings.Repeat("ab", 32), errorHas: "is not SHA256: and 43 characters of unpadded base64"},
		{name: "padded", line: "bmc1.lab:443 " + Fingerprint(cert.Leaf) + "=", errorHas: "unpadded base64"},
		{name: "short", line: "bmc1.lab:443 SHA256:AAAA", errorHas: "unpadded base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "certs")
			data := "# pins\n" + tt.line + "\n" + good + "\n"
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			// The good line does not make the endpoint pass: the file is
			// refused as a whole, and not written to.
			for _, accept := range []bool{false, true} {
				for _, ep := range []string{srv.addr, "other.lab:443"} {
					err := handshake(t, Open(path, accept), ep, srv.addr)
					if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
						t.Fatalf("endpoint %s, accept %v: %v, want an error with %q", ep, accept, err, tt.errorHas)
					}
					if !strings.Contains(err.Error(), path+":2: ") {
						t.Errorf("error %q does not name %s:2", err, path)
					}
				}
			}
			if got := readFile(t, path); got != data {
				t.Errorf("malformed file written to:\n%s", got)
			}
		})
	}
}

func TestUnsafeFile(t *testing.T) {
	cert := newCert(t)
	srv, _ := startServer(t, "tcp4", cert)
	line := srv.addr + " " + Fingerprint(cert.Leaf) + "\n"
	check := func(t *testing.T, path, errorHas string) {
		t.Helper()
		for _, accept := range []bool{false, true} {
			err := handshake(t, Open(path, accept), srv.addr, srv.addr)
			if err == nil || !strings.Contains(err.Error(), errorHas) {
				t.Errorf("accept %v: %v, want an error with %q", accept, err, errorHas)
			}
		}
	}
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		real, link := filepath.Join(dir, "real"), filepath.Join(dir, "certs")
		if err := os.WriteFile(real, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, link); err != nil {
			t.Skipf("no symbolic links: %v", err)
		}
		check(t, link, "is a symbolic link: refused")
		// Dangling: recording does not create the file it points to.
		os.Remove(real)
		check(t, link, "is a symbolic link: refused")
		if _, err := os.Lstat(real); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the link's target was created: %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		check(t, t.TempDir(), "is not a regular file")
	})
	if runtime.GOOS == "windows" {
		return // permissions are ACLs, not checked
	}
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
		t.Run("mode "+strconv.FormatUint(uint64(mode), 8), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "certs")
			if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			check(t, path, "is writable by group or others")
		})
	}
	t.Run("readable by others", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "certs")
		if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := handshake(t, Open(path, false), srv.addr, srv.addr); err != nil {
			t.Errorf("mode 0644 refused: %v", err)
		}
	})
	t.Run("other owner", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root to give a file away")
		}
		path := filepath.Join(t.TempDir(), "certs")
		if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 65534, -1); err != nil {
			t.Skipf("chown: %v", err)
		}
		check(t, path, "belongs to another user (uid 65534)")
	})
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want, errorHas string }{
		{in: "198.18.2.2:443", want: "198.18.2.2:443"},
		{in: "BMC1.Lab.:443", want: "bmc1.lab:443"},
		{in: "bmc1:0443", want: "bmc1:443"},
		{in: "[FD42:5E:0:2:0:0:0:2]:443", want: "[fd42:5e:0:2::2]:443"},
		{in: "[fe80::1%eth0]:443", want: "[fe80::1%eth0]:443"},
		{in: "[bmc1]:443", want: "bmc1:443"},
		{in: "bmc1", errorHas: "is not host:port"},
		{in: "fd42::1", errorHas: "is not host:port"},
		{in: ":443", errorHas: "is not an IP address or host name"},
		{in: "bmc1:", errorHas: "is not a number"},
		{in: "bmc1:+443", errorHas: "is not a number"},
		{in: "bmc1:65536", errorHas: "is not a number"},
		{in: "bmc 1:443", errorHas: "is not an IP address or host name"},
		{in: "bmc#1:443", errorHas: "is not an IP address or host name"},
		{in: "[fe80::1%a b]:443", errorHas: "bad zone"},
	}
	for _, tt := range tests {
		got, _, err := normalize(tt.in)
		if tt.errorHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
				t.Errorf("normalize(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.errorHas)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	kh := filepath.Join("home", "op", ".ssh", "known_hosts")
	if got, want := DefaultPath(kh), filepath.Join("home", "op", ".ssh", "fleetup_known_certs"); got != want {
		t.Errorf("DefaultPath(%q) = %q, want %q", kh, got, want)
	}
}

func TestFingerprint(t *testing.T) {
	cert := newCert(t)
	fp := Fingerprint(cert.Leaf)
	if !strings.HasPrefix(fp, "SHA256:") || len(fp) != len("SHA256:")+43 {
		t.Errorf("Fingerprint = %q", fp)
	}
	if _, err := parseFingerprint(fp); err != nil {
		t.Errorf("parseFingerprint(Fingerprint) = %v", err)
	}
	if Fingerprint(newCert(t).Leaf) == fp {
		t.Error("two certificates, one fingerprint")
	}
}

func FuzzParse(f *testing.F) {
	fp := "SHA256:" + strings.Repeat("A", 42) + "Q"
	f.Add("# c\n198.18.2.2:443 " + fp + "\n")
	f.Add("[fd42:5e:0:2::2]:443 " + fp + "\r\n\n[FD42:5E:0:2::2]:443\t" + fp + "\n")
	f.Add("BMC1.lab.:8443 " + fp + "\nbmc1.lab:8443 SHA256:AAAA\n")
	f.Add("[fe80::1%eth0]:443 " + fp)
	f.Add("x y z\n")
	f.Fuzz(func(t *testing.T, data string) {
		pins, err := parse([]byte(data), "f")
		if err != nil {
			if pins != nil {
				t.Fatal("pins and an error")
			}
			return
		}
		// What parse accepts is normalised: written back, it reads the same.
		var b strings.Builder
		for ep, fps := range pins {
			if again, _, err := normalize(ep); err != nil || again != ep {
				t.Fatalf("endpoint %q normalises to %q, %v", ep, again, err)
			}
			if len(fps) == 0 {
				t.Fatalf("endpoint %q without pins", ep)
			}
			for _, fp := range fps {
				if _, err := parseFingerprint(fp); err != nil {
					t.Fatal(err)
				}
				b.WriteString(ep + " " + fp + "\n")
			}
		}
		again, err := parse([]byte(b.String()), "f")
		if err != nil {
			t.Fatalf("written back: %v", err)
		}
		if diff := cmp.Diff(pins, again); diff != "" {
			t.Fatalf("written back (-first +again):\n%s", diff)
		}
	})
}

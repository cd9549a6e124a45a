package depot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a started depot with one payload, a token for node "tok-node"
// and TLS material of its run.
type fixture struct {
	d       *Depot
	ca      *pki.CA
	payload []byte
	sum     string
	path    string

	mu     sync.Mutex
	events []fleetup.Event
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{}
	ca, err := pki.NewCA("depot-test")
	if err != nil {
		t.Fatal(err)
	}
	fx.ca = ca
	mgr, err := ca.Issue(pki.ManagerName, []string{"127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	fx.payload = make([]byte, 1000)
	for i := range fx.payload {
		fx.payload[i] = byte(i * 7)
	}
	fx.path = filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(fx.path, fx.payload, 0o600); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(fx.payload)
	fx.sum = hex.EncodeToString(s[:])
	d, err := New(Options{
		HTTPPortExplicit:  true,
		HTTPSPortExplicit: true,
		TLS:               pki.ServerTLS(ca.Pool(), mgr.Cert),
		OnStatus: func(node string, ev fleetup.Event) {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			if node != ev.Node {
				panic("OnStatus node differs from the event's")
			}
			fx.events = append(fx.events, ev)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(&fleetup.Component{ID: "c1", Path: fx.path, Size: int64(len(fx.payload)), SHA256: strings.ToUpper(fx.sum)}); err != nil {
		t.Fatal(err)
	}
	d.AllowToken("tok-node", "s3cret-token")
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	fx.d = d
	return fx
}

// client is an authenticated way to reach the depot.
type client struct {
	name   string
	c      *http.Client
	base   string
	token  string
	secure bool
}

func (c client) do(t *testing.T, method, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, data
}

func newHTTPClient(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func (fx *fixture) clients(t *testing.T, node string) []client {
	t.Helper()
	leaf, err := fx.ca.Issue(node, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(t, nil)
	sc := newHTTPClient(t, pki.ClientTLS(fx.ca.Pool(), leaf.Cert, pki.ManagerName))
	hp, sp := strconv.Itoa(fx.d.HTTPPort()), strconv.Itoa(fx.d.HTTPSPort())
	return []client{
		{name: "http ipv4", c: hc, base: "http://127.0.0.1:" + hp, token: "s3cret-token"},
		{name: "http ipv6", c: hc, base: "http://[::1]:" + hp, token: "s3cret-token"},
		{name: "https ipv4", c: sc, base: "https://127.0.0.1:" + sp, secure: true},
		{name: "https ipv6", c: sc, base: "https://[::1]:" + sp, secure: true},
	}
}

func TestServeBlob(t *testing.T) {
	fx := newFixture(t)
	blob := "/v1/blobs/" + fx.sum
	for _, c := range fx.clients(t, "cert-node") {
		t.Run(c.name, func(t *testing.T) {
			tests := []struct {
				name       string
				method     string
				path       string
				hdr        map[string]string
				wantStatus int
				wantBody   []byte
				wantLength string
			}{
				{name: "whole", method: "GET", path: blob, wantStatus: 200, wantBody: fx.payload, wantLength: "1000"},
				{name: "upper-case hash", method: "GET", path: "/v1/blobs/" + strings.ToUpper(fx.sum), wantStatus: 200, wantBody: fx.payload},
				{name: "range", method: "GET", path: blob, hdr: map[string]string{"Range": "bytes=10-19"}, wantStatus: 206, wantBody: fx.payload[10:20], wantLength: "10"},
				{name: "open range", method: "GET", path: blob, hdr: map[string]string{"Range": "bytes=990-"}, wantStatus: 206, wantBody: fx.payload[990:]},
				{name: "if-range matching", method: "GET", path: blob, hdr: map[string]string{"Range": "bytes=0-4", "If-Range": `"` + fx.sum + `"`}, wantStatus: 206, wantBody: fx.payload[:5]},
				{name: "if-range stale", method: "GET", path: blob, hdr: map[string]string{"Range": "bytes=0-4", "If-Range": `"0000"`}, wantStatus: 200, wantBody: fx.payload},
				{name: "unsatisfiable range", method: "GET", path: blob, hdr: map[string]string{"Range": "bytes=5000-"}, wantStatus: 416},
				{name: "head", method: "HEAD", path: blob, wantStatus: 200, wantBody: []byte{}, wantLength: "1000"},
				{name: "unknown hash", method: "GET", path: "/v1/blobs/" + strings.Repeat("ab", 32), wantStatus: 404},
				{name: "not a hash", method: "GET", path: "/v1/blobs/..%2fetc", wantStatus: 404},
				{name: "unknown path", method: "GET", path: "/etc/passwd", wantStatus: 404},
				{name: "wrong method on blob", method: "PUT", path: blob, wantStatus: 405},
				{name: "wrong method on status", method: "GET", path: "/v1/status", wantStatus: 405},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					resp, body := c.do(t, tt.method, tt.path, nil, tt.hdr)
					if resp.StatusCode != tt.wantStatus {
						t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.wantStatus, body)
					}
					if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
						t.Errorf("body %d bytes, want %d bytes (first %q)", len(body), len(tt.wantBody), body[:min(len(body), 20)])
					}
					if tt.wantLength != "" && resp.Header.Get("Content-Length") != tt.wantLength {
						t.Errorf("Content-Length %q, want %q", resp.Header.Get("Content-Length"), tt.wantLength)
					}
					if tt.wantStatus/100 == 2 {
						if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
							t.Errorf("Content-Type %q", got)
						}
						if got := resp.Header.Get("ETag"); got != `"`+fx.sum+`"` {
							t.Errorf("ETag %q", got)
						}
					}
				})
			}
		})
	}
	st := fx.d.Stats()
	if st["tok-node"].BytesServed == 0 || st["cert-node"].BytesServed == 0 || st["tok-node"].Requests == 0 {
		t.Errorf("stats do not count the bytes served: %+v", st)
	}
}

func TestAuth(t *testing.T) {
	fx := newFixture(t)
	hc := newHTTPClient(t, nil)
	base := "http://127.0.0.1:" + strconv.Itoa(fx.d.HTTPPort())
	blob := "/v1/blobs/" + fx.sum
	tests := []struct {
		name string
		auth string
		path string
		want int
	}{
		{"no header", "", blob, 401},
		{"no header, unknown path", "", "/nothing", 401},
		{"wrong token", "Bearer s3cret-tokeN", blob, 401},
		{"prefix of token", "Bearer s3cret", blob, 401},
		{"empty bearer", "Bearer ", blob, 401},
		{"basic scheme", "Basic czNjcmV0LXRva2Vu", blob, 401},
		{"right token", "Bearer s3cret-token", blob, 200},
		{"scheme case-insensitive", "bearer s3cret-token", blob, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	fx.d.RevokeToken("tok-node")
	c := client{c: hc, base: base, token: "s3cret-token"}
	if resp, _ := c.do(t, "GET", blob, nil, nil); resp.StatusCode != 401 {
		t.Errorf("revoked token: status %d, want 401", resp.StatusCode)
	}
}

func TestMutualTLS(t *testing.T) {
	fx := newFixture(t)
	other, err := pki.NewCA("another-run")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := other.Issue("cert-node", nil)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := fx.ca.Issue("cert-node", nil)
	if err != nil {
		t.Fatal(err)
	}
	noCert := pki.ClientTLS(fx.ca.Pool(), ours.Cert, pki.ManagerName)
	noCert.Certificates = nil
	tls12 := pki.ClientTLS(fx.ca.Pool(), ours.Cert, pki.ManagerName)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	url := "https://127.0.0.1:" + strconv.Itoa(fx.d.HTTPSPort()) + "/v1/blobs/" + fx.sum
	tests := []struct {
		name string
		cfg  *tls.Config
	}{
		{"certificate of another run", pki.ClientTLS(fx.ca.Pool(), stranger.Cert, pki.ManagerName)},
		{"no client certificate", noCert},
		{"TLS 1.2", tls12},
		{"client trusting another run", pki.ClientTLS(other.Pool(), ours.Cert, pki.ManagerName)},
	}
	// A certificate that does not verify fails the handshake (or is not
	// even sent, the client seeing it is not of the CAs asked for); none
	// at all, or TLS 1.2 (which grant URLs for BMCs need), gets past it and
	// is refused by every route but the grants.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := newHTTPClient(t, tt.cfg).Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("request answered with status %d, want a TLS failure or 401", resp.StatusCode)
				}
			}
		})
	}
	// A bearer token does not replace the client certificate on https.
	c := client{c: newHTTPClient(t, noCert), base: "https://127.0.0.1:" + strconv.Itoa(fx.d.HTTPSPort()), token: "s3cret-token"}
	req, _ := http.NewRequest("GET", c.base+"/v1/blobs/"+fx.sum, nil)
	req.Header.Set("Authorization", "Bearer s3cret-token")
	if resp, err := c.c.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token over https without certificate: status %d, want 401", resp.StatusCode)
		}
	}
}

func TestStatus(t *testing.T) {
	fx := newFixture(t)
	cs := fx.clients(t, "cert-node")
	ts := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	post := func(c client, body string) int {
		t.Helper()
		resp, _ := c.do(t, "POST", "/v1/status", strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
		return resp.StatusCode
	}
	if got := post(cs[0], `{"time":"2025-01-02T03:04:05Z","node":"forged","state":"deploy","component":"c1","phase":"download","bytes":10,"total":1000}`); got != 204 {
		t.Fatalf("single event: status %d, want 204", got)
	}
	if got := post(cs[3], ` [{"time":"2025-01-02T03:04:05Z","node":"forged","phase":"installed","component":"c1"},{"message":"hello","future_field":1}] `); got != 204 {
		t.Fatalf("event list: status %d, want 204", got)
	}
	fx.mu.Lock()
	got := fx.events
	fx.mu.Unlock()
	want := []fleetup.Event{
		{Time: ts, Node: "tok-node", State: fleetup.StateDeploy, Component: "c1", Phase: fleetup.PhaseDownload, Bytes: 10, Total: 1000},
		{Time: ts, Node: "cert-node", Component: "c1", Phase: fleetup.PhaseInstalled},
		{Node: "cert-node", Message: "hello"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(fleetup.Event{}, "Time")); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(got) == 3 && (!got[0].Time.Equal(ts) || got[2].Time.IsZero()) {
		t.Errorf("times: %v, %v (want the posted one, and now for the event without)", got[0].Time, got[2].Time)
	}

	bad := []struct {
		name string
		body string
		want int
	}{
		{"not json", "hello", 400},
		{"empty", "", 400},
		{"trailing data", `{"message":"x"} {"message":"y"}`, 400},
		{"truncated", `[{"message":"x"}`, 400},
		{"empty event", `{}`, 400},
		{"wrong type", `{"bytes":"many","message":"x"}`, 400},
		{"too large", `{"message":"` + strings.Repeat("x", MaxStatusBytes) + `"}`, 413},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if got := post(cs[0], tt.body); got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}
	if n := fx.d.Stats()["cert-node"].StatusEvents; n != 2 {
		t.Errorf("stats: %d status events from cert-node, want 2", n)
	}
}

func TestChangedPayloadRefused(t *testing.T) {
	fx := newFixture(t)
	c := fx.clients(t, "n")[0]
	f, err := os.OpenFile(fx.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()
	resp, body := c.do(t, "GET", "/v1/blobs/"+fx.sum, nil, nil)
	if resp.StatusCode != 500 || !strings.Contains(string(body), "changed") {
		t.Fatalf("status %d body %q, want 500 saying the payload changed", resp.StatusCode, body)
	}
	os.Remove(fx.path)
	if resp, _ := c.do(t, "GET", "/v1/blobs/"+fx.sum, nil, nil); resp.StatusCode != 500 {
		t.Fatalf("removed payload: status %d, want 500", resp.StatusCode)
	}
}

func TestAddRejects(t *testing.T) {
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "p")
	os.WriteFile(path, []byte("abc"), 0o600)
	good := strings.Repeat("0", 64)
	tests := []struct {
		name string
		c    fleetup.Component
		want string
	}{
		{"short hash", fleetup.Component{ID: "a", SHA256: "abc", Path: path, Size: 3}, "not 64 hex digits"},
		{"no path", fleetup.Component{ID: "a", SHA256: good, Size: 3}, "no payload path"},
		{"missing file", fleetup.Component{ID: "a", SHA256: good, Path: path + "x", Size: 3}, "no such file"},
		{"wrong size", fleetup.Component{ID: "a", SHA256: good, Path: path, Size: 4}, "has 3 bytes, component says 4"},
		{"directory", fleetup.Component{ID: "a", SHA256: good, Path: filepath.Dir(path), Size: 3}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Add(&tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	ca, _ := pki.NewCA("x")
	leaf, _ := ca.Issue(pki.ManagerName, nil)
	lax := pki.ServerTLS(ca.Pool(), leaf.Cert)
	lax.ClientAuth = tls.VerifyClientCertIfGiven
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"client certs optional", Options{TLS: lax}, "must require and verify client certificates"},
		{"same explicit ports", Options{HTTPPort: 40000, HTTPSPort: 40000, HTTPPortExplicit: true, HTTPSPortExplicit: true, TLS: pki.ServerTLS(ca.Pool(), leaf.Cert)}, "both 40000"},
		{"port out of range", Options{HTTPPort: 70000}, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// occupy listens on a free port, dual-stack as the depot does, until the
// test ends.
func occupy(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func tlsConfig(t *testing.T) *tls.Config {
	t.Helper()
	ca, err := pki.NewCA("ports")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(pki.ManagerName, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pki.ServerTLS(ca.Pool(), leaf.Cert)
}

func startDepot(t *testing.T, opts Options) (*Depot, error) {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		return nil, err
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d, nil
}

func TestDefaultPortMoves(t *testing.T) {
	taken := occupy(t)
	// Both ports are defaults: https keeps its own port, http skips it.
	d, err := startDepot(t, Options{HTTPPort: taken, HTTPSPort: taken + 1, TLS: tlsConfig(t)})
	if err != nil {
		t.Fatal(err)
	}
	hp, sp := d.HTTPPort(), d.HTTPSPort()
	if hp == taken || hp == sp || hp <= taken || hp > taken+MaxPortMoves {
		t.Fatalf("http port %d, https port %d: want http moved past %d and distinct", hp, sp, taken)
	}
	want := fmt.Sprintf("http port %d is in use; using %d", taken, hp)
	if diff := cmp.Diff([]string{want}, d.Notices()); sp == taken+1 && diff != "" {
		t.Errorf("notices (-want +got):\n%s", diff)
	}
	// Both families reach the moved port.
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(hp)))
		if err != nil {
			t.Errorf("dial moved port over %s: %v", host, err)
			continue
		}
		c.Close()
	}

	// An explicit https port that is free, a default http port that is
	// taken: http moves, https does not.
	d2, err := startDepot(t, Options{HTTPPort: taken, HTTPSPortExplicit: true, TLS: tlsConfig(t)})
	if err != nil {
		t.Fatal(err)
	}
	if d2.HTTPPort() == taken || d2.HTTPPort() == d2.HTTPSPort() || len(d2.Notices()) != 1 {
		t.Errorf("second depot: http %d https %d notices %q", d2.HTTPPort(), d2.HTTPSPort(), d2.Notices())
	}
}

func TestExplicitPortInUse(t *testing.T) {
	taken := occupy(t)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		opts Options
		what string
	}{
		{"http", Options{HTTPPort: taken, HTTPPortExplicit: true}, "http"},
		{"https", Options{HTTPSPort: taken, HTTPSPortExplicit: true, HTTPPortExplicit: true, TLS: tlsConfig(t)}, "https"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := startDepot(t, tt.opts)
			var pe *PortInUseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want *PortInUseError", err)
			}
			want := &PortInUseError{What: tt.what, Port: taken, PID: os.Getpid(), Process: strings.TrimSpace(string(comm))}
			if diff := cmp.Diff(want, pe, cmpopts.IgnoreFields(PortInUseError{}, "Err")); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			wantMsg := fmt.Sprintf("%s port %d is in use by pid %d (%s)", tt.what, taken, os.Getpid(), want.Process)
			if err.Error() != wantMsg {
				t.Errorf("message %q, want %q", err.Error(), wantMsg)
			}
		})
	}
	// The explicit failure leaves nothing listening: the http port the
	// https case had bound was released.
}

func TestGracefulClose(t *testing.T) {
	fx := newFixture(t)
	big := make([]byte, 8<<20)
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(big)
	sum := hex.EncodeToString(s[:])
	if err := fx.d.Add(&fleetup.Component{ID: "big", Path: path, Size: int64(len(big)), SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	c := fx.clients(t, "n")[0]
	req, _ := http.NewRequest("GET", c.base+"/v1/blobs/"+sum, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- fx.d.Close(ctx)
	}()
	// The request in flight finishes while the depot closes.
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != int64(len(big))-1024 {
		t.Fatalf("in-flight download: %d bytes, %v", n, err)
	}
	resp.Body.Close()
	c.c.CloseIdleConnections()
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if conn, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(fx.d.HTTPPort()))); err == nil {
		conn.Close()
		t.Error("depot still accepts connections after Close")
	}
}

func TestCloseCutsStuckClients(t *testing.T) {
	fx := newFixture(t)
	// A client that connects and never sends a request keeps no request in
	// flight; a bounded Close still returns.
	conn, err := net.Dial("tcp", net.JoinHostPort("::1", strconv.Itoa(fx.d.HTTPPort())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/blobs/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token\r\n", fx.sum) // headers never end
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := fx.d.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with a stuck client: %v, want deadline exceeded", err)
	}
}

// TestStreaming checks that payloads are streamed from disk: eight clients
// fetch a 256 MiB payload at once while the peak resident size of this test
// process stays far below the payload's size. It is a sanity check of the
// serving path, not a benchmark.
func TestStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and serves a 256 MiB file")
	}
	const size = 256 << 20
	const clients = 8
	fx := newFixture(t)
	path := filepath.Join(t.TempDir(), "huge")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	chunk := make([]byte, 1<<20)
	for i := 0; i < size/len(chunk); i++ {
		for j := 0; j < len(chunk); j += 4096 {
			chunk[j] = byte(i)
		}
		f.Write(chunk)
		h.Write(chunk)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := fx.d.Add(&fleetup.Component{ID: "huge", Path: path, Size: size, SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	// Reset the peak (Linux: "5" > clear_refs), then measure it.
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	before := statusKB(t, "VmRSS")

	cs := fx.clients(t, "n")
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cs[i%len(cs)]
			req, _ := http.NewRequest("GET", c.base+"/v1/blobs/"+sum, nil)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := c.c.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			var w io.Writer = io.Discard
			hh := sha256.New()
			if i == 0 {
				w = hh
			}
			n, err := io.Copy(w, resp.Body)
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("client %d (%s): %w", i, c.name, err)
			case n != size:
				errs[i] = fmt.Errorf("client %d (%s): %d bytes, want %d", i, c.name, n, size)
			case i == 0 && hex.EncodeToString(hh.Sum(nil)) != sum:
				errs[i] = fmt.Errorf("client %d: hash mismatch", i)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	peak := statusKB(t, "VmHWM")
	t.Logf("RSS before %d KiB, peak during %d clients x %d MiB: %d KiB", before, clients, size>>20, peak)
	if grew := (peak - before) << 10; grew > size/4 {
		t.Errorf("peak RSS grew by %d MiB while serving a %d MiB payload: it is not streamed", grew>>20, size>>20)
	}
	var total int64
	for _, s := range fx.d.Stats() {
		total += s.BytesServed
	}
	if total != clients*size {
		t.Errorf("stats: %d bytes served, want %d", total, clients*size)
	}
}

func statusKB(t *testing.T, field string) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

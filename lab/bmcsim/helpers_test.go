package bmcsim

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

const (
	testUser = "fleetup"
	testPass = "Fl33t-up-secret"
)

// testOptions are fast options for flavor f: resets of 900ms, flashes of
// 200ms.
func testOptions(t *testing.T, f Flavor) Options {
	return Options{
		Flavor:    f,
		User:      testUser,
		Password:  testPass,
		ResetTime: 900 * time.Millisecond,
		FlashTime: 200 * time.Millisecond,
		Logf:      testLogf(t),
	}
}

// testLogf logs to t until t's cleanups end, then drops lines: handlers of
// connections closed at Close may still log a line.
func testLogf(t *testing.T) func(string, ...any) {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() {
		mu.Lock()
		done = true
		mu.Unlock()
	})
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf(format, args...)
		}
	}
}

// startTest starts a BMC on a loopback port, closed when t ends.
func startTest(t *testing.T, opts Options) *BMC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Start(opts, ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close BMC: %v", err)
		}
	})
	return b
}

// connect logs in to b with gofish, with a session.
func connect(t *testing.T, b *BMC) *gofish.APIClient {
	t.Helper()
	c, err := gofish.Connect(clientConfig(b))
	if err != nil {
		t.Fatalf("connect to %s: %v", b.URL(), err)
	}
	return c
}

// getJSON GETs path with c and decodes the answer. A status other than
// 2xx is returned as *schemas.Error by gofish.
func getJSON(c *gofish.APIClient, path string) (map[string]any, int, error) {
	resp, err := c.Get(path)
	if err != nil {
		return nil, statusOf(err), err
	}
	defer resp.Body.Close()
	var o map[string]any
	if resp.StatusCode == http.StatusNoContent {
		return nil, resp.StatusCode, nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		return nil, resp.StatusCode, err
	}
	return o, resp.StatusCode, nil
}

// mustGet is getJSON that fails the test on error.
func mustGet(t *testing.T, c *gofish.APIClient, path string) map[string]any {
	t.Helper()
	o, _, err := getJSON(c, path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return o
}

// statusOf is the HTTP status of a gofish error, 0 if it is not one.
func statusOf(err error) int {
	var e *schemas.Error
	if errors.As(err, &e) {
		return e.HTTPReturnedStatusCode
	}
	return 0
}

// path walks o along keys ("Oem", "Hpe", "State").
func path(o map[string]any, keys ...string) any {
	var v any = o
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// str is path as a string.
func str(o map[string]any, keys ...string) string {
	s, _ := path(o, keys...).(string)
	return s
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitBack waits for b to finish a reset and take logins again, and logs in.
func waitBack(t *testing.T, b *BMC) *gofish.APIClient {
	t.Helper()
	var c *gofish.APIClient
	waitFor(t, 15*time.Second, "the BMC to come back", func() bool {
		var err error
		c, err = gofish.Connect(clientConfig(b))
		return err == nil
	})
	return c
}

// imageServer serves files (path -> body) over HTTP on loopback.
func imageServer(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(fileHandler(files))
	t.Cleanup(srv.Close)
	return srv
}

func fileHandler(files map[string][]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body)
	})
}

// filler is n bytes of image body.
func filler(n int) []byte { return bytes.Repeat([]byte("firmware"), n/8+1)[:n] }

// rawClient is an HTTPS client that trusts nothing but skips verification,
// for requests gofish cannot make (wrong credentials, raw bodies).
func rawClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

// do sends a request to b and returns the status and decoded body.
func do(t *testing.T, b *BMC, method, path string, hdr map[string]string, body io.Reader) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, b.URL()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := rawClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var o map[string]any
	_ = json.Unmarshal(data, &o)
	return resp.StatusCode, resp.Header, o
}

// statusFor sends req and returns the status of the answer.
func statusFor(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := rawClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// refused reports whether dialing b's port is refused now.
func refused(b *BMC) bool {
	addr := strings.TrimPrefix(b.URL(), "https://")
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// managerFirmware reads Manager.FirmwareVersion with c.
func managerFirmware(t *testing.T, c *gofish.APIClient) string {
	t.Helper()
	ms, err := c.Service.Managers()
	if err != nil || len(ms) != 1 {
		t.Fatalf("managers: %v (%d)", err, len(ms))
	}
	return ms[0].FirmwareVersion
}

// inventory reads the FirmwareInventory with c: id -> version.
func inventory(t *testing.T, c *gofish.APIClient) map[string]string {
	t.Helper()
	us, err := c.Service.UpdateService()
	if err != nil {
		t.Fatalf("update service: %v", err)
	}
	fws, err := us.FirmwareInventory()
	if err != nil {
		t.Fatalf("firmware inventory: %v", err)
	}
	out := map[string]string{}
	for _, f := range fws {
		out[f.ID] = f.Version
	}
	return out
}

// messagesText joins a task's Messages' texts.
func messagesText(o map[string]any) string {
	ms, _ := o["Messages"].([]any)
	var parts []string
	for _, m := range ms {
		mm, _ := m.(map[string]any)
		parts = append(parts, fmt.Sprint(mm["MessageId"], ": ", mm["Message"]))
	}
	return strings.Join(parts, "; ")
}

// lastFlash waits for b to have n flashes and returns the last.
func lastFlash(t *testing.T, b *BMC, n int) Flash {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d flashes", n), func() bool { return len(b.Flashes()) >= n })
	fs := b.Flashes()
	return fs[len(fs)-1]
}

// tlsDial opens a raw TLS connection to b.
func tlsDial(b *BMC) (*tls.Conn, error) {
	return tls.Dial("tcp", strings.TrimPrefix(b.URL(), "https://"), &tls.Config{InsecureSkipVerify: true})
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

// newPool is a certificate pool trusting b's current certificate.
func newPool(b *BMC) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(b.Certificate())
	return p
}

// clientConfig is how the tests connect with gofish: session auth, and a
// client of their own. (gofish's Insecure, given no HTTPClient, sets
// InsecureSkipVerify in http.DefaultTransport's shared TLS configuration,
// which races and turns verification off process-wide.)
func clientConfig(b *BMC) gofish.ClientConfig {
	return gofish.ClientConfig{
		Endpoint: b.URL(), Username: testUser, Password: testPass,
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: newPool(b)}}},
	}
}

// basicConfig is clientConfig with basic auth.
func basicConfig(b *BMC) gofish.ClientConfig {
	c := clientConfig(b)
	c.BasicAuth = true
	return c
}

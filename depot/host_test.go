package depot

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/wire"
)

// hostRun is one run's depot attached to a host.
type hostRun struct {
	d       *Depot
	ca      *pki.CA
	sni     string
	sum     string
	payload []byte
}

func attachRun(t *testing.T, h *Host, runID string) *hostRun {
	t.Helper()
	ca, err := pki.NewCA(runID)
	if err != nil {
		t.Fatal(err)
	}
	sni := wire.DepotServerName(runID)
	mgr, err := ca.Issue(pki.ManagerName, []string{sni})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("payload of " + runID)
	path := filepath.Join(t.TempDir(), "p.bin")
	if err := os.WriteFile(path, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(payload)
	sum := hex.EncodeToString(s[:])
	d, err := New(Options{TLS: pki.ServerTLS(ca.Pool(), mgr.Cert)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Add(&fleetup.Component{ID: "c", Path: path, Size: int64(len(payload)), SHA256: sum}); err != nil {
		t.Fatal(err)
	}
	d.AllowToken("tok-"+runID, "token-"+runID)
	if err := h.Attach(d, sni); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return &hostRun{d: d, ca: ca, sni: sni, sum: sum, payload: payload}
}

// TestHost serves two runs' engines and a browser on one pair of ports:
// each engine gets its own run's certificate and payloads, a browser the
// UI, a BMC its grant, and the http port sends browsers to https.
func TestHost(t *testing.T) {
	uiCert := tlsConfig(t).Certificates[0] // any certificate will do for the UI
	h, err := NewHost(HostOptions{
		HTTPPortExplicit: true, HTTPSPortExplicit: true,
		TLS: &tls.Config{Certificates: []tls.Certificate{uiCert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "the UI at "+r.URL.Path)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	r1, r2 := attachRun(t, h, "20261202-010101-aaaaaa"), attachRun(t, h, "20261202-020202-bbbbbb")
	if r1.d.HTTPSPort() != h.HTTPSPort() || r1.d.HTTPPort() != h.HTTPPort() {
		t.Fatalf("attached depot ports %d/%d, host %d/%d", r1.d.HTTPPort(), r1.d.HTTPSPort(), h.HTTPPort(), h.HTTPSPort())
	}
	https := "https://127.0.0.1:" + strconv.Itoa(h.HTTPSPort())
	httpBase := "http://127.0.0.1:" + strconv.Itoa(h.HTTPPort())
	get := func(c *http.Client, url, token string) (int, string, error) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	engine := func(r *hostRun) *http.Client {
		leaf, err := r.ca.Issue("node-a", nil)
		if err != nil {
			t.Fatal(err)
		}
		return newHTTPClient(t, pki.ClientTLS(r.ca.Pool(), leaf.Cert, r.sni))
	}
	for _, r := range []*hostRun{r1, r2} {
		code, body, err := get(engine(r), https+"/v1/blobs/"+r.sum, "")
		if err != nil || code != 200 || body != string(r.payload) {
			t.Errorf("engine of %s: %d %q %v", r.sni, code, body, err)
		}
		code, body, err = get(newHTTPClient(t, nil), httpBase+"/v1/blobs/"+r.sum, "token-"+strings.TrimSuffix(strings.TrimPrefix(r.sni, "r-"), ".fleetup-manager"))
		if err != nil || code != 200 || body != string(r.payload) {
			t.Errorf("token of %s over http: %d %q %v", r.sni, code, body, err)
		}
	}
	// One run's engine cannot fetch another run's payload.
	if code, _, err := get(engine(r1), https+"/v1/blobs/"+r2.sum, ""); err != nil || code != http.StatusNotFound {
		t.Errorf("engine of run 1 fetching run 2's payload: %d %v, want 404", code, err)
	}
	// An engine of run 1 naming run 2 gets run 2's certificate, which its
	// CA does not trust.
	leaf, _ := r1.ca.Issue("node-a", nil)
	if _, _, err := get(newHTTPClient(t, pki.ClientTLS(r1.ca.Pool(), leaf.Cert, r2.sni)), https+"/v1/blobs/"+r1.sum, ""); err == nil {
		t.Errorf("engine of run 1 accepted run 2's certificate")
	}
	// A browser gets the UI; no node route is open to it.
	browser := newHTTPClient(t, &tls.Config{InsecureSkipVerify: true})
	if code, body, err := get(browser, https+"/v1/blobs/"+r1.sum, ""); err != nil || code != 200 || body != "the UI at /v1/blobs/"+r1.sum {
		t.Errorf("browser: %d %q %v", code, body, err)
	}
	// A BMC's grant, with no server name, over TLS 1.2.
	path, err := r2.d.Grant("bmc1", r2.sum, "fw.bin")
	if err != nil {
		t.Fatal(err)
	}
	bmc := newHTTPClient(t, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	for _, base := range []string{https, httpBase} {
		if code, body, err := get(bmc, base+path, ""); err != nil || code != 200 || body != string(r2.payload) {
			t.Errorf("grant at %s: %d %q %v", base, code, body, err)
		}
	}
	// The http port: a browser is sent to https, a bad token refused.
	noRedirect := newHTTPClient(t, nil)
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Get(httpBase + "/runs?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := https + "/runs?x=1"; resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Errorf("http GET by a browser: %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if code, _, _ := get(noRedirect, httpBase+"/v1/blobs/"+r1.sum, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("http with an unknown token: %d, want 401", code)
	}
	// A closed run is gone from the host: its server name is the UI's.
	r1.d.Close(context.Background())
	if _, _, err := get(engine(r1), https+"/v1/blobs/"+r1.sum, ""); err == nil {
		t.Errorf("engine of a closed run still served")
	}
	if err := h.Attach(r2.d, "other"); err == nil {
		t.Errorf("a depot attached twice")
	}
}

// TestHostCloseCutsSends: an attached depot's Close returns within its
// context while a client holds a payload's response open, and its grant
// URLs are gone from the host afterwards.
func TestHostCloseCutsSends(t *testing.T) {
	uiCert := tlsConfig(t).Certificates[0]
	h, err := NewHost(HostOptions{HTTPPortExplicit: true, HTTPSPortExplicit: true, TLS: &tls.Config{Certificates: []tls.Certificate{uiCert}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	r := attachRun(t, h, "20261202-030303-cccccc")
	path, err := r.d.Grant("bmc1", r.sum, "fw.bin")
	if err != nil {
		t.Fatal(err)
	}
	// A response not read keeps the send open.
	c := newHTTPClient(t, &tls.Config{InsecureSkipVerify: true})
	resp, err := c.Get("https://127.0.0.1:" + strconv.Itoa(h.HTTPSPort()) + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.d.Close(ctx) }()
	select {
	case err := <-done:
		_ = err // a small payload may have gone out whole: either is right
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after its context ended")
	}
	// The grant's depot is gone: the URL is the UI's (its 404 here).
	code, _, err := func() (int, string, error) {
		resp, err := c.Get("https://127.0.0.1:" + strconv.Itoa(h.HTTPSPort()) + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}()
	if err != nil || code != http.StatusNotFound {
		t.Errorf("the grant after Close: %d %v, want 404", code, err)
	}
}

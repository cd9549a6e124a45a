package depot

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestGrant serves a payload to a client that has neither certificate nor
// token (a BMC), on both ports and over TLS 1.2, for that URL only and
// until the node's grants are revoked.
func TestGrant(t *testing.T) {
	fx := newFixture(t)
	path, err := fx.d.Grant("bmc1", fx.sum, "ilo5_278.fwpkg")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(path, GrantPrefix) || !strings.HasSuffix(path, "/ilo5_278.fwpkg") || len(path) < len(GrantPrefix)+32 {
		t.Fatalf("grant path %q", path)
	}
	other, err := fx.d.Grant("bmc2", fx.sum, "x.bin")
	if err != nil {
		t.Fatal(err)
	}
	// A BMC verifies nothing and may speak TLS 1.2 only.
	bmc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}}}
	t.Cleanup(bmc.CloseIdleConnections)
	get := func(url string) (int, []byte) {
		t.Helper()
		resp, err := bmc.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	https := "https://127.0.0.1:" + strconv.Itoa(fx.d.HTTPSPort())
	http_ := "http://127.0.0.1:" + strconv.Itoa(fx.d.HTTPPort())
	for _, base := range []string{https, http_} {
		if code, body := get(base + path); code != 200 || string(body) != string(fx.payload) {
			t.Errorf("GET %s%s = %d, %d bytes", base, path, code, len(body))
		}
	}
	// The grant opens that URL only: not the blobs, not another name.
	if code, _ := get(https + "/v1/blobs/" + fx.sum); code != http.StatusUnauthorized {
		t.Errorf("blob without certificate over TLS 1.2 = %d, want 401", code)
	}
	if code, _ := get(https + path[:strings.LastIndexByte(path, '/')] + "/other.bin"); code != http.StatusNotFound {
		t.Errorf("grant under another name = %d, want 404", code)
	}
	if code, _ := get(https + GrantPrefix + "00000000000000000000000000000000/ilo5_278.fwpkg"); code != http.StatusNotFound {
		t.Errorf("made-up grant = %d, want 404", code)
	}
	if st := fx.d.Stats()["bmc1"]; st.Requests != 2 || st.BytesServed != 2*int64(len(fx.payload)) {
		t.Errorf("stats of bmc1 = %+v", st)
	}
	if n := fx.d.GrantServed(path); n != 2*int64(len(fx.payload)) {
		t.Errorf("GrantServed = %d, want %d", n, 2*len(fx.payload))
	}
	fx.d.RevokeGrants("bmc1")
	if code, _ := get(https + path); code != http.StatusNotFound {
		t.Errorf("revoked grant = %d, want 404", code)
	}
	if code, _ := get(http_ + other); code != 200 {
		t.Errorf("another node's grant after bmc1's were revoked = %d, want 200", code)
	}
	if _, err := fx.d.Grant("bmc1", strings.Repeat("0", 64), "x.bin"); err == nil {
		t.Errorf("grant of an unknown payload succeeded")
	}
	if _, err := fx.d.Grant("bmc1", fx.sum, "../x"); err == nil {
		t.Errorf("grant with a path as name succeeded")
	}
}

// TestGrantLogHidesToken: a request with a live token but another name
// (or a revoked one) is logged without the token, the grant's secret.
func TestGrantLogHidesToken(t *testing.T) {
	fx := newFixture(t)
	var logged syncBuffer
	fx.d.log = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	path, err := fx.d.Grant("bmc1", fx.sum, "ilo5_278.fwpkg")
	if err != nil {
		t.Fatal(err)
	}
	token, _, _ := strings.Cut(strings.TrimPrefix(path, GrantPrefix), "/")
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(fx.d.HTTPPort()) + GrantPrefix + token + "/other.bin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("grant under another name = %d, want 404", resp.StatusCode)
	}
	if s := logged.String(); strings.Contains(s, token) || !strings.Contains(s, "unknown or revoked grant") {
		t.Errorf("log of a refused grant:\n%s\nwant it without the token %s", s, token)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

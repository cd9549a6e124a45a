package redfish

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/fleetup/fleetup"
)

func TestMain(m *testing.M) {
	// The fake BMCs' http.Server lingers 500ms on a connection it closes
	// after a broken request body; that is the server's, not the client's.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"))
}

// testConfig is the configuration of a client of f, with small intervals.
func testConfig(f *fakeBMC) Config {
	return Config{
		Endpoint:       f.url(),
		User:           f.user,
		Password:       []byte(f.pass),
		TLS:            pinned(f.fp),
		RequestTimeout: 5 * time.Second,
		Poll:           10 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
		Grace:          time.Second,
	}
}

// connect is a client of f, closed at the end of the test.
func connect(t *testing.T, f *fakeBMC, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := testConfig(f)
	for _, m := range mod {
		m(&cfg)
	}
	c, err := Connect(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestConnectErrors(t *testing.T) {
	f := newFake(t, "dmtf")
	other, otherFP := selfSigned(t)
	_ = other

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "https://" + closed.Addr().String()
	closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never speaks TLS
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var heldMu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()

	notRedfish := newFake(t, "dmtf")
	notRedfish.override = func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>router login</html>"))
		return true
	}
	missing := newFake(t, "dmtf")
	missing.override = func(w http.ResponseWriter, r *http.Request) bool {
		http.NotFound(w, r)
		return true
	}

	tests := []struct {
		name  string
		mod   func(*Config)
		check func(t *testing.T, err error)
	}{
		{"pin mismatch passes the caller's error through", func(c *Config) { c.TLS = pinned(otherFP) }, func(t *testing.T, err error) {
			var pe *pinError
			var te *TLSError
			if !errors.As(err, &pe) || !errors.As(err, &te) {
				t.Errorf("want *TLSError wrapping *pinError, got %T %v", err, err)
			}
		}},
		{"wrong password", func(c *Config) { c.Password = []byte("wrong-pw") }, func(t *testing.T, err error) {
			var ae *AuthError
			if !errors.As(err, &ae) || ae.User != "admin" || ae.Endpoint != f.url() || ae.Status != 401 {
				t.Errorf("want *AuthError for admin at %s, got %T %v", f.url(), err, err)
			}
			if strings.Contains(err.Error(), "wrong-pw") || strings.Contains(err.Error(), f.pass) {
				t.Errorf("the error shows the password: %v", err)
			}
		}},
		{"not redfish (html)", func(c *Config) { c.Endpoint = notRedfish.url(); c.TLS = pinned(notRedfish.fp) }, func(t *testing.T, err error) {
			var ne *NotRedfishError
			if !errors.As(err, &ne) {
				t.Errorf("want *NotRedfishError, got %T %v", err, err)
			}
		}},
		{"not redfish (404)", func(c *Config) { c.Endpoint = missing.url(); c.TLS = pinned(missing.fp) }, func(t *testing.T, err error) {
			var ne *NotRedfishError
			if !errors.As(err, &ne) || !strings.Contains(err.Error(), "404") {
				t.Errorf("want *NotRedfishError naming 404, got %T %v", err, err)
			}
		}},
		{"connection refused", func(c *Config) { c.Endpoint = refused }, func(t *testing.T, err error) {
			var ue *UnreachableError
			if !errors.As(err, &ue) || ue.Endpoint != refused {
				t.Errorf("want *UnreachableError for %s, got %T %v", refused, err, err)
			}
		}},
		{"handshake timeout", func(c *Config) {
			c.Endpoint = "https://" + silent.Addr().String()
			c.RequestTimeout = 200 * time.Millisecond
		}, func(t *testing.T, err error) {
			var ue *UnreachableError
			if !errors.As(err, &ue) {
				t.Errorf("want *UnreachableError, got %T %v", err, err)
			}
		}},
		{"no TLS config", func(c *Config) { c.TLS = nil }, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "TLS") {
				t.Errorf("want an error about TLS, got %v", err)
			}
		}},
		{"plain http endpoint", func(c *Config) { c.Endpoint = "http://" + f.addr }, func(t *testing.T, err error) {
			if err == nil || !strings.Contains(err.Error(), "https") {
				t.Errorf("want an error about https, got %v", err)
			}
		}},
		{"endpoint with a path", func(c *Config) { c.Endpoint = f.url() + "/redfish/v1" }, func(t *testing.T, err error) {
			if err == nil {
				t.Error("want an error")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(f)
			tt.mod(&cfg)
			start := time.Now()
			c, err := Connect(context.Background(), cfg)
			if err == nil {
				c.Close(context.Background())
				t.Fatal("Connect succeeded")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Connect took %s", d)
			}
			tt.check(t, err)
		})
	}
	if n := f.openSessions(); n != 0 {
		t.Errorf("%d sessions left open", n)
	}
	silent.Close()
	heldMu.Lock()
	for _, c := range held {
		c.Close()
	}
	heldMu.Unlock()
}

func TestConnectCopiesPassword(t *testing.T) {
	f := newFake(t, "dmtf")
	cfg := testConfig(f)
	c, err := Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	clear(cfg.Password) // the caller zeroes its copy after Connect
	f.goDown()
	f.comeBack() // the sessions are gone: a new login needs the kept copy
	if err := c.WaitService(context.Background(), 5*time.Second); err != nil {
		t.Fatalf("WaitService: %v", err)
	}
	if _, err := c.Inventory(context.Background()); err != nil {
		t.Fatalf("Inventory after the re-login: %v", err)
	}
	kept := c.password
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.password != nil || strings.Trim(string(kept), "\x00") != "" {
		t.Errorf("Close left the password: %q", kept)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.Inventory(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Inventory after Close: %v, want ErrClosed", err)
	}
	if n := f.openSessions(); n != 0 {
		t.Errorf("%d sessions open after Close", n)
	}
}

func TestInventory(t *testing.T) {
	for _, flavor := range []string{"dmtf", "dell", "hpe"} {
		t.Run(flavor, func(t *testing.T) {
			f := newFake(t, flavor)
			f.members = 12
			c := connect(t, f)
			inv, err := c.Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := &fleetup.BMCInventory{
				Vendor:         map[string]string{"dmtf": "OpenBMC", "dell": "Dell", "hpe": "Hpe"}[flavor],
				RedfishVersion: "1.6.0",
				Manager:        fleetup.BMCManager{ID: f.managerID(), Model: flavor + " model", FirmwareVersion: "1.0.0"},
				System:         &fleetup.BMCSystem{Manufacturer: "Acme", Model: "X1", SerialNumber: "SN1", PowerState: "On", BIOSVersion: "U30"},
			}
			for i := range 12 {
				id := "fw" + string(rune('0'+i/10)) + string(rune('0'+i%10))
				want.Firmware = append(want.Firmware, fleetup.Firmware{ID: id, Name: "Firmware " + id, Version: "v" + id, SoftwareID: "sw-" + id, Updateable: i%2 == 0})
			}
			if d := cmp.Diff(want, inv); d != "" {
				t.Errorf("inventory (-want +got):\n%s", d)
			}
			if got := c.LocalAddr().String(); got != "127.0.0.1" {
				t.Errorf("LocalAddr = %s", got)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	f := newFake(t, "hpe")
	c := connect(t, f)
	caps, err := c.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := &Capabilities{SimpleUpdate: true, TransferProtocols: []string{"HTTPS", "HTTP"},
		MultipartHTTPPushURI: "/redfish/v1/UpdateService/upload", HTTPPushURI: "/redfish/v1/UpdateService/push", HPE: true}
	if d := cmp.Diff(want, caps); d != "" {
		t.Errorf("capabilities (-want +got):\n%s", d)
	}
}

func TestCapabilitiesActionInfo(t *testing.T) {
	f := newFake(t, "dmtf")
	f.override = func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/redfish/v1/UpdateService":
			writeJSON(w, 200, map[string]any{"Actions": map[string]any{"#UpdateService.SimpleUpdate": map[string]any{
				"target": "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate", "@Redfish.ActionInfo": "SimpleUpdateActionInfo"}}})
			return true
		case "/redfish/v1/SimpleUpdateActionInfo":
			writeJSON(w, 200, map[string]any{"Parameters": []any{
				map[string]any{"Name": "ImageURI"},
				map[string]any{"Name": "TransferProtocol", "AllowableValues": []any{"tftp", "HTTPS", 7, "tftp"}}}})
			return true
		}
		return false
	}
	c := connect(t, f)
	caps, err := c.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"TFTP", "HTTPS"}, caps.TransferProtocols); d != "" || caps.HPE || !caps.SimpleUpdate {
		t.Errorf("capabilities %+v (protocols -want +got: %s)", caps, d)
	}
}

func TestCloseAfterCancel(t *testing.T) {
	f := newFake(t, "dmtf")
	cfg := testConfig(f)
	c, err := Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close with a cancelled context: %v", err)
	}
	if n := f.openSessions(); n != 0 {
		t.Errorf("%d sessions open", n)
	}
}

func TestCloseUnconfirmed(t *testing.T) {
	f := newFake(t, "dmtf")
	c := connect(t, f)
	f.goDown()
	err := c.Close(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "session") {
		t.Errorf("Close on a BMC that is down: %v, want an *UnreachableError about the session", err)
	}
}

func TestTLSConfigUntouched(t *testing.T) {
	f := newFake(t, "dmtf")
	conf := pinned(f.fp)
	cfg := testConfig(f)
	cfg.TLS = conf
	c, err := Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if !conf.InsecureSkipVerify || conf.ServerName != "" || conf.VerifyConnection == nil {
		t.Errorf("the caller's TLS config was changed: %+v", conf)
	}
	if c.tlsConf.VerifyConnection == nil || !c.tlsConf.InsecureSkipVerify || c.tlsConf.MinVersion != conf.MinVersion {
		t.Errorf("the client's TLS config differs from the caller's")
	}
	_ = tls.VersionTLS12
}

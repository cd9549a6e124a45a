package redfish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup/lab/bmcsim"
)

// These tests run the client against lab/bmcsim, the BMC simulator, in
// each of its flavors, over loopback.

const (
	simUser = "fleetup"
	simPass = "sim-pass\"word"
)

// startSim starts a simulated BMC of flavor, closed at the end of the test.
func startSim(t *testing.T, flavor bmcsim.Flavor, mod ...func(*bmcsim.Options)) *bmcsim.BMC {
	t.Helper()
	ln := listenFixed(t, "127.0.0.1")
	opts := bmcsim.Options{Flavor: flavor, User: simUser, Password: simPass, ResetTime: 900 * time.Millisecond, FlashTime: 300 * time.Millisecond}
	for _, m := range mod {
		m(&opts)
	}
	b, err := bmcsim.Start(opts, ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// listenFixed listens on a free port of host, bound explicitly: bmcsim's
// reset takes the socket out of the listening state with shutdown(2), and
// on Linux a socket bound to port 0 gives its port back then, for any
// listener of a parallel test to take (the client then meets another
// certificate, and refuses it). One bound to an explicit port keeps it.
func listenFixed(t *testing.T, host string) net.Listener {
	t.Helper()
	var err error
	for range 10 {
		var probe net.Listener
		if probe, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
			break
		}
		addr := probe.Addr().String()
		probe.Close()
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
	}
	t.Skipf("listen on %s: %v", host, err)
	return nil
}

// simConfig is a client configuration for b, pinned to its certificate.
func simConfig(b *bmcsim.BMC) Config {
	return Config{
		Endpoint:       b.URL(),
		User:           simUser,
		Password:       []byte(simPass),
		TLS:            pinned(sha256.Sum256(b.Certificate().Raw)),
		RequestTimeout: 5 * time.Second,
		Poll:           25 * time.Millisecond,
		MaxBackoff:     100 * time.Millisecond,
		Grace:          time.Second,
	}
}

func simConnect(t *testing.T, b *bmcsim.BMC) *Client {
	t.Helper()
	c, err := Connect(context.Background(), simConfig(b))
	if err != nil {
		t.Fatalf("Connect to %s: %v", b.Flavor(), err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// entry is the firmware entry of b marked by pick.
func entry(t *testing.T, b *bmcsim.BMC, pick func(bmcsim.Firmware) bool) bmcsim.Firmware {
	t.Helper()
	for _, f := range b.Firmware() {
		if pick(f) {
			return f
		}
	}
	t.Fatal("no such firmware entry")
	return bmcsim.Firmware{}
}

func bios(f bmcsim.Firmware) bool    { return f.BIOS }
func manager(f bmcsim.Firmware) bool { return f.Manager }

// imageServer serves images by path over plain HTTP on loopback, as the
// manager's depot would; the BMCs pull from it.
type imageServer struct {
	*httptest.Server
	mu     sync.Mutex
	images map[string][]byte
}

func newImageServer(t *testing.T) *imageServer { return newImageServerOn(t, "127.0.0.1:0") }

func newImageServerOn(t *testing.T, addr string) *imageServer {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("listen on %s: %v", addr, err)
	}
	s := &imageServer{images: map[string][]byte{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		img, ok := s.images[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(img))
	}))
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// put serves img at path, and returns its ImageURI as the BMC reaches
// the manager: c's local address.
func (s *imageServer) put(c *Client, path string, img []byte) string {
	s.mu.Lock()
	s.images[path] = img
	s.mu.Unlock()
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	return "http://" + net.JoinHostPort(c.LocalAddr().String(), port) + path
}

func TestSimInventory(t *testing.T) {
	t.Parallel()
	for _, flavor := range bmcsim.Flavors {
		t.Run(string(flavor), func(t *testing.T) {
			b := startSim(t, flavor)
			c := simConnect(t, b)
			inv, err := c.Inventory(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			fw := b.Firmware()
			if len(inv.Firmware) != len(fw) {
				t.Fatalf("%d firmware entries, the BMC has %d", len(inv.Firmware), len(fw))
			}
			for i, f := range fw {
				got := inv.Firmware[i]
				if got.ID != f.ID || got.Version != f.Version || got.Name != f.Name || got.Updateable != f.Updateable || got.SoftwareID != f.SoftwareID {
					t.Errorf("firmware %d: %+v, the BMC has %+v", i, got, f)
				}
			}
			mgr := entry(t, b, manager)
			if !strings.Contains(inv.Manager.FirmwareVersion, mgr.Version) || inv.Manager.ID == "" {
				t.Errorf("manager %+v, firmware %s", inv.Manager, mgr.Version)
			}
			if inv.System == nil || !strings.Contains(inv.System.BIOSVersion, entry(t, b, bios).Version) {
				t.Errorf("system %+v", inv.System)
			}
			if inv.Vendor == "" || inv.RedfishVersion == "" {
				t.Errorf("vendor %q, Redfish %q", inv.Vendor, inv.RedfishVersion)
			}
			caps, err := c.Capabilities(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if caps.HPE != (flavor == bmcsim.ILO) || caps.SimpleUpdate == (flavor == bmcsim.OpenBMC) {
				t.Errorf("capabilities %+v", caps)
			}
			if err := c.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := b.OpenSessions(); n != 0 {
				t.Errorf("%d sessions open after Close", n)
			}
		})
	}
}

// update starts an update of the entry picked, carrying version, the way
// the flavor takes one: SimpleUpdate where it can, else a multipart push.
func update(t *testing.T, c *Client, b *bmcsim.BMC, imgs *imageServer, f bmcsim.Firmware, img []byte) *Job {
	t.Helper()
	ctx := context.Background()
	if b.Flavor() == bmcsim.OpenBMC {
		job, err := c.PushMultipart(ctx, "/redfish/v1/UpdateService/update", bytes.NewReader(img), int64(len(img)), "image.tar",
			[]string{"/redfish/v1/UpdateService/FirmwareInventory/" + f.ID})
		if err != nil {
			t.Fatalf("PushMultipart: %v", err)
		}
		return job
	}
	job, err := c.SimpleUpdate(ctx, imgs.put(c, "/fw/"+f.ID+".bin", img), "HTTP", nil)
	if err != nil {
		t.Fatalf("SimpleUpdate: %v", err)
	}
	return job
}

func TestSimUpdate(t *testing.T) {
	t.Parallel()
	for _, flavor := range bmcsim.Flavors {
		t.Run(string(flavor), func(t *testing.T) {
			b := startSim(t, flavor)
			imgs := newImageServer(t)
			c := simConnect(t, b)
			f := entry(t, b, bios)
			job := update(t, c, b, imgs, f, bmcsim.Image(f.Name, "9.9.9", bytes.Repeat([]byte{0xa5}, 256<<10)))
			var rec recorder
			if err := c.Wait(context.Background(), job, 10*time.Second, rec.add); err != nil {
				t.Fatalf("Wait: %v (states %q, messages %q)", err, rec.states(), rec.messages())
			}
			if got := entry(t, b, bios).Version; got != "9.9.9" {
				t.Errorf("BIOS at %s after the update", got)
			}
			t.Logf("states %q", rec.states())
		})
	}
}

func TestSimPush(t *testing.T) {
	t.Parallel()
	tests := []struct {
		flavor bmcsim.Flavor
		how    string
	}{
		{bmcsim.IDRAC, "multipart"},
		{bmcsim.OpenBMC, "multipart"},
		{bmcsim.OpenBMC, "raw"},
		{bmcsim.ILO, "ilo"},
	}
	for _, tt := range tests {
		t.Run(string(tt.flavor)+"/"+tt.how, func(t *testing.T) {
			b := startSim(t, tt.flavor)
			c := simConnect(t, b)
			caps, err := c.Capabilities(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			f := entry(t, b, bios)
			img := bmcsim.Image(f.Name, "8.8.8", bytes.Repeat([]byte("x"), 1<<20))
			var job *Job
			switch tt.how {
			case "multipart":
				job, err = c.PushMultipart(context.Background(), caps.MultipartHTTPPushURI, bytes.NewReader(img), int64(len(img)), "bios.bin", nil)
			case "raw":
				job, err = c.PushHTTP(context.Background(), caps.HTTPPushURI, bytes.NewReader(img), int64(len(img)))
			case "ilo":
				job, err = c.PushHPE(context.Background(), caps.HTTPPushURI, bytes.NewReader(img), int64(len(img)), "bios.fwpkg")
			}
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			if err := c.Wait(context.Background(), job, 10*time.Second, nil); err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if got := entry(t, b, bios).Version; got != "8.8.8" {
				t.Errorf("BIOS at %s after the update", got)
			}
			fl := b.Flashes()
			if len(fl) != 1 || fl[0].Bytes != int64(len(img)) {
				t.Errorf("flashes %+v", fl)
			}
		})
	}
}

func TestSimBadImage(t *testing.T) {
	t.Parallel()
	for _, flavor := range bmcsim.Flavors {
		t.Run(string(flavor), func(t *testing.T) {
			b := startSim(t, flavor)
			imgs := newImageServer(t)
			c := simConnect(t, b)
			f := entry(t, b, bios)
			img := []byte("this is not firmware\n")
			if flavor == bmcsim.OpenBMC {
				// bmcweb checks a pushed image before it answers.
				_, err := c.PushMultipart(context.Background(), "/redfish/v1/UpdateService/update", bytes.NewReader(img), int64(len(img)), "x.bin", nil)
				var se *StatusError
				if !errors.As(err, &se) || se.Status != 400 || len(se.Messages) == 0 {
					t.Fatalf("PushMultipart: %v, want a 400 with the BMC's message", err)
				}
				t.Logf("the BMC said: %v", se)
				return
			}
			job := update(t, c, b, imgs, f, img)
			err := c.Wait(context.Background(), job, 10*time.Second, nil)
			var ue *UpdateError
			if !errors.As(err, &ue) || len(ue.Messages) == 0 {
				t.Fatalf("Wait: %v, want an *UpdateError with the BMC's messages", err)
			}
			want := map[bmcsim.Flavor]string{bmcsim.ILO: "UpdateInvalidFile", bmcsim.IDRAC: "RED007"}[flavor]
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Wait: %v, want the BMC's %s", err, want)
			}
			t.Logf("the BMC said: %v", err)
		})
	}
}

// TestSimManagerUpdate flashes the BMC's own firmware: it resets, and
// comes back with the new version and no sessions.
func TestSimManagerUpdate(t *testing.T) {
	t.Parallel()
	for _, flavor := range bmcsim.Flavors {
		t.Run(string(flavor), func(t *testing.T) {
			b := startSim(t, flavor)
			imgs := newImageServer(t)
			c := simConnect(t, b)
			f := entry(t, b, manager)
			job := update(t, c, b, imgs, f, bmcsim.Image(f.Name, "7.7.7", bytes.Repeat([]byte{1}, 64<<10)))
			var rec recorder
			err := c.Wait(context.Background(), job, 10*time.Second, rec.add)
			t.Logf("Wait: %v; states %q", err, rec.states())
			switch {
			case err == nil:
			case errors.Is(err, ErrOutcomeUnknown) && flavor == bmcsim.OpenBMC:
				// bmcweb forgets its tasks in the reset, which follows
				// the task's completion at once: read the version back.
			default:
				t.Fatalf("Wait: %v", err)
			}
			if flavor == bmcsim.IDRAC && strings.Contains(job.TaskURI, "TaskService") && contains(rec.states(), "(resetting)") {
				t.Errorf("the iDRAC job was not followed to the Manager's Jobs: %s", job.TaskURI)
			}
			if !contains(rec.states(), "(resetting)") {
				// Wait saw the completion before the reset: it is ahead.
				reset, err := c.WaitReset(context.Background(), 5*time.Second, 10*time.Second)
				if err != nil || !reset {
					t.Fatalf("WaitReset: %v, %v; want the reset", reset, err)
				}
			}
			// The reset may still be ahead if Wait saw the completion.
			if err := c.WaitService(context.Background(), 10*time.Second); err != nil {
				t.Fatalf("WaitService: %v", err)
			}
			inv, err := c.Inventory(context.Background())
			for err != nil && down(err) { // the reset began after WaitService looked
				if err = c.WaitService(context.Background(), 10*time.Second); err == nil {
					inv, err = c.Inventory(context.Background())
				}
			}
			if err != nil {
				t.Fatalf("Inventory after the reset: %v", err)
			}
			if !strings.Contains(inv.Manager.FirmwareVersion, "7.7.7") {
				t.Errorf("manager at %q after the update", inv.Manager.FirmwareVersion)
			}
			// (The version shows just before the reset: Close may
			// meet it, and the reset ends the session anyway.)
			if err := c.Close(context.Background()); err != nil && !down(err) {
				t.Fatal(err)
			}
			if n := b.OpenSessions(); n != 0 {
				t.Errorf("%d sessions open after Close", n)
			}
		})
	}
}

func TestSimNeverReturns(t *testing.T) {
	t.Parallel()
	b := startSim(t, bmcsim.IDRAC, func(o *bmcsim.Options) { o.FlashTime = 2 * time.Second })
	imgs := newImageServer(t)
	c := simConnect(t, b)
	f := entry(t, b, bios)
	job := update(t, c, b, imgs, f, bmcsim.Image(f.Name, "6.6.6", nil))
	time.AfterFunc(300*time.Millisecond, func() { b.SetReachable(false) })
	start := time.Now()
	err := c.Wait(context.Background(), job, 700*time.Millisecond, nil)
	var rt *ResetTimeoutError
	if !errors.As(err, &rt) {
		t.Fatalf("Wait: %v, want *ResetTimeoutError", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Wait took %s", d)
	}
	if err := c.Close(context.Background()); err == nil {
		t.Error("Close confirmed a session deletion on an unreachable BMC")
	}

	// A reset that never ends: NeverReturn, then the BMC's own firmware.
	b2 := startSim(t, bmcsim.ILO)
	c2 := simConnect(t, b2)
	b2.NeverReturn()
	m := entry(t, b2, manager)
	job = update(t, c2, b2, imgs, m, bmcsim.Image(m.Name, "3.0", nil))
	err = c2.Wait(context.Background(), job, 700*time.Millisecond, nil)
	if err == nil {
		// The completion was seen before the reset: wait for the reset
		// to begin, then for the BMC to come back.
		for deadline := time.Now().Add(2 * time.Second); err == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			_, err = c2.Inventory(context.Background())
		}
		if down(err) {
			err = c2.WaitService(context.Background(), 700*time.Millisecond)
		}
	}
	if !errors.As(err, &rt) || rt.Endpoint != b2.URL() {
		t.Fatalf("Wait: %v, want *ResetTimeoutError for %s", err, b2.URL())
	}
}

func TestSimCancel(t *testing.T) {
	t.Parallel()
	for _, flavor := range bmcsim.Flavors {
		t.Run(string(flavor), func(t *testing.T) {
			b := startSim(t, flavor, func(o *bmcsim.Options) { o.FlashTime = time.Minute })
			imgs := newImageServer(t)
			c := simConnect(t, b)
			f := entry(t, b, bios)
			job := update(t, c, b, imgs, f, bmcsim.Image(f.Name, "5.5.5", nil))
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(400*time.Millisecond, cancel)
			start := time.Now()
			err := c.Wait(ctx, job, time.Minute, nil)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait: %v, want context.Canceled", err)
			}
			if late := time.Since(start) - 400*time.Millisecond; late > 500*time.Millisecond {
				t.Errorf("Wait returned %s after the cancel", late)
			}
			if err := c.Close(ctx); err != nil {
				t.Fatalf("Close with the cancelled context: %v", err)
			}
			if n := b.OpenSessions(); n != 0 {
				t.Errorf("%d sessions open after Close", n)
			}
		})
	}
}

// TestSimIPv6 runs an update over IPv6 loopback: the endpoint in brackets,
// and an ImageURI naming the manager's IPv6 address.
func TestSimIPv6(t *testing.T) {
	t.Parallel()
	ln := listenFixed(t, "::1")
	b, err := bmcsim.Start(bmcsim.Options{Flavor: bmcsim.IDRAC, User: simUser, Password: simPass, ResetTime: 900 * time.Millisecond, FlashTime: 300 * time.Millisecond}, ln)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	imgs := newImageServerOn(t, "[::1]:0")
	c := simConnect(t, b)
	if !strings.HasPrefix(b.URL(), "https://[::1]:") || c.LocalAddr().String() != "::1" {
		t.Fatalf("BMC at %s, manager at %s", b.URL(), c.LocalAddr())
	}
	f := entry(t, b, bios)
	uri := imgs.put(c, "/fw/bios.bin", bmcsim.Image(f.Name, "2.0.1", nil))
	if !strings.HasPrefix(uri, "http://[::1]:") {
		t.Fatalf("ImageURI %s", uri)
	}
	job, err := c.SimpleUpdate(context.Background(), uri, "HTTP", []string{"/redfish/v1/Systems/System.Embedded.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(context.Background(), job, 10*time.Second, nil); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := entry(t, b, bios).Version; v != "2.0.1" || b.OpenSessions() != 0 {
		t.Errorf("BIOS at %s, %d sessions open", v, b.OpenSessions())
	}
}

func TestSimChangedCertificate(t *testing.T) {
	b := startSim(t, bmcsim.OpenBMC)
	cfg := simConfig(b)
	if err := b.RotateCert(); err != nil {
		t.Fatal(err)
	}
	_, err := Connect(context.Background(), cfg)
	var pe *pinError
	if !errors.As(err, &pe) {
		t.Fatalf("Connect: %v, want the pin's own error", err)
	}
	if n := b.OpenSessions(); n != 0 {
		t.Errorf("%d sessions", n)
	}
	_ = fmt.Sprint
}

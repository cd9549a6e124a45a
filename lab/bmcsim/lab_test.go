package bmcsim_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/lab"
	"github.com/fleetup/fleetup/lab/bmcsim"
)

// TestLabBMC runs BMCs inside lab nodes: reachable from the host over IPv4
// and IPv6 on port 443 of the node's addresses, pulling images from a
// server on the host side of the node's link, blocked by the node's
// firewall, and resetting (refusing connections in the node's namespace)
// after a flash of their own firmware.
func TestLabBMC(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2, IPv6Only: []int{1}})
	const user, pass = "labadmin", "Lab-bmc-pass1"
	opts := bmcsim.Options{
		Flavor: bmcsim.ILO, User: user, Password: pass,
		ResetTime: 900 * time.Millisecond, FlashTime: 200 * time.Millisecond, ConnectTimeout: time.Second,
	}
	var bmcs []*bmcsim.BMC
	for _, n := range l.Nodes {
		b, err := n.StartBMC(opts)
		if err != nil {
			t.Fatal(err)
		}
		// Registered after lab.New, so it runs before the lab closes.
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("close BMC: %v", err)
			}
		})
		bmcs = append(bmcs, b)
	}
	n, b := l.Nodes[0], bmcs[0]
	want := []string{"https://" + n.IPv4.String() + ":443", "https://[" + n.IPv6.String() + "]:443"}
	if got := b.URLs(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("URLs %v, want %v", got, want)
	}
	if got := bmcs[1].URLs(); len(got) != 1 || got[0] != "https://["+l.Nodes[1].IPv6.String()+"]:443" {
		t.Errorf("IPv6-only node's URLs %v", got)
	}
	// The host reaches each BMC on each address, verifying its
	// certificate, which names them.
	for _, bb := range bmcs {
		for _, u := range bb.URLs() {
			if err := getRoot(bb, u); err != nil {
				t.Errorf("%v", err)
			}
		}
	}

	// A server on the host side of the node's link, for the BMC's pulls.
	ln, err := net.Listen("tcp", net.JoinHostPort(n.HostIPv4.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"/rom.bin": bmcsim.Image("System ROM", "U32 v2.80", bytes.Repeat([]byte("rom"), 100000)),
		"/ilo.bin": bmcsim.Image("iLO 5", "2.81", bytes.Repeat([]byte("ilo"), 100000)),
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	imageURI := func(p string) string { return fmt.Sprintf("http://%s:%d%s", n.HostIPv4, port, p) }

	c := &client{b: b, url: b.URLs()[0], user: user, pass: pass}
	if err := c.simpleUpdate(imageURI("/rom.bin")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the ROM flash", func() bool { return b.Versions()["2"] == "U32 v2.80" })

	// The node's firewall now drops its outgoing connections (every
	// source port above 1023), but not its BMC on 443.
	// (DropTCP(port, port) models a firewalled server port on the node:
	// it drops packets to and from that port on the node's side, which
	// an outgoing connection to the host's port never uses.)
	if err := n.DropTCP(1024, 65535); err != nil {
		t.Fatal(err)
	}
	if err := getRoot(b, b.URLs()[0]); err != nil {
		t.Errorf("BMC behind the node's firewall: %v", err)
	}
	if err := c.simpleUpdate(imageURI("/rom.bin")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the blocked pull to fail", func() bool { return len(b.Flashes()) == 2 })
	f := b.Flashes()[1]
	if f.Err == "" || !strings.Contains(f.Err, imageURI("/rom.bin")) {
		t.Errorf("blocked pull: %+v", f)
	}
	t.Logf("blocked pull failed: %s", f.Err)
	if err := n.UndropTCP(); err != nil {
		t.Fatal(err)
	}

	// The BMC's own firmware: it resets, its sockets in the namespace
	// stop listening and listen again.
	if err := c.simpleUpdate(imageURI("/ilo.bin")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reset", b.Resetting)
	addr := strings.TrimPrefix(b.URLs()[1], "https://")
	if _, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s during the reset: %v, want connection refused", addr, err)
	}
	waitFor(t, 10*time.Second, "the BMC to come back", func() bool { return !b.Resetting() })
	for _, u := range b.URLs() {
		if err := getRoot(b, u); err != nil {
			t.Errorf("after the reset: %v", err)
		}
	}
	if v := b.Versions()["1"]; v != "2.81" {
		t.Errorf("iLO version %q after the update", v)
	}
}

// getRoot GETs the service root at u, trusting b's certificate only.
func getRoot(b *bmcsim.BMC, u string) error {
	pool := x509.NewCertPool()
	pool.AddCert(b.Certificate())
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(u + "/redfish/v1/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var root map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&root); err != nil || resp.StatusCode != http.StatusOK || root["Vendor"] != "HPE" {
		return fmt.Errorf("GET %s: %s, %v, %v", u, resp.Status, err, root["Vendor"])
	}
	return nil
}

// client is a minimal Redfish client with basic auth.
type client struct {
	b               *bmcsim.BMC
	url, user, pass string
}

func (c *client) simpleUpdate(imageURI string) error {
	pool := x509.NewCertPool()
	pool.AddCert(c.b.Certificate())
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	body := fmt.Sprintf(`{"ImageURI":%q,"TransferProtocol":"HTTP"}`, imageURI)
	req, err := http.NewRequest(http.MethodPost, c.url+"/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate/", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("SimpleUpdate: %s", resp.Status)
	}
	return nil
}

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

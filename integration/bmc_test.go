package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
	"github.com/fleetup/fleetup/lab/bmcsim"
)

const bmcPassword = "bmc pass 42"

// bmcFixture is a lab fixture whose BMC nodes run a simulated BMC in their
// namespace, on port 443 of their addresses.
type bmcFixture struct {
	*fixture
	bmcPwFile  string
	knownCerts string
}

func newBMCFixture(t *testing.T, opts lab.Options) *bmcFixture {
	t.Helper()
	f := &bmcFixture{fixture: newLabFixture(t, opts)}
	f.bmcPwFile = filepath.Join(t.TempDir(), "bmc-password")
	if err := os.WriteFile(f.bmcPwFile, []byte(bmcPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.knownCerts = filepath.Join(t.TempDir(), "known_certs")
	return f
}

// startBMC starts a BMC of flavor on n, closed when the test ends.
func startBMC(t *testing.T, n *lab.Node, flavor bmcsim.Flavor, tweak func(*bmcsim.Options)) *bmcsim.BMC {
	t.Helper()
	o := bmcsim.Options{Flavor: flavor, User: "admin", Password: bmcPassword, ResetTime: 2 * time.Second, FlashTime: time.Second, Logf: t.Logf}
	if tweak != nil {
		tweak(&o)
	}
	b, err := n.StartBMC(o)
	if err != nil {
		t.Fatalf("%s: start BMC: %v", n.Name, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// resnapshot takes the nodes' snapshots again: what the test set up on
// them is not the run's.
func (f *bmcFixture) resnapshot(t *testing.T) {
	t.Helper()
	for i, n := range f.lab.Nodes {
		s, err := n.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		f.before[i] = s
	}
}

func bmcTarget(n *lab.Node) string { return "bmc://admin@" + n.Addr() }

// bmcArgs are the flags a run against the lab's BMCs uses.
func (f *bmcFixture) bmcArgs() []string {
	return append(f.authArgs(), "--bmc-password-file", f.bmcPwFile, "--known-certs", f.knownCerts,
		"--bmc-poll", "200ms", "--bmc-reset-timeout", "90s")
}

// bmcImage writes a BMC image and its manifest into dir.
func bmcImage(t *testing.T, dir, id, target, version string, good bool) {
	t.Helper()
	body := []byte(strings.Repeat("firmware image bytes ", 50000)) // ~1 MiB
	img := bmcsim.Image(target, version, body)
	if !good {
		img = body // no header: the BMC refuses it
	}
	file := id + ".fwpkg"
	if err := os.WriteFile(filepath.Join(dir, file), img, 0o644); err != nil {
		t.Fatal(err)
	}
	m := fmt.Sprintf("kind = \"bmc\"\nid = %q\nname = %q\nversion = %q\nfile = %q\ntargets = [%q]\n", id, id+" firmware", version, file, target)
	if err := os.WriteFile(filepath.Join(dir, id+".component.toml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
}

// blockReturnPath makes n drop what it sends to the manager's web server
// ports (the seeds' blocked return path).
func blockReturnPath(t *testing.T, n *lab.Node) {
	t.Helper()
	script := `nft -f - <<'EOF'
table inet fulab-return {
  chain output {
    type filter hook output priority 0; policy accept;
    oif lo accept
    tcp dport 63000-63100 drop
  }
}
EOF`
	if out, err := n.Shell(context.Background(), script); err != nil {
		t.Fatalf("%s: block the return path: %v\n%s", n.Name, err, out)
	}
}

func resultFor(t *testing.T, r *run, res map[string]map[string]any, sub string) map[string]any {
	t.Helper()
	for name, v := range res {
		if strings.Contains(name, sub) {
			return v
		}
	}
	t.Fatalf("no result for %s\n%s", sub, r.dump())
	return nil
}

func eventTime(t *testing.T, e map[string]any) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, str(e, "time"))
	if err != nil {
		t.Fatalf("event time %q: %v", str(e, "time"), err)
	}
	return ts
}

// TestBMCDeploy updates, in one run, an iLO-like BMC that is the
// management address of a Linux server (both named on one nodes-file
// line), an iDRAC-like BMC reached over IPv6 only whose way back to the
// manager is blocked (its pull fails; the image is pushed), and an
// OpenBMC-like BMC (push only). Then it reads every BMC's firmware back,
// checks no session is left, that the server's BMC was done before its
// host, and that `fleetup inventory` shows the BMCs.
func TestBMCDeploy(t *testing.T) {
	f := newBMCFixture(t, lab.Options{Nodes: 4, IPv6Only: []int{2}, Dpkg: true})
	n := f.lab.Nodes
	ilo := startBMC(t, n[1], bmcsim.ILO, nil)
	idrac := startBMC(t, n[2], bmcsim.IDRAC, nil)
	obmc := startBMC(t, n[3], bmcsim.OpenBMC, nil)
	blockReturnPath(t, n[2])
	f.resnapshot(t) // the BMCs and the blocked return path are the lab's

	dir := t.TempDir()
	bmcImage(t, dir, "hpe.ilo5", "iLO 5", "2.78", true)
	bmcImage(t, dir, "dell.idrac9", "25227", "7.10.00.00", true)
	bmcImage(t, dir, "openbmc.bmc", "bmc", "2.15.0", true)
	testbaseline.Script(t, dir, "org.fleetup.test.marker", "2.0", "#!/bin/sh\nmkdir -p /opt/fleetup-marker && echo 2.0 > /opt/fleetup-marker/version\n",
		"cat /opt/fleetup-marker/version 2>/dev/null", "linux")

	nodes := filepath.Join(t.TempDir(), "nodes.txt")
	lines := fmt.Sprintf("# a server: its host and its BMC\n%s  %s\n%s\n%s\n", target("root", n[0]), bmcTarget(n[1]), bmcTarget(n[2]), bmcTarget(n[3]))
	if err := os.WriteFile(nodes, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"deploy", "--baseline", dir, "--nodes", nodes, "--accept-new-host-keys"}, f.bmcArgs()...)
	r := start(t, f.stateDir, args...)
	if code := r.wait(4 * time.Minute); code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, r.dump())
	}
	res := r.resultsN(4)
	for sub, want := range map[string]struct{ id, version string }{
		bmcTarget(n[1]):       {"hpe.ilo5", "2.78"},
		bmcTarget(n[2]):       {"dell.idrac9", "7.10.00.00"},
		bmcTarget(n[3]):       {"openbmc.bmc", "2.15.0"},
		"root@" + n[0].Addr(): {"org.fleetup.test.marker", "2.0"},
	} {
		nr := resultFor(t, r, res, sub)
		if str(nr, "state") != "complete" {
			t.Errorf("%s: state %s (%s), want complete", sub, str(nr, "state"), str(nr, "error"))
		}
		c := components(nr)[want.id]
		if c == nil || str(c, "phase") != "installed" || str(c, "after") != want.version {
			t.Errorf("%s: %s: %v, want installed, read back %s", sub, want.id, c, want.version)
		}
		for id, c := range components(nr) {
			if id != want.id && str(c, "action") != "not-applicable" {
				t.Errorf("%s: %s: action %s, want not-applicable (another node's component)", sub, id, str(c, "action"))
			}
		}
	}
	// The BMCs themselves.
	check := func(name string, b *bmcsim.BMC, id, version, via string) {
		t.Helper()
		if v := b.Versions()[id]; v != version {
			t.Errorf("%s: firmware %s is %q, want %s (all: %v)", name, id, v, version, b.Versions())
		}
		fl := b.Flashes()
		if len(fl) == 0 || via != "" && fl[len(fl)-1].Via != via || fl[len(fl)-1].Err != "" {
			t.Errorf("%s: flashes %+v, want the last one by %s, without error", name, fl, via)
		}
		if s := b.OpenSessions(); s != 0 {
			t.Errorf("%s: %d Redfish sessions left open", name, s)
		}
	}
	check("iLO", ilo, "1", "2.78", "SimpleUpdate")
	check("iDRAC", idrac, "Installed-25227-7.10.00.00", "7.10.00.00", "MultipartHttpPushUri")
	check("OpenBMC", obmc, "bmc_active", "2.15.0", "")
	if fl := obmc.Flashes(); len(fl) > 0 && fl[0].Via == "SimpleUpdate" {
		t.Errorf("OpenBMC pulled, but it has no SimpleUpdate: %+v", fl)
	}
	if fl := ilo.Flashes(); len(fl) > 0 && !strings.HasPrefix(fl[0].ImageURI, "https://") {
		t.Errorf("iLO pulled %q, want the manager's https port", fl[0].ImageURI)
	}
	// The grant URLs' secrets never reach the output, even where the
	// BMC's own messages quote the ImageURI.
	if m := regexp.MustCompile(`/v1/grants/[0-9a-f]{32}`).FindString(r.dump()); m != "" {
		t.Errorf("a grant's secret is in the output: %s", m)
	}
	// The iDRAC's pull was tried, did not arrive, and the run said so.
	if !anyMessage(r, n[2].Addr(), "pushing the image instead") {
		t.Errorf("no event says the iDRAC's image was pushed after its pull failed\n%s", r.dump())
	}
	// The server's BMC ended before its host was reached.
	var bmcEnd, hostStart time.Time
	r.mu.Lock()
	for _, e := range r.events {
		if e["type"] != "event" {
			continue
		}
		node := str(e, "node")
		if strings.Contains(node, bmcTarget(n[1])) && str(e, "state") == "complete" {
			bmcEnd = eventTime(t, e)
		}
		if strings.HasPrefix(node, "root@"+n[0].Addr()) && str(e, "state") == "scouting" && hostStart.IsZero() {
			hostStart = eventTime(t, e)
		}
	}
	r.mu.Unlock()
	if bmcEnd.IsZero() || hostStart.IsZero() || hostStart.Before(bmcEnd) {
		t.Errorf("the server's host was reached at %v, its BMC ended at %v: want the BMC first", hostStart, bmcEnd)
	}
	if s := str(resultFor(t, r, res, "root@"+n[0].Addr()), "server"); s != "root@"+n[0].Addr() {
		t.Errorf("host's server = %q", s)
	}
	if s := str(resultFor(t, r, res, bmcTarget(n[1])), "server"); s != "root@"+n[0].Addr() {
		t.Errorf("BMC's server = %q, want the line's first target", s)
	}
	f.assertClean(t)

	// The pins were recorded on first contact; an inventory now needs no
	// --accept-new-host-keys, and shows what the BMCs have.
	r = start(t, f.stateDir, append([]string{"inventory", "--target", bmcTarget(n[1]), "--target", bmcTarget(n[2])}, f.bmcArgs()...)...)
	if code := r.wait(time.Minute); code != 0 {
		t.Fatalf("inventory: exit %d\n%s", code, r.dump())
	}
	for _, nr := range r.resultsN(2) {
		inv, _ := nr["inventory"].(map[string]any)
		bi, _ := inv["bmc"].(map[string]any)
		mgr, _ := bi["manager"].(map[string]any)
		sys, _ := bi["system"].(map[string]any)
		fw, _ := bi["firmware"].([]any)
		if mgr == nil || str(mgr, "firmware_version") == "" || sys == nil || str(sys, "serial_number") == "" || len(fw) < 2 {
			t.Errorf("inventory of %s: %v", str(nr, "node"), inv)
		}
	}
	if ilo.OpenSessions()+idrac.OpenSessions() != 0 {
		t.Errorf("sessions left after the inventory: iLO %d, iDRAC %d", ilo.OpenSessions(), idrac.OpenSessions())
	}

	// Preflight tests the BMC's Redfish port.
	r = start(t, f.stateDir, append([]string{"preflight", "--target", bmcTarget(n[1])}, f.bmcArgs()...)...)
	if code := r.wait(time.Minute); code != 0 {
		t.Fatalf("preflight: exit %d\n%s", code, r.dump())
	}
	r.mu.Lock()
	open443 := false
	for _, e := range r.events {
		hops, _ := e["hops"].([]any)
		for _, h := range hops {
			hm, _ := h.(map[string]any)
			if p, _ := hm["port"].(float64); p == 443 && str(hm, "status") == "open" && str(e, "kind") == "bmc" {
				open443 = true
			}
		}
	}
	r.mu.Unlock()
	if !open443 {
		t.Errorf("preflight of a BMC does not say its port 443 is open\n%s", r.dump())
	}
}

// TestBMCFailures: a bad image (the BMC's own message, exit 3), a BMC
// that never comes back from its reset (failed, named), and a changed
// certificate (refused before any login, naming its fingerprint), in one
// run; every session is closed.
func TestBMCFailures(t *testing.T) {
	f := newBMCFixture(t, lab.Options{Nodes: 3})
	n := f.lab.Nodes
	ilo := startBMC(t, n[0], bmcsim.ILO, nil)
	obmc := startBMC(t, n[1], bmcsim.OpenBMC, nil)
	idrac := startBMC(t, n[2], bmcsim.IDRAC, nil)

	// First contact pins the three certificates.
	r := start(t, f.stateDir, append([]string{"inventory", "--target", bmcTarget(n[0]), "--target", bmcTarget(n[1]), "--target", bmcTarget(n[2]), "--accept-new-host-keys"}, f.bmcArgs()...)...)
	if code := r.wait(time.Minute); code != 0 {
		t.Fatalf("inventory: exit %d\n%s", code, r.dump())
	}
	if err := idrac.RotateCert(); err != nil {
		t.Fatal(err)
	}
	obmc.NeverReturn()

	dir := t.TempDir()
	bmcImage(t, dir, "hpe.ilo5", "iLO 5", "2.78", false)
	bmcImage(t, dir, "openbmc.bmc", "bmc", "2.15.0", true)
	bmcImage(t, dir, "dell.idrac9", "25227", "7.10.00.00", true)
	args := append([]string{"deploy", "--baseline", dir, "--target", bmcTarget(n[0]), "--target", bmcTarget(n[1]), "--target", bmcTarget(n[2])}, f.bmcArgs()...)
	args = append(args, "--bmc-reset-timeout", "8s")
	r = start(t, f.stateDir, args...)
	if code := r.wait(3 * time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, r.dump())
	}
	res := r.resultsN(3)

	nr := resultFor(t, r, res, bmcTarget(n[0]))
	c := components(nr)["hpe.ilo5"]
	if str(nr, "state") != "failed" || c == nil || str(c, "phase") != "failed" || !strings.Contains(str(c, "error"), "iLO.2.") {
		t.Errorf("bad image: state %s, component %v: want failed with the iLO's message id", str(nr, "state"), c)
	}
	if v := ilo.Versions()["1"]; v != "2.72" {
		t.Errorf("bad image: the iLO's firmware is %s, want 2.72 unchanged", v)
	}

	nr = resultFor(t, r, res, bmcTarget(n[1]))
	c = components(nr)["openbmc.bmc"]
	if str(nr, "state") != "failed" || c == nil || !strings.Contains(str(c, "error"), "did not come back") {
		t.Errorf("BMC that never came back: state %s, component %v: want failed, saying it did not come back", str(nr, "state"), c)
	}

	nr = resultFor(t, r, res, bmcTarget(n[2]))
	if str(nr, "state") != "failed" || str(nr, "failed_in") != "scouting" || !strings.Contains(str(nr, "error"), idrac.Fingerprint()) {
		t.Errorf("changed certificate: state %s in %s, error %q: want failed in scouting, naming %s", str(nr, "state"), str(nr, "failed_in"), str(nr, "error"), idrac.Fingerprint())
	}
	if len(idrac.Flashes()) != 0 {
		t.Errorf("the BMC with a changed certificate was flashed: %+v", idrac.Flashes())
	}
	if s := ilo.OpenSessions() + idrac.OpenSessions(); s != 0 {
		t.Errorf("%d sessions left open", s)
	}
}

// TestBMCCancelDuringFlash: SIGINT while the first of two images flashes
// lets that flash finish and be read back, skips the second, and closes
// the session.
func TestBMCCancelDuringFlash(t *testing.T) {
	f := newBMCFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	b := startBMC(t, n, bmcsim.OpenBMC, func(o *bmcsim.Options) { o.FlashTime = 4 * time.Second })
	dir := t.TempDir()
	bmcImage(t, dir, "a.openbmc.bmc", "bmc", "2.15.0", true)
	bmcImage(t, dir, "b.openbmc.bios", "bios", "1.5.0", true)
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", bmcTarget(n), "--accept-new-host-keys"}, f.bmcArgs()...)...)
	r.waitFor(time.Minute, func(e map[string]any) bool {
		return str(e, "component") == "a.openbmc.bmc" && str(e, "phase") == "install"
	})
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(2 * time.Minute); code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, r.dump())
	}
	cs := components(r.resultsN(1)[bmcTarget(n)+":443"])
	if c := cs["a.openbmc.bmc"]; str(c, "phase") != "installed" || str(c, "after") != "2.15.0" {
		t.Errorf("the image flashing at the cancel: %v, want installed and read back", c)
	}
	if c := cs["b.openbmc.bios"]; str(c, "phase") != "skipped" {
		t.Errorf("the image after the cancel: %v, want skipped", c)
	}
	if v := b.Versions()["bios_active"]; v != "1.4.0" {
		t.Errorf("the BIOS is %s, want 1.4.0 untouched", v)
	}
	if s := b.OpenSessions(); s != 0 {
		t.Errorf("%d sessions left open", s)
	}
}

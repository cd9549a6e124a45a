package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
)

const fakeDeviceGUID = "b585990a-003e-5270-89d5-3705a17f9a43"

// standardBaseline is a fwupd cab for the test device, a deb and a script.
func standardBaseline(t *testing.T) string {
	dir := t.TempDir()
	testbaseline.Cab(t, dir, "webcam-1.2.5.cab", "org.fleetup.test.webcam", "1.2.5", fakeDeviceGUID)
	testbaseline.Deb(t, dir, "fleetup-test-pkg", "1.0-1", map[string]string{"/opt/fleetup-test-pkg/hello": "hello from a deb\n"})
	testbaseline.Script(t, dir, "org.fleetup.test.marker", "2.0",
		"#!/bin/sh\nset -e\nmkdir -p /opt/fleetup-marker\necho \"$FLEETUP_COMPONENT_VERSION\" > /opt/fleetup-marker/version\n",
		"cat /opt/fleetup-marker/version 2>/dev/null", "linux")
	return dir
}

func flashedVersions(t *testing.T, n *lab.Node) []string {
	t.Helper()
	h, err := n.FwupdHistory(context.Background())
	if err != nil {
		t.Fatalf("%s: fwupd history: %v", n.Name, err)
	}
	var vs []string
	for _, r := range h {
		vs = append(vs, r.Version+"/"+r.State.String())
	}
	return vs
}

func TestDeployThreeNodesV4AndV6(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 3, IPv6Only: []int{2}, Dpkg: true})
	dir := standardBaseline(t)
	n := f.lab.Nodes
	args := append([]string{"deploy", "--baseline", dir,
		"--target", target("root", n[0]),
		"--target", target(lab.UserSudo, n[1]),
		"--target", target(lab.UserSudoNoPass, n[2]),
		"--parallel", "3"}, f.authArgs()...)
	r := start(t, f.stateDir, args...)
	if code := r.wait(3 * time.Minute); code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, r.dump())
	}
	res := r.results()
	if len(res) != 3 {
		t.Fatalf("%d results, want 3\n%s", len(res), r.dump())
	}
	ctx := context.Background()
	for _, node := range n {
		var nr map[string]any
		for name, v := range res {
			if strings.Contains(name, node.Addr()) {
				nr = v
			}
		}
		if nr == nil {
			t.Fatalf("no result for %s\n%s", node.Addr(), r.dump())
		}
		if s := str(nr, "state"); s != "complete" {
			t.Errorf("%s: state %s, want complete (%s)", node.Name, s, str(nr, "error"))
		}
		cs := components(nr)
		for id, want := range map[string]string{"org.fleetup.test.webcam": "1.2.5", "fleetup-test-pkg": "1.0-1", "org.fleetup.test.marker": "2.0"} {
			c := cs[id]
			if c == nil {
				t.Errorf("%s: no result for %s", node.Name, id)
				continue
			}
			if str(c, "phase") != "installed" || str(c, "after") != want {
				t.Errorf("%s: %s: phase %q after %q, want installed %s (%v)", node.Name, id, str(c, "phase"), str(c, "after"), want, c)
			}
		}
		// The node itself: fwupd's history, dpkg's database, the script's file.
		if got := flashedVersions(t, node); len(got) != 1 || got[0] != "1.2.5/success" {
			t.Errorf("%s: fwupd history %v, want one successful flash to 1.2.5", node.Name, got)
		}
		out, err := node.Exec(ctx, "dpkg-query", "-W", "-f", "${Version} ${db:Status-Status}", "fleetup-test-pkg")
		if err != nil || string(out) != "1.0-1 installed" {
			t.Errorf("%s: dpkg-query says %q (%v), want 1.0-1 installed", node.Name, out, err)
		}
		out, err = node.Exec(ctx, "cat", "/opt/fleetup-test-pkg/hello", "/opt/fleetup-marker/version")
		if err != nil || string(out) != "hello from a deb\n2.0\n" {
			t.Errorf("%s: installed files say %q (%v)", node.Name, out, err)
		}
	}
	f.assertClean(t)

	// A second run finds everything up to date and changes nothing.
	r = start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n[0])}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, r.dump())
	}
	for _, nr := range r.resultsN(1) {
		cs := components(nr)
		if len(cs) != 3 {
			t.Errorf("second run: %d component results, want 3: %v", len(cs), cs)
		}
		for id, c := range cs {
			// The fake device starts at 1.2.2 whenever fwupdtool starts, so
			// the cab is an update again; the deb and the script are not.
			if id != "org.fleetup.test.webcam" && str(c, "action") != "up-to-date" {
				t.Errorf("second run: %s: action %s, want up-to-date", id, str(c, "action"))
			}
		}
	}
	f.assertClean(t)
}

func TestDryRunChangesNothing(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1, Dpkg: true})
	dir := standardBaseline(t)
	// A component for another device is not applicable.
	testbaseline.Cab(t, dir, "other.cab", "org.fleetup.test.other", "9.0.0", "00000000-0000-0000-0000-000000000001")
	r := start(t, f.stateDir, append([]string{"deploy", "--dry-run", "--baseline", dir, "--target", target("root", f.lab.Nodes[0])}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	for _, nr := range r.resultsN(1) {
		cs := components(nr)
		want := map[string]string{"org.fleetup.test.webcam": "update", "fleetup-test-pkg": "update", "org.fleetup.test.marker": "update", "org.fleetup.test.other": "not-applicable"}
		for id, act := range want {
			if got := str(cs[id], "action"); got != act {
				t.Errorf("%s: action %q, want %q", id, got, act)
			}
			if ph := str(cs[id], "phase"); ph != "" {
				t.Errorf("%s: phase %q in a dry run", id, ph)
			}
		}
	}
	if got := flashedVersions(t, f.lab.Nodes[0]); len(got) != 0 {
		t.Errorf("dry run flashed: %v", got)
	}
	f.assertClean(t)
}

func TestCorruptedComponentRefusedOnNode(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	dir := t.TempDir()
	// Components install in file order: the slow script first, then the
	// cab, which is corrupted on the manager's disk after the baseline was
	// checked — the engine must refuse it before installing.
	testbaseline.Script(t, dir, "a-slow", "1.0", "#!/bin/sh\nsleep 3\n", "true", "linux")
	cab := testbaseline.Cab(t, dir, "b-webcam.cab", "org.fleetup.test.webcam", "1.2.5", fakeDeviceGUID)
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", f.lab.Nodes[0])}, f.authArgs()...)...)
	r.waitFor(time.Minute, func(m map[string]any) bool { return m["component"] == "a-slow" && m["phase"] == "install" })
	testbaseline.Corrupt(t, cab)
	if code := r.wait(2 * time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3 (a node failed)\n%s", code, r.dump())
	}
	for _, nr := range r.resultsN(1) {
		c := components(nr)["org.fleetup.test.webcam"]
		if str(c, "phase") != "failed" || !strings.Contains(str(c, "error"), "refused before install") {
			t.Errorf("corrupted cab: %v, want failed with a checksum refusal", c)
		}
	}
	if got := flashedVersions(t, f.lab.Nodes[0]); len(got) != 0 {
		t.Errorf("corrupted cab flashed the device: %v", got)
	}
	f.assertClean(t)
}

func TestBadBaselineDeploysNothing(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	dir := standardBaseline(t)
	if err := os.WriteFile(filepath.Join(dir, "broken.cab"), []byte("MSCF not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", f.lab.Nodes[0])}, f.authArgs()...)...)
	if code := r.wait(time.Minute); code != 2 {
		t.Fatalf("exit %d, want 2 (bad input)\n%s", code, r.dump())
	}
	if !strings.Contains(r.stderr.String(), "broken.cab") {
		t.Errorf("error does not name the broken file:\n%s", r.stderr.String())
	}
	f.assertClean(t)
}

// TestInstallsGetARootUmask: what a script component writes is readable
// as an admin's shell would make it (umask 022), not private to root like
// the engine's own files.
func TestInstallsGetARootUmask(t *testing.T) {
	f := newLabFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	dir := t.TempDir()
	testbaseline.Script(t, dir, "org.fleetup.test.umask", "1.0",
		"#!/bin/sh\nmkdir -p /opt/fleetup-umask && echo 1.0 > /opt/fleetup-umask/version\n",
		"cat /opt/fleetup-umask/version 2>/dev/null", "linux")
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target(lab.UserSudoNoPass, n)}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	out, err := n.Exec(context.Background(), "stat", "-c", "%a %n", "/opt/fleetup-umask", "/opt/fleetup-umask/version")
	if err != nil || string(out) != "755 /opt/fleetup-umask\n644 /opt/fleetup-umask/version\n" {
		t.Errorf("modes of what the script wrote: %q (%v), want 755 and 644", out, err)
	}
}

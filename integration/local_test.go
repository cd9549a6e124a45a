package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/lab"
)

// TestLocalNode deploys to the machine the test runs on, in-process (no
// target), with fwupd's test device in a private fwupd configuration, as
// the README's first command does.
func TestLocalNode(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "fwupdtool")
	fw := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fw, "etc", "fwupd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fw, "etc", "fwupd", "fwupd.conf"), []byte("[fwupd]\nTestDevices=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FWUPD_SYSCONFDIR", filepath.Join(fw, "etc"))
	t.Setenv("FWUPD_LOCALSTATEDIR", filepath.Join(fw, "var"))
	t.Setenv("FWUPD_LOCKDIR", filepath.Join(fw, "lock"))
	out := filepath.Join(t.TempDir(), "effect")
	dir := t.TempDir()
	testbaseline.Cab(t, dir, "webcam.cab", "org.fleetup.test.webcam", "1.2.5", fakeDeviceGUID)
	testbaseline.Script(t, dir, "local.marker", "3.1", "#!/bin/sh\necho \"$FLEETUP_COMPONENT_VERSION\" > "+out+"\n", "cat "+out+" 2>/dev/null", "linux")
	before, _ := filepath.Glob("/tmp/fleetup-*")

	r := start(t, t.TempDir(), "deploy", "--baseline", dir, "--fwupd-plugins", "test")
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	res := r.results()["localhost"]
	cs := components(res)
	if str(cs["org.fleetup.test.webcam"], "after") != "1.2.5" || str(cs["local.marker"], "after") != "3.1" {
		t.Errorf("results %v", cs)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "3.1\n" {
		t.Errorf("script effect %q (%v)", b, err)
	}
	hist, err := exec.Command("fwupdtool", "get-history", "--json").Output()
	if err != nil || !strings.Contains(string(hist), `"1.2.5"`) {
		t.Errorf("fwupd history lacks the flash to 1.2.5 (%v):\n%s", err, hist)
	}
	after, _ := filepath.Glob("/tmp/fleetup-*")
	if len(after) > len(before) {
		t.Errorf("left behind: %v (before: %v)", after, before)
	}
}

// TestInventoryAndNodesFile inventories two nodes named in a nodes file
// read from stdin and reports what they are.
func TestInventoryAndNodesFile(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 2, IPv6Only: []int{1}})
	n := f.lab.Nodes
	args := append([]string{"inventory", "--nodes", "-"}, f.authArgs()...)
	r := startWithStdin(t, f.stateDir, "# two nodes\nroot@"+n[0].Addr()+"\n\nroot@"+n[1].Addr()+"\n", args...)
	if code := r.wait(time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	res := r.results()
	if len(res) != 2 {
		t.Fatalf("%d results\n%s", len(res), r.dump())
	}
	for name, nr := range res {
		inv, _ := nr["inventory"].(map[string]any)
		if inv == nil || str(inv, "os") != "debian" || str(inv, "kernel") == "" {
			t.Errorf("%s: inventory %v", name, inv)
			continue
		}
		devs, _ := inv["devices"].([]any)
		found := false
		for _, d := range devs {
			if dm := d.(map[string]any); str(dm, "version") == "1.2.2" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: fwupd's test device not in inventory: %v", name, devs)
		}
		if !strings.HasPrefix(str(inv, "hostname"), "node") {
			t.Errorf("%s: hostname %q", name, str(inv, "hostname"))
		}
	}
	f.assertClean(t)
}

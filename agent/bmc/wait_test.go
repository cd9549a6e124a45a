package bmc_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent/bmc"
	"github.com/fleetup/fleetup/baseline"
	"github.com/fleetup/fleetup/lab/bmcsim"
	"github.com/fleetup/fleetup/wire"
)

// TestInstallTaskNeverEnds: a BMC whose update task stays Running (an
// iDRAC job Scheduled until the host reboots, a flash stuck at some
// percentage) fails that image within the reset timeout, naming the
// state it stayed in, instead of holding the node for ever.
func TestInstallTaskNeverEnds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := bmcsim.Start(bmcsim.Options{
		Flavor: bmcsim.OpenBMC, User: "admin", Password: "pw",
		FlashTime: time.Hour, ResetTime: time.Second,
		Logf: simLog(t),
	}, ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	var fw bmcsim.Firmware
	for _, f := range sim.Firmware() {
		if !f.Manager {
			fw = f
		}
	}
	dir := t.TempDir()
	v := fmt.Sprintf("9.%d", versionSeq.Add(1))
	if err := os.WriteFile(filepath.Join(dir, "img.bin"), bmcsim.Image(fw.Name, v, []byte(strings.Repeat("firmware ", 100))), 0o644); err != nil {
		t.Fatal(err)
	}
	m := fmt.Sprintf("kind = \"bmc\"\nid = \"stuck\"\nversion = %q\nfile = \"img.bin\"\ntargets = [%q]\n", v, fw.Name)
	if err := os.WriteFile(filepath.Join(dir, "img"+baseline.ManifestSuffix), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := baseline.Load(dir)
	if err != nil || b.Err() != nil {
		t.Fatalf("baseline: %v %v", err, b.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := bmc.Open(ctx, bmc.Options{
		Node: "bmc1", Endpoint: sim.URL(), User: "admin",
		Password:     func() ([]byte, error) { return []byte("pw"), nil },
		TLS:          pinned(sim.Fingerprint),
		ResetTimeout: 2 * time.Second, Poll: 100 * time.Millisecond, RequestTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	start := time.Now()
	res, err := a.Install(ctx, wire.InstallRequest{Items: []wire.InstallItem{{Component: *b.Component("stuck"), Action: fleetup.ActionUpdate}}}, func(fleetup.Event) {})
	if err != nil {
		t.Fatalf("Install: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
	}
	if len(res) != 1 || res[0].Phase != fleetup.PhaseFailed || !strings.Contains(res[0].Error, "did not end within 2s") {
		t.Fatalf("results %+v, want the image failed: its task did not end within the reset timeout", res)
	}
}

// TestInstallGivenUp: when the caller gives up on the BMC in the middle
// of an image, the results still name every item, the later ones skipped.
func TestInstallGivenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := bmcsim.Start(bmcsim.Options{Flavor: bmcsim.OpenBMC, User: "admin", Password: "pw", FlashTime: time.Hour, Logf: simLog(t)}, ln)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	var fw bmcsim.Firmware
	for _, f := range sim.Firmware() {
		if !f.Manager {
			fw = f
		}
	}
	dir := t.TempDir()
	for _, id := range []string{"one", "two"} {
		v := fmt.Sprintf("9.%d", versionSeq.Add(1))
		if err := os.WriteFile(filepath.Join(dir, id+".bin"), bmcsim.Image(fw.Name, v, []byte("firmware")), 0o644); err != nil {
			t.Fatal(err)
		}
		m := fmt.Sprintf("kind = \"bmc\"\nid = %q\nversion = %q\nfile = \"%s.bin\"\ntargets = [%q]\n", id, v, id, fw.Name)
		if err := os.WriteFile(filepath.Join(dir, id+baseline.ManifestSuffix), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := baseline.Load(dir)
	if err != nil || b.Err() != nil {
		t.Fatalf("baseline: %v %v", err, b.Err())
	}
	a, err := bmc.Open(context.Background(), bmc.Options{
		Node: "bmc1", Endpoint: sim.URL(), User: "admin",
		Password: func() ([]byte, error) { return []byte("pw"), nil },
		TLS:      pinned(sim.Fingerprint),
		Poll:     100 * time.Millisecond, RequestTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	items := []wire.InstallItem{{Component: *b.Component("one"), Action: fleetup.ActionUpdate}, {Component: *b.Component("two"), Action: fleetup.ActionUpdate}}
	res, err := a.Install(ctx, wire.InstallRequest{Items: items}, func(fleetup.Event) {})
	if err == nil {
		t.Fatalf("Install given up on returned no error: %+v", res)
	}
	if len(res) != 2 || res[0].ComponentID != "one" || res[0].Phase != fleetup.PhaseFailed || res[1].ComponentID != "two" || res[1].Phase != fleetup.PhaseSkipped {
		t.Errorf("results %+v, want one failed and two skipped", res)
	}
}

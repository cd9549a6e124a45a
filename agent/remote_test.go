//go:build linux

package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/baseline"
	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport/local"
	"github.com/fleetup/fleetup/wire"
)

var engineBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetup-agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	engineBin = filepath.Join(dir, wire.BinaryName)
	cmd := exec.Command("go", "build", "-o", engineBin, "../cmd/fleetup-engine")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build engine: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestRemoteOverLocalTransport runs the real engine binary through the
// whole Remote life cycle — place, start, handshake, TLS, inventory, probe,
// install from the depot, close — over the local transport, and checks the
// engine's directory is gone afterwards.
func TestRemoteOverLocalTransport(t *testing.T) {
	testenv.RequireRoot(t) // the engine sweeps as root and installs as root
	ctx := context.Background()
	dir := t.TempDir()
	marker := filepath.Join(t.TempDir(), "installed")
	testbaseline.Script(t, dir, "marker", "1.0", "#!/bin/sh\necho \"$FLEETUP_COMPONENT_VERSION\" > "+marker+"\n", "cat "+marker+" 2>/dev/null", "linux")
	b, err := baseline.Load(dir)
	if err != nil || b.Err() != nil {
		t.Fatalf("baseline: %v %v", err, b.Err())
	}
	runID := fmt.Sprintf("20260101-000000-%06x", time.Now().UnixNano()&0xffffff)
	ca, err := pki.NewCA(runID)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ca.Issue(pki.ManagerName, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The depot calls OnStatus from its own goroutines.
	var postedMu sync.Mutex
	var posted []fleetup.Event
	dp, err := depot.New(depot.Options{HTTPPortExplicit: true, HTTPSPortExplicit: true, TLS: pki.ServerTLS(ca.Pool(), mgr.Cert),
		OnStatus: func(node string, ev fleetup.Event) { postedMu.Lock(); posted = append(posted, ev); postedMu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.Components {
		if err := dp.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := dp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer dp.Close(ctx)

	conn, err := local.New()
	if err != nil {
		t.Fatal(err)
	}
	var notices []string
	r, err := agent.NewRemote(ctx, "local", conn, agent.RemoteOptions{
		RunID:       runID,
		Node:        "local",
		Engine:      func(string) (string, error) { return engineBin, nil },
		CA:          ca,
		Manager:     mgr,
		DepotPort:   dp.HTTPSPort(),
		EnginePort:  0,
		IdleTimeout: 10 * time.Second,
		Notice:      func(m string) { notices = append(notices, m) },
	})
	if err != nil {
		t.Fatalf("NewRemote: %v", err)
	}
	inv, err := r.Inventory(ctx)
	if err != nil || inv.Kernel == "" {
		t.Fatalf("inventory: %v %+v", err, inv)
	}
	comps := []fleetup.Component{*b.Components[0]}
	probes, err := r.Probe(ctx, comps)
	if err != nil || len(probes) != 1 || !probes[0].Applicable || probes[0].Installed != "" {
		t.Fatalf("probe: %v %+v", err, probes)
	}
	res, err := r.Install(ctx, wire.InstallRequest{Items: []wire.InstallItem{{Component: comps[0], Action: fleetup.ActionUpdate}}}, func(fleetup.Event) {})
	if err != nil || len(res) != 1 || res[0].Phase != fleetup.PhaseInstalled || res[0].After != "1.0" {
		t.Fatalf("install: %v %+v", err, res)
	}
	rep, err := r.Close(ctx)
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	var engineDir string
	for _, f := range rep.Files {
		if strings.Contains(f, wire.DirPrefix+runID) {
			engineDir = f
		}
	}
	if engineDir == "" {
		t.Fatalf("clean-up report names no engine directory: %+v", rep)
	}
	if _, err := os.Stat(engineDir); !os.IsNotExist(err) {
		t.Errorf("engine directory %s still exists (%v)", engineDir, err)
	}
	postedMu.Lock()
	defer postedMu.Unlock()
	if len(posted) == 0 {
		t.Errorf("the engine posted no status to the depot")
	}
}

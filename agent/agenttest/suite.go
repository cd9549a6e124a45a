// Package agenttest is the conformance suite every Agent passes, whatever
// its kind of node: the local agent, the remote agent over SSH, and the
// Windows and BMC agents to come. It checks the contract written at
// agent.Agent: inventory and probe, install with its effect on the node,
// cancel in mid-install (the component in progress finishes, the rest are
// skipped), a lost connection (the agent says so and the node cleans up by
// itself), and the clean-up report (names what it removed, nothing of the
// run is left, the agent refuses work after Close).
package agenttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/baseline"
	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/wire"
)

// Harness is one kind of agent on a node of its own.
type Harness struct {
	// Open returns a fresh agent on the node for a run whose components
	// are comps (a remote harness serves their payloads).
	Open func(t *testing.T, comps []*fleetup.Component) agent.Agent
	// MarkerDir is a directory, the same path on the node and here, where
	// the suite's script components leave their mark.
	MarkerDir string
	// Leftovers lists what of the agent's runs is still on the node
	// (directories, processes, firewall rules); empty when clean.
	Leftovers func(t *testing.T) []string
	// Cut makes the node unreachable until the returned function restores
	// it; nil for agents that cannot lose their node (the local one).
	Cut func(t *testing.T) (restore func())
	// KillEngine kills the engine of the agent opened last (SIGKILL: no
	// chance to clean up); nil for agents without one.
	KillEngine func(t *testing.T)
	// IdleTimeout is the engine's idle timeout the harness configures:
	// after a cut, the node cleans up by itself within about that long.
	IdleTimeout time.Duration

	// Components makes the components the suite installs, one per id,
	// each taking at least its delay to install and of a version the
	// node does not have; nil: script components that leave a marker in
	// MarkerDir (for OS nodes).
	Components func(t *testing.T, delays map[string]time.Duration, ids ...string) []*fleetup.Component
	// Installed is the version of c the node has now, "" for none; nil:
	// the marker of a script component.
	Installed func(t *testing.T, c *fleetup.Component) string
	// CheckInventory checks an inventory of the node; nil: an OS node's
	// (OS, kernel, arch, hostname and the sh tool).
	CheckInventory func(t *testing.T, inv *fleetup.Inventory)
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("inventory", func(t *testing.T) { testInventory(t, h) })
	t.Run("probe and install", func(t *testing.T) { testInstall(t, h) })
	t.Run("cancel mid-install", func(t *testing.T) { testCancel(t, h) })
	t.Run("clean-up report", func(t *testing.T) { testCleanup(t, h) })
	// An agent whose node cannot be cut off (the local one) has no lost
	// connection to test; a skip would fail CI, so it is not run at all.
	if h.Cut != nil {
		t.Run("lost connection", func(t *testing.T) { testLost(t, h) })
	}
	if h.KillEngine != nil {
		t.Run("engine killed", func(t *testing.T) { testKilled(t, h) })
	}
}

// components writes script components into a baseline directory: each
// writes its version into MarkerDir/ID after sleeping for its delay.
func components(t *testing.T, h Harness, delays map[string]time.Duration, ids ...string) []*fleetup.Component {
	t.Helper()
	if h.Components != nil {
		cs := h.Components(t, delays, ids...)
		if len(cs) != len(ids) {
			t.Fatalf("the harness made %d components for %d ids", len(cs), len(ids))
		}
		return cs
	}
	dir := t.TempDir()
	tag := fmt.Sprintf("%d", time.Now().UnixNano())
	for _, id := range ids {
		marker := filepath.Join(h.MarkerDir, tag+"-"+id)
		body := "#!/bin/sh\n"
		if d := delays[id]; d > 0 {
			body += fmt.Sprintf("sleep %.1f\n", d.Seconds())
		}
		body += "echo \"$FLEETUP_COMPONENT_VERSION\" > " + marker + "\n"
		testbaseline.Script(t, dir, "agenttest."+id, "1.0", body, "cat "+marker+" 2>/dev/null", "linux")
	}
	b, err := baseline.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if len(b.Components) != len(ids) {
		t.Fatalf("baseline has %d components, want %d", len(b.Components), len(ids))
	}
	for _, c := range b.Components {
		id := strings.TrimPrefix(c.ID, "agenttest.")
		t.Cleanup(func() { os.Remove(filepath.Join(h.MarkerDir, tag+"-"+id)) })
	}
	return b.Components
}

// marked is the version of c the node has.
func marked(t *testing.T, h Harness, c *fleetup.Component) string {
	if h.Installed != nil {
		return h.Installed(t, c)
	}
	// The version command is "cat MARKER ...": the marker is its second word.
	f := strings.Fields(c.VersionCommand)
	if len(f) < 2 {
		return ""
	}
	b, _ := os.ReadFile(f[1])
	return strings.TrimSpace(string(b))
}

func values(cs []*fleetup.Component) []fleetup.Component {
	out := make([]fleetup.Component, len(cs))
	for i, c := range cs {
		out[i] = *c
	}
	return out
}

func closeClean(t *testing.T, h Harness, a agent.Agent) *wire.CleanupReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := a.Close(ctx)
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if rep == nil {
		t.Fatal("Close returned no report")
	}
	if left := h.Leftovers(t); len(left) > 0 {
		t.Errorf("left on the node after Close: %v", left)
	}
	return rep
}

func testInventory(t *testing.T, h Harness) {
	a := h.Open(t, nil)
	defer closeClean(t, h, a)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inv, err := a.Inventory(ctx)
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	switch {
	case inv == nil:
		t.Fatal("Inventory answered nil and no error")
	case h.CheckInventory != nil:
		h.CheckInventory(t, inv)
	default:
		if inv.OS == "" || inv.Kernel == "" || inv.Arch == "" || inv.Hostname == "" {
			t.Fatalf("inventory lacks OS, kernel, arch or hostname: %+v", inv)
		}
		if !inv.HasTool("sh") {
			t.Errorf("inventory tools %v lack sh", inv.Tools)
		}
	}
	// An inventory that cannot be asked is an error, never an empty answer.
	dead, stop := context.WithCancel(context.Background())
	stop()
	if inv, err := a.Inventory(dead); err == nil {
		t.Errorf("Inventory with an ended context answered %+v and no error", inv)
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("Inventory with an ended context: %v, want context.Canceled", err)
	}
}

func testInstall(t *testing.T, h Harness) {
	comps := components(t, h, nil, "one", "two")
	a := h.Open(t, comps)
	defer closeClean(t, h, a)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	probes, err := a.Probe(ctx, values(comps))
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if len(probes) != len(comps) {
		t.Fatalf("%d probes for %d components", len(probes), len(comps))
	}
	for i, p := range probes {
		if has := marked(t, h, comps[i]); p.ComponentID != comps[i].ID || !p.Applicable || p.Installed != has {
			t.Errorf("probe %d: %+v, want %s applicable, installed %q", i, p, comps[i].ID, has)
		}
	}
	var mu sync.Mutex
	phases := map[string][]fleetup.Phase{}
	req := wire.InstallRequest{}
	for _, c := range comps {
		req.Items = append(req.Items, wire.InstallItem{Component: *c, Action: fleetup.ActionUpdate})
	}
	res, err := a.Install(ctx, req, func(ev fleetup.Event) {
		mu.Lock()
		// A phase may report progress several times: each counts once.
		if ph := phases[ev.Component]; ev.Phase != "" && (len(ph) == 0 || ph[len(ph)-1] != ev.Phase) {
			phases[ev.Component] = append(ph, ev.Phase)
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	if len(res) != len(comps) {
		t.Fatalf("%d results for %d components", len(res), len(comps))
	}
	for i, r := range res {
		c := comps[i]
		if r.ComponentID != c.ID || r.Phase != fleetup.PhaseInstalled || r.After != c.Version {
			t.Errorf("result %d: %+v, want %s installed, reading back %s", i, r, c.ID, c.Version)
		}
		if got := marked(t, h, c); got != c.Version {
			t.Errorf("%s: the node has %q, want %s", c.ID, got, c.Version)
		}
		mu.Lock()
		ph := phases[c.ID]
		mu.Unlock()
		if !phasesInOrder(ph) {
			t.Errorf("%s: phases %v, want download and verify (in either order: a payload pushed to the node is checked before it goes), then install, then installed", c.ID, ph)
		}
	}
	// Installed now: the probe says so.
	probes, err = a.Probe(ctx, values(comps))
	if err != nil || len(probes) != len(comps) || probes[0].Installed != comps[0].Version {
		t.Errorf("probe after install: %v %+v", err, probes)
	}
}

// phasesInOrder reports whether a component went through download and
// verify, each once and in either order, then install and installed.
func phasesInOrder(ph []fleetup.Phase) bool {
	if len(ph) != 4 || ph[2] != fleetup.PhaseInstall || ph[3] != fleetup.PhaseInstalled {
		return false
	}
	first := map[fleetup.Phase]bool{ph[0]: true, ph[1]: true}
	return first[fleetup.PhaseDownload] && first[fleetup.PhaseVerify]
}

func testCancel(t *testing.T, h Harness) {
	comps := components(t, h, map[string]time.Duration{"slow": 2 * time.Second}, "slow", "next")
	var slow, next *fleetup.Component
	for _, c := range comps {
		if strings.HasSuffix(c.ID, "slow") {
			slow = c
		} else {
			next = c
		}
	}
	a := h.Open(t, comps)
	defer closeClean(t, h, a)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req := wire.InstallRequest{Items: []wire.InstallItem{
		{Component: *slow, Action: fleetup.ActionUpdate},
		{Component: *next, Action: fleetup.ActionUpdate},
	}}
	cancelled := make(chan error, 1)
	var once sync.Once
	res, err := a.Install(ctx, req, func(ev fleetup.Event) {
		if ev.Component == slow.ID && ev.Phase == fleetup.PhaseInstall {
			once.Do(func() {
				go func() {
					time.Sleep(300 * time.Millisecond) // well inside the install
					cancelled <- a.Cancel(ctx)
				}()
			})
		}
	})
	if err != nil {
		t.Fatalf("Install: %v", err)
	}
	select {
	case err := <-cancelled:
		if err != nil {
			t.Fatalf("Cancel: %v", err)
		}
	default:
		t.Fatal("the install returned before the cancel was sent: the slow component did not take its time")
	}
	if len(res) != 2 {
		t.Fatalf("%d results, want 2", len(res))
	}
	if res[0].Phase != fleetup.PhaseInstalled || marked(t, h, slow) != slow.Version {
		t.Errorf("the component in progress at the cancel did not finish: %+v, node has %q", res[0], marked(t, h, slow))
	}
	if res[1].Phase != fleetup.PhaseSkipped || marked(t, h, next) == next.Version {
		t.Errorf("the component after the cancel was not skipped: %+v, node has %q", res[1], marked(t, h, next))
	}
}

func testCleanup(t *testing.T, h Harness) {
	comps := components(t, h, nil, "c")
	a := h.Open(t, comps)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := a.Install(ctx, wire.InstallRequest{Items: []wire.InstallItem{{Component: *comps[0], Action: fleetup.ActionUpdate}}}, func(fleetup.Event) {}); err != nil {
		t.Fatalf("Install: %v", err)
	}
	rep := closeClean(t, h, a)
	if len(rep.Files)+len(rep.Processes)+len(rep.Firewall)+len(rep.Sessions) == 0 {
		t.Errorf("the clean-up report names nothing it removed: %+v", rep)
	}
	if len(rep.Errors) > 0 {
		t.Errorf("the clean-up report has errors: %v", rep.Errors)
	}
	// Close is idempotent, and the agent refuses work afterwards.
	rep2, err := a.Close(ctx)
	if err != nil || rep2 == nil {
		t.Errorf("second Close: %v %v", rep2, err)
	}
	if _, err := a.Inventory(ctx); !errors.Is(err, agent.ErrClosed) {
		t.Errorf("Inventory after Close: %v, want agent.ErrClosed", err)
	}
	if _, err := a.Probe(ctx, values(comps)); !errors.Is(err, agent.ErrClosed) {
		t.Errorf("Probe after Close: %v, want agent.ErrClosed", err)
	}
	if _, err := a.Install(ctx, wire.InstallRequest{}, func(fleetup.Event) {}); !errors.Is(err, agent.ErrClosed) {
		t.Errorf("Install after Close: %v, want agent.ErrClosed", err)
	}
}

func testLost(t *testing.T, h Harness) {
	a := h.Open(t, nil)
	restore := h.Cut(t)
	restored := false
	defer func() {
		if !restored {
			restore()
		}
	}()
	// A call while the node is gone fails, bounded by the agent's own
	// liveness check, not the caller's patience.
	ctx, cancel := context.WithTimeout(context.Background(), 3*h.IdleTimeout+30*time.Second)
	defer cancel()
	start := time.Now()
	if inv, err := a.Inventory(ctx); err == nil {
		t.Errorf("Inventory on a cut-off node answered %+v", inv)
	} else if ctx.Err() != nil {
		t.Errorf("Inventory on a cut-off node waited for the caller's deadline (%s): %v", time.Since(start), err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	if _, err := a.Close(cctx); err == nil {
		t.Error("Close on a cut-off node confirmed a clean-up it could not have done")
	}
	restore()
	restored = true
	// The engine removes itself once it has not heard from the manager
	// for its idle timeout.
	deadline := time.Now().Add(2*h.IdleTimeout + 30*time.Second)
	for {
		left := h.Leftovers(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not clean up by itself after the cut: %v", left)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// An engine killed on the node fails the call in flight at once, and Close
// still leaves the node clean: what the dead engine left (its root-owned
// directory, processes, firewall rules) is removed by a fresh one, and
// Close's error says so (the node failed: its engine died).
func testKilled(t *testing.T, h Harness) {
	a := h.Open(t, nil)
	h.KillEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if inv, err := a.Inventory(ctx); err == nil {
		t.Errorf("Inventory from a killed engine answered %+v", inv)
	} else if ctx.Err() != nil {
		t.Errorf("Inventory from a killed engine waited for the caller's deadline: %v", err)
	}
	// Close says the engine died (the node failed), and leaves the node
	// clean all the same.
	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer ccancel()
	if _, err := a.Close(cctx); err == nil || !strings.Contains(err.Error(), "removed what it left") {
		t.Errorf("Close after the engine was killed: %v, want the engine's death and its sweep said", err)
	}
	if left := h.Leftovers(t); len(left) > 0 {
		t.Errorf("left on the node after Close: %v", left)
	}
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/wire"
)

// runChild runs one of the helper processes: "sim" or "depot".
func runChild(name string, args []string) int {
	var err error
	switch name {
	case "sim":
		err = childSim(args)
	case "depot":
		err = childDepot(args)
	default:
		err = fmt.Errorf("unknown child %q", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	return 0
}

// simResult is what the sim child reports.
type simResult struct {
	Nodes     int           `json:"nodes"`
	Wall      time.Duration `json:"wall_ns"`
	BaseRSS   int64         `json:"base_rss"` // bytes, before the nodes were made
	PeakRSS   int64         `json:"peak_rss"` // VmHWM at the end
	Complete  int           `json:"complete"`
	Events    int           `json:"events"`
	Installed int           `json:"installed"`
}

// runSim is section 5, in a child process so that its peak RSS is the
// orchestrator's alone.
func (b *bench) runSim(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var walls, perNode, peaks sample
	for round := range b.cfg.Rounds {
		cmd := exec.CommandContext(ctx, self, "-child", "sim", "-nodes", strconv.Itoa(b.cfg.SimNodes))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.problem("round %d, simulated nodes: %v", round+1, err)
			continue
		}
		var r simResult
		if err := json.Unmarshal(out, &r); err != nil {
			b.problem("round %d, simulated nodes: %v: %q", round+1, err, out)
			continue
		}
		if r.Complete != r.Nodes || r.Installed != r.Nodes {
			b.problem("round %d, simulated nodes: %d complete, %d installed of %d", round+1, r.Complete, r.Installed, r.Nodes)
		}
		walls = append(walls, r.Wall.Seconds())
		peaks = append(peaks, float64(r.PeakRSS))
		perNode = append(perNode, float64(r.PeakRSS-r.BaseRSS)/float64(r.Nodes))
		b.logf("round %d sim %d nodes: %s, peak RSS %s, %s per node, %d events", round+1, r.Nodes,
			seconds(r.Wall.Seconds()), mib(float64(r.PeakRSS)), kib(perNode[len(perNode)-1]), r.Events)
	}
	b.add(row{Section: "5", Measure: fmt.Sprintf("Scale without sockets: %d simulated nodes through orchestrator.Run, all in parallel (wall)", b.cfg.SimNodes),
		Fleetup: walls.format(seconds), Goal: "< 10 s", Met: goal(walls.median(), 10, false)})
	b.add(row{Section: "5", Measure: "… memory per node ((VmHWM − RSS before) ÷ nodes; peak VmHWM in brackets)",
		Fleetup: perNode.format(kib) + "; peak " + peaks.format(mib), Goal: "< 100 KiB", Met: goal(perNode.median(), 100<<10, false)})
	return nil
}

// simAgent answers at once, like orchestrator_test's fakeAgent: the device
// is at 1.2.2, every component installs.
type simAgent struct{ name string }

var _ agent.Agent = (*simAgent)(nil)

func (a *simAgent) Name() string { return a.name }

func (a *simAgent) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	return &fleetup.Inventory{Hostname: a.name, OS: "debian", OSVersion: "12", Arch: "x86_64",
		Devices: []fleetup.Device{{ID: "webcam", Name: "Integrated Webcam", GUIDs: []string{"b585990a-003e-5270-89d5-3705a17f9a43"}, Version: "1.2.2", VersionFormat: "triplet", Plugin: "test", Updatable: true}}}, nil
}

func (a *simAgent) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	out := make([]fleetup.Probe, len(comps))
	for i, c := range comps {
		out[i] = fleetup.Probe{ComponentID: c.ID, Applicable: true, Installed: "1.2.2"}
	}
	return out, nil
}

func (a *simAgent) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	var res []fleetup.ComponentResult
	for _, it := range req.Items {
		emit(fleetup.Event{Component: it.Component.ID, Phase: fleetup.PhaseInstall})
		emit(fleetup.Event{Component: it.Component.ID, Phase: fleetup.PhaseInstalled})
		res = append(res, fleetup.ComponentResult{ComponentID: it.Component.ID, Version: it.Component.Version,
			Installed: it.Installed, Action: it.Action, Phase: fleetup.PhaseInstalled, After: it.Component.Version})
	}
	return res, nil
}

func (a *simAgent) Cancel(ctx context.Context) error { return nil }

func (a *simAgent) Close(ctx context.Context) (*wire.CleanupReport, error) {
	return &wire.CleanupReport{Node: a.name, Files: []string{"/tmp/fleetup-sim"}}, nil
}

// childSim runs the orchestrator over simulated nodes, printing every event
// as a JSON line to nowhere (as fleetup --json does to its stdout), and
// prints a simResult.
func childSim(args []string) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	n := fs.Int("nodes", 10000, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	runtime.GC()
	base := procStatus("VmRSS")
	comps := []*fleetup.Component{{ID: "org.fleetup.bench.webcam", Name: "webcam", Version: "1.2.5", Kind: "fwupd",
		VersionFormat: "triplet", File: "webcam-1.2.5.cab", Size: 1500, SHA256: strings.Repeat("ab", 32),
		Targets: []string{"b585990a-003e-5270-89d5-3705a17f9a43"}}}
	nodes := make([]orchestrator.Node, *n)
	for i := range nodes {
		name := fmt.Sprintf("root@198.19.%d.%d:22", i/250, i%250+1)
		nodes[i] = orchestrator.Node{Name: name, Open: func(ctx context.Context) (agent.Agent, error) { return &simAgent{name: name}, nil }}
	}
	var mu sync.Mutex
	events := 0
	enc := json.NewEncoder(io.Discard)
	t0 := time.Now()
	results := orchestrator.Run(context.Background(), orchestrator.Options{
		Components: comps, Nodes: nodes, Parallel: *n,
		Emit: func(ev fleetup.Event) {
			mu.Lock()
			events++
			_ = enc.Encode(struct {
				Type string `json:"type"`
				fleetup.Event
			}{"event", ev})
			mu.Unlock()
		},
	})
	wall := time.Since(t0)
	r := simResult{Nodes: *n, Wall: wall, BaseRSS: base, PeakRSS: procStatus("VmHWM"), Events: events}
	for _, res := range results {
		if res.State == fleetup.StateComplete {
			r.Complete++
		}
		for _, c := range res.Components {
			if c.Phase == fleetup.PhaseInstalled {
				r.Installed++
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// procStatus returns a "kB" field of /proc/self/status in bytes.
func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

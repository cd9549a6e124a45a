package manager

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/wire"
)

// fakeNode is an Opener whose agent installs every component, or fails
// the install when fail is set. It counts the opens.
type fakeNode struct {
	mu    sync.Mutex
	opens int
	fail  bool
}

func (f *fakeNode) Open(ctx context.Context, name string, env *Env) (agent.Agent, error) {
	f.mu.Lock()
	f.opens++
	f.mu.Unlock()
	return &fakeAgent{name: name, fail: f.fail}, nil
}

type fakeAgent struct {
	name string
	fail bool
}

var _ agent.Agent = (*fakeAgent)(nil)

func (a *fakeAgent) Name() string { return a.name }
func (a *fakeAgent) Inventory(context.Context) (*fleetup.Inventory, error) {
	return &fleetup.Inventory{Hostname: a.name}, nil
}
func (a *fakeAgent) Probe(_ context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	var out []fleetup.Probe
	for _, c := range comps {
		out = append(out, fleetup.Probe{ComponentID: c.ID, Applicable: true, Installed: "1.0"})
	}
	return out, nil
}
func (a *fakeAgent) Install(_ context.Context, req wire.InstallRequest, _ func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	var out []fleetup.ComponentResult
	for _, it := range req.Items {
		r := fleetup.ComponentResult{ComponentID: it.Component.ID, Version: it.Component.Version, Action: it.Action, Phase: fleetup.PhaseInstalled, After: it.Component.Version}
		if a.fail {
			r.Phase, r.Error, r.After = fleetup.PhaseFailed, "installer exited 1", ""
		}
		out = append(out, r)
	}
	return out, nil
}
func (a *fakeAgent) Cancel(context.Context) error { return nil }
func (a *fakeAgent) Close(context.Context) (*wire.CleanupReport, error) {
	return &wire.CleanupReport{}, nil
}

func testComponent(t *testing.T) *fleetup.Component {
	t.Helper()
	data := []byte("#!/bin/sh\ntrue\n")
	p := filepath.Join(t.TempDir(), "c.sh")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return &fleetup.Component{ID: "org.example.c", Name: "c", Version: "2.0", VersionFormat: "dpkg", Kind: fleetup.KindScript,
		File: "c.sh", Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Targets: []string{"linux"}}
}

func historyOptions(comps []*fleetup.Component, nodes []Node) *runstate.RunOptions {
	o := &runstate.RunOptions{Baseline: "/srv/baseline", Components: ComponentRefs(comps), Parallel: 1}
	for _, n := range nodes {
		o.Targets = append(o.Targets, runstate.RunTarget{Target: n.Name, Server: n.Server})
	}
	return o
}

// TestRunRecordsAndResumes: a run records each node's outcome; its
// resume works on the failed node only, says so for each node, lists
// every node in its result (the untouched one from the first run) and
// records "resumes".
func TestRunRecordsAndResumes(t *testing.T) {
	dir := t.TempDir()
	comps := []*fleetup.Component{testComponent(t)}
	good, bad := &fakeNode{}, &fakeNode{fail: true}
	nodes := []Node{{Name: "root@good:22", Opener: good}, {Name: "root@bad:22", Opener: bad}}
	run := func(id string, resume *runstate.RunRecord) (*Result, []fleetup.Event) {
		t.Helper()
		var mu sync.Mutex
		var evs []fleetup.Event
		res, err := Run(context.Background(), Options{
			RunID: id, Components: comps, Nodes: nodes, Ports: config.Default(), StateDir: dir, Parallel: 1,
			History: historyOptions(comps, nodes), Resume: resume,
			Emit: func(ev fleetup.Event) { mu.Lock(); evs = append(evs, ev); mu.Unlock() },
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.History != nil || res.Journal != nil {
			t.Fatalf("history %v, journal %v", res.History, res.Journal)
		}
		return res, evs
	}
	res, _ := run("run-a", nil)
	if len(res.Nodes) != 2 || res.Nodes[0].State != fleetup.StateComplete || res.Nodes[1].State != fleetup.StateFailed {
		t.Fatalf("first run: %+v", res.Nodes)
	}
	rec, err := LoadResume(dir, runstate.Latest)
	if err != nil {
		t.Fatal(err)
	}
	if rec.RunID != "run-a" || !rec.Ended || len(rec.Nodes) != 2 {
		t.Fatalf("record of run-a: %+v", rec)
	}
	if o, _ := rec.Outcome("root@bad:22"); o.State != runstate.OutcomeFailed || o.FailedIn != "deploy" || len(o.Components) != 1 || o.Components[0].Error != "installer exited 1" {
		t.Errorf("bad node's outcome: %+v", o)
	}

	bad.fail = false
	res, evs := run("run-b", rec)
	if good.opens != 1 || bad.opens != 2 {
		t.Errorf("opens: good %d (want 1: untouched), bad %d (want 2)", good.opens, bad.opens)
	}
	if len(res.Nodes) != 2 || res.Nodes[0].Node != "root@good:22" || res.Nodes[0].State != fleetup.StateComplete || res.Nodes[0].FromRun != "run-a" ||
		res.Nodes[1].State != fleetup.StateComplete || res.Nodes[1].FromRun != "" {
		t.Errorf("resumed run's results: %+v", res.Nodes)
	}
	if len(res.Nodes[0].Components) != 1 || res.Nodes[0].Components[0].Phase != fleetup.PhaseInstalled {
		t.Errorf("untouched node's components: %+v", res.Nodes[0].Components)
	}
	said := map[string]string{}
	for _, ev := range evs {
		if strings.Contains(ev.Message, "run-a") {
			said[ev.Node] = ev.Message
		}
	}
	if !strings.Contains(said["root@good:22"], "complete in run run-a at ") || !strings.Contains(said["root@good:22"], "not touched again") {
		t.Errorf("good node: %q", said["root@good:22"])
	}
	if !strings.Contains(said["root@bad:22"], "failed in deploy in run run-a") || !strings.Contains(said["root@bad:22"], "worked on again") {
		t.Errorf("bad node: %q", said["root@bad:22"])
	}
	rec2, err := LoadResume(dir, runstate.Latest)
	if err != nil {
		t.Fatal(err)
	}
	if rec2.RunID != "run-b" || rec2.Resumes != "run-a" || len(rec2.Nodes) != 2 {
		t.Fatalf("record of run-b: %+v", rec2)
	}
	if o, _ := rec2.Outcome("root@good:22"); o.FromRun != "run-a" || !o.Done() {
		t.Errorf("good node in run-b: %+v", o)
	}

	// A resume of the complete rollout touches nothing, and still lists
	// every node.
	res, _ = run("run-c", rec2)
	if good.opens != 1 || bad.opens != 2 || len(res.Nodes) != 2 || res.Nodes[1].FromRun != "run-b" || res.Nodes[0].FromRun != "run-a" {
		t.Errorf("resume of a complete rollout: opens %d %d, %+v", good.opens, bad.opens, res.Nodes)
	}
}

func TestLoadResumeRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadResume(dir, "nope"); !errors.Is(err, runstate.ErrRunNotRecorded) {
		t.Errorf("unknown run: %v", err)
	}
	h, err := runstate.OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := runstate.RunOptions{Baseline: "/b", Targets: []runstate.RunTarget{{Target: "root@h:22"}}}
	if _, err := h.Begin(runstate.RunRecord{RunID: "live", Options: opts}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadResume(dir, "live"); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("run of a live manager: %v", err)
	}
	opts.DryRun = true
	r, err := h.Begin(runstate.RunRecord{RunID: "dry", Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	r.End()
	if _, err := LoadResume(dir, "dry"); err == nil || !strings.Contains(err.Error(), "dry run") {
		t.Errorf("dry run: %v", err)
	}
}

func TestBaselineChanged(t *testing.T) {
	c := testComponent(t)
	rec := &runstate.RunRecord{RunID: "r", Options: runstate.RunOptions{Baseline: "/b", Components: ComponentRefs([]*fleetup.Component{c})}}
	if err := BaselineChanged(rec, []*fleetup.Component{c}); err != nil {
		t.Errorf("same baseline: %v", err)
	}
	changed := *c
	changed.SHA256 = strings.Repeat("0", 64)
	other := &fleetup.Component{ID: "org.example.new", File: "new.cab", SHA256: strings.Repeat("1", 64)}
	err := BaselineChanged(rec, []*fleetup.Component{&changed, other})
	for _, want := range []string{"baseline /b changed since run r", "component org.example.c changed", "component org.example.new (new.cab) is new"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("changed baseline: %v, want %q", err, want)
		}
	}
	if err := BaselineChanged(rec, nil); err == nil || !strings.Contains(err.Error(), "org.example.c (c.sh) is gone") {
		t.Errorf("emptied baseline: %v", err)
	}
}

// TestLoadResumeRefusesResumedRun: a run that another run still running
// resumes is not resumed again (both would work on the same nodes); the
// error names that run. Once it ended, the run may be resumed again.
func TestLoadResumeRefusesResumedRun(t *testing.T) {
	dir := t.TempDir()
	h, err := runstate.OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := runstate.RunOptions{Baseline: "/b", Targets: []runstate.RunTarget{{Target: "root@h:22"}}}
	first, err := h.Begin(runstate.RunRecord{RunID: "20261202-000000-aaaaaa", Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	first.End()
	if _, err := LoadResume(dir, "20261202-000000-aaaaaa"); err != nil {
		t.Fatalf("a run nobody resumed: %v", err)
	}
	// A resume of it, still running (this process).
	second, err := h.Begin(runstate.RunRecord{RunID: "20261202-000100-bbbbbb", Resumes: "20261202-000000-aaaaaa", Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadResume(dir, "20261202-000000-aaaaaa"); err == nil || !strings.Contains(err.Error(), "is being resumed by run 20261202-000100-bbbbbb") {
		t.Errorf("a run being resumed: %v", err)
	}
	second.End()
	if _, err := LoadResume(dir, "20261202-000000-aaaaaa"); err != nil {
		t.Errorf("a run whose resume ended: %v", err)
	}
}

// TestRebootPendingFromRecord: a node whose earlier run installed what
// needs a reboot and ended badly still needs it; one that failed its
// health check (after the reboot) or installed nothing needing one does
// not.
func TestRebootPendingFromRecord(t *testing.T) {
	kernel := runstate.ComponentOutcome{ID: "kernel", Phase: "installed", RebootNeeded: true}
	plain := runstate.ComponentOutcome{ID: "motd", Phase: "installed"}
	if p := rebootPending(runstate.NodeOutcome{State: "cancelled", FailedIn: "reboot", Components: []runstate.ComponentOutcome{plain, kernel}}, "X"); !strings.Contains(p, "run X installed kernel") {
		t.Errorf("cancelled reboot: %q", p)
	}
	if p := rebootPending(runstate.NodeOutcome{State: "failed", FailedIn: "health", Components: []runstate.ComponentOutcome{kernel}}, "X"); p != "" {
		t.Errorf("failed health check: %q, want none", p)
	}
	if p := rebootPending(runstate.NodeOutcome{State: "failed", FailedIn: "deploy", Components: []runstate.ComponentOutcome{plain}}, "X"); p != "" {
		t.Errorf("nothing needing a reboot: %q, want none", p)
	}
}

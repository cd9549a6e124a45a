package orchestrator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/wire"
)

func TestDecide(t *testing.T) {
	c := &fleetup.Component{ID: "x", Version: "1.2.5", VersionFormat: "triplet"}
	tests := []struct {
		name               string
		probe              fleetup.Probe
		downgrade, rewrite bool
		want               fleetup.Action
	}{
		{"not applicable", fleetup.Probe{Applicable: false, Reason: "no device"}, false, false, fleetup.ActionNotApplicable},
		{"not installed", fleetup.Probe{Applicable: true}, false, false, fleetup.ActionUpdate},
		{"older installed", fleetup.Probe{Applicable: true, Installed: "1.2.2"}, false, false, fleetup.ActionUpdate},
		{"same installed", fleetup.Probe{Applicable: true, Installed: "1.2.5"}, false, false, fleetup.ActionUpToDate},
		{"same with rewrite", fleetup.Probe{Applicable: true, Installed: "1.2.5"}, false, true, fleetup.ActionRewrite},
		{"newer installed", fleetup.Probe{Applicable: true, Installed: "1.2.10"}, false, false, fleetup.ActionNeedDowngrade},
		{"newer with downgrade", fleetup.Probe{Applicable: true, Installed: "1.2.10"}, true, false, fleetup.ActionDowngrade},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, err := Decide(c, tt.probe, tt.downgrade, tt.rewrite)
			if err != nil || got != tt.want {
				t.Errorf("Decide = %s (%s), want %s", got, reason, tt.want)
			}
		})
	}
}

// fakeAgent installs by sleeping, honouring Cancel like the engine does.
type fakeAgent struct {
	name      string
	installed map[string]string
	mu        sync.Mutex
	cancelled bool
	closed    int
	failOpen  error
	perItem   time.Duration
	// panicIn panics in that method ("inventory", "install", "close").
	panicIn string
}

var _ agent.Agent = (*fakeAgent)(nil)

func (a *fakeAgent) Name() string { return a.name }
func (a *fakeAgent) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	if a.panicIn == "inventory" {
		var m map[string]int
		m["x"]++ // a nil map write: the kind of bug one node's answer may trigger
	}
	return &fleetup.Inventory{Hostname: a.name}, nil
}
func (a *fakeAgent) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	var out []fleetup.Probe
	for _, c := range comps {
		out = append(out, fleetup.Probe{ComponentID: c.ID, Applicable: true, Installed: a.installed[c.ID]})
	}
	return out, nil
}
func (a *fakeAgent) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	var res []fleetup.ComponentResult
	for _, it := range req.Items {
		a.mu.Lock()
		cancelled := a.cancelled
		a.mu.Unlock()
		if cancelled {
			res = append(res, fleetup.ComponentResult{ComponentID: it.Component.ID, Phase: fleetup.PhaseSkipped})
			continue
		}
		emit(fleetup.Event{Component: it.Component.ID, Phase: fleetup.PhaseInstall})
		time.Sleep(a.perItem)
		res = append(res, fleetup.ComponentResult{ComponentID: it.Component.ID, Phase: fleetup.PhaseInstalled, After: it.Component.Version})
	}
	return res, nil
}
func (a *fakeAgent) Cancel(ctx context.Context) error {
	a.mu.Lock()
	a.cancelled = true
	a.mu.Unlock()
	return nil
}
func (a *fakeAgent) Close(ctx context.Context) (*wire.CleanupReport, error) {
	a.mu.Lock()
	a.closed++
	a.mu.Unlock()
	if a.panicIn == "close" {
		panic("close exploded")
	}
	return &wire.CleanupReport{}, nil
}

func comps() []*fleetup.Component {
	return []*fleetup.Component{
		{ID: "a", Version: "2.0", VersionFormat: "dpkg"},
		{ID: "b", Version: "2.0", VersionFormat: "dpkg"},
	}
}

func TestRunStatesAndCleanup(t *testing.T) {
	ok := &fakeAgent{name: "ok", installed: map[string]string{"b": "2.0"}}
	var events []fleetup.Event
	var mu sync.Mutex
	res := Run(context.Background(), Options{
		Components: comps(),
		Nodes: []Node{
			{Name: "ok", Open: func(context.Context) (agent.Agent, error) { return ok, nil }},
			{Name: "down", Open: func(context.Context) (agent.Agent, error) { return nil, errors.New("connection refused") }},
		},
		Emit: func(ev fleetup.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() },
	})
	if res[0].State != fleetup.StateComplete || res[1].State != fleetup.StateFailed {
		t.Fatalf("states %s, %s; want complete, failed", res[0].State, res[1].State)
	}
	if res[0].Components[0].Phase != fleetup.PhaseInstalled || res[0].Components[1].Action != fleetup.ActionUpToDate {
		t.Errorf("components %+v", res[0].Components)
	}
	if ok.closed != 1 {
		t.Errorf("agent closed %d times, want 1", ok.closed)
	}
	var states []fleetup.NodeState
	for _, ev := range events {
		if ev.Node == "ok" && ev.State != "" && ev.Component == "" {
			states = append(states, ev.State)
		}
	}
	want := []fleetup.NodeState{"scouting", "inventory", "analysis", "deploy", "cleanup", "complete"}
	if len(states) != len(want) {
		t.Fatalf("state events %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("state events %v, want %v", states, want)
		}
	}
}

func TestCancelFinishesCurrentComponent(t *testing.T) {
	a := &fakeAgent{name: "n", perItem: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	res := Run(ctx, Options{
		Components: comps(),
		Nodes:      []Node{{Name: "n", Open: func(context.Context) (agent.Agent, error) { return a, nil }}},
		Emit: func(ev fleetup.Event) {
			if ev.Component == "a" && ev.Phase == fleetup.PhaseInstall {
				cancel()
			}
		},
	})
	r := res[0]
	if r.State != fleetup.StateCancelled {
		t.Errorf("state %s, want cancelled", r.State)
	}
	if r.Components[0].Phase != fleetup.PhaseInstalled || r.Components[1].Phase != fleetup.PhaseSkipped {
		t.Errorf("phases %s, %s; want installed, skipped", r.Components[0].Phase, r.Components[1].Phase)
	}
	if a.closed != 1 {
		t.Errorf("closed %d times after a cancel, want 1", a.closed)
	}
}

func TestDryRunInstallsNothing(t *testing.T) {
	a := &fakeAgent{name: "n"}
	res := Run(context.Background(), Options{Components: comps(), DryRun: true,
		Nodes: []Node{{Name: "n", Open: func(context.Context) (agent.Agent, error) { return a, nil }}}})
	for _, c := range res[0].Components {
		if c.Phase != "" || c.Action != fleetup.ActionUpdate {
			t.Errorf("dry run: %+v", c)
		}
	}
	if res[0].State != fleetup.StateComplete || a.closed != 1 {
		t.Errorf("state %s closed %d", res[0].State, a.closed)
	}
}

// A comparison that fails is the component's failure, and so the node's:
// never "not applicable" and a clean exit.
func TestUncomparableVersionFailsTheComponent(t *testing.T) {
	c := &fleetup.Component{ID: "fw", Version: "1.2.5", VersionFormat: "dpkg"}
	if _, _, err := Decide(c, fleetup.Probe{Applicable: true, Installed: "x:1.0"}, false, false); err == nil {
		t.Fatal(`Decide compared 1.2.5 with "x:1.0" as dpkg versions`)
	}
	a := &fakeAgent{name: "n", installed: map[string]string{"fw": "x:1.0"}}
	res := Run(context.Background(), Options{
		Components: []*fleetup.Component{c, {ID: "b", Version: "2.0", VersionFormat: "dpkg"}},
		Nodes:      []Node{{Name: "n", Open: func(context.Context) (agent.Agent, error) { return a, nil }}},
	})
	r := res[0]
	if r.State != fleetup.StateFailed || r.FailedIn != fleetup.StateDeploy {
		t.Errorf("state %s (failed in %s), want failed", r.State, r.FailedIn)
	}
	if len(r.Components) != 2 || r.Components[0].Phase != fleetup.PhaseFailed || !strings.Contains(r.Components[0].Error, "x:1.0") {
		t.Fatalf("components %+v", r.Components)
	}
	if r.Components[1].Phase != fleetup.PhaseInstalled {
		t.Errorf("the other component was not installed: %+v", r.Components[1])
	}
}

// A panic while working on one node fails that node, with the phase, and
// the other nodes complete; the panicking node's agent is still closed.
func TestPanicFailsOnlyThatNode(t *testing.T) {
	for _, where := range []string{"inventory", "close"} {
		t.Run(where, func(t *testing.T) {
			bad := &fakeAgent{name: "bad", panicIn: where}
			good := &fakeAgent{name: "good"}
			res := Run(context.Background(), Options{
				Components: comps(),
				Nodes: []Node{
					{Name: "bad", Open: func(context.Context) (agent.Agent, error) { return bad, nil }},
					{Name: "good", Open: func(context.Context) (agent.Agent, error) { return good, nil }},
				},
			})
			if len(res) != 2 {
				t.Fatalf("%d results", len(res))
			}
			if res[1].State != fleetup.StateComplete {
				t.Errorf("good node: %s %s", res[1].State, res[1].Error)
			}
			b := res[0]
			if where == "inventory" {
				if b.State != fleetup.StateFailed || b.FailedIn != fleetup.StateInventory || !strings.Contains(b.Error, "internal error") {
					t.Errorf("bad node: state %s in %s: %s", b.State, b.FailedIn, b.Error)
				}
			} else if b.CleanupError == "" {
				t.Errorf("bad node: a panic in Close left no clean-up error: %+v", b)
			}
			if bad.closed == 0 {
				t.Error("the panicking node's agent was never closed")
			}
		})
	}
}

// Errors name the phase the node failed in.
func TestErrorsNameThePhase(t *testing.T) {
	res := Run(context.Background(), Options{
		Components: comps(),
		Nodes: []Node{{Name: "down", Open: func(context.Context) (agent.Agent, error) {
			return nil, errors.New("connection refused")
		}}},
	})
	if r := res[0]; r.FailedIn != fleetup.StateScouting || !strings.HasPrefix(r.Error, "scouting: ") {
		t.Errorf("failed in %q: %q", r.FailedIn, r.Error)
	}
}

// A cancel before a node got its turn ends it at once: it is never opened.
func TestCancelWhileWaitingForASlot(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 2)
	var opened sync.Map
	open := func(name string) func(context.Context) (agent.Agent, error) {
		return func(ctx context.Context) (agent.Agent, error) {
			opened.Store(name, true)
			started <- struct{}{}
			<-ctx.Done() // holds the only slot until the cancel
			time.Sleep(50 * time.Millisecond)
			return nil, ctx.Err()
		}
	}
	done := make(chan []NodeResult)
	go func() {
		done <- Run(ctx, Options{
			Components: comps(), Parallel: 1,
			Nodes: []Node{{Name: "a", Open: open("a")}, {Name: "b", Open: open("b")}},
		})
	}()
	<-started
	cancel()
	select {
	case res := <-done:
		n := 0
		opened.Range(func(any, any) bool { n++; return true })
		if n != 1 {
			t.Errorf("%d nodes opened, want 1: the other was opened after the cancel", n)
		}
		for _, r := range res {
			if r.State != fleetup.StateCancelled {
				t.Errorf("node %s: %s, want cancelled", r.Node, r.State)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of the cancel")
	}
}

// Each bounds the calls in flight and starts none after a cancel, even
// when the queue is full.
func TestEachStopsAtCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	inFlight, most, calls := 0, 0, 0
	release := make(chan struct{})
	done := make(chan []bool)
	go func() {
		done <- Each(ctx, 10, 2, func(i int) {
			mu.Lock()
			inFlight++
			calls++
			if inFlight > most {
				most = inFlight
			}
			mu.Unlock()
			<-release
			mu.Lock()
			inFlight--
			mu.Unlock()
		})
	}()
	for {
		mu.Lock()
		n := calls
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	close(release)
	ran := <-done
	n := 0
	for _, r := range ran {
		if r {
			n++
		}
	}
	if most > 2 || calls != 2 || n != 2 {
		t.Errorf("most in flight %d, calls %d, ran %d; want 2, 2, 2", most, calls, n)
	}
}

// An Open that fails may hand back a typed nil next to its error; the run
// keeps the error and never calls the nil agent.
func TestFailedOpenTypedNil(t *testing.T) {
	res := Run(context.Background(), Options{
		Components: comps(),
		Nodes: []Node{{Name: "n", Open: func(context.Context) (agent.Agent, error) {
			var r *agent.Remote
			return r, errors.New("copy engine: connection lost")
		}}},
	})
	if r := res[0]; r.State != fleetup.StateFailed || !strings.Contains(r.Error, "copy engine: connection lost") || strings.Contains(r.Error, "internal error") {
		t.Errorf("state %s: %s", r.State, r.Error)
	}
}

// TestServerOrder works on a server's addresses one after the other (its
// BMC first), skips the host when the BMC failed in a deploy, and goes on
// in an inventory.
func TestServerOrder(t *testing.T) {
	var mu sync.Mutex
	var order []string
	open := func(name string, err error) func(context.Context) (agent.Agent, error) {
		return func(context.Context) (agent.Agent, error) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // a host started at once would overtake its BMC
			if err != nil {
				return nil, err
			}
			return &fakeAgent{name: name}, nil
		}
	}
	nodes := []Node{
		{Name: "bmc1", Server: "s1", Open: open("bmc1", nil)},
		{Name: "host1", Server: "s1", Open: open("host1", nil)},
		{Name: "bmc2", Server: "s2", Open: open("bmc2", errors.New("certificate changed"))},
		{Name: "host2", Server: "s2", Open: open("host2", nil)},
		{Name: "alone", Open: open("alone", nil)},
	}
	res := Run(context.Background(), Options{Components: comps(), Nodes: nodes, Parallel: 8})
	want := map[string]fleetup.NodeState{"bmc1": "complete", "host1": "complete", "bmc2": "failed", "host2": "skipped", "alone": "complete"}
	for _, r := range res {
		if r.State != want[r.Node] {
			t.Errorf("%s: state %s (%s), want %s", r.Node, r.State, r.Error, want[r.Node])
		}
	}
	if r := res[3]; r.Server != "s2" || !strings.Contains(r.Error, "bmc2") || !strings.Contains(r.Error, "certificate changed") {
		t.Errorf("skipped host: %+v", r)
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	if _, ok := pos["host2"]; ok {
		t.Errorf("host2 was reached after its BMC failed: %v", order)
	}
	if pos["host1"] < pos["bmc1"] {
		t.Errorf("host1 reached before its BMC: %v", order)
	}
	order = nil
	res = Run(context.Background(), Options{Components: comps(), Nodes: nodes, InventoryOnly: true})
	if res[3].State != fleetup.StateComplete {
		t.Errorf("inventory: host2 %s (%s), want complete: an inventory goes on after a failed BMC", res[3].State, res[3].Error)
	}
}

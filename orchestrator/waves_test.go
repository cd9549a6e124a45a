package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// fleet makes test nodes and records which were opened, in order, and
// every event.
type fleet struct {
	mu     sync.Mutex
	opened []string
	events []fleetup.Event
	// onEvent, when set, sees every event (outside the lock).
	onEvent func(fleetup.Event)
}

// node is a node whose Open records it and returns open's agent or error.
func (f *fleet) node(name string, open func(ctx context.Context) (agent.Agent, error)) Node {
	return Node{Name: name, Open: func(ctx context.Context) (agent.Agent, error) {
		f.mu.Lock()
		f.opened = append(f.opened, name)
		f.mu.Unlock()
		return open(ctx)
	}}
}

// ok is a node that installs every component.
func (f *fleet) ok(name string) Node {
	return f.with(name, &fakeAgent{name: name})
}

// with is a node whose agent is a.
func (f *fleet) with(name string, a agent.Agent) Node {
	return f.node(name, func(context.Context) (agent.Agent, error) { return a, nil })
}

// down is a node that cannot be reached.
func (f *fleet) down(name string) Node {
	return f.node(name, func(context.Context) (agent.Agent, error) { return nil, errors.New("connection refused") })
}

// broken is a node on which every component fails to install.
func (f *fleet) broken(name string) Node {
	return f.with(name, &brokenAgent{fakeAgent{name: name}})
}

func (f *fleet) emit(ev fleetup.Event) {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
	if f.onEvent != nil {
		f.onEvent(ev)
	}
}

func (f *fleet) openedNodes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.opened...)
}

// notices are the messages of the run's own events (Node empty).
func (f *fleet) notices() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, ev := range f.events {
		if ev.Node == "" {
			out = append(out, ev.Message)
		}
	}
	return out
}

// firstEvent is the index of node's first event in state, or -1.
func (f *fleet) firstEvent(node string, state fleetup.NodeState) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ev := range f.events {
		if ev.Node == node && ev.State == state && ev.Component == "" {
			return i
		}
	}
	return -1
}

// states are node's state events, in order.
func (f *fleet) states(node string) []fleetup.NodeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fleetup.NodeState
	for _, ev := range f.events {
		if ev.Node == node && ev.Component == "" && (len(out) == 0 || out[len(out)-1] != ev.State) {
			out = append(out, ev.State)
		}
	}
	return out
}

func (f *fleet) run(ctx context.Context, opts Options) []NodeResult {
	opts.Components = comps()
	opts.Emit = f.emit
	return Run(ctx, opts)
}

// brokenAgent fails every component it is to install.
type brokenAgent struct{ fakeAgent }

func (a *brokenAgent) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	var res []fleetup.ComponentResult
	for _, it := range req.Items {
		res = append(res, fleetup.ComponentResult{ComponentID: it.Component.ID, Phase: fleetup.PhaseFailed, Error: "installer exited 1"})
	}
	return res, nil
}

// healthAgent runs the health command: it exits with exit after printing
// output, or, with block, runs until its context ends.
type healthAgent struct {
	fakeAgent
	exit   int
	output string
	block  bool
	err    error // returned as it is, when set

	hmu      sync.Mutex
	commands []string
}

var _ agent.HealthChecker = (*healthAgent)(nil)

func (a *healthAgent) Health(ctx context.Context, command string) (string, error) {
	a.hmu.Lock()
	a.commands = append(a.commands, command)
	a.hmu.Unlock()
	switch {
	case a.err != nil:
		return "", a.err
	case a.block:
		<-ctx.Done()
		return a.output, fmt.Errorf("run on node: %w", ctx.Err())
	case a.exit != 0:
		return a.output, &transport.ExitError{Cmd: command, ExitCode: a.exit}
	}
	return a.output, nil
}

func (a *healthAgent) ran() []string {
	a.hmu.Lock()
	defer a.hmu.Unlock()
	return append([]string(nil), a.commands...)
}

// bmcAgent is a BMC node's agent: it runs no commands.
type bmcAgent struct{ fakeAgent }

func (a *bmcAgent) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	return &fleetup.Inventory{BMC: &fleetup.BMCInventory{Vendor: "HPE"}}, nil
}

func statesOf(res []NodeResult) map[string]fleetup.NodeState {
	out := map[string]fleetup.NodeState{}
	for _, r := range res {
		out[r.Node] = r.State
	}
	return out
}

// The canary nodes end before any other node is reached; then the others
// are worked on, and every result says which wave it was in.
func TestCanaryThenTheRest(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := &fleet{}
	res := f.run(context.Background(), Options{
		Canary: 2,
		Nodes:  []Node{f.ok("c1"), f.ok("c2"), f.ok("r1"), f.ok("r2"), f.ok("r3")},
	})
	for _, r := range res {
		if r.State != fleetup.StateComplete {
			t.Errorf("%s: %s (%s), want complete", r.Node, r.State, r.Error)
		}
		if want := r.Node[0] == 'c'; r.Canary != want {
			t.Errorf("%s: Canary %v, want %v", r.Node, r.Canary, want)
		}
	}
	for _, c := range []string{"c1", "c2"} {
		end := f.firstEvent(c, fleetup.StateComplete)
		for _, r := range []string{"r1", "r2", "r3"} {
			if start := f.firstEvent(r, fleetup.StateScouting); start < end {
				t.Errorf("%s was reached (event %d) before canary node %s ended (event %d)", r, start, c, end)
			}
		}
	}
	notices := strings.Join(f.notices(), "\n")
	for _, want := range []string{"wave 1 (canary): 2 nodes: c1, c2; the other 3 nodes start once", "wave 2: the other 3 nodes"} {
		if !strings.Contains(notices, want) {
			t.Errorf("the run's events do not say %q:\n%s", want, notices)
		}
	}
}

// A canary node that failed stops the run: no other node is reached, and
// each says why it was skipped.
func TestCanaryFailureStopsTheRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := &fleet{}
	res := f.run(context.Background(), Options{
		Canary: 2, Parallel: 1,
		Nodes: []Node{f.ok("c1"), f.broken("c2"), f.ok("r1"), f.ok("r2")},
	})
	want := map[string]fleetup.NodeState{"c1": "complete", "c2": "failed", "r1": "skipped", "r2": "skipped"}
	if diff := cmp.Diff(want, statesOf(res)); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c1", "c2"}, f.openedNodes()); diff != "" {
		t.Errorf("opened (-want +got):\n%s", diff)
	}
	const why = "not started: canary node c2 failed in deploy: 2 component(s) failed; the run stops after its canary wave"
	for _, r := range res[2:] {
		if r.Error != why {
			t.Errorf("%s: error %q, want %q", r.Node, r.Error, why)
		}
		if f.firstEvent(r.Node, fleetup.StateSkipped) < 0 {
			t.Errorf("%s: no skipped event", r.Node)
		}
	}
	if n := strings.Join(f.notices(), "\n"); !strings.Contains(n, "the other 2 nodes are not started") {
		t.Errorf("the run's events do not say the rest is not started:\n%s", n)
	}
}

// A server's addresses are never split across waves: a canary of one
// node takes the whole first server, and a failure of its host stops the
// run as a failure of any canary node does.
func TestCanaryServerGroup(t *testing.T) {
	for _, tt := range []struct {
		name      string
		hostFails bool
	}{{"host ok", false}, {"host fails", true}} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fleet{}
			bmc, host := f.ok("bmc1"), f.ok("host1")
			if tt.hostFails {
				host = f.broken("host1")
			}
			bmc.Server, host.Server = "s1", "s1"
			res := f.run(context.Background(), Options{
				Canary: 1,
				Nodes:  []Node{bmc, host, f.ok("n3"), f.ok("n4")},
			})
			if !res[0].Canary || !res[1].Canary || res[2].Canary || res[3].Canary {
				t.Errorf("canary %v %v %v %v, want the whole server s1 and nothing else", res[0].Canary, res[1].Canary, res[2].Canary, res[3].Canary)
			}
			if !tt.hostFails {
				if end, start := f.firstEvent("host1", fleetup.StateComplete), f.firstEvent("n3", fleetup.StateScouting); start < end {
					t.Errorf("n3 reached (event %d) before the canary server's host ended (event %d)", start, end)
				}
				for _, r := range res {
					if r.State != fleetup.StateComplete {
						t.Errorf("%s: %s (%s)", r.Node, r.State, r.Error)
					}
				}
				return
			}
			if diff := cmp.Diff([]string{"bmc1", "host1"}, f.openedNodes()); diff != "" {
				t.Errorf("opened (-want +got):\n%s", diff)
			}
			for _, r := range res[2:] {
				if r.State != fleetup.StateSkipped || !strings.Contains(r.Error, "canary node host1 failed in deploy") {
					t.Errorf("%s: %s: %s", r.Node, r.State, r.Error)
				}
			}
		})
	}
}

// A cancel during the canary wave ends the other nodes cancelled, as
// before any node was reached, never skipped.
func TestCanaryCancelled(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fleet{}
	reached := make(chan struct{})
	c1 := f.node("c1", func(ctx context.Context) (agent.Agent, error) {
		close(reached)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	go func() { <-reached; cancel() }()
	res := f.run(ctx, Options{Canary: 1, Nodes: []Node{c1, f.ok("r1"), f.ok("r2")}})
	for _, r := range res {
		if r.State != fleetup.StateCancelled {
			t.Errorf("%s: %s (%s), want cancelled", r.Node, r.State, r.Error)
		}
	}
	if diff := cmp.Diff([]string{"c1"}, f.openedNodes()); diff != "" {
		t.Errorf("opened (-want +got):\n%s", diff)
	}
}

// One node at a time, the run stops starting nodes at the second failure
// of --max-failures 1: the nodes after it are never reached.
func TestMaxFailuresSerial(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := &fleet{}
	res := f.run(context.Background(), Options{
		Parallel: 1, MaxFailures: &FailureLimit{N: 1},
		Nodes: []Node{f.ok("n1"), f.down("n2"), f.broken("n3"), f.ok("n4"), f.ok("n5")},
	})
	want := map[string]fleetup.NodeState{"n1": "complete", "n2": "failed", "n3": "failed", "n4": "skipped", "n5": "skipped"}
	if diff := cmp.Diff(want, statesOf(res)); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"n1", "n2", "n3"}, f.openedNodes()); diff != "" {
		t.Errorf("opened (-want +got):\n%s", diff)
	}
	const why = "not started: 2 nodes failed, more than --max-failures 1"
	for _, r := range res[3:] {
		if r.Error != why {
			t.Errorf("%s: error %q, want %q", r.Node, r.Error, why)
		}
		if f.firstEvent(r.Node, fleetup.StateSkipped) < 0 {
			t.Errorf("%s: no skipped event", r.Node)
		}
	}
	if n := strings.Join(f.notices(), "\n"); !strings.Contains(n, "2 nodes failed, more than --max-failures 1: no new node starts; the nodes in progress finish, the 2 nodes not started yet end skipped") {
		t.Errorf("the run's events do not say it stopped:\n%s", n)
	}
}

// Nodes in progress when the limit is passed finish their deploy and
// their clean-up: the limit only keeps nodes from starting.
func TestMaxFailuresLetsNodesInProgressFinish(t *testing.T) {
	defer goleak.VerifyNone(t)
	release := make(chan struct{})
	var once sync.Once
	failed := 0
	f := &fleet{}
	f.onEvent = func(ev fleetup.Event) {
		if ev.State == fleetup.StateFailed && ev.Component == "" {
			f.mu.Lock()
			failed++
			n := failed
			f.mu.Unlock()
			if n == 2 {
				once.Do(func() { close(release) })
			}
		}
	}
	// n1 and n2 fail once n3, n4 and n5 are reached, whose installs
	// wait for both failures.
	var reached sync.WaitGroup
	reached.Add(3)
	down := func(name string) Node {
		return f.node(name, func(context.Context) (agent.Agent, error) {
			reached.Wait()
			return nil, errors.New("connection refused")
		})
	}
	slow := map[string]*gatedAgent{}
	nodes := []Node{down("n1"), down("n2")}
	for _, name := range []string{"n3", "n4", "n5"} {
		a := &gatedAgent{fakeAgent: fakeAgent{name: name}, gate: release}
		slow[name] = a
		nodes = append(nodes, f.node(name, func(context.Context) (agent.Agent, error) {
			reached.Done()
			return a, nil
		}))
	}
	res := f.run(context.Background(), Options{Parallel: 5, MaxFailures: &FailureLimit{N: 1}, Nodes: nodes})
	want := map[string]fleetup.NodeState{"n1": "failed", "n2": "failed", "n3": "complete", "n4": "complete", "n5": "complete"}
	if diff := cmp.Diff(want, statesOf(res)); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	for name, a := range slow {
		if a.closed != 1 {
			t.Errorf("%s closed %d times, want 1", name, a.closed)
		}
	}
}

// gatedAgent installs once gate is closed.
type gatedAgent struct {
	fakeAgent
	gate chan struct{}
}

func (a *gatedAgent) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	select {
	case <-a.gate:
	case <-time.After(10 * time.Second):
		return nil, errors.New("the test never opened the gate")
	}
	return a.fakeAgent.Install(ctx, req, emit)
}

// A percentage is of all the run's nodes, rounded down: 20% of 10 nodes
// allows 2 failures, and the third stops the run.
func TestMaxFailuresPercent(t *testing.T) {
	f := &fleet{}
	var nodes []Node
	for i := 1; i <= 10; i++ {
		if i <= 3 {
			nodes = append(nodes, f.down(fmt.Sprintf("n%d", i)))
		} else {
			nodes = append(nodes, f.ok(fmt.Sprintf("n%d", i)))
		}
	}
	limit, err := ParseFailureLimit("20%")
	if err != nil {
		t.Fatal(err)
	}
	res := f.run(context.Background(), Options{Parallel: 1, MaxFailures: &limit, Nodes: nodes})
	if got := len(f.openedNodes()); got != 3 {
		t.Errorf("%d nodes opened, want 3: %v", got, f.openedNodes())
	}
	const why = "not started: 3 nodes failed, more than --max-failures 20% (2 of 10 nodes)"
	for _, r := range res[3:] {
		if r.State != fleetup.StateSkipped || r.Error != why {
			t.Errorf("%s: %s %q, want skipped %q", r.Node, r.State, r.Error, why)
		}
	}
}

// A host skipped after its BMC failed is not a failure of its own; an
// inventory or a dry run ignores the limit and the canary.
func TestMaxFailuresCountsFailedNodesOfDeploysOnly(t *testing.T) {
	t.Run("skipped host", func(t *testing.T) {
		f := &fleet{}
		bmc, host := f.down("bmc1"), f.ok("host1")
		bmc.Server, host.Server = "s1", "s1"
		res := f.run(context.Background(), Options{
			Parallel: 1, MaxFailures: &FailureLimit{N: 1},
			Nodes: []Node{bmc, host, f.ok("n3")},
		})
		want := map[string]fleetup.NodeState{"bmc1": "failed", "host1": "skipped", "n3": "complete"}
		if diff := cmp.Diff(want, statesOf(res)); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
	})
	for _, opts := range []Options{{DryRun: true}, {InventoryOnly: true}} {
		t.Run(fmt.Sprintf("dry run %v inventory %v", opts.DryRun, opts.InventoryOnly), func(t *testing.T) {
			f := &fleet{}
			opts.Parallel, opts.Canary, opts.MaxFailures = 1, 1, &FailureLimit{}
			opts.Nodes = []Node{f.down("n1"), f.down("n2"), f.ok("n3")}
			res := f.run(context.Background(), opts)
			if len(f.openedNodes()) != 3 || res[2].State != fleetup.StateComplete || res[2].Canary {
				t.Errorf("opened %v; n3 %s (%s), canary %v", f.openedNodes(), res[2].State, res[2].Error, res[2].Canary)
			}
		})
	}
}

func TestCountsAsFailed(t *testing.T) {
	tests := []struct {
		name string
		res  NodeResult
		want bool
	}{
		{"complete", NodeResult{State: fleetup.StateComplete}, false},
		{"reboot needed", NodeResult{State: fleetup.StateRebootNeeded}, false},
		{"failed", NodeResult{State: fleetup.StateFailed}, true},
		{"clean-up not confirmed", NodeResult{State: fleetup.StateFailed, FailedIn: fleetup.StateCleanup, CleanupError: "x"}, true},
		{"skipped", NodeResult{State: fleetup.StateSkipped}, false},
		{"cancelled", NodeResult{State: fleetup.StateCancelled}, false},
		{"cancelled, clean-up not confirmed", NodeResult{State: fleetup.StateCancelled, CleanupError: "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := countsAsFailed(&tt.res); got != tt.want {
				t.Errorf("countsAsFailed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseFailureLimit(t *testing.T) {
	valid := []struct {
		in    string
		want  FailureLimit
		total int
		allow int
	}{
		{"0", FailureLimit{}, 10, 0},
		{"3", FailureLimit{N: 3}, 10, 3},
		{"10%", FailureLimit{Percent: 10}, 25, 2},
		{"10%", FailureLimit{Percent: 10}, 9, 0},
		{"29%", FailureLimit{Percent: 29}, 100, 29},
		{"12.5%", FailureLimit{Percent: 12.5}, 8, 1},
		{"100%", FailureLimit{Percent: 100}, 7, 7},
		{"0%", FailureLimit{}, 7, 0},
	}
	for _, tt := range valid {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFailureLimit(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseFailureLimit(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if a := got.Allowed(tt.total); a != tt.allow {
				t.Errorf("%s of %d nodes allows %d, want %d", tt.in, tt.total, a, tt.allow)
			}
		})
	}
	invalid := []struct{ in, want string }{
		{"", "neither a number of nodes"},
		{"abc", `"abc" is neither a number of nodes (like 3) nor a percentage of the run's nodes (like 10%)`},
		{"3.5", "neither"},
		{"+3", "neither"},
		{" 3", "neither"},
		{"1e2", "neither"},
		{"0x10", "neither"},
		{"-1", `"-1": a number of failed nodes cannot be negative`},
		{"-5%", "cannot be negative"},
		{"%", "not a percentage"},
		{"10%%", "not a percentage"},
		{".5%", "not a percentage"},
		{"5.%", "not a percentage"},
		{"NaN%", "not a percentage"},
		{"Inf%", "not a percentage"},
		{"101%", `"101%" is more than all of the run's nodes (100%)`},
		{"99999999999999999999", "more nodes than a run can have"},
	}
	for _, tt := range invalid {
		t.Run("invalid "+tt.in, func(t *testing.T) {
			_, err := ParseFailureLimit(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseFailureLimit(%q) error %v, want one saying %q", tt.in, err, tt.want)
			}
		})
	}
}

// Whatever parses prints as something that parses to the same limit, and
// never allows a negative number of failures, nor more than all nodes.
func FuzzParseFailureLimit(f *testing.F) {
	for _, s := range []string{"0", "3", "10%", "12.5%", "100%", "-1", "1e2%", "0.000001%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseFailureLimit(s)
		if err != nil {
			return
		}
		again, err := ParseFailureLimit(l.String())
		if err != nil || again != l {
			t.Fatalf("%q parsed as %+v, printed %q, parsed again as %+v (%v)", s, l, l.String(), again, err)
		}
		if a := l.Allowed(1000); a < 0 || l.Percent > 0 && a > 1000 {
			t.Fatalf("%q allows %d of 1000 nodes", s, a)
		}
	})
}

// The health command runs once on a node that installed something, in
// state "health" between deploy and clean-up, and never where nothing
// was installed or in a dry run.
func TestHealthPasses(t *testing.T) {
	f := &fleet{}
	a := &healthAgent{fakeAgent: fakeAgent{name: "n"}, output: "all good\n"}
	res := f.run(context.Background(), Options{HealthCommand: "systemctl is-system-running", Nodes: []Node{f.with("n", a)}})
	r := res[0]
	if r.State != fleetup.StateComplete || r.Health == nil || !r.Health.Passed || r.Health.Output != "all good\n" {
		t.Fatalf("state %s (%s), health %+v", r.State, r.Error, r.Health)
	}
	if diff := cmp.Diff([]string{"systemctl is-system-running"}, a.ran()); diff != "" {
		t.Errorf("commands run (-want +got):\n%s", diff)
	}
	want := []fleetup.NodeState{"scouting", "inventory", "analysis", "deploy", "health", "cleanup", "complete"}
	if diff := cmp.Diff(want, f.states("n")); diff != "" {
		t.Errorf("state events (-want +got):\n%s", diff)
	}

	for _, tt := range []struct {
		name string
		opts Options
		a    *healthAgent
	}{
		{"nothing installed", Options{}, &healthAgent{fakeAgent: fakeAgent{name: "n", installed: map[string]string{"a": "2.0", "b": "2.0"}}}},
		{"dry run", Options{DryRun: true}, &healthAgent{fakeAgent: fakeAgent{name: "n"}}},
		// a cannot be analysed (its installed version is no dpkg
		// version), b is installed: the node failed already.
		{"failed in deploy", Options{}, &healthAgent{fakeAgent: fakeAgent{name: "n", installed: map[string]string{"a": "x:1.0"}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fleet{}
			opts := tt.opts
			opts.HealthCommand = "true"
			opts.Nodes = []Node{f.with("n", tt.a)}
			res := f.run(context.Background(), opts)
			if len(tt.a.ran()) != 0 {
				t.Errorf("the health command ran: %v", tt.a.ran())
			}
			if res[0].Health != nil || f.firstEvent("n", fleetup.StateHealth) >= 0 {
				t.Errorf("health %+v, events %v", res[0].Health, f.states("n"))
			}
		})
	}
}

// A health command that exits non-zero, does not finish in time, or
// cannot run fails its node in "health", saying how and quoting the end
// of its output; a cancel while it runs cancels the node.
func TestHealthFails(t *testing.T) {
	tests := []struct {
		name      string
		a         *healthAgent
		cancel    bool
		wantState fleetup.NodeState
		wantErr   string
		wantExit  int
	}{
		{
			name:      "exit status",
			a:         &healthAgent{exit: 3, output: "l1\nl2\n\nl3\nl4\nl5\nl6\nl7\n"},
			wantState: fleetup.StateFailed,
			wantErr:   "health: the health command exited with status 3; its last lines: l3 | l4 | l5 | l6 | l7",
			wantExit:  3,
		},
		{
			name:      "silent",
			a:         &healthAgent{exit: 1},
			wantState: fleetup.StateFailed,
			wantErr:   "health: the health command exited with status 1; it printed nothing",
			wantExit:  1,
		},
		{
			name:      "timeout",
			a:         &healthAgent{block: true, output: "waiting for nginx"},
			wantState: fleetup.StateFailed,
			wantErr:   "health: the health command did not finish within 50ms and was stopped; its last lines: waiting for nginx",
			wantExit:  -1,
		},
		{
			name:      "node lost",
			a:         &healthAgent{err: errors.New("connection to n lost")},
			wantState: fleetup.StateFailed,
			wantErr:   "health: the health command could not run: connection to n lost",
			wantExit:  -1,
		},
		{
			name:      "cancelled",
			a:         &healthAgent{block: true},
			cancel:    true,
			wantState: fleetup.StateCancelled,
			wantErr:   "health: the health command was stopped: run on node: context canceled",
			wantExit:  -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := &fleet{}
			if tt.cancel {
				f.onEvent = func(ev fleetup.Event) {
					if ev.State == fleetup.StateHealth {
						cancel()
					}
				}
			}
			tt.a.name = "n"
			res := f.run(ctx, Options{HealthCommand: "check", HealthTimeout: 50 * time.Millisecond, Nodes: []Node{f.with("n", tt.a)}})
			r := res[0]
			if r.State != tt.wantState || r.FailedIn != fleetup.StateHealth || r.Error != tt.wantErr {
				t.Errorf("state %s in %s: %q\nwant %s in health: %q", r.State, r.FailedIn, r.Error, tt.wantState, tt.wantErr)
			}
			if r.Health == nil || r.Health.Passed || r.Health.ExitCode != tt.wantExit {
				t.Errorf("health %+v, want failed with exit code %d", r.Health, tt.wantExit)
			}
			if tt.a.closed != 1 {
				t.Errorf("agent closed %d times, want 1", tt.a.closed)
			}
		})
	}
}

// A node that cannot run commands (a BMC) is not checked and not failed
// for it; an event says so. So is an agent that finds it has no shell.
func TestHealthNotRunWhereNodesRunNoCommands(t *testing.T) {
	tests := []struct {
		name string
		a    agent.Agent
		want string
	}{
		{"bmc", &bmcAgent{fakeAgent{name: "n"}}, "the health command is not run: a BMC node cannot run commands"},
		{"unsupported", &healthAgent{fakeAgent: fakeAgent{name: "n"}, err: fmt.Errorf("run a command on n: no shell: %w", errors.ErrUnsupported)},
			"the health command is not run: this node cannot run commands (run a command on n: no shell: unsupported operation)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fleet{}
			res := f.run(context.Background(), Options{HealthCommand: "check", Nodes: []Node{f.with("n", tt.a)}})
			r := res[0]
			if r.State != fleetup.StateComplete || r.Health == nil || r.Health.NotRun != tt.want {
				t.Errorf("state %s (%s), health %+v; want complete, not run: %q", r.State, r.Error, r.Health, tt.want)
			}
			found := false
			f.mu.Lock()
			for _, ev := range f.events {
				found = found || ev.State == fleetup.StateHealth && ev.Message == tt.want
			}
			f.mu.Unlock()
			if !found {
				t.Errorf("no health event says %q", tt.want)
			}
		})
	}
}

// A failed health command is a failed node: it fails the canary wave and
// counts against --max-failures.
func TestHealthFailureCounts(t *testing.T) {
	sick := func(name string) *healthAgent {
		return &healthAgent{fakeAgent: fakeAgent{name: name}, exit: 1, output: "nginx: inactive"}
	}
	t.Run("canary", func(t *testing.T) {
		f := &fleet{}
		res := f.run(context.Background(), Options{
			Canary: 1, HealthCommand: "systemctl is-active nginx",
			Nodes: []Node{f.with("c1", sick("c1")), f.ok("r1")},
		})
		const why = "not started: canary node c1 failed in health: the health command exited with status 1; its last lines: nginx: inactive; the run stops after its canary wave"
		if res[1].State != fleetup.StateSkipped || res[1].Error != why {
			t.Errorf("r1: %s %q\nwant skipped %q", res[1].State, res[1].Error, why)
		}
	})
	t.Run("max failures", func(t *testing.T) {
		f := &fleet{}
		res := f.run(context.Background(), Options{
			Parallel: 1, MaxFailures: &FailureLimit{}, HealthCommand: "systemctl is-active nginx",
			Nodes: []Node{f.with("n1", sick("n1")), f.ok("n2")},
		})
		if res[1].State != fleetup.StateSkipped || res[1].Error != "not started: 1 node failed, more than --max-failures 0" {
			t.Errorf("n2: %s %q", res[1].State, res[1].Error)
		}
	})
}

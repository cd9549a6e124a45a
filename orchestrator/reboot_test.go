package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/wire"
)

// bootNode is a fake node that can reboot: what an install of a component
// with Reboot (or with staged set) leaves is pending until the next boot;
// staged components never activate (a firmware that did not take).
type bootNode struct {
	mu        sync.Mutex
	installed map[string]string
	pending   map[string]string
	staged    map[string]bool // these stay pending after a reboot
	boot      int
	opens     int
	open      int // agents open now
	reboots   int
	noReturn  bool
	failClose bool
}

func newBootNode() *bootNode {
	return &bootNode{installed: map[string]string{}, pending: map[string]string{}, staged: map[string]bool{}}
}

func (b *bootNode) Open(ctx context.Context) (agent.Agent, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opens++
	b.open++
	return &bootAgent{node: b}, nil
}

// Reboot is Node.Reboot: it waits the delay (or the cancel), then the
// node comes back with a new boot id, its pending versions active, unless
// noReturn: then it waits the timeout out.
func (b *bootNode) Reboot(ctx context.Context, req RebootRequest) (*RebootResult, error) {
	b.mu.Lock()
	if b.open != 0 {
		b.mu.Unlock()
		return nil, fmt.Errorf("reboot with %d agent(s) still open", b.open)
	}
	before := fmt.Sprintf("boot-%d", b.boot)
	b.mu.Unlock()
	res := &RebootResult{BootIDBefore: before}
	select {
	case <-time.After(req.Delay):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	req.Notice("reboot asked")
	if b.noReturn {
		select {
		case <-time.After(req.Timeout):
			return res, fmt.Errorf("%w: not back within %s", ErrNotBack, req.Timeout)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reboots++
	b.boot++
	for id, v := range b.pending {
		if !b.staged[id] {
			b.installed[id] = v
			delete(b.pending, id)
		}
	}
	res.BootIDAfter, res.Back = fmt.Sprintf("boot-%d", b.boot), true
	return res, nil
}

type bootAgent struct {
	node   *bootNode
	closed bool
}

var _ agent.Agent = (*bootAgent)(nil)

func (a *bootAgent) Name() string { return "n" }
func (a *bootAgent) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	return &fleetup.Inventory{Hostname: fmt.Sprintf("n (boot %d)", a.node.boot)}, nil
}
func (a *bootAgent) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	a.node.mu.Lock()
	defer a.node.mu.Unlock()
	var out []fleetup.Probe
	for _, c := range comps {
		out = append(out, fleetup.Probe{ComponentID: c.ID, Applicable: true, Installed: a.node.installed[c.ID]})
	}
	return out, nil
}
func (a *bootAgent) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	a.node.mu.Lock()
	defer a.node.mu.Unlock()
	var res []fleetup.ComponentResult
	for _, it := range req.Items {
		c := it.Component
		r := fleetup.ComponentResult{ComponentID: c.ID, Version: c.Version, Action: it.Action, Phase: fleetup.PhaseInstalled, RebootNeeded: c.Reboot}
		if c.Reboot || a.node.staged[c.ID] {
			a.node.pending[c.ID] = c.Version
			r.After = a.node.installed[c.ID]
		} else {
			a.node.installed[c.ID] = c.Version
			r.After = c.Version
		}
		res = append(res, r)
	}
	return res, nil
}
func (a *bootAgent) Cancel(ctx context.Context) error { return nil }
func (a *bootAgent) Close(ctx context.Context) (*wire.CleanupReport, error) {
	a.node.mu.Lock()
	defer a.node.mu.Unlock()
	if !a.closed {
		a.closed = true
		a.node.open--
	}
	if a.node.failClose {
		return nil, errors.New("engine directory still there")
	}
	return &wire.CleanupReport{}, nil
}

func TestReboot(t *testing.T) {
	plain := &fleetup.Component{ID: "plain", Version: "2", VersionFormat: "dpkg"}
	needs := &fleetup.Component{ID: "kernel", Version: "6.1", VersionFormat: "dpkg", Reboot: true}
	tests := []struct {
		name    string
		comps   []*fleetup.Component
		reboot  RebootOptions
		setup   func(*bootNode)
		noNode  bool // the node cannot be rebooted (a BMC)
		cancel  time.Duration
		want    fleetup.NodeState
		reboots int
		wantErr string
		// wantComp is the error of the component "kernel", when it fails.
		wantComp string
	}{
		{name: "needed and allowed", comps: []*fleetup.Component{plain, needs}, reboot: RebootOptions{Enabled: true},
			want: fleetup.StateComplete, reboots: 1},
		{name: "needed, not allowed", comps: []*fleetup.Component{plain, needs}, want: fleetup.StateRebootNeeded},
		{name: "not needed", comps: []*fleetup.Component{plain}, reboot: RebootOptions{Enabled: true}, want: fleetup.StateComplete},
		{name: "always", comps: []*fleetup.Component{plain}, reboot: RebootOptions{Always: true}, want: fleetup.StateComplete, reboots: 1},
		{name: "not back in time", comps: []*fleetup.Component{needs}, reboot: RebootOptions{Enabled: true, Timeout: 50 * time.Millisecond},
			setup: func(b *bootNode) { b.noReturn = true }, want: fleetup.StateFailed, wantErr: "did not come back"},
		{name: "staged, not active after the reboot", comps: []*fleetup.Component{needs}, reboot: RebootOptions{Enabled: true},
			setup: func(b *bootNode) { b.staged["kernel"] = true }, want: fleetup.StateFailed, reboots: 1,
			wantComp: "staged but not active after the reboot: the node reports nothing installed, not 6.1"},
		{name: "cancel during the delay", comps: []*fleetup.Component{needs}, reboot: RebootOptions{Enabled: true, Delay: 10 * time.Second},
			cancel: 100 * time.Millisecond, want: fleetup.StateCancelled},
		{name: "cancel while waiting for the node", comps: []*fleetup.Component{needs}, reboot: RebootOptions{Enabled: true, Timeout: 10 * time.Second},
			setup: func(b *bootNode) { b.noReturn = true }, cancel: 100 * time.Millisecond, want: fleetup.StateCancelled},
		{name: "clean-up before the reboot not confirmed", comps: []*fleetup.Component{needs}, reboot: RebootOptions{Enabled: true},
			setup: func(b *bootNode) { b.failClose = true }, want: fleetup.StateFailed, wantErr: "not rebooted"},
		{name: "a node that cannot reboot", comps: []*fleetup.Component{needs}, reboot: RebootOptions{Enabled: true}, noNode: true,
			want: fleetup.StateRebootNeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBootNode()
			if tt.setup != nil {
				tt.setup(b)
			}
			if tt.reboot.Delay == 0 {
				tt.reboot.Delay = time.Millisecond
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			node := Node{Name: "n", Open: b.Open, Reboot: b.Reboot}
			if tt.noNode {
				node.Reboot = nil
			}
			var mu sync.Mutex
			var states []string
			res := Run(ctx, Options{Components: tt.comps, Nodes: []Node{node}, Reboot: tt.reboot, Emit: func(ev fleetup.Event) {
				if ev.Component == "" && ev.State != "" {
					mu.Lock()
					states = append(states, string(ev.State))
					mu.Unlock()
				}
			}})[0]
			if res.State != tt.want {
				t.Fatalf("state %s (%s), want %s; states %v", res.State, res.Error, tt.want, states)
			}
			if b.reboots != tt.reboots {
				t.Errorf("%d reboot(s), want %d", b.reboots, tt.reboots)
			}
			if b.open != 0 {
				t.Errorf("%d agent(s) left open", b.open)
			}
			if tt.wantErr != "" && !strings.Contains(res.Error, tt.wantErr) {
				t.Errorf("error %q, want %q", res.Error, tt.wantErr)
			}
			for _, c := range res.Components {
				if c.ComponentID == "kernel" && tt.wantComp != "" && c.Error != tt.wantComp {
					t.Errorf("kernel: error %q, want %q", c.Error, tt.wantComp)
				}
			}
			if tt.reboots > 0 && tt.want == fleetup.StateComplete {
				if res.Reboot == nil || !res.Reboot.Back || res.Reboot.BootIDAfter == res.Reboot.BootIDBefore {
					t.Errorf("reboot result %+v", res.Reboot)
				}
				if b.opens != 2 {
					t.Errorf("node opened %d times, want 2 (before and after the reboot)", b.opens)
				}
				for _, c := range res.Components {
					if c.After != c.Version {
						t.Errorf("%s: after the reboot %q, want %q", c.ComponentID, c.After, c.Version)
					}
				}
				if !strings.Contains(strings.Join(states, " "), "deploy reboot reboot") {
					t.Errorf("states %v: no reboot after the deploy", states)
				}
			}
		})
	}
}

// TestRebootThenHealth: the health command runs on the node opened again
// after its reboot.
func TestRebootThenHealth(t *testing.T) {
	b := newBootNode()
	var mu sync.Mutex
	var order []string
	node := Node{Name: "n", Open: func(ctx context.Context) (agent.Agent, error) {
		a, _ := b.Open(ctx)
		return &healthyBootAgent{bootAgent: a.(*bootAgent), order: &order, mu: &mu}, nil
	}, Reboot: func(ctx context.Context, req RebootRequest) (*RebootResult, error) {
		mu.Lock()
		order = append(order, "reboot")
		mu.Unlock()
		return b.Reboot(ctx, req)
	}}
	res := Run(context.Background(), Options{
		Components:    []*fleetup.Component{{ID: "kernel", Version: "6.1", VersionFormat: "dpkg", Reboot: true}},
		Nodes:         []Node{node},
		Reboot:        RebootOptions{Enabled: true, Delay: time.Millisecond},
		HealthCommand: "true",
	})[0]
	if res.State != fleetup.StateComplete {
		t.Fatalf("state %s (%s)", res.State, res.Error)
	}
	if got := strings.Join(order, ","); got != "reboot,health after boot 1" {
		t.Errorf("order %s, want the health command after the reboot", got)
	}
}

type healthyBootAgent struct {
	*bootAgent
	order *[]string
	mu    *sync.Mutex
}

func (a *healthyBootAgent) Health(ctx context.Context, command string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	*a.order = append(*a.order, fmt.Sprintf("health after boot %d", a.node.boot))
	return "", nil
}

// TestRebootHangBounded: a node whose Reboot never returns by itself (a
// warning or reboot command that hangs, a Rebooter that ignores
// req.Timeout) fails in state reboot once the delay, the timeout and the
// slack are over, instead of holding the run for ever.
func TestRebootHangBounded(t *testing.T) {
	old := rebootSlack
	rebootSlack = 50 * time.Millisecond
	defer func() { rebootSlack = old }()
	b := newBootNode()
	node := Node{Name: "n", Open: b.Open, Reboot: func(ctx context.Context, req RebootRequest) (*RebootResult, error) {
		<-ctx.Done() // hangs until its context ends
		return &RebootResult{BootIDBefore: "boot-0"}, ctx.Err()
	}}
	done := make(chan []NodeResult, 1)
	go func() {
		done <- Run(context.Background(), Options{
			Components: []*fleetup.Component{{ID: "kernel", Version: "6.1", VersionFormat: "dpkg", Reboot: true}},
			Nodes:      []Node{node},
			Reboot:     RebootOptions{Enabled: true, Delay: time.Millisecond, Timeout: 10 * time.Millisecond},
		})
	}()
	select {
	case res := <-done:
		r := res[0]
		if r.State != fleetup.StateFailed || r.FailedIn != fleetup.StateReboot || !strings.Contains(r.Error, ErrNotBack.Error()) {
			t.Fatalf("state %s in %s: %q; want failed in reboot, not back", r.State, r.FailedIn, r.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a node whose reboot hangs held the run")
	}
}

// swappedProbeAgent answers the probes after a reboot in reverse order.
type swappedProbeAgent struct{ *bootAgent }

func (a *swappedProbeAgent) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	out, err := a.bootAgent.Probe(ctx, comps)
	if a.node.boot > 0 {
		for l, r := 0, len(out)-1; l < r; l, r = l+1, r-1 {
			out[l], out[r] = out[r], out[l]
		}
	}
	return out, err
}

// TestRebootProbesOutOfOrder: probes after the reboot that do not answer
// for the components asked, in order, fail the node; they never confirm
// one component with another's version (here the staged firmware that did
// not activate would pass with the kernel's 1.0).
func TestRebootProbesOutOfOrder(t *testing.T) {
	b := newBootNode()
	b.installed["fw"], b.installed["kernel"] = "0.9", "0.9"
	b.staged["fw"] = true
	node := Node{Name: "n", Open: func(ctx context.Context) (agent.Agent, error) {
		a, _ := b.Open(ctx)
		return &swappedProbeAgent{a.(*bootAgent)}, nil
	}, Reboot: b.Reboot}
	res := Run(context.Background(), Options{
		Components: []*fleetup.Component{
			{ID: "fw", Version: "1.0", VersionFormat: "dpkg", Reboot: true},
			{ID: "kernel", Version: "1.0", VersionFormat: "dpkg", Reboot: true},
		},
		Nodes:  []Node{node},
		Reboot: RebootOptions{Enabled: true, Delay: time.Millisecond},
	})[0]
	if res.State != fleetup.StateFailed || res.FailedIn != fleetup.StateReboot || !strings.Contains(res.Error, `answered probe 0 for "kernel", not "fw"`) {
		t.Fatalf("state %s in %s: %q; want failed in reboot on the probes' order", res.State, res.FailedIn, res.Error)
	}
}

// TestRebootPending reboots a node an earlier run left needing a reboot,
// though this run installs nothing on it; without --reboot it is not.
func TestRebootPending(t *testing.T) {
	needs := &fleetup.Component{ID: "kernel", Version: "6.1", VersionFormat: "dpkg", Reboot: true}
	for _, enabled := range []bool{true, false} {
		b := newBootNode()
		b.installed["kernel"] = "6.1" // the earlier run installed it
		node := Node{Name: "n", Open: b.Open, Reboot: b.Reboot, RebootPending: "run X installed kernel, which need(s) a reboot, and the node was not rebooted"}
		res := Run(context.Background(), Options{Components: []*fleetup.Component{needs}, Nodes: []Node{node},
			Reboot: RebootOptions{Enabled: enabled, Delay: time.Millisecond}})[0]
		want := 0
		if enabled {
			want = 1
		}
		if res.State != fleetup.StateComplete || b.reboots != want || b.open != 0 {
			t.Errorf("reboot %v: state %s (%s), %d reboot(s), %d agent(s) open; want complete, %d reboot(s)", enabled, res.State, res.Error, b.reboots, b.open, want)
		}
	}
}

package orchestrator

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
)

// TestEndedBeforeEndEvent: Options.Ended sees every node once, worked on
// or not (failed, skipped behind its server's BMC, skipped after the
// canary), with its end state, before the event of that state.
func TestEndedBeforeEndEvent(t *testing.T) {
	open := func(a *fakeAgent) func(context.Context) (agent.Agent, error) {
		return func(context.Context) (agent.Agent, error) { return a, nil }
	}
	down := func(context.Context) (agent.Agent, error) { return nil, errors.New("connection refused") }
	var mu sync.Mutex
	ended := map[string]NodeResult{}
	var order []string
	res := Run(context.Background(), Options{
		Components: comps(),
		Canary:     1,
		Parallel:   1,
		Nodes: []Node{
			{Name: "bmc", Server: "s", Open: down},
			{Name: "host", Server: "s", Open: open(&fakeAgent{name: "host"})},
			{Name: "later", Open: open(&fakeAgent{name: "later"})},
		},
		Ended: func(r NodeResult) {
			mu.Lock()
			defer mu.Unlock()
			if _, twice := ended[r.Node]; twice {
				t.Errorf("Ended twice for %s", r.Node)
			}
			ended[r.Node] = r
			order = append(order, "ended "+r.Node)
		},
		Emit: func(ev fleetup.Event) {
			if ev.Node != "" && ev.Component == "" && ev.State.Final() {
				mu.Lock()
				order = append(order, "event "+ev.Node)
				if _, ok := ended[ev.Node]; !ok {
					t.Errorf("end event of %s (%s) before Ended", ev.Node, ev.State)
				}
				mu.Unlock()
			}
		},
	})
	if len(ended) != len(res) {
		t.Fatalf("Ended for %d nodes, want %d: %v", len(ended), len(res), order)
	}
	for _, r := range res {
		e := ended[r.Node]
		if e.State != r.State || e.Error != r.Error || e.Server != r.Server {
			t.Errorf("%s: Ended saw %s %q (server %q), result %s %q (server %q)", r.Node, e.State, e.Error, e.Server, r.State, r.Error, r.Server)
		}
	}
	want := map[string]fleetup.NodeState{"bmc": fleetup.StateFailed, "host": fleetup.StateSkipped, "later": fleetup.StateSkipped}
	for n, st := range want {
		if ended[n].State != st {
			t.Errorf("%s ended %s, want %s", n, ended[n].State, st)
		}
	}
}

package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
)

// TestConcurrentWriters has 20 goroutines add events and end nodes of one
// run at once, as a run's nodes do: none fails (no SQLITE_BUSY), and the
// events are numbered 1..n without a gap or a repeat, each call's
// consecutive.
func TestConcurrentWriters(t *testing.T) {
	db, _ := openTest(t)
	if err := db.BeginRun(ctx(t), Run{ID: "r", Kind: RunDeploy, Source: SourceCLI}); err != nil {
		t.Fatal(err)
	}
	const (
		writers = 20
		calls   = 10
		batch   = 3
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers*calls*2)
	for w := range writers {
		wg.Go(func() {
			node := fmt.Sprintf("node%02d", w)
			for c := range calls {
				evs := make([]fleetup.Event, batch)
				for i := range evs {
					evs[i] = fleetup.Event{Node: node, Message: fmt.Sprintf("%d.%d", c, i)}
				}
				if err := db.AddEvents(ctx(t), "r", evs); err != nil {
					errs <- err
				}
				if c%3 == 0 {
					if err := db.NodeEnded(ctx(t), "r", orchestrator.NodeResult{Node: node, State: fleetup.StateComplete, Components: []fleetup.ComponentResult{{ComponentID: "x"}}}); err != nil {
						errs <- err
					}
				}
				if _, err := db.Events(ctx(t), "r", 0, 10); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	evs, err := db.Events(ctx(t), "r", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != writers*calls*batch {
		t.Fatalf("%d events, want %d", len(evs), writers*calls*batch)
	}
	perNode := map[string][]string{}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		perNode[e.Event.Node] = append(perNode[e.Event.Node], e.Event.Message)
		// A call's events are consecutive.
		if i%batch != 0 && e.Event.Node != evs[i-1].Event.Node {
			t.Errorf("seq %d: a call's events were interleaved with another's", e.Seq)
		}
	}
	for node, msgs := range perNode {
		if !slices.IsSortedFunc(msgs, func(a, b string) int { return compareMsg(a, b) }) {
			t.Errorf("%s: events out of their insert order: %v", node, msgs)
		}
	}
	d, err := db.Run(ctx(t), "r")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Nodes) != writers || d.Counts["complete"] != writers {
		t.Errorf("%d nodes, counts %v", len(d.Nodes), d.Counts)
	}
}

// compareMsg orders "call.index" messages numerically.
func compareMsg(a, b string) int {
	var ac, ai, bc, bi int
	fmt.Sscanf(a, "%d.%d", &ac, &ai)
	fmt.Sscanf(b, "%d.%d", &bc, &bi)
	if ac != bc {
		return ac - bc
	}
	return ai - bi
}

// TestTwoProcesses opens the one file twice, as the CLI recording a run
// and `fleetup serve` do, and writes through both at once: the busy
// timeout makes each wait for the other.
func TestTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.BeginRun(ctx(t), Run{ID: "r", Kind: RunDeploy, Source: SourceCLI}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 10 {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Go(func() {
			for j := range 20 {
				if err := db.AddEvents(ctx(t), "r", []fleetup.Event{{Node: fmt.Sprint(i), Message: fmt.Sprint(j)}}); err != nil {
					errs <- err
				}
				if err := db.AddAudit(ctx(t), AuditEntry{Action: "x"}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	evs, err := b.Events(ctx(t), "r", 0, 0)
	if err != nil || len(evs) != 200 || evs[199].Seq != 200 {
		t.Errorf("%d events, %v", len(evs), err)
	}
}

package manager

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/store"
)

func testStore(t *testing.T) *store.DB {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "fleetup.db"), filepath.Join(dir, "store.key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestServiceRefusesBadRequests: every bad field of a request is refused
// with a RequestError naming it, and nothing is recorded.
func TestServiceRefusesBadRequests(t *testing.T) {
	db := testStore(t)
	ctx := context.Background()
	ports, err := config.Load(config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(ServiceOptions{Store: db, Ports: ports, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.AddNode(ctx, store.Node{Name: "web1", Targets: []string{"root@198.18.1.2"}})
	if err != nil {
		t.Fatal(err)
	}
	bmcOnly, err := db.AddNode(ctx, store.Node{Name: "ilo1", Targets: []string{"bmc://198.18.2.2"}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := db.AddBaseline(ctx, "examples", "../examples/baseline")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  RunRequest
		want string
	}{
		{"kind", RunRequest{Kind: "flash-everything", NodeIDs: []int64{n.ID}}, "kind"},
		{"no baseline", RunRequest{Kind: store.RunDeploy, NodeIDs: []int64{n.ID}}, "baseline_id"},
		{"unknown baseline", RunRequest{Kind: store.RunDeploy, BaselineID: 999, NodeIDs: []int64{n.ID}}, "baseline_id 999"},
		{"no nodes", RunRequest{Kind: store.RunDeploy, BaselineID: base.ID}, "no nodes"},
		{"unknown node", RunRequest{Kind: store.RunInventory, NodeIDs: []int64{424242}}, "node 424242"},
		{"unknown tag", RunRequest{Kind: store.RunInventory, Tag: "nowhere"}, `tag "nowhere"`},
		{"policy", RunRequest{Kind: store.RunDeploy, BaselineID: base.ID, NodeIDs: []int64{n.ID}, OnFailedDependency: "ignore"}, "on_failed_dependency"},
		{"max failures", RunRequest{Kind: store.RunDeploy, BaselineID: base.ID, NodeIDs: []int64{n.ID}, MaxFailures: "lots"}, "max_failures"},
		{"reboot delay", RunRequest{Kind: store.RunDeploy, BaselineID: base.ID, NodeIDs: []int64{n.ID}, Reboot: true, RebootDelay: time.Second}, "reboot_delay"},
		{"negative", RunRequest{Kind: store.RunDeploy, BaselineID: base.ID, NodeIDs: []int64{n.ID}, Parallel: -1}, "negative"},
		{"bmc without credential", RunRequest{Kind: store.RunInventory, NodeIDs: []int64{bmcOnly.ID}}, "names no user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Start(ctx, tc.req)
			var re *RequestError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want a RequestError naming %q", err, tc.want)
			}
		})
	}
	if runs, err := db.Runs(ctx, "", 0); err != nil || len(runs) != 0 {
		t.Errorf("runs recorded after refusals: %v %v", runs, err)
	}
	if err := svc.Cancel("nope"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Cancel of an unknown run = %v", err)
	}
}

// TestRecorder records a run's events in order, each node's result as it
// ends, and the end; watchers are told.
func TestRecorder(t *testing.T) {
	db := testStore(t)
	ctx := context.Background()
	told := make(chan struct{}, 100)
	rec, err := NewRecorder(ctx, db, store.Run{ID: "r1", Kind: store.RunDeploy, Source: store.SourceCLI, Targets: []string{"a", "b"}}, func() { told <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		rec.Emit(fleetup.Event{Node: "a", Message: "m" + string(rune('a'+i%26))})
	}
	rec.NodeEnded(orchestrator.NodeResult{Node: "a", State: fleetup.StateComplete})
	rec.Emit(fleetup.Event{Node: "b", Message: "last"})
	if err := rec.End(store.RunCancelled, []orchestrator.NodeResult{{Node: "b", State: fleetup.StateCancelled}}); err != nil {
		t.Fatal(err)
	}
	rec.Emit(fleetup.Event{Node: "b", Message: "after the end"}) // dropped, no panic
	evs, err := db.Events(ctx, "r1", 0, 0)
	if err != nil || len(evs) != 51 || evs[50].Event.Message != "last" {
		t.Fatalf("events: %d %v", len(evs), err)
	}
	d, err := db.Run(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != store.RunCancelled || len(d.Nodes) != 2 || d.Ended.IsZero() {
		t.Errorf("run = %+v", d)
	}
	if len(told) == 0 {
		t.Errorf("no watcher was told")
	}
}

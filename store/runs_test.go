package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/google/go-cmp/cmp"
)

func TestBeginRun(t *testing.T) {
	db, _ := openTest(t)
	good := Run{ID: "r1", Kind: RunDeploy, Source: SourceCLI, Targets: []string{"a", "b"}, Options: []byte(`{"reboot":true}`), PID: 4242, ProcStart: 1 << 63}
	tests := []struct {
		name string
		mod  func(r *Run)
		want error
	}{
		{"good", func(r *Run) {}, nil},
		{"duplicate", func(r *Run) {}, ErrExists},
		{"other", func(r *Run) { r.ID = "r2"; r.Kind = RunReview; r.Source = SourceUI; r.Targets = nil; r.Options = nil }, nil},
		{"empty id", func(r *Run) { r.ID = "" }, errInvalid},
		{"id latest", func(r *Run) { r.ID = "latest" }, errInvalid},
		{"bad kind", func(r *Run) { r.ID = "x"; r.Kind = "nuke" }, errInvalid},
		{"bad source", func(r *Run) { r.ID = "x"; r.Source = "" }, errInvalid},
		{"bad state", func(r *Run) { r.ID = "x"; r.State = "paused" }, errInvalid},
		{"options not JSON", func(r *Run) { r.ID = "x"; r.Options = []byte("{") }, errInvalid},
		{"empty target", func(r *Run) { r.ID = "x"; r.Targets = []string{""} }, errInvalid},
		{"negative pid", func(r *Run) { r.ID = "x"; r.PID = -1 }, errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.mod(&r)
			checkErr(t, db.BeginRun(ctx(t), r), tt.want)
		})
	}
	d, err := db.Run(ctx(t), "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := good
	want.State = RunRunning
	want.Started = d.Started
	want.Counts = map[string]int{}
	if diff := cmp.Diff(want, d.Run); diff != "" || d.Started.IsZero() {
		t.Errorf("Run (-begun +read):\n%s", diff)
	}
	d2, _ := db.Run(ctx(t), "r2")
	if d2.Targets == nil || d2.Options != nil {
		t.Errorf("r2 %+v", d2.Run)
	}
	_, err = db.Run(ctx(t), "nope")
	wantErr(t, err, ErrNotFound)
	if err.Error() != "run nope: not found" {
		t.Errorf("error %q", err)
	}
}

func TestRunLifecycle(t *testing.T) {
	db, clk := openTest(t)
	t0 := clk.t
	if err := db.BeginRun(ctx(t), Run{ID: "r1", Kind: RunDeploy, Source: SourceUI, Account: "alice", Targets: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	// Nodes end out of order, one twice, and one the run did not name.
	results := []orchestrator.NodeResult{
		{Node: "c", State: fleetup.StateFailed, FailedIn: fleetup.StateDeploy, Error: "boom", Components: []fleetup.ComponentResult{
			{ComponentID: "bios", Version: "2", Action: fleetup.ActionUpdate, Phase: fleetup.PhaseFailed, Error: "flash"},
		}},
		{Node: "a", State: fleetup.StateFailed, Error: "first try"},
		{Node: "extra", State: fleetup.StateSkipped},
		{Node: "a", State: fleetup.StateComplete, Duration: 3 * time.Second, Inventory: &fleetup.Inventory{Hostname: "a"}, Components: []fleetup.ComponentResult{
			{ComponentID: "bios", Version: "2", Installed: "1", Action: fleetup.ActionUpdate, Phase: fleetup.PhaseInstalled, After: "2"},
			{ComponentID: "nic", Version: "5", Action: fleetup.ActionUpToDate, RebootNeeded: true},
		}},
	}
	for _, r := range results {
		clk.add(time.Second)
		if err := db.NodeEnded(ctx(t), "r1", r); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, db.NodeEnded(ctx(t), "nope", results[0]), ErrNotFound)
	checkErr(t, db.NodeEnded(ctx(t), "r1", orchestrator.NodeResult{State: fleetup.StateComplete}), errInvalid)
	checkErr(t, db.NodeEnded(ctx(t), "r1", orchestrator.NodeResult{Node: "a"}), errInvalid)

	d, err := db.Run(ctx(t), "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := []orchestrator.NodeResult{results[3], results[0], results[2]}
	if diff := cmp.Diff(want, d.Nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"complete": 1, "failed": 1, "skipped": 1}, d.Counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	// Component rows, replaced with their node's.
	var rows []string
	r, err := db.sql.Query(`SELECT node, component_id, phase, reboot_needed FROM run_components WHERE run_id = 'r1' ORDER BY node, pos`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var node, comp, phase string
		var reboot int
		r.Scan(&node, &comp, &phase, &reboot)
		rows = append(rows, fmt.Sprintf("%s/%s/%s/%d", node, comp, phase, reboot))
	}
	r.Close()
	if diff := cmp.Diff([]string{"a/bios/installed/0", "a/nic//1", "c/bios/failed/0"}, rows); diff != "" {
		t.Errorf("component rows (-want +got):\n%s", diff)
	}
	// The inventory of a's result was recorded, with the run's id.
	inv, err := db.LatestInventory(ctx(t), "a")
	if err != nil || inv.RunID != "r1" || inv.Inv.Hostname != "a" {
		t.Errorf("inventory %+v, %v", inv, err)
	}

	// End.
	end := t0.Add(time.Hour)
	checkErr(t, db.EndRun(ctx(t), "r1", RunRunning, end), errInvalid)
	checkErr(t, db.EndRun(ctx(t), "r1", "done", end), errInvalid)
	wantErr(t, db.EndRun(ctx(t), "nope", RunEnded, end), ErrNotFound)
	wantErr(t, db.EndRun(ctx(t), "r1", RunEnded, end), nil)
	d, _ = db.Run(ctx(t), "r1")
	if d.State != RunEnded || !d.Ended.Equal(end) {
		t.Errorf("ended run %+v", d.Run)
	}
}

func TestRunsAndLatest(t *testing.T) {
	db, clk := openTest(t)
	_, err := db.Run(ctx(t), "latest")
	wantErr(t, err, ErrNotFound)
	t0 := clk.t
	for i, r := range []Run{
		{ID: "d1", Kind: RunDeploy, Started: t0},
		{ID: "i1", Kind: RunInventory, Started: t0.Add(2 * time.Minute)},
		{ID: "d2", Kind: RunDeploy, Started: t0.Add(3 * time.Minute)},
		{ID: "d0", Kind: RunDeploy, Started: t0.Add(time.Minute)}, // begun after, started before
	} {
		r.Source = SourceCLI
		if err := db.BeginRun(ctx(t), r); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	db.NodeEnded(ctx(t), "d2", orchestrator.NodeResult{Node: "a", State: fleetup.StateComplete})
	db.NodeEnded(ctx(t), "d2", orchestrator.NodeResult{Node: "b", State: fleetup.StateComplete})
	db.NodeEnded(ctx(t), "d2", orchestrator.NodeResult{Node: "c", State: fleetup.StateRebootNeeded})
	db.NodeEnded(ctx(t), "d1", orchestrator.NodeResult{Node: "a", State: fleetup.StateFailed})

	latest, err := db.Run(ctx(t), "latest")
	if err != nil || latest.ID != "d2" {
		t.Fatalf("latest = %v, %v", latest, err)
	}
	tests := []struct {
		name  string
		kind  string
		limit int
		want  []string
		err   error
	}{
		{"all", "", 0, []string{"d2", "i1", "d0", "d1"}, nil},
		{"deploys", RunDeploy, 0, []string{"d2", "d0", "d1"}, nil},
		{"two deploys", RunDeploy, 2, []string{"d2", "d0"}, nil},
		{"reviews", RunReview, 0, nil, nil},
		{"bad kind", "nuke", 0, nil, errInvalid},
		{"negative limit", "", -5, nil, errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := db.Runs(ctx(t), tt.kind, tt.limit)
			checkErr(t, err, tt.err)
			var ids []string
			for _, r := range runs {
				ids = append(ids, r.ID)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	runs, _ := db.Runs(ctx(t), "", 0)
	if diff := cmp.Diff(map[string]int{"complete": 2, "reboot-needed": 1}, runs[0].Counts); diff != "" {
		t.Errorf("d2 counts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"failed": 1}, runs[3].Counts); diff != "" {
		t.Errorf("d1 counts (-want +got):\n%s", diff)
	}
	if len(runs[1].Counts) != 0 {
		t.Errorf("i1 counts %v", runs[1].Counts)
	}
}

func TestEvents(t *testing.T) {
	db, _ := openTest(t)
	if err := db.BeginRun(ctx(t), Run{ID: "r1", Kind: RunDeploy, Source: SourceCLI}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 2, 6, 0, 0, 123456789, time.UTC)
	var evs []fleetup.Event
	for i := range 5 {
		evs = append(evs, fleetup.Event{Time: t0.Add(time.Duration(i) * time.Second), Node: "a", State: fleetup.StateDeploy, Component: "bios", Phase: fleetup.PhaseDownload, Bytes: int64(i), Total: 4, Message: fmt.Sprint("event ", i)})
	}
	wantErr(t, db.AddEvents(ctx(t), "r1", evs[:2]), nil)
	wantErr(t, db.AddEvents(ctx(t), "r1", nil), nil)
	wantErr(t, db.AddEvents(ctx(t), "r1", evs[2:]), nil)
	wantErr(t, db.AddEvents(ctx(t), "nope", evs), ErrNotFound)
	checkErr(t, db.AddEvents(ctx(t), "r1", make([]fleetup.Event, maxEvents+1)), errInvalid)

	all, err := db.Events(ctx(t), "r1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range all {
		if e.Seq != int64(i+1) || e.RunID != "r1" {
			t.Errorf("event %d: seq %d run %s", i, e.Seq, e.RunID)
		}
	}
	var got []fleetup.Event
	for _, e := range all {
		got = append(got, e.Event)
	}
	if diff := cmp.Diff(evs, got); diff != "" {
		t.Errorf("events (-added +read):\n%s", diff)
	}
	tests := []struct {
		name  string
		run   string
		after int64
		limit int
		want  []int64
		err   error
	}{
		{"after 2", "r1", 2, 0, []int64{3, 4, 5}, nil},
		{"after 1, 2 of them", "r1", 1, 2, []int64{2, 3}, nil},
		{"after the last", "r1", 5, 0, nil, nil},
		{"unknown run", "nope", 0, 0, nil, ErrNotFound},
		{"negative limit", "r1", 0, -1, nil, errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := db.Events(ctx(t), tt.run, tt.after, tt.limit)
			checkErr(t, err, tt.err)
			var seqs []int64
			for _, e := range evs {
				seqs = append(seqs, e.Seq)
			}
			if diff := cmp.Diff(tt.want, seqs); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestMarkInterrupted(t *testing.T) {
	db, clk := openTest(t)
	for _, r := range []Run{
		{ID: "alive", PID: 10, ProcStart: 100},
		{ID: "dead", PID: 11, ProcStart: 200},
		{ID: "reused-pid", PID: 10, ProcStart: 999},
		{ID: "done", PID: 12, ProcStart: 300},
	} {
		r.Kind, r.Source = RunDeploy, SourceCLI
		if err := db.BeginRun(ctx(t), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.EndRun(ctx(t), "done", RunEnded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	alive := func(pid int, start uint64) bool { return pid == 10 && start == 100 }
	if _, err := db.MarkInterrupted(ctx(t), nil); err == nil {
		t.Error("nil liveness check accepted")
	}
	got, err := db.MarkInterrupted(ctx(t), alive)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
		if r.State != RunInterrupted || !r.Ended.Equal(clk.t) {
			t.Errorf("returned %+v", r)
		}
	}
	if diff := cmp.Diff([]string{"dead", "reused-pid"}, ids); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for id, state := range map[string]string{"alive": RunRunning, "dead": RunInterrupted, "reused-pid": RunInterrupted, "done": RunEnded} {
		d, err := db.Run(ctx(t), id)
		if err != nil || d.State != state {
			t.Errorf("run %s: %v, %v; want %s", id, d, err, state)
		}
	}
	// Twice: nothing more.
	if got, err := db.MarkInterrupted(ctx(t), alive); err != nil || len(got) != 0 {
		t.Errorf("second time: %v, %v", got, err)
	}
}

func TestCancelledContext(t *testing.T) {
	db, _ := openTest(t)
	c, cancel := context.WithCancel(t.Context())
	cancel()
	if err := db.BeginRun(c, Run{ID: "r", Kind: RunDeploy, Source: SourceCLI}); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v", err)
	}
}

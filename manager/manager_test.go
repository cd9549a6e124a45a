package manager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/wire"
)

// TestRunJournalFinish: at the end of a run every node that had an engine
// is recorded cleaned or, where its clean-up was not confirmed,
// cleanup-failed (with what the journal knew of its engine); the run
// stays in the journal for `fleetup cleanup` while a node is not clean.
func TestRunJournalFinish(t *testing.T) {
	dir := t.TempDir()
	jr, run := beginRun(t, dir)
	for _, n := range []string{"clean", "dirty"} {
		if err := run.Record(runstate.NodeRecord{Node: n, State: runstate.StatePlaced, EngineDir: "/tmp/fleetup." + n}); err != nil {
			t.Fatal(err)
		}
	}
	rj := &runJournal{run: run}
	err := rj.finish([]orchestrator.NodeResult{
		{Node: "clean", Cleanup: &wire.CleanupReport{}},
		{Node: "dirty", Cleanup: &wire.CleanupReport{}, CleanupError: "engine directory still there"},
		{Node: "unreached"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rj.finish(nil); err != nil {
		t.Errorf("second finish: %v", err)
	}
	runs, err := jr.Pending()
	if err != nil || len(runs) != 1 {
		t.Fatalf("Pending: %+v, %v", runs, err)
	}
	got := map[string]runstate.NodeRecord{}
	for _, n := range runs[0].Nodes {
		got[n.Node] = n
	}
	if !runs[0].Ended || len(got) != 2 || got["clean"].State != runstate.StateCleaned ||
		got["dirty"].State != runstate.StateCleanupFailed || got["dirty"].EngineDir != "/tmp/fleetup.dirty" {
		t.Errorf("journal after the run: %+v", runs[0])
	}
	if (*runJournal)(nil).finish(nil) != nil {
		t.Error("nil runJournal")
	}

	// A run whose every node was cleaned leaves the journal.
	run2, err := jr.Begin("run2")
	if err != nil {
		t.Fatal(err)
	}
	run2.Record(runstate.NodeRecord{Node: "a", State: runstate.StatePlaced})
	if err := (&runJournal{run: run2}).finish([]orchestrator.NodeResult{{Node: "a", Cleanup: &wire.CleanupReport{}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run2.json")); !os.IsNotExist(err) {
		t.Errorf("run2's file: %v, want it gone", err)
	}
}

// TestRunJournalFinishErrors: what the journal cannot record is returned,
// naming the node and the file, never dropped.
func TestRunJournalFinishErrors(t *testing.T) {
	dir := t.TempDir()
	_, run := beginRun(t, dir)
	file := filepath.Join(dir, "run1.json")
	if err := os.WriteFile(file, []byte("{garbled"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := (&runJournal{run: run}).finish([]orchestrator.NodeResult{{Node: "dirty", Cleanup: &wire.CleanupReport{}, CleanupError: "x"}})
	for _, want := range []string{"node dirty (cleanup-failed)", file} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("finish error %v, want it to name %q", err, want)
		}
	}
}

// beginRun opens a journal in dir and begins run1 in it.
func beginRun(t *testing.T, dir string) (*runstate.Journal, *runstate.Run) {
	t.Helper()
	jr, err := runstate.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	run, err := jr.Begin("run1")
	if err != nil {
		t.Fatal(err)
	}
	return jr, run
}

package runstate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func sampleRecord(id string) RunRecord {
	return RunRecord{
		RunID: id,
		Options: RunOptions{
			Baseline:   "/srv/baseline",
			Components: []ComponentRef{{ID: "org.example.fw", Version: "1.2.5", File: "fw.cab", SHA256: strings.Repeat("ab", 32)}},
			Targets: []RunTarget{
				{Target: "bmc://admin@198.18.2.2:443", Server: "bmc://admin@198.18.2.2:443"},
				{Target: "root@198.18.1.2:22", Server: "bmc://admin@198.18.2.2:443"},
				{Target: "root@[fd42::3]:22"},
			},
			Downgrade:     true,
			MaxFailures:   "10%",
			HealthCommand: "systemctl is-system-running",
			HealthTimeout: time.Minute,
			Parallel:      4,
			FwupdPlugins:  []string{"test"},
		},
	}
}

func openHistory(t *testing.T) *History {
	t.Helper()
	h, err := OpenHistory(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var ignoreRecordTimes = cmpopts.IgnoreFields(RunRecord{}, "Started", "EndedAt")

func TestHistoryRecordsEachNodeAsItEnds(t *testing.T) {
	h := openHistory(t)
	r, err := h.Begin(sampleRecord("run-1"))
	if err != nil {
		t.Fatal(err)
	}
	ok := NodeOutcome{Node: "root@[fd42::3]:22", State: OutcomeComplete, Components: []ComponentOutcome{{ID: "org.example.fw", Version: "1.2.5", Action: "update", Phase: "installed", Installed: "1.2.2", After: "1.2.5"}}}
	if err := r.NodeEnded(ok); err != nil {
		t.Fatal(err)
	}
	// A second reader, as a resume after a kill would be: the node is
	// there before the run ends.
	got, err := h.Load("run-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Ended {
		t.Error("record ended before End")
	}
	if o, found := got.Outcome(ok.Node); !found || !o.Done() || o.Time.IsZero() {
		t.Errorf("outcome of %s: %+v (found %v), want done with a time", ok.Node, o, found)
	}
	if _, found := got.Outcome("root@198.18.1.2:22"); found {
		t.Error("a node that did not end has an outcome")
	}
	if l := got.Liveness(); !l.Alive {
		t.Errorf("own run taken for dead: %s", l)
	}
	failed := NodeOutcome{Node: "root@198.18.1.2:22", State: OutcomeFailed, FailedIn: "deploy", Error: "deploy: 1 component(s) failed"}
	if err := r.NodeEnded(failed); err != nil {
		t.Fatal(err)
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	got, err = h.Load(Latest)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleRecord("run-1")
	want.Version, want.PID, want.ProcStart, want.Ended = historyVersion, Self().PID, Self().Start, true
	want.Nodes = []NodeOutcome{ok, failed}
	if d := cmp.Diff(want, *got, ignoreRecordTimes, cmpopts.IgnoreFields(NodeOutcome{}, "Time")); d != "" {
		t.Errorf("record (-want +got):\n%s", d)
	}
	if l := got.Liveness(); l.Alive {
		t.Errorf("ended run alive: %s", l)
	}
	fi, err := os.Stat(filepath.Join(h.Dir(), "run-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if hasModes && fi.Mode().Perm() != 0o600 {
		t.Errorf("record mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestHistoryLoad(t *testing.T) {
	h := openHistory(t)
	if _, err := h.Load(Latest); !errors.Is(err, ErrRunNotRecorded) {
		t.Errorf("latest of an empty history: %v, want ErrRunNotRecorded", err)
	}
	for _, id := range []string{"a-first", "b-second"} {
		if _, err := h.Begin(sampleRecord(id)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.Begin(sampleRecord("a-first")); err == nil || !strings.Contains(err.Error(), "already recorded") {
		t.Errorf("second Begin of a run: %v", err)
	}
	if rec, err := h.Load(Latest); err != nil || rec.RunID != "b-second" {
		t.Errorf("latest: %v %v, want b-second", rec, err)
	}
	if _, err := h.Load("nope"); !errors.Is(err, ErrRunNotRecorded) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown run: %v", err)
	}
	if _, err := h.Load("../x"); err == nil {
		t.Error("a path as run id accepted")
	}
	// A corrupt file is named, and makes "latest" undecidable.
	bad := filepath.Join(h.Dir(), "c-bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load(Latest); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("latest with a corrupt file: %v, want an error naming it", err)
	}
	if _, err := h.Load("c-bad"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("corrupt run: %v, want an error naming the file", err)
	}
	list, err := h.List()
	if len(list) != 2 || err == nil {
		t.Errorf("list: %d records, error %v; want 2 and an error", len(list), err)
	}
	// The journal in the same state directory does not see the history.
	j := open(t, filepath.Dir(h.Dir()))
	if runs, err := j.Pending(); err != nil || len(runs) != 0 {
		t.Errorf("journal sees %v, %v", runs, err)
	}
}

func TestHistoryDeadManager(t *testing.T) {
	h := openHistory(t)
	h.self = func() Owner { return Owner{PID: deadPID(t)} }
	if _, err := h.Begin(sampleRecord("killed")); err != nil {
		t.Fatal(err)
	}
	rec, err := h.Load("killed")
	if err != nil {
		t.Fatal(err)
	}
	if l := rec.Liveness(); l.Alive {
		t.Errorf("run of a dead manager alive: %s", l)
	}
}

func TestHistoryRefusesBadRecords(t *testing.T) {
	h := openHistory(t)
	tests := []struct {
		name string
		edit func(*RunRecord)
		want string
	}{
		{"relative baseline", func(r *RunRecord) { r.Options.Baseline = "baseline" }, "absolute"},
		{"component without sha", func(r *RunRecord) { r.Options.Components[0].SHA256 = "" }, "sha256"},
		{"target twice", func(r *RunRecord) { r.Options.Targets = append(r.Options.Targets, r.Options.Targets[0]) }, "twice"},
		{"outcome of no target", func(r *RunRecord) { r.Nodes = []NodeOutcome{{Node: "x", State: OutcomeComplete}} }, "not a target"},
		{"unknown state", func(r *RunRecord) { r.Nodes = []NodeOutcome{{Node: "root@[fd42::3]:22", State: "deploy"}} }, "unknown end state"},
		{"resumes itself", func(r *RunRecord) { r.Resumes = r.RunID }, "itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := sampleRecord("r-" + strings.ReplaceAll(tt.name, " ", "-"))
			tt.edit(&rec)
			if _, err := h.Begin(rec); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Begin: %v, want an error with %q", err, tt.want)
			}
		})
	}
	r, err := h.Begin(sampleRecord("ok"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.NodeEnded(NodeOutcome{Node: "elsewhere", State: OutcomeComplete}); err == nil {
		t.Error("outcome of a node not in the run accepted")
	}
	if rec, err := h.Load("ok"); err != nil || len(rec.Nodes) != 0 {
		t.Errorf("a refused outcome changed the record: %v %v", rec, err)
	}
}

func TestParseRunRecord(t *testing.T) {
	good := `{"version":1,"run_id":"r1","pid":42,"started":"2026-12-01T10:00:00Z","options":{"baseline":"/b","components":[],"targets":[{"target":"root@h:22"}]},"nodes":[{"node":"root@h:22","state":"complete","time":"2026-12-01T10:01:00Z"}]}`
	if _, err := ParseRunRecord([]byte(good)); err != nil {
		t.Fatalf("good record: %v", err)
	}
	tests := []struct{ name, data, want string }{
		{"version", strings.Replace(good, `"version":1`, `"version":2`, 1), "version"},
		{"unknown field", strings.Replace(good, `"pid":42`, `"pid":42,"password":"x"`, 1), "unknown field"},
		{"trailing", good + "{}", "after the value"},
		{"no pid", strings.Replace(good, `"pid":42`, `"pid":0`, 1), "pid"},
		{"no start", strings.Replace(good, `"started":"2026-12-01T10:00:00Z",`, "", 1), "start"},
		{"bad id", strings.Replace(good, `"run_id":"r1"`, `"run_id":"../r1"`, 1), "run id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseRunRecord([]byte(tt.data)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func FuzzParseRunRecord(f *testing.F) {
	rec := sampleRecord("fuzz-1")
	rec.Version, rec.PID, rec.Started = historyVersion, 7, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	rec.Nodes = []NodeOutcome{{Node: "root@198.18.1.2:22", State: OutcomeFailed, FailedIn: "deploy", Error: "x", FromRun: "fuzz-0"}}
	data, err := marshal(&rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ParseRunRecord(data)
		if err != nil {
			return
		}
		// What parses is valid, and survives a write and a read.
		if err := rec.check(); err != nil {
			t.Fatalf("parsed record fails its check: %v", err)
		}
		out, err := marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRunRecord(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if d := cmp.Diff(rec, again); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

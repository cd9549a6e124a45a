package runstate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashWriterEnv); dir != "" {
		crashWriter(dir) // never returns: the test kills it
	}
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, dir string) *Journal {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func begin(t *testing.T, j *Journal, id string) *Run {
	t.Helper()
	r, err := j.Begin(id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func record(t *testing.T, r *Run, node, state string) {
	t.Helper()
	if err := r.Record(NodeRecord{Node: node, State: state, EngineDir: "/tmp/fleetup-" + r.ID(), EnginePID: 4242, EnginePort: 62286, FirewallTag: "fleetup-" + r.ID()}); err != nil {
		t.Fatal(err)
	}
}

// deadPID returns the pid of a process that has exited (this test
// binary, running no test), on every platform.
func deadPID(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// hasModes is false on Windows, which has no Unix file modes.
const hasModes = runtime.GOOS != "windows"

var ignoreTimes = cmpopts.IgnoreFields(NodeRecord{}, "Time")

func TestCrashLeavesPendingRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	self := Self()
	tests := []struct {
		name      string
		owner     Owner
		wantAlive bool
	}{
		{"manager still running", self, true},
		{"manager dead", Owner{PID: deadPID(t), Start: 12345}, false},
		{"pid reused by a later process", Owner{PID: self.PID, Start: self.Start + 1}, false},
		{"no start time recorded, pid exists", Owner{PID: self.PID}, true},
		{"no start time recorded, pid gone", Owner{PID: deadPID(t)}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("crash-%d", i)
			j := open(t, dir)
			j.self = func() Owner { return tt.owner }
			r := begin(t, j, id)
			record(t, r, "root@[fd42:5e:0:1::2]:22", StatePlaced)
			record(t, r, "root@198.18.2.2:22", StatePlaced)
			record(t, r, "root@198.18.2.2:22", StateCleaned) // latest wins
			record(t, r, "node3", StateCleanupFailed)
			// The manager dies here: no End, the Journal is dropped.

			j2 := open(t, dir)
			runs, err := j2.Pending()
			if err != nil {
				t.Fatal(err)
			}
			var got *RunState
			for i := range runs {
				if runs[i].RunID == id {
					got = &runs[i]
				}
			}
			if got == nil {
				t.Fatalf("run %s not pending: %+v", id, runs)
			}
			if got.Alive != tt.wantAlive || got.Ended || got.PID != tt.owner.PID {
				t.Errorf("run: alive %v ended %v pid %d; want alive %v, not ended, pid %d", got.Alive, got.Ended, got.PID, tt.wantAlive, tt.owner.PID)
			}
			if got.Liveness != tt.owner.Check().Reason || got.Liveness == "" {
				t.Errorf("run's liveness %q, want Owner.Check's reason %q", got.Liveness, tt.owner.Check().Reason)
			}
			want := []NodeRecord{
				{RunID: id, Node: "node3", State: StateCleanupFailed, EngineDir: "/tmp/fleetup-" + id, EnginePID: 4242, EnginePort: 62286, FirewallTag: "fleetup-" + id},
				{RunID: id, Node: "root@198.18.2.2:22", State: StateCleaned, EngineDir: "/tmp/fleetup-" + id, EnginePID: 4242, EnginePort: 62286, FirewallTag: "fleetup-" + id},
				{RunID: id, Node: "root@[fd42:5e:0:1::2]:22", State: StatePlaced, EngineDir: "/tmp/fleetup-" + id, EnginePID: 4242, EnginePort: 62286, FirewallTag: "fleetup-" + id},
			}
			if diff := cmp.Diff(want, got.Nodes, ignoreTimes); diff != "" {
				t.Errorf("nodes (-want +got):\n%s", diff)
			}
			// ForNode offers only what dead managers left, not cleaned.
			recs, err := j2.ForNode("root@[fd42:5e:0:1::2]:22")
			if err != nil {
				t.Fatal(err)
			}
			mine := 0
			for _, rec := range recs {
				if rec.RunID == id {
					mine++
				}
			}
			if wantN := map[bool]int{true: 0, false: 1}[tt.wantAlive]; mine != wantN {
				t.Errorf("ForNode: %d records of run %s, want %d", mine, id, wantN)
			}
			if recs, _ := j2.ForNode("root@198.18.2.2:22"); len(recs) != 0 {
				t.Errorf("ForNode of a cleaned node: %+v", recs)
			}

			// Cleanup of the dead run removes it once every node is clean.
			for _, n := range []string{"node3", "root@[fd42:5e:0:1::2]:22"} {
				if err := j2.MarkCleaned(id, n); err != nil {
					t.Fatal(err)
				}
			}
			_, err = os.Stat(filepath.Join(dir, id+".json"))
			if gone := errors.Is(err, os.ErrNotExist); gone == tt.wantAlive {
				t.Errorf("after cleanup: run file gone = %v, want %v (a live manager keeps its run)", gone, !tt.wantAlive)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	r := begin(t, j, "run-1")
	if _, err := j.Begin("run-1"); err == nil || !strings.Contains(err.Error(), "already in journal") {
		t.Errorf("second Begin: %v", err)
	}
	record(t, r, "a", StatePlaced)
	record(t, r, "b", StatePlaced)
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if err := r.Record(NodeRecord{Node: "c", State: StatePlaced}); err == nil || !strings.Contains(err.Error(), "has ended") {
		t.Errorf("Record after End: %v", err)
	}
	runs, err := j.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !runs[0].Ended || runs[0].EndedAt.IsZero() || !runs[0].Alive {
		t.Fatalf("ended run with dirty nodes: %+v", runs)
	}
	if err := j.MarkCleaned("run-1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkCleaned("run-1", "zzz"); err == nil || !strings.Contains(err.Error(), "node zzz is not in run run-1") {
		t.Errorf("MarkCleaned of an unknown node: %v", err)
	}
	if err := j.MarkCleaned("run-1", "b"); err != nil {
		t.Fatal(err)
	}
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("files left after every node was cleaned: %q", left)
	}
	if err := j.MarkCleaned("run-1", "b"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("MarkCleaned of a removed run: %v, want ErrUnknownRun", err)
	}

	// A run whose nodes were all cleaned by itself disappears at End.
	r2 := begin(t, j, "run-2")
	record(t, r2, "a", StatePlaced)
	record(t, r2, "a", StateCleaned)
	if err := r2.End(); err != nil {
		t.Fatal(err)
	}
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("files left after a clean End: %q", left)
	}

	bad := []struct {
		name string
		err  error
		want string
	}{
		{"bad run id", second(j.Begin("../etc/passwd")), `run id "../etc/passwd"`},
		{"empty run id", second(j.Begin("")), "empty run id"},
		{"hidden run id", second(j.Begin(".x")), `run id ".x"`},
		{"record without node", begin(t, j, "run-3").Record(NodeRecord{State: StatePlaced}), "record without a node"},
		{"unknown state", (&Run{j: j, id: "run-3"}).Record(NodeRecord{Node: "a", State: "gone"}), `unknown state "gone"`},
		{"record to unknown run", (&Run{j: j, id: "nope"}).Record(NodeRecord{Node: "a", State: StatePlaced}), "run not in journal"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", tt.err, tt.want)
			}
		})
	}
}

// TestSetState: a node whose clean-up could not be confirmed keeps what
// its record says of the engine, and keeps the run in the journal after
// End, for `fleetup cleanup`.
func TestSetState(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	j.self = func() Owner { return Owner{PID: deadPID(t), Start: 1} } // the manager then dies
	r := begin(t, j, "r1")
	record(t, r, "a", StatePlaced)
	record(t, r, "b", StatePlaced)
	if err := r.SetState("a", StateCleanupFailed); err != nil {
		t.Fatal(err)
	}
	if err := r.SetState("b", StateCleaned); err != nil {
		t.Fatal(err)
	}
	if err := r.SetState("c", StateCleanupFailed); err != nil {
		t.Fatal(err)
	}
	if err := r.SetState("a", "gone"); err == nil {
		t.Error("unknown state accepted")
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if err := r.SetState("a", StateCleaned); err == nil || !strings.Contains(err.Error(), "has ended") {
		t.Errorf("SetState after End: %v", err)
	}
	recs, err := j.ForNode("a")
	if err != nil {
		t.Fatal(err)
	}
	want := []NodeRecord{{RunID: "r1", Node: "a", State: StateCleanupFailed, EngineDir: "/tmp/fleetup-r1", EnginePID: 4242, EnginePort: 62286, FirewallTag: "fleetup-r1"}}
	if diff := cmp.Diff(want, recs, ignoreTimes); diff != "" {
		t.Errorf("ForNode (-want +got):\n%s", diff)
	}
	if recs, _ := j.ForNode("c"); len(recs) != 1 || recs[0].State != StateCleanupFailed {
		t.Errorf("ForNode of a node recorded by SetState alone: %+v", recs)
	}
	if recs, _ := j.ForNode("b"); len(recs) != 0 {
		t.Errorf("ForNode of a cleaned node: %+v", recs)
	}
}

func second[T any](_ T, err error) error { return err }

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestConcurrentWriters writes one run from two Journals at once, as the
// manager and a `fleetup cleanup` process would: the lock file serializes
// them, so no update is lost, and no partial or temporary file remains.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	j1, j2 := open(t, dir), open(t, dir)
	r1 := begin(t, j1, "shared")
	r2 := &Run{j: j2, id: "shared"} // the same run seen by another "process"
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for w, r := range []*Run{r1, r1, r2, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := r.Record(NodeRecord{Node: fmt.Sprintf("w%d-n%02d", w, i), State: StatePlaced}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	runs, err := j2.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || len(runs[0].Nodes) != 4*n {
		t.Fatalf("want 1 run with %d nodes, got %d runs, %d nodes", 4*n, len(runs), len(runs[0].Nodes))
	}
	names := listDir(t, dir)
	if diff := cmp.Diff([]string{"shared.json", "shared.lock"}, names); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(filepath.Join(dir, "shared.json"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 && hasModes {
		t.Errorf("run file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	open(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 && hasModes {
		t.Errorf("journal dir mode %v, want 0700", fi.Mode().Perm())
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	if _, err := Open(file); err == nil {
		t.Error("Open of a regular file succeeded")
	}
	// A stale temporary file of a crashed writer is removed, a fresh one kept.
	stale := filepath.Join(dir, ".x.json.tmp-1")
	fresh := filepath.Join(dir, ".y.json.tmp-2")
	os.WriteFile(stale, []byte("{"), 0o600)
	os.WriteFile(fresh, []byte("{"), 0o600)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	j := open(t, dir)
	if diff := cmp.Diff([]string{".y.json.tmp-2"}, listDir(t, dir)); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	if runs, err := j.Pending(); err != nil || len(runs) != 0 {
		t.Errorf("Pending with only a temporary file: %v, %v", runs, err)
	}
}

func TestCorruptFileIsReported(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	r := begin(t, j, "good")
	record(t, r, "n1", StatePlaced)
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":1,"run_id":"bad","pid":1,"sta`), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.json")
	good, _ := os.ReadFile(filepath.Join(dir, "good.json"))
	os.WriteFile(other, good, 0o600)

	runs, err := j.Pending()
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Pending error %v, want it to name %s as corrupt", err, bad)
	}
	if err == nil || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), `holds run "good"`) {
		t.Errorf("Pending error %v, want it to name %s as holding another run", err, other)
	}
	if len(runs) != 1 || runs[0].RunID != "good" {
		t.Errorf("readable runs: %+v", runs)
	}
	if _, err := j.ForNode("n1"); err == nil {
		t.Error("ForNode hides the corrupt file")
	}
	if err := j.MarkCleaned("bad", "n1"); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("MarkCleaned of a corrupt run: %v", err)
	}
}

func TestParseRun(t *testing.T) {
	const head = `"version":1,"run_id":"r1","pid":10,"started":"2025-01-01T00:00:00Z"`
	tests := []struct {
		name string
		in   string
		want string // error substring; "" for success
	}{
		{"minimal", `{` + head + `}`, ""},
		{"with nodes", `{` + head + `,"nodes":[{"node":"a","state":"placed","time":"2025-01-01T00:00:00Z"}]}`, ""},
		{"empty", ``, "corrupt"},
		{"truncated", `{` + head, "corrupt"},
		{"trailing data", `{` + head + `} {}`, "data after the value"},
		{"trailing garbage", `{` + head + `}x`, "data after the value"},
		{"trailing brace", `{` + head + `}}`, "data after the value"},
		{"unknown field", `{` + head + `,"extra":1}`, "corrupt"},
		{"future version", `{"version":2,"run_id":"r1","pid":10,"started":"2025-01-01T00:00:00Z"}`, "unsupported version 2"},
		{"bad run id", `{"version":1,"run_id":"../x","pid":10,"started":"2025-01-01T00:00:00Z"}`, `run id "../x"`},
		{"no pid", `{"version":1,"run_id":"r1","started":"2025-01-01T00:00:00Z"}`, "manager pid 0"},
		{"no start", `{"version":1,"run_id":"r1","pid":3}`, "no start time"},
		{"node without name", `{` + head + `,"nodes":[{"state":"placed"}]}`, "node record 1 has no node"},
		{"duplicate node", `{` + head + `,"nodes":[{"node":"a","state":"placed"},{"node":"a","state":"cleaned"}]}`, "node a recorded twice"},
		{"bad state", `{` + head + `,"nodes":[{"node":"a","state":"weird"}]}`, `unknown state "weird"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRun([]byte(tt.in))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("FLEETUP_STATE_DIR", "/srv/fleetup-state")
	if got := DefaultDir(); got != "/srv/fleetup-state" {
		t.Errorf("with FLEETUP_STATE_DIR: %q", got)
	}
	t.Setenv("FLEETUP_STATE_DIR", "")
	if runtime.GOOS == "windows" {
		t.Setenv("LOCALAPPDATA", `C:\Users\u\AppData\Local`)
		if got := DefaultDir(); got != `C:\Users\u\AppData\Local\fleetup` {
			t.Errorf("DefaultDir() = %q", got)
		}
		return
	}
	t.Setenv("XDG_STATE_HOME", "/home/u/.state")
	want := "/home/u/.state/fleetup"
	if os.Geteuid() == 0 {
		want = "/var/lib/fleetup"
	}
	if got := DefaultDir(); got != want {
		t.Errorf("DefaultDir() = %q, want %q", got, want)
	}
}

func FuzzParseRun(f *testing.F) {
	f.Add([]byte(`{"version":1,"run_id":"r1","pid":10,"started":"2025-01-01T00:00:00Z","nodes":[{"node":"a","state":"placed"}]}`))
	f.Add([]byte(`{"version":1,"run_id":"r1","pid":10,"started":"2025-01-01T00:00:00Z","ended":true,"ended_at":"2025-01-01T01:00:00Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := parseRun(data)
		if err != nil {
			return
		}
		if ValidRunID(rf.RunID) != nil || rf.PID <= 0 {
			t.Fatalf("accepted an invalid run: %+v", rf)
		}
		for _, n := range rf.Nodes {
			if n.Node == "" || !validState(n.State) {
				t.Fatalf("accepted an invalid node: %+v", n)
			}
		}
	})
}

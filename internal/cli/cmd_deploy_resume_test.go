package cli

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/baseline"
	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/runstate"
)

// recordRun writes a run record into the history of stateDir: a run of
// the example baseline on targets, each ended complete; edit changes it
// before it is written. The run ends unless live.
func recordRun(t *testing.T, stateDir, id string, targets []string, live bool, edit func(*runstate.RunRecord)) {
	t.Helper()
	dir, err := filepath.Abs("../../examples/baseline")
	if err != nil {
		t.Fatal(err)
	}
	b, err := baseline.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := runstate.RunRecord{RunID: id, Options: runstate.RunOptions{Baseline: dir, Components: manager.ComponentRefs(b.Components), Parallel: 2, Downgrade: true}}
	for _, tg := range targets {
		rec.Options.Targets = append(rec.Options.Targets, runstate.RunTarget{Target: tg})
		rec.Nodes = append(rec.Nodes, runstate.NodeOutcome{Node: tg, State: runstate.OutcomeComplete, Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)})
	}
	if edit != nil {
		edit(&rec)
	}
	h, err := runstate.OpenHistory(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Begin(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !live {
		if err := r.End(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResumeRefusals(t *testing.T) {
	state := t.TempDir()
	tg := []string{"root@198.18.1.2:22"}
	recordRun(t, state, "done-run", tg, false, nil)
	recordRun(t, state, "live-run", tg, true, nil)
	recordRun(t, state, "dry-run", tg, false, func(r *runstate.RunRecord) { r.Options.DryRun = true })
	recordRun(t, state, "changed-run", tg, false, func(r *runstate.RunRecord) {
		r.Options.Components[0].SHA256 = strings.Repeat("0", 64)
	})
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown run", []string{"--resume", "nope"}, "--resume nope: run nope: no record of the run"},
		{"live run", []string{"--resume", "live-run"}, "run live-run is still running"},
		{"dry run", []string{"--resume", "dry-run"}, "was a dry run"},
		{"changed baseline", []string{"--resume", "changed-run"}, "changed since run changed-run"},
		{"target", []string{"--resume", "done-run", "--target", "root@h"}, "--target cannot be used with --resume"},
		{"baseline", []string{"--resume", "done-run", "--baseline", "../../examples/baseline"}, "--baseline cannot be used with --resume"},
		{"downgrade", []string{"--resume", "done-run", "--downgrade"}, "--downgrade cannot be used with --resume"},
		{"hp sum spelling", []string{"--resume", "done-run", "/dryrun"}, "--dry-run cannot be used with --resume"},
		{"health command", []string{"--resume", "done-run", "--health-command", "true"}, "--health-command cannot be used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"deploy", "--state-dir", state, "--no-agent"}, tt.args...)
			code, _, errs := run(t, "", args...)
			if code != ExitUsage || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, ExitUsage, tt.want)
			}
		})
	}
}

// TestResumeOfFinishedRollout: a resume of a run whose every node ended
// complete reaches no node, lists every node with the run it came from,
// and exits 0; the new run is recorded as resuming the old one.
func TestResumeOfFinishedRollout(t *testing.T) {
	l, conns := countingNode(t)
	state := t.TempDir()
	node := "root@127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	recordRun(t, state, "old-run", []string{node}, false, nil)
	code, out, errs := run(t, "", "deploy", "--resume", "latest", "--state-dir", state, "--no-agent", "--parallel", "3", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	var said, result bool
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if m["type"] == "event" && m["node"] == node && strings.Contains(m["message"].(string), "complete in run old-run at ") {
			said = true
		}
		if m["type"] == "result" && m["node"] == node && m["state"] == "complete" && m["from_run"] == "old-run" {
			result = true
		}
	}
	if !said || !result {
		t.Errorf("said %v, result %v:\n%s", said, result, out)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the node was reached %d time(s)", n)
	}
	rec, err := manager.LoadResume(state, runstate.Latest)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Resumes != "old-run" || rec.Options.Parallel != 3 || !rec.Options.Downgrade || len(rec.Nodes) != 1 || rec.Nodes[0].FromRun != "old-run" {
		t.Errorf("record of the resume: %+v", rec)
	}
}

// TestResumeWithInputFile: an HP SUM input file may come with --resume
// for its passwords, naming the run's targets; one naming others, or
// whose options would change the run, is refused.
func TestResumeWithInputFile(t *testing.T) {
	l, conns := countingNode(t)
	state := t.TempDir()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	node := "root@127.0.0.1:" + port
	recordRun(t, state, "hpsum-run", []string{node}, false, nil) // with downgrade
	tests := []struct {
		name, body string
		code       int
		want       string
	}{
		{"same targets", "DOWNGRADE=YES\n[TARGETS]\nHOST=127.0.0.1:" + port + "\nUID=root\nPWD=secret\n[END]\n", ExitOK, ""},
		{"other target", "[TARGETS]\nHOST=127.0.0.2:" + port + "\nUID=root\nPWD=secret\n[END]\n", ExitUsage,
			"names root@127.0.0.2:" + port + ", not of the run; does not name " + node},
		{"changing option", "DOWNGRADE=NO\n[TARGETS]\nHOST=127.0.0.1:" + port + "\nUID=root\nPWD=secret\n[END]\n", ExitUsage,
			"would change what the run does: downgrade (DOWNGRADE) false, the run's true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeInput(t, tt.body, 0o600)
			code, out, errs := run(t, "", "deploy", "--resume", "hpsum-run", "--inputfile", p, "--state-dir", state, "--no-agent")
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q\n%s", code, errs, tt.code, tt.want, out)
			}
			if strings.Contains(out+errs, "secret") {
				t.Errorf("the password was printed:\n%s\n%s", out, errs)
			}
		})
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the node was reached %d time(s)", n)
	}
}

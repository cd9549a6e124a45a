package managerfw

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/runstate"
)

// fakeFirewalld stands in for firewall-cmd: it answers from a table of
// command lines and records every call. Ports added with --add-port are
// then open for --query-port, as with the real one.
type fakeFirewalld struct {
	state string              // what --state prints; "running" or "" (not running)
	zones string              // what --get-active-zones prints
	def   string              // --get-default-zone
	open  map[string]bool     // "zone port/tcp"
	fail  map[string]struct{} // command lines that fail with exit 2
	calls []string
}

func (f *fakeFirewalld) Run(ctx context.Context, stdin io.Reader, name string, args ...string) (*proc.Result, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	f.calls = append(f.calls, line)
	exit := func(code int, msg string) (*proc.Result, error) {
		return &proc.Result{ExitCode: code}, &proc.ExitError{Cmd: name, ExitCode: code, Stderr: msg}
	}
	if _, bad := f.fail[line]; bad {
		return exit(2, "Error: INVALID_ZONE")
	}
	if name != "firewall-cmd" {
		return exit(127, "no such command")
	}
	out := func(s string) (*proc.Result, error) { return &proc.Result{Stdout: []byte(s + "\n")}, nil }
	switch {
	case line == "firewall-cmd --state":
		if f.state == "" {
			return exit(252, "not running")
		}
		return out(f.state)
	case line == "firewall-cmd --get-active-zones":
		return out(f.zones)
	case line == "firewall-cmd --get-default-zone":
		return out(f.def)
	case len(args) == 2 && strings.HasPrefix(args[0], "--zone="):
		key := strings.TrimPrefix(args[0], "--zone=") + " " + args[1][strings.Index(args[1], "=")+1:]
		switch {
		case strings.HasPrefix(args[1], "--query-port="):
			if f.open[key] {
				return out("yes")
			}
			return exit(1, "no")
		case strings.HasPrefix(args[1], "--add-port="):
			f.open[key] = true
			return out("success")
		case strings.HasPrefix(args[1], "--remove-port="):
			delete(f.open, key)
			return out("success")
		}
	}
	return exit(2, "unexpected command "+line)
}

func TestFirewalldOpenClose(t *testing.T) {
	ctx := context.Background()
	fake := &fakeFirewalld{
		state: "running",
		zones: "public (default)\n  interfaces: eth0\ntrusted\n  sources: 198.18.230.0/24",
		open:  map[string]bool{"public 63001/tcp": true}, // the administrator's own
	}
	l := &Local{Cmd: fake, StateDir: t.TempDir(), all: func() []firewall.Backend { return nil }}
	o, err := l.Open(ctx, "run1", []int{63002, 63001, 63002})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	wantCalls := []string{
		"firewall-cmd --state",
		"firewall-cmd --get-active-zones",
		"firewall-cmd --zone=public --query-port=63001/tcp",
		"firewall-cmd --zone=public --query-port=63002/tcp",
		"firewall-cmd --zone=public --add-port=63002/tcp",
		"firewall-cmd --zone=trusted --query-port=63001/tcp",
		"firewall-cmd --zone=trusted --add-port=63001/tcp",
		"firewall-cmd --zone=trusted --query-port=63002/tcp",
		"firewall-cmd --zone=trusted --add-port=63002/tcp",
	}
	if diff := cmp.Diff(wantCalls, fake.calls); diff != "" {
		t.Errorf("Open ran (-want +got):\n%s", diff)
	}
	wantRules := []string{
		"firewalld: zone public port 63002/tcp (runtime)",
		"firewalld: zone trusted port 63001/tcp (runtime)",
		"firewalld: zone trusted port 63002/tcp (runtime)",
	}
	if diff := cmp.Diff(wantRules, o.Rules()); diff != "" {
		t.Errorf("Rules (-want +got):\n%s", diff)
	}
	states, err := readStates(l.stateDir())
	if err != nil || len(states) != 1 {
		t.Fatalf("state files = %v, %v; want one", states, err)
	}
	if diff := cmp.Diff([]FirewalldPort{{"public", 63002}, {"trusted", 63001}, {"trusted", 63002}}, firewalldPorts(states[0])); diff != "" {
		t.Errorf("state file's firewalld ports (-want +got):\n%s", diff)
	}

	fake.calls = nil
	removed, err := o.Close(ctx)
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if diff := cmp.Diff(wantRules, removed); diff != "" {
		t.Errorf("Close removed (-want +got):\n%s", diff)
	}
	wantCalls = []string{
		"firewall-cmd --state",
		"firewall-cmd --zone=public --remove-port=63002/tcp",
		"firewall-cmd --zone=trusted --remove-port=63001/tcp",
		"firewall-cmd --zone=trusted --remove-port=63002/tcp",
	}
	if diff := cmp.Diff(wantCalls, fake.calls); diff != "" {
		t.Errorf("Close ran (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]bool{"public 63001/tcp": true}, fake.open); diff != "" {
		t.Errorf("open ports after Close (-want +got):\n%s", diff)
	}
	if states, _ := readStates(l.stateDir()); len(states) != 0 {
		t.Errorf("state file left after Close: %+v", states)
	}
}

func TestFirewalldDefaultZoneAndFailure(t *testing.T) {
	ctx := context.Background()
	fake := &fakeFirewalld{
		state: "running",
		def:   "public",
		open:  map[string]bool{},
		fail:  map[string]struct{}{"firewall-cmd --zone=public --add-port=63002/tcp": {}},
	}
	l := &Local{Cmd: fake, StateDir: t.TempDir(), all: func() []firewall.Backend { return nil }}
	_, err := l.Open(ctx, "run1", []int{63001, 63002})
	if err == nil || !strings.Contains(err.Error(), "firewall-cmd --zone=public --add-port=63002/tcp") {
		t.Fatalf("Open = %v, want the failed --add-port named", err)
	}
	if len(fake.open) != 0 {
		t.Errorf("a failed Open left ports open: %v", fake.open)
	}
	if states, _ := readStates(l.stateDir()); len(states) != 0 {
		t.Errorf("a failed Open left a state file: %+v", states)
	}
}

// TestFirewalldCleanup: a manager that died left ports open; CleanupLocal
// closes exactly those its state file lists. Whether the manager died is
// runstate's one rule, pid and start time: a pid that another process
// took since is dead too, and a live manager's ports stay.
func TestFirewalldCleanup(t *testing.T) {
	me := runstate.Self()
	for _, tc := range []struct {
		name  string
		owner runstate.Owner
		dead  bool
	}{
		{"manager exited", runstate.Owner{PID: deadPID(t), Start: me.Start}, true},
		{"pid reused by another process", runstate.Owner{PID: me.PID, Start: me.Start + 1}, true},
		{"manager alive", me, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			fake := &fakeFirewalld{state: "running", open: map[string]bool{"public 63001/tcp": true, "public 22/tcp": true}}
			dir := t.TempDir()
			l := &Local{Cmd: fake, StateDir: dir, JournalDir: t.TempDir(), all: func() []firewall.Backend { return nil }}
			st := &runstate.FirewallState{RunID: "run9", Tag: Tag("run9"), Owner: tc.owner, Ports: []int{63001}}
			if err := writeState(l.stateDir(), st, []FirewalldPort{{"public", 63001}}); err != nil {
				t.Fatal(err)
			}
			removed, err := l.CleanupLocal(ctx, false)
			if err != nil {
				t.Fatalf("CleanupLocal: %v", err)
			}
			wantRemoved, wantOpen := []string{"firewalld: zone public port 63001/tcp (runtime)"}, map[string]bool{"public 22/tcp": true}
			if !tc.dead {
				wantRemoved, wantOpen = nil, map[string]bool{"public 63001/tcp": true, "public 22/tcp": true}
			}
			if diff := cmp.Diff(wantRemoved, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantOpen, fake.open); diff != "" {
				t.Errorf("open ports (-want +got):\n%s", diff)
			}
			_, err = os.Stat(filepath.Join(l.stateDir(), "run9.json"))
			if gone := os.IsNotExist(err); gone != tc.dead {
				t.Errorf("state file gone: %v (%v), want %v", gone, err, tc.dead)
			}
		})
	}
}

// TestUnparsableStateReported: a state file that cannot be parsed, or
// that names another tag than its run's, is named in CleanupLocal's error
// and left in place.
func TestUnparsableStateReported(t *testing.T) {
	fake := &fakeFirewalld{state: "running", open: map[string]bool{}}
	l := &Local{Cmd: fake, StateDir: t.TempDir(), JournalDir: t.TempDir(), all: func() []firewall.Backend { return nil }}
	if err := os.MkdirAll(l.stateDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(l.stateDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"version":1,"run_id":"bad","ta`), 0o600)
	st := &runstate.FirewallState{RunID: "tag", Tag: "fleetup:someone-else", Owner: runstate.Owner{PID: deadPID(t), Start: 1}}
	if err := runstate.WriteFirewallState(l.stateDir(), st); err != nil {
		t.Fatal(err)
	}
	_, err := l.CleanupLocal(context.Background(), false)
	for _, want := range []string{bad, filepath.Join(l.stateDir(), "tag.json"), `want tag "fleetup:mgr-tag"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CleanupLocal error %v, want it to name %s", err, want)
		}
	}
	for _, f := range []string{bad, st.File} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v, want it left", f, err)
		}
	}
	// Whether their managers run is unknown: their rules are kept.
	if diff := cmp.Diff([]string{"bad", "tag"}, unreadableRuns(l.stateDir(), nil)); diff != "" {
		t.Errorf("unreadable runs (-want +got):\n%s", diff)
	}
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestParseActiveZones(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		wantErr  string
	}{
		{name: "empty", in: ""},
		{name: "two zones", in: "public\n  interfaces: eth0\ndmz\n  sources: 198.18.0.0/15\n", want: []string{"public", "dmz"}},
		{name: "default marker", in: "public (default)\n  interfaces: eth0", want: []string{"public"}},
		{name: "option-like", in: "--add-port=1/tcp\n", wantErr: `not a zone name`},
		{name: "bad character", in: "pub;lic\n", wantErr: `character ';'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseActiveZones(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseActiveZones(f *testing.F) {
	f.Add("public (default)\n  interfaces: eth0\ntrusted\n  sources: 198.18.0.0/15\n")
	f.Add("-x\n")
	f.Fuzz(func(t *testing.T, in string) {
		zones, err := parseActiveZones(in)
		if err != nil {
			return
		}
		for _, z := range zones {
			if validZone(z) != nil {
				t.Fatalf("returned invalid zone %q", z)
			}
		}
	})
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"run_id":"r","tag":"fleetup:mgr-r","pid":1,"ports":[63001],"firewalld":[{"zone":"public","port":63001}],"started":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":1,"run_id":"r","tag":"fleetup:x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseState(data, "fuzz")
		if err != nil {
			return
		}
		if s.Tag != Tag(s.RunID) {
			t.Fatalf("tag %q for run %q", s.Tag, s.RunID)
		}
		for _, p := range firewalldPorts(s) {
			if p.validate() != nil {
				t.Fatalf("invalid port %+v accepted", p)
			}
		}
	})
}

package runstate

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestSelf(t *testing.T) {
	me := Self()
	if me.PID != os.Getpid() || me.Start == 0 {
		t.Fatalf("Self() = %+v, want this pid and a start time", me)
	}
	if l := me.Check(); !l.Alive {
		t.Fatalf("Self().Check() = %v", l)
	}
}

// TestCheck is the liveness rule every kind of run state follows.
func TestCheck(t *testing.T) {
	me := Self()
	dead := deadPID(t)
	// A reaped child's pid is free on Unix; on Windows (Wine at least) a
	// handle may keep an exited process's pid taken for a while.
	gone := "does not exist"
	if runtime.GOOS == "windows" {
		gone = "does not exist|has exited"
	}
	tests := []struct {
		name      string
		owner     Owner
		wantAlive bool
		reason    string // substrings of Reason, one of them, separated by "|"
	}{
		{"this process", me, true, "as the owner did"},
		{"pid reused by a process started later", Owner{PID: me.PID, Start: me.Start + 1}, false, "reused"},
		{"pid reused by a process started earlier", Owner{PID: me.PID, Start: me.Start - 1}, false, "another process"},
		{"pid gone", Owner{PID: dead, Start: me.Start}, false, gone},
		{"no start recorded, pid exists", Owner{PID: me.PID}, true, "taken as alive"},
		{"no start recorded, pid gone", Owner{PID: dead}, false, gone},
		{"no pid", Owner{Start: me.Start}, false, "no pid"},
		{"negative pid", Owner{PID: -1}, false, "no pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.owner.Check()
			found := false
			for _, r := range strings.Split(tt.reason, "|") {
				found = found || strings.Contains(l.Reason, r)
			}
			if l.Alive != tt.wantAlive || !found || !strings.Contains(l.Reason, "pid "+strconv.Itoa(tt.owner.PID)) {
				t.Errorf("Check(%+v) = %v; want alive %v, reason with %q", tt.owner, l, tt.wantAlive, tt.reason)
			}
		})
	}
}

// TestSameRuleEverywhere: a journal run, a firewall state file and an FTP
// credentials file owned by the same process are alive or dead together,
// by Owner.Check, and each says why.
func TestSameRuleEverywhere(t *testing.T) {
	me := Self()
	owners := []struct {
		name  string
		owner Owner
	}{
		{"live", me},
		{"reused", Owner{PID: me.PID, Start: me.Start + 7}},
		{"gone", Owner{PID: deadPID(t), Start: me.Start}},
		{"unknown-start", Owner{PID: me.PID}},
	}
	for _, o := range owners {
		t.Run(o.name, func(t *testing.T) {
			want := o.owner.Check()
			state, fwDir := t.TempDir(), t.TempDir()
			runID := "run-" + o.name

			j := open(t, state)
			j.self = func() Owner { return o.owner }
			begin(t, j, runID)
			runs, err := j.Pending()
			if err != nil || len(runs) != 1 {
				t.Fatalf("Pending: %v, %v", runs, err)
			}
			if runs[0].Alive != want.Alive || runs[0].Liveness != want.Reason {
				t.Errorf("journal: alive %v (%s); want %v", runs[0].Alive, runs[0].Liveness, want)
			}

			if err := WriteFirewallState(fwDir, &FirewallState{RunID: runID, Tag: "fleetup:mgr-" + runID, Ports: []int{63001}, Owner: o.owner}); err != nil {
				t.Fatal(err)
			}
			fws, err := ReadFirewallStates(fwDir)
			if err != nil || len(fws) != 1 {
				t.Fatalf("ReadFirewallStates: %v, %v", fws, err)
			}
			if fws[0].Liveness != want {
				t.Errorf("firewall state: %v; want %v", fws[0].Liveness, want)
			}

			path, err := WriteFTPCredentials(state, FTPCredentials{RunID: runID, User: "u", Password: "p", Port: 63006, Owner: o.owner})
			if err != nil {
				t.Fatal(err)
			}
			creds, err := ReadFTPCredentials(state)
			if err != nil || len(creds) != 1 {
				t.Fatalf("ReadFTPCredentials: %v, %v", creds, err)
			}
			if creds[0].Liveness != want {
				t.Errorf("ftp credentials: %v; want %v", creds[0].Liveness, want)
			}
			removed, err := RemoveStaleFTPCredentials(state)
			if err != nil {
				t.Fatal(err)
			}
			_, serr := os.Stat(path)
			if gone := serr != nil; gone == want.Alive || len(removed) != map[bool]int{true: 0, false: 1}[want.Alive] {
				t.Errorf("stale credentials: removed %q, file gone %v; owner %v", removed, gone, want)
			}
		})
	}
}

func TestLivenessString(t *testing.T) {
	if s := (Liveness{Alive: true, Reason: "x"}).String(); s != "alive: x" {
		t.Error(s)
	}
	if s := (Liveness{Reason: "y"}).String(); s != "dead: y" {
		t.Error(s)
	}
}

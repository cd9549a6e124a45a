package runstate

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestFirewallState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "localfw")
	s := &FirewallState{RunID: "run1", Tag: "fleetup:mgr-run1", Ports: []int{63001, 63002}}
	if err := WriteFirewallState(dir, s); err != nil {
		t.Fatal(err)
	}
	if s.Owner != Self() || s.Started.IsZero() || s.File != filepath.Join(dir, "run1.json") {
		t.Errorf("after write: %+v", s)
	}
	s.Firewalld = []FirewalldPort{{"public", 63001}}
	if err := WriteFirewallState(dir, s); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFirewallStates(dir)
	if err != nil || len(got) != 1 {
		t.Fatalf("ReadFirewallStates = %+v, %v", got, err)
	}
	want := *s
	want.Liveness = Self().Check()
	if diff := cmp.Diff(&want, got[0], cmpopts.EquateApproxTime(time.Second)); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	if !got[0].Liveness.Alive {
		t.Errorf("own state: %v", got[0].Liveness)
	}
	if err := RemoveFirewallState(dir, "run1"); err != nil {
		t.Fatal(err)
	}
	if left := listDir(t, dir); len(left) != 0 {
		t.Errorf("left after RemoveFirewallState: %q", left)
	}
	if err := RemoveFirewallState(dir, "run1"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if err := RemoveFirewallState(filepath.Join(dir, "nope"), "run1"); err != nil {
		t.Errorf("remove in a missing directory: %v", err)
	}
	if got, err := ReadFirewallStates(filepath.Join(dir, "nope")); err != nil || got != nil {
		t.Errorf("missing directory: %v, %v", got, err)
	}
	for _, bad := range []*FirewallState{{RunID: "../x", Tag: "t"}, {RunID: "r", Tag: ""}} {
		if err := WriteFirewallState(dir, bad); err == nil {
			t.Errorf("WriteFirewallState(%+v) succeeded", bad)
		}
	}
}

// TestFirewallStateUnparsable: every file that cannot be parsed, or holds
// another run than its name, is named in the error; the good ones are
// returned, and the bad ones stay where they are.
func TestFirewallStateUnparsable(t *testing.T) {
	dir := t.TempDir()
	dead := Owner{PID: deadPID(t), Start: 1}
	if err := WriteFirewallState(dir, &FirewallState{RunID: "good", Tag: "t", Ports: []int{1}, Owner: dead}); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, "good.json"))
	files := map[string]string{
		"truncated.json": string(good[:20]),
		"other.json":     string(good),
		"empty.json":     "",
		"nopid.json":     `{"version":1,"run_id":"nopid","tag":"t","ports":[]}`,
		"future.json":    `{"version":9,"run_id":"future","tag":"t","pid":1,"ports":[]}`,
	}
	for name, content := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600)
	}
	got, err := ReadFirewallStates(dir)
	if len(got) != 1 || got[0].RunID != "good" || got[0].Liveness.Alive {
		t.Errorf("readable states: %+v", got)
	}
	if err == nil {
		t.Fatal("no error for the bad files")
	}
	for name := range files {
		if !strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
	if !strings.Contains(err.Error(), `holds run "good", not "other"`) {
		t.Errorf("error does not say other.json holds another run:\n%v", err)
	}
	for name := range files {
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s was removed", name)
		}
	}
}

func FuzzParseFirewallState(f *testing.F) {
	f.Add([]byte(`{"version":1,"run_id":"r","tag":"fleetup:mgr-r","pid":1,"proc_start":5,"ports":[63001],"firewalld":[{"zone":"public","port":63001}],"started":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":1,"run_id":"r","tag":"fleetup:x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseFirewallState(data)
		if err != nil {
			return
		}
		if ValidRunID(s.RunID) != nil || s.Tag == "" || s.Owner.PID <= 0 {
			t.Fatalf("accepted %+v", s)
		}
	})
}

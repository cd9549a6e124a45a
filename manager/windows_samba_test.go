//go:build linux

package manager

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/transport/smb/smbtest"
)

// A sweep against a real SMB server removes a dead run's directory and
// says that its firewall rule may be left; the service manager (Samba's)
// is asked for the run's service, which does not exist.
func TestWindowsSweepSamba(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	run := "20261201-010101-aaaaaa"
	dir := filepath.Join(srv.Dir, "Temp", "fleetup-"+run)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleetup-engine.exe"), []byte("MZ"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &WindowsNode{
		Addr:     "127.0.0.1:" + strconv.Itoa(srv.Port),
		User:     smbtest.User,
		Password: func() ([]byte, error) { return []byte(smbtest.Password), nil },
	}
	rep, err := w.Sweep(context.Background(), "win1", []string{run})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory left: %v", err)
	}
	if len(rep.Files) != 1 || rep.Node != "win1" || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], `netsh advfirewall firewall delete rule name="fleetup:`+run+`"`) {
		t.Fatalf("report %+v", rep)
	}
	// Again: nothing left, nothing said.
	rep, err = w.SweepAll(context.Background(), "win1", nil, true)
	if err != nil || !rep.Empty() {
		t.Fatalf("second sweep: %+v, %v", rep, err)
	}
}

// A deploy's opener against a real SMB server that refuses to create
// services (Samba): the error is the service manager's refusal, what was
// copied is gone, and the journal knows the node is clean. A leftover of
// an earlier run the journal names is removed first.
func TestWindowsOpenSambaRefuses(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	jdir := t.TempDir()
	jr, err := runstate.Open(jdir)
	if err != nil {
		t.Fatal(err)
	}
	old, err := jr.Begin("20261201-010101-aaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Record(runstate.NodeRecord{Node: "win1", State: runstate.StatePlaced, EngineDir: `C:\Windows\Temp\fleetup-20261201-010101-aaaaaa`}); err != nil {
		t.Fatal(err)
	}
	// Its manager is gone (killed): another process start time.
	jf := filepath.Join(jdir, "20261201-010101-aaaaaa.json")
	b, err := os.ReadFile(jf)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["proc_start"] = 1
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	oldDir := filepath.Join(srv.Dir, "Temp", "fleetup-20261201-010101-aaaaaa")
	if err := os.MkdirAll(oldDir, 0o700); err != nil {
		t.Fatal(err)
	}
	runID := "20261202-061500-ab12cd"
	run, err := jr.Begin(runID)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA(runID)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ca.Issue(pki.ManagerName, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notices []string
	env := &Env{RunID: runID, CA: ca, Manager: mgr, DepotPort: 63002, journal: jr, run: run,
		emit: func(ev fleetup.Event) { mu.Lock(); notices = append(notices, ev.Message); mu.Unlock() }}
	exe := filepath.Join(t.TempDir(), "fleetup-engine-windows-amd64.exe")
	if err := os.WriteFile(exe, []byte("MZ"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &WindowsNode{
		Addr:     "[::1]:" + strconv.Itoa(srv.Port),
		User:     smbtest.User,
		Password: func() ([]byte, error) { return []byte(smbtest.Password), nil },
		Engine:   func(string) (string, error) { return exe, nil },
	}
	_, err = w.Open(context.Background(), "win1", env)
	if err == nil || !strings.Contains(err.Error(), "the service manager refused to create the service fleetup-"+runID) {
		t.Fatalf("Open: %v", err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "Temp", "fleetup-"+runID)); !os.IsNotExist(err) {
		t.Fatalf("the run's directory is left: %v", err)
	}
	if _, err := os.Stat(oldDir); !os.IsNotExist(err) {
		t.Fatalf("the earlier run's directory is left: %v", err)
	}
	var rf struct {
		Nodes []runstate.NodeRecord `json:"nodes"`
	}
	if b, err := os.ReadFile(filepath.Join(jdir, runID+".json")); err != nil || json.Unmarshal(b, &rf) != nil {
		t.Fatalf("the run's journal: %v", err)
	}
	if len(rf.Nodes) != 1 || rf.Nodes[0].State != runstate.StateCleaned || rf.Nodes[0].EngineDir != `C:\Windows\Temp\fleetup-`+runID {
		t.Fatalf("the journal of the run: %+v, want win1 cleaned", rf.Nodes)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notices) == 0 || !strings.Contains(notices[0], "removed leftovers of an earlier run") {
		t.Fatalf("notices %q", notices)
	}
}

//go:build linux

package windows

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/engine"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport/smb"
	"github.com/fleetup/fleetup/transport/smb/smbtest"
)

// The names here are the engine's.
func TestNamesAreTheEngines(t *testing.T) {
	for _, c := range [][2]string{
		{ExeFile, engine.WinExeFile}, {ConfigFile, engine.WinConfigFile}, {CSRFile, engine.WinCSRFile},
		{CertFile, engine.WinCertFile}, {ReadyFile, engine.WinReadyFile}, {CleanupFile, engine.WinCleanupFile},
		{PushedDir, engine.WinPushedDir}, {DirName(runID), engine.WinDirName(runID)},
		{ServiceName(runID), engine.ServiceName(runID)}, {ServiceName("cleanup-X_1"), engine.ServiceName("cleanup-X_1")},
		{ServiceDisplayName(runID), engine.ServiceDisplayName(runID)},
	} {
		if c[0] != c[1] {
			t.Errorf("%q here, %q in the engine", c[0], c[1])
		}
	}
}

// Against a real SMB server (Samba, which refuses to create services):
// the engine and its configuration are copied, the service manager's
// refusal is the error, and what was copied is taken back.
func TestSambaRefusesServiceTakesBack(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	for _, addr := range []string{srv.Addr(), srv.Addr6()} {
		t.Run(addr, func(t *testing.T) {
			ctx := context.Background()
			sess, err := smb.Dial(ctx, addr, smb.Options{User: smbtest.User, Password: func() ([]byte, error) { return []byte(smbtest.Password), nil }, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			ca, _ := pki.NewCA(runID)
			mgr, _ := ca.Issue(pki.ManagerName, nil)
			exe := filepath.Join(t.TempDir(), "fleetup-engine-windows-amd64.exe")
			os.WriteFile(exe, []byte(strings.Repeat("MZ", 1<<20)), 0o600)
			var placed, removed int
			_, err = NewRemote(ctx, "win1", sess, RemoteOptions{
				RunID: runID, Node: "win1", Engine: func(string) (string, error) { return exe, nil },
				CA: ca, Manager: mgr, DepotPort: 63002,
				Placed:  func(string, int, int) error { placed++; return nil },
				Removed: func() error { removed++; return nil },
			})
			if err == nil || !strings.Contains(err.Error(), "the service manager refused to create the service "+ServiceName(runID)) {
				t.Fatalf("NewRemote on Samba: %v, want the service manager's refusal", err)
			}
			t.Log(err)
			if placed != 1 || removed != 1 {
				t.Fatalf("placed %d removed %d", placed, removed)
			}
			if _, err := os.Stat(filepath.Join(srv.Dir, "Temp", DirName(runID))); !os.IsNotExist(err) {
				t.Fatalf("the run's directory is left on the server: %v", err)
			}
			if err := sess.MkdirAll(ctx, "x"); err == nil {
				t.Fatal("the SMB session is still open")
			}
		})
	}
}

// A user who is no administrator: the launch fails on the directory,
// saying so, and nothing is left.
func TestSambaNotAdministrator(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	ctx := context.Background()
	sess, err := smb.Dial(ctx, srv.Addr(), smb.Options{User: smbtest.Unprivileged, Password: func() ([]byte, error) { return []byte(smbtest.Password), nil }})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := pki.NewCA(runID)
	mgr, _ := ca.Issue(pki.ManagerName, nil)
	exe := filepath.Join(t.TempDir(), "e.exe")
	os.WriteFile(exe, []byte("MZ"), 0o600)
	removed := 0
	_, err = NewRemote(ctx, "win1", sess, RemoteOptions{RunID: runID, Engine: func(string) (string, error) { return exe, nil }, CA: ca, Manager: mgr,
		Removed: func() error { removed++; return nil }})
	if !errors.Is(err, smb.ErrAccessDenied) || !strings.Contains(err.Error(), "must be an administrator") {
		t.Fatalf("NewRemote as %s: %v", smbtest.Unprivileged, err)
	}
	if removed != 1 {
		t.Fatalf("removed %d: %v", removed, err)
	}
	entries, _ := os.ReadDir(srv.Dir)
	if len(entries) != 0 {
		t.Fatalf("left on the share: %v", entries)
	}
}

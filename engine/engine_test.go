package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/fleetup/fleetup/wire"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/installer"
)

func TestRunIDFromDir(t *testing.T) {
	tests := []struct{ dir, want string }{
		{"/tmp/fleetup-20261121-140501-a1b2c3.Ab12Cd", "20261121-140501-a1b2c3"},
		{"/home/u/fleetup-cleanup-20261121-140501-a1b2c3.xYz123", "cleanup-20261121-140501-a1b2c3"},
		{"/tmp/fleetup-20261121-140501-a1b2c3", ""},          // no mktemp suffix
		{"/tmp/fleetup-notes.backup", ""},                    // a user's own directory
		{"/tmp/fleetup-20261121-140501-A1B2C3.Ab12Cd", ""},   // upper-case hex is not ours
		{"/tmp/other-20261121-140501-a1b2c3.Ab12Cd", ""},     // another prefix
		{"/tmp/fleetup-20261121-140501-a1b2c3.Ab12Cd/x", ""}, // a file inside
	}
	for _, tt := range tests {
		if got := RunIDFromDir(tt.dir); got != tt.want {
			t.Errorf("RunIDFromDir(%q) = %q, want %q", tt.dir, got, tt.want)
		}
	}
}

// fakeInstaller records what it was asked to install.
type fakeInstaller struct{ installed []string }

func (f *fakeInstaller) Kind() fleetup.Kind { return fleetup.KindScript }
func (f *fakeInstaller) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	for _, id := range f.installed {
		if id == c.ID {
			return fleetup.Probe{Applicable: true, Installed: c.Version}, nil
		}
	}
	return fleetup.Probe{Applicable: true}, nil
}
func (f *fakeInstaller) Install(ctx context.Context, c *fleetup.Component, path string, opts installer.Options) (installer.Outcome, error) {
	f.installed = append(f.installed, c.ID)
	return installer.Outcome{}, nil
}

func component(t *testing.T, dir, id, content string) fleetup.Component {
	path := filepath.Join(dir, id+".sh")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	return fleetup.Component{ID: id, Version: "1.0", Kind: fleetup.KindScript, File: id + ".sh", Path: path, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
}

func TestServiceRefusesChangedPayload(t *testing.T) {
	dir := t.TempDir()
	fi := &fakeInstaller{}
	svc := &Service{Installers: map[fleetup.Kind]installer.Installer{fleetup.KindScript: fi}, Fetcher: FileFetcher{}, WorkDir: filepath.Join(dir, "work")}
	good := component(t, dir, "good", "echo good\n")
	bad := component(t, dir, "bad", "echo bad\n")
	if err := os.WriteFile(bad.Path, []byte("echo BAD\n"), 0o644); err != nil { // same size, other bytes
		t.Fatal(err)
	}
	res := svc.Install(context.Background(), wire.InstallRequest{Items: []wire.InstallItem{{Component: bad}, {Component: good}}}, func(fleetup.Event) {})
	if res[0].Phase != fleetup.PhaseFailed || res[1].Phase != fleetup.PhaseInstalled {
		t.Fatalf("phases %s, %s; want failed, installed", res[0].Phase, res[1].Phase)
	}
	if len(fi.installed) != 1 || fi.installed[0] != "good" {
		t.Errorf("installer was asked for %v; the changed payload must never reach it", fi.installed)
	}
	if res[1].After != "1.0" {
		t.Errorf("version read back %q, want 1.0", res[1].After)
	}
	entries, _ := os.ReadDir(svc.WorkDir)
	if len(entries) != 0 {
		t.Errorf("payloads left in the work dir: %v", entries)
	}
}

func TestServiceCancelSkipsTheRest(t *testing.T) {
	dir := t.TempDir()
	fi := &fakeInstaller{}
	svc := &Service{Installers: map[fleetup.Kind]installer.Installer{fleetup.KindScript: fi}, Fetcher: FileFetcher{}, WorkDir: dir}
	a, b := component(t, dir, "a", "a\n"), component(t, dir, "b", "b\n")
	res := svc.Install(context.Background(), wire.InstallRequest{Items: []wire.InstallItem{{Component: a}, {Component: b}}}, func(ev fleetup.Event) {
		if ev.Component == "a" && ev.Phase == fleetup.PhaseInstall {
			svc.Cancel()
		}
	})
	if res[0].Phase != fleetup.PhaseInstalled || res[1].Phase != fleetup.PhaseSkipped {
		t.Errorf("phases %s, %s; want installed (it had started), skipped", res[0].Phase, res[1].Phase)
	}
}

func TestSweepRemovesOnlyDeadRuns(t *testing.T) {
	root := t.TempDir()
	mk := func(run string, pid int) string {
		d := filepath.Join(root, wire.DirPrefix+run+".Ab12Cd")
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(State{RunID: run, PID: pid})
		if err := os.WriteFile(filepath.Join(d, StateFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return d
	}
	// A live "engine": a process whose command line names the engine.
	live := exec.Command("sleep", "60")
	live.Args[0] = wire.BinaryName
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })
	dead := mk("20260101-000000-dead00", 1<<22-1)
	alive := mk("20260101-000000-a11fe0", live.Process.Pid)
	mine := filepath.Join(root, "fleetup-notes.backup")
	if err := os.MkdirAll(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	rep := Sweep(context.Background(), SweepOptions{Roots: []string{root}})
	for _, d := range []string{alive, mine} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: it belongs to a live run or is not ours", d)
		}
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead run's directory %s is still there", dead)
	}
	if len(rep.Files) != 1 || rep.Files[0] != dead {
		t.Errorf("report files %v, want [%s]", rep.Files, dead)
	}
	// Naming the live run removes it too, engine first.
	rep = Sweep(context.Background(), SweepOptions{Roots: []string{root}, Runs: []string{"20260101-000000-a11fe0"}})
	if _, err := os.Stat(alive); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("named run's directory %s is still there: %+v", alive, rep)
	}
	if len(rep.Processes) == 0 {
		t.Errorf("the named run's engine was not reported stopped: %+v", rep)
	}
}

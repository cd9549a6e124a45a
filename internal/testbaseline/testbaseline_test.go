package testbaseline

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testenv"
)

// TestCabInstallsWithFwupdtool installs a Cab on fwupd's test device with
// a private fwupd configuration and state, then reads the version back
// from fwupdtool's history.
func TestCabInstallsWithFwupdtool(t *testing.T) {
	testenv.RequireTools(t, "fwupdtool")
	tmp := t.TempDir()
	etc := filepath.Join(tmp, "etc")
	if err := os.MkdirAll(filepath.Join(etc, "fwupd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "fwupd", "fwupd.conf"), []byte("[fwupd]\nTestDevices=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cab := Cab(t, tmp, "test.cab", "com.example.fleetup.test", "1.2.7", FakeDeviceGUID)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(args ...string) []byte {
		cmd := exec.CommandContext(ctx, "fwupdtool", args...)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "NO_COLOR=1", "FWUPD_SYSCONFDIR="+etc, "FWUPD_LOCALSTATEDIR="+filepath.Join(tmp, "var"))
		var stdout, stderr []byte
		out, err := cmd.Output()
		stdout = out
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		if err != nil {
			t.Fatalf("fwupdtool %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout, stderr)
		}
		return stdout
	}
	run("--plugins", "test", "install", cab, "--no-reboot-check")
	out := run("--plugins", "test", "get-history", "--json")

	// The JSON follows the progress lines fwupdtool prints on stdout.
	start := -1
	for i, c := range out {
		if c == '{' {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("get-history printed no JSON:\n%s", out)
	}
	var hist struct {
		Devices []struct {
			Guid     []string
			Releases []struct {
				AppstreamId string
				Version     string
			}
		}
	}
	if err := json.Unmarshal(out[start:], &hist); err != nil {
		t.Fatalf("get-history JSON: %v\n%s", err, out)
	}
	for _, d := range hist.Devices {
		for _, r := range d.Releases {
			if r.AppstreamId == "com.example.fleetup.test" && r.Version == "1.2.7" {
				return
			}
		}
	}
	t.Errorf("history does not show com.example.fleetup.test 1.2.7 installed:\n%s", out[start:])
}

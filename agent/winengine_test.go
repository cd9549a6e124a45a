package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindWindowsEngine(t *testing.T) {
	if got := WindowsEngineName("amd64"); got != "fleetup-engine-windows-amd64.exe" {
		t.Fatalf("WindowsEngineName = %q", got)
	}
	p := filepath.Join(t.TempDir(), "e.exe")
	if err := os.WriteFile(p, []byte("MZ"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLEETUP_ENGINE_WINDOWS", p)
	if got, err := FindWindowsEngine("amd64"); err != nil || got != p {
		t.Fatalf("with FLEETUP_ENGINE_WINDOWS: %q, %v", got, err)
	}
	t.Setenv("FLEETUP_ENGINE_WINDOWS", p+".missing")
	if _, err := FindWindowsEngine("amd64"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing FLEETUP_ENGINE_WINDOWS: %v", err)
	}
	t.Setenv("FLEETUP_ENGINE_WINDOWS", "")
	t.Setenv("PATH", t.TempDir())
	_, err := FindWindowsEngine("amd64")
	if err == nil || !strings.Contains(err.Error(), "GOOS=windows GOARCH=amd64 go build -o bin/fleetup-engine-windows-amd64.exe") {
		t.Fatalf("no engine: %v", err)
	}
}

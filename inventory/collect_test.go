//go:build !windows

package inventory_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/inventory/inventorytest"
	"github.com/fleetup/fleetup/proc"
)

// fwupdTestEnv returns a runner whose fwupdtool sees fwupd's fake test
// devices, configured (with its lock) in a temporary directory.
func fwupdTestEnv(t *testing.T) *proc.Runner {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc", "fwupd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "fwupd", "fwupd.conf"), []byte("[fwupd]\nTestDevices=true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "lock"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &proc.Runner{Env: []string{
		"FWUPD_SYSCONFDIR=" + filepath.Join(dir, "etc"),
		"FWUPD_LOCALSTATEDIR=" + filepath.Join(dir, "var"),
		"FWUPD_LOCKDIR=" + filepath.Join(dir, "lock"),
	}}
}

func TestCollectors(t *testing.T) {
	tests := []struct {
		name string
		env  func(t *testing.T) inventorytest.Env
	}{
		{"system", func(t *testing.T) inventorytest.Env {
			return inventorytest.Env{Collector: &inventory.System{}, Owns: []string{"Hostname", "OS", "Kernel", "Arch"}, NeedsTool: "uname"}
		}},
		{"tools", func(t *testing.T) inventorytest.Env {
			return inventorytest.Env{Collector: &inventory.Tools{}, Owns: []string{"Tools"}}
		}},
		{"dpkg", func(t *testing.T) inventorytest.Env {
			return inventorytest.Env{Collector: &inventory.Dpkg{}, Owns: []string{"Packages"}, NeedsTool: "dpkg-query"}
		}},
		{"rpm", func(t *testing.T) inventorytest.Env {
			return inventorytest.Env{Collector: &inventory.RPM{DBPath: t.TempDir()}, Owns: []string{"Packages"}, NeedsTool: "rpm"}
		}},
		{"fwupd", func(t *testing.T) inventorytest.Env {
			return inventorytest.Env{Collector: &inventory.Fwupd{}, Owns: []string{"Devices"}, NeedsTool: "fwupdtool"}
		}},
		{"fwupd test devices", func(t *testing.T) inventorytest.Env {
			return inventorytest.Env{Collector: &inventory.Fwupd{Plugins: []string{"test"}}, Runner: fwupdTestEnv(t), Owns: []string{"Devices"}, NeedsTool: "fwupdtool"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { inventorytest.Run(t, tt.env(t)) })
	}
}

// TestCollectThisMachine checks what Collect finds here against what is
// known about the build machine (Debian with dpkg, rpm and fwupd).
func TestCollectThisMachine(t *testing.T) {
	testenv.RequireTools(t, "dpkg-query", "fwupdtool", "rpm")
	ctx := context.Background()
	inv := inventory.Collect(ctx, fwupdTestEnv(t), inventory.Options{FwupdPlugins: []string{"test"}})
	if len(inv.Warnings) > 0 {
		t.Errorf("warnings: %q", inv.Warnings)
	}
	inventorytest.Check(t, inv)
	host, _ := os.Hostname()
	if inv.Hostname != host {
		t.Errorf("Hostname = %q, want %q", inv.Hostname, host)
	}
	if inv.OS == "" || inv.Kernel == "" || inv.Arch == "" || inv.OSName == "" {
		t.Errorf("system fields missing: %+v", inv)
	}
	var dpkg bool
	for _, p := range inv.Packages {
		if p.Manager == "rpm" && !inventory.RPMBased(inv.OS, inv.OSLike) {
			t.Errorf("rpm package %s listed on a non-rpm node", p.Name)
		}
		if p.Manager == "dpkg" && p.Name == "dpkg" {
			dpkg = true
		}
	}
	if !dpkg {
		t.Error("package dpkg not among the dpkg packages")
	}
	if !slices.Contains(inv.Tools, "fwupdtool") || !slices.Contains(inv.Tools, "sh") {
		t.Errorf("Tools = %q", inv.Tools)
	}
	var webcam *fleetup.Device
	for i, d := range inv.Devices {
		if slices.Contains(d.GUIDs, "b585990a-003e-5270-89d5-3705a17f9a43") {
			webcam = &inv.Devices[i]
		}
	}
	if webcam == nil || webcam.Version != "1.2.2" || !webcam.Updatable || webcam.Plugin != "test" {
		t.Errorf("fake webcam: %+v", webcam)
	}
}

func TestCollectWarnings(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "os-release")
	if err := os.WriteFile(bad, []byte("ID=debian\nVERSION_ID=\"12\nNAME=x y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := inventory.Collect(context.Background(), nil, inventory.Options{}, &inventory.System{OSRelease: []string{filepath.Join(dir, "missing"), bad}})
	if inv.OS != "debian" {
		t.Errorf("OS = %q, want debian from the good line", inv.OS)
	}
	if len(inv.Warnings) != 1 || !strings.HasPrefix(inv.Warnings[0], "system: "+bad+": line 2: VERSION_ID: unterminated") {
		t.Errorf("Warnings = %q", inv.Warnings)
	}
	inv = inventory.Collect(context.Background(), nil, inventory.Options{}, &inventory.System{OSRelease: []string{filepath.Join(dir, "missing")}})
	if inv.OS != "linux" || inv.OSName != "Linux" || len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "no os-release file") {
		t.Errorf("missing os-release: OS %q OSName %q Warnings %q", inv.OS, inv.OSName, inv.Warnings)
	}
}

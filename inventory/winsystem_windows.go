package inventory

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// WindowsOS is the Inventory.OS of a Windows node, the target a Windows
// component names.
const WindowsOS = "windows"

// WindowsSystem collects what a Windows node is, from the registry key
// CurrentVersionKey: OS "windows", OSName its ProductName (Windows 11,
// which still calls itself "Windows 10" there, is named by its build),
// OSVersion its DisplayVersion ("21H2"; ReleaseId or CurrentVersion on
// releases without one), and Kernel the full build,
// "MAJOR.MINOR.BUILD.UBR" ("10.0.20348.1787"). Hostname is the computer's
// name and Arch the engine's architecture as uname -m names it.
type WindowsSystem struct{ Registry Registry }

var _ Collector = (*WindowsSystem)(nil)

// Name returns "system".
func (*WindowsSystem) Name() string { return "system" }

// Collect sets inv's OS, OSLike, OSVersion, OSName, Kernel, Hostname and
// Arch. A missing CurrentVersion key is an error (the OS fields then say
// only "windows").
func (w *WindowsSystem) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	inv.OS, inv.OSLike, inv.OSName, inv.OSVersion, inv.Kernel = WindowsOS, nil, "Windows", "", ""
	if h, err := os.Hostname(); err == nil {
		inv.Hostname = h
	}
	inv.Arch = unameArch(runtime.GOARCH)
	k, err := w.Registry.Open(CurrentVersionKey)
	if err != nil {
		return fmt.Errorf(`HKLM\%s: %w`, CurrentVersionKey, err)
	}
	defer k.Close()
	build := regString(k, "CurrentBuild")
	if build == "" {
		build = regString(k, "CurrentBuildNumber")
	}
	if name := regString(k, "ProductName"); name != "" {
		if n, err := strconv.Atoi(build); err == nil && n >= 22000 && strings.HasPrefix(name, "Windows 10") {
			name = "Windows 11" + strings.TrimPrefix(name, "Windows 10")
		}
		inv.OSName = name
	}
	for _, v := range []string{"DisplayVersion", "ReleaseId", "CurrentVersion"} {
		if s := regString(k, v); s != "" {
			inv.OSVersion = s
			break
		}
	}
	version := regString(k, "CurrentVersion")
	major, okMajor := regInt(k, "CurrentMajorVersionNumber")
	minor, okMinor := regInt(k, "CurrentMinorVersionNumber")
	if okMajor && okMinor {
		version = fmt.Sprintf("%d.%d", major, minor)
	}
	parts := []string{}
	for _, p := range []string{version, build} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if ubr, ok := regInt(k, "UBR"); ok && build != "" {
		parts = append(parts, strconv.FormatUint(ubr, 10))
	}
	inv.Kernel = strings.Join(parts, ".")
	return nil
}

// unameArch names a Go architecture as uname -m does.
func unameArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	}
	return goarch
}

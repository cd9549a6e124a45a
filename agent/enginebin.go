package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/fleetup/fleetup/wire"
)

// FindEngine returns the engine binary for linux/goarch. It looks, in
// order, at $FLEETUP_ENGINE, next to the running fleetup binary
// (fleetup-engine-linux-GOARCH, then fleetup-engine for the manager's own
// architecture), and on PATH. The error names every place it looked.
func FindEngine(goarch, selfArch string) (string, error) {
	var looked []string
	if p := os.Getenv("FLEETUP_ENGINE"); p != "" {
		if isFile(p) {
			return p, nil
		}
		return "", fmt.Errorf("FLEETUP_ENGINE=%s: no such file", p)
	}
	names := []string{wire.BinaryName + "-linux-" + goarch}
	// The plain name is this machine's own build: a Linux engine only
	// when the manager runs on Linux.
	if goarch == selfArch && runtime.GOOS == "linux" {
		names = append(names, wire.BinaryName)
	}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			dir = filepath.Dir(real)
		}
		for _, n := range names {
			p := filepath.Join(dir, n)
			if isFile(p) {
				return p, nil
			}
			looked = append(looked, p)
		}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
		looked = append(looked, n+" on PATH")
	}
	return "", fmt.Errorf("no engine binary for linux/%s (looked at %s); build it with `go build -o bin/%s ./cmd/fleetup-engine` next to fleetup, or set FLEETUP_ENGINE",
		goarch, strings.Join(looked, ", "), names[len(names)-1])
}

// WindowsEngineName is the file name of the engine's Windows build for
// goarch next to the manager: fleetup-engine-windows-GOARCH.exe.
func WindowsEngineName(goarch string) string {
	return wire.BinaryName + "-windows-" + goarch + ".exe"
}

// FindWindowsEngine returns the engine binary for windows/goarch. It
// looks, in order, at $FLEETUP_ENGINE_WINDOWS, next to the running fleetup
// binary (fleetup-engine-windows-GOARCH.exe) and on PATH. The error names
// every place it looked.
func FindWindowsEngine(goarch string) (string, error) {
	if p := os.Getenv("FLEETUP_ENGINE_WINDOWS"); p != "" {
		if isFile(p) {
			return p, nil
		}
		return "", fmt.Errorf("FLEETUP_ENGINE_WINDOWS=%s: no such file", p)
	}
	name := WindowsEngineName(goarch)
	var looked []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			dir = filepath.Dir(real)
		}
		p := filepath.Join(dir, name)
		if isFile(p) {
			return p, nil
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	looked = append(looked, name+" on PATH")
	return "", fmt.Errorf("no engine binary for windows/%s (looked at %s); build it with `GOOS=windows GOARCH=%s go build -o bin/%s ./cmd/fleetup-engine` next to fleetup, or set FLEETUP_ENGINE_WINDOWS",
		goarch, strings.Join(looked, ", "), goarch, name)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Package winsim holds the lab's Windows node: winsim.py, an SMB server
// (impacket) that serves a Wine prefix's C:\Windows as ADMIN$ and carries
// out MS-SCMR calls with Wine's own service manager, and the Windows
// programs the prefix needs: bcryptprimitives.dll (package bcryptshim) and
// a netsh.exe stand-in (./netsh). Package lab (windows.go) starts it in a
// node.
package winsim

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Script is winsim.py. Run it with /usr/bin/python3 (Debian's, with
// python3-impacket).
//
//go:embed winsim.py
var Script []byte

// Python is the interpreter for Script.
const Python = "/usr/bin/python3"

// Wine and WineServer are Debian's wine64 8.0 programs.
const (
	Wine       = "/usr/lib/wine/wine64"
	WineServer = "/usr/lib/wine/wineserver"
)

// FirewallFile is the netsh stand-in's rule file in C:\Windows.
const FirewallFile = "fleetup-lab-firewall.json"

// sourceDir is this package's directory in the source tree.
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// BuildNetsh builds the netsh.exe stand-in (GOOS=windows GOARCH=amd64) to
// out with the go command on PATH (or in /usr/local/go/bin), from this
// package's source tree.
func BuildNetsh(ctx context.Context, out string) error {
	return buildWindows(ctx, out, filepath.Join(sourceDir(), "netsh"))
}

func buildWindows(ctx context.Context, out, dir string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
		if _, serr := os.Stat(gobin); serr != nil {
			return fmt.Errorf("build %s: no go command: %w", dir, err)
		}
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w: %s", dir, err, bytes.TrimSpace(b))
	}
	return nil
}

// BuildWindows builds the Go package in dir (a directory of the source
// tree, e.g. a test's testdata program) for GOOS=windows GOARCH=amd64 to
// out.
func BuildWindows(ctx context.Context, out, dir string) error { return buildWindows(ctx, out, dir) }

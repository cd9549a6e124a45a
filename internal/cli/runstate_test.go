package cli

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDeployStopsOnBadStateDir: a state directory that cannot be created
// stops a deploy with a usage error naming it, before any node is
// reached (the node here is a listener that counts connections).
func TestDeployStopsOnBadStateDir(t *testing.T) {
	l, conns := countingNode(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(file, "state") // under a regular file: never creatable, root or not
	t.Setenv("FLEETUP_PASSWORD", "x")
	// A component that is up to date wherever it runs: should the check
	// ever come too late, the local deploy below changes nothing.
	noop := t.TempDir()
	os.WriteFile(filepath.Join(noop, "noop.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o644)
	os.WriteFile(filepath.Join(noop, "noop.component.toml"), []byte(`id = "dev.fleetup.test.noop"
name = "Nothing"
version = "1.0"
version_format = "dpkg"
script = "noop.sh"
version_command = "echo 1.0"
targets = ["linux"]
`), 0o644)
	target := "root@127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"deploy", []string{"deploy", "--baseline", "../../examples/baseline", "--target", target, "--no-agent", "--state-dir", bad}},
		{"inventory", []string{"inventory", "--target", target, "--no-agent", "--state-dir", bad}},
		// The local node keeps no journal, but FTP's credentials go there.
		{"local with ftp", []string{"deploy", "--baseline", noop, "--ftp-port", "63006", "--state-dir", bad}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := run(t, "", tc.args...)
			if code != ExitUsage || !strings.Contains(errs, bad) {
				t.Errorf("exit %d, stderr %q; want %d naming %s", code, errs, ExitUsage, bad)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if n := conns.Load(); n != 0 {
		t.Errorf("the node was reached %d time(s) before the state directory was checked", n)
	}
}

// A password file others can read stops every command that reaches nodes
// before any node is reached (exit 2), not when a node's sudo first asks.
func TestUnsafePasswordFileStopsBeforeNodes(t *testing.T) {
	l, conns := countingNode(t)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(pw, 0o640)
	target := "op@127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	for _, args := range [][]string{
		{"deploy", "--baseline", "../../examples/baseline", "--target", target, "--no-agent", "--password-file", pw, "--state-dir", t.TempDir()},
		{"cleanup", "--target", target, "--no-agent", "--password-file", pw, "--state-dir", t.TempDir()},
		{"preflight", "--target", target, "--no-agent", "--password-file", pw},
	} {
		code, _, errs := run(t, "", args...)
		if code != ExitUsage || !strings.Contains(errs, pw) {
			t.Errorf("%s: exit %d, stderr %q; want %d naming %s", args[0], code, errs, ExitUsage, pw)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := conns.Load(); n != 0 {
		t.Errorf("a node was reached %d time(s) before the password file was checked", n)
	}
}

// countingNode is a "node" that counts the connections made to it.
func countingNode(t *testing.T) (net.Listener, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns := new(atomic.Int32)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	return l, conns
}

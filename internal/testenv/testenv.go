// Package testenv decides whether an integration test can run here, and
// lets tests of different packages that need the same fixed ports take turns. On a
// laptop without root the tests that need namespaces, sshd or firewall
// tools skip; in CI (FLEETUP_NO_SKIP=1, set by .ci/run) a skip is a failure.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// NoSkip reports whether skips are refused (CI).
func NoSkip() bool { return os.Getenv("FLEETUP_NO_SKIP") == "1" }

// Skip skips t with reason, or fails it when skips are refused.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if NoSkip() {
		t.Fatalf("integration test cannot run (FLEETUP_NO_SKIP=1 refuses skips): %s", reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or fails, in CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// RequireTools skips (or fails, in CI) unless every named program is on PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Skip(t, "needs "+n+" on PATH")
		}
	}
}

// HoldPorts keeps other test binaries that call HoldPorts with the same
// name from running at the same time as t: tests in different packages
// that must use the same fixed ports (HP SUM's FTP ports 63006-63010) take
// turns. The lock is an flock on a file under the system's temporary
// directory, released when t ends.
func HoldPorts(t testing.TB, name string) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "fleetup-test-ports-"+name+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("port lock %s: %v", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("port lock %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
}

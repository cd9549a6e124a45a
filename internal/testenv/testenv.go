// Package testenv decides whether an integration test can run here. On a
// laptop without root the tests that need namespaces, sshd or firewall
// tools skip; in CI (FLEETUP_NO_SKIP=1, set by .ci/run) a skip is a failure.
package testenv

import (
	"os"
	"os/exec"
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

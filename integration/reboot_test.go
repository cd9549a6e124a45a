package integration

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
)

// rebootBaseline is a script that needs a reboot, and a stand-in firmware
// installer that stages its version: the install writes it as pending and
// adds a boot step to the node's boot script (lab.BootScript) that makes
// it active, so its version command (the active version) shows it only
// after a reboot, as a firmware that takes effect at boot does.
func rebootBaseline(t *testing.T) string {
	dir := t.TempDir()
	m := testbaseline.Script(t, dir, "org.fleetup.test.kernel", "2.0",
		"#!/bin/sh\nset -e\nmkdir -p /opt/fleetup-kernel\necho \"$FLEETUP_COMPONENT_VERSION\" > /opt/fleetup-kernel/version\n",
		"cat /opt/fleetup-kernel/version 2>/dev/null", "linux")
	b, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m, append(b, "reboot = true\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	testbaseline.Script(t, dir, "org.fleetup.test.staged", "3.0",
		"#!/bin/sh\nset -e\numask 022\nmkdir -p /opt/fleetup-staged\necho \"$FLEETUP_COMPONENT_VERSION\" > /opt/fleetup-staged/pending\n"+
			"echo 'if [ -f /opt/fleetup-staged/pending ]; then mv /opt/fleetup-staged/pending /opt/fleetup-staged/active; fi' >> "+lab.BootScript+"\n",
		"cat /opt/fleetup-staged/active 2>/dev/null", "linux")
	return dir
}

// lockedBuffer is a bytes.Buffer for one writer and readers at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReboot, in one run: a node that comes back from its reboot (a
// logged-in user saw the warning with the message; the boot id changed;
// the staged version is confirmed after the reboot; nothing is left), one
// that does not come back within --reboot-timeout (failed in state reboot,
// named), and one whose staged version does not take at its boot (the
// component failed, named, with the version the node reports).
func TestReboot(t *testing.T) {
	f := newLabFixture(t, lab.Options{Nodes: 3})
	back, gone, stale := f.lab.Nodes[0], f.lab.Nodes[1], f.lab.Nodes[2]
	if err := back.EnableReboot(lab.RebootOptions{Down: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := gone.EnableReboot(lab.RebootOptions{NoReturn: true}); err != nil {
		t.Fatal(err)
	}
	if err := stale.EnableReboot(lab.RebootOptions{NoBootScript: true}); err != nil {
		t.Fatal(err)
	}
	bootBefore := back.BootID()
	dir := rebootBaseline(t)

	// A user logged in on the node that comes back, on a pty.
	args := append([]string{"-F", "/dev/null", "-o", "UserKnownHostsFile=" + f.lab.KnownHostsFile(), "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"}, "-tt", "-o", "BatchMode=yes", "-i", f.lab.KeyFile(), lab.UserKey+"@"+back.Addr(), "echo logged-in; exec sleep 600")
	session := exec.Command("ssh", args...)
	var seen lockedBuffer
	session.Stdout, session.Stderr = &seen, &seen
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	sessionEnded := make(chan struct{})
	go func() { _ = session.Wait(); close(sessionEnded) }()
	t.Cleanup(func() { _ = session.Process.Kill(); <-sessionEnded })
	eventually(t, 10*time.Second, func() string {
		if strings.Contains(seen.String(), "logged-in") {
			return ""
		}
		return "the session did not log in: " + seen.String()
	})

	t0 := time.Now()
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir,
		"--target", target(lab.UserSudo, back), "--target", target("root", gone), "--target", target("root", stale), "--parallel", "3",
		"--reboot", "--reboot-delay", "15", "--reboot-message", "fleetup test", "--reboot-timeout", "10s",
		// Passes only after the reboot: the staged version is active then.
		"--health-command", "test -f /opt/fleetup-staged/active"}, f.authArgs()...)...)
	code := r.wait(3 * time.Minute)
	t.Logf("run took %s", time.Since(t0))
	if code != 3 {
		t.Fatalf("exit %d, want 3 (nodes failed)\n%s", code, r.dump())
	}
	res := r.resultsN(3)
	var rb, rg, rs map[string]any
	for name, v := range res {
		switch {
		case strings.Contains(name, back.Addr()):
			rb = v
		case strings.Contains(name, gone.Addr()):
			rg = v
		case strings.Contains(name, stale.Addr()):
			rs = v
		}
	}
	if rb == nil || rg == nil || rs == nil {
		t.Fatalf("results not found\n%s", r.dump())
	}

	// The node that came back.
	if s := str(rb, "state"); s != "complete" {
		t.Errorf("%s: state %s (%s), want complete\n%s", back.Name, s, str(rb, "error"), r.dump())
	}
	cs := components(rb)
	for id, want := range map[string]string{"org.fleetup.test.kernel": "2.0", "org.fleetup.test.staged": "3.0"} {
		if c := cs[id]; c == nil || str(c, "phase") != "installed" || str(c, "after") != want {
			t.Errorf("%s: %s: %v, want installed, %s after the reboot", back.Name, id, c, want)
		}
	}
	bootAfter := back.BootID()
	reb, _ := rb["reboot"].(map[string]any)
	if bootAfter == bootBefore || reb == nil || str(reb, "boot_id_before") != bootBefore || str(reb, "boot_id_after") != bootAfter {
		t.Errorf("%s: reboot %v; lab boot ids %s → %s", back.Name, reb, bootBefore, bootAfter)
	}
	if c, err := back.Reboots(); c != 1 || err != nil {
		t.Errorf("%s: %d lab reboot(s) (%v), want 1", back.Name, c, err)
	}
	select {
	case <-sessionEnded:
	case <-time.After(10 * time.Second):
		t.Errorf("%s: the logged-in session outlived the reboot", back.Name)
	}
	if out := seen.String(); !strings.Contains(out, "reboots in 15s: fleetup test") || !strings.Contains(out, "rebooting now: fleetup test") {
		t.Errorf("%s: the logged-in user saw %q, want the warning and the message", back.Name, out)
	}
	// The warning came 15 s before the reboot: the run's reboot took at
	// least that long.
	if d, _ := reb["duration_ns"].(float64); d <= 0 {
		t.Errorf("%s: reboot duration %v", back.Name, reb["duration_ns"])
	}
	if time.Since(t0) < 15*time.Second {
		t.Errorf("the run took %s, less than the reboot delay", time.Since(t0))
	}
	// The health command ran after the reboot (it passes only then).
	if h, _ := rb["health"].(map[string]any); h == nil || h["passed"] != true {
		t.Errorf("%s: health %v, want passed after the reboot", back.Name, rb["health"])
	}
	// The order: deploy, reboot, health, clean-up.
	var states []string
	for _, e := range r.events {
		if e["type"] == "event" && strings.Contains(str(e, "node"), back.Addr()) && str(e, "component") == "" && str(e, "state") != "" {
			if len(states) == 0 || states[len(states)-1] != str(e, "state") {
				states = append(states, str(e, "state"))
			}
		}
	}
	if got := strings.Join(states, " "); !strings.Contains(got, "deploy reboot health cleanup complete") {
		t.Errorf("%s: states %s, want deploy, reboot, health, cleanup, complete", back.Name, got)
	}

	// The node that did not come back.
	if s := str(rg, "state"); s != "failed" || str(rg, "failed_in") != "reboot" || !strings.Contains(str(rg, "error"), "did not come back") {
		t.Errorf("%s: state %s in %s (%s), want failed in reboot: did not come back", gone.Name, s, str(rg, "failed_in"), str(rg, "error"))
	}
	if !gone.SSHDDown() {
		t.Errorf("%s: sshd is up; the lab should have kept the node down", gone.Name)
	}
	// The node whose staged version did not take at its boot.
	sc := components(rs)
	if s := str(rs, "state"); s != "failed" {
		t.Errorf("%s: state %s (%s), want failed", stale.Name, s, str(rs, "error"))
	}
	if c := sc["org.fleetup.test.staged"]; c == nil || str(c, "phase") != "failed" ||
		str(c, "error") != "staged but not active after the reboot: the node reports nothing installed, not 3.0" {
		t.Errorf("%s: staged component %v, want failed: staged but not active", stale.Name, c)
	}
	if c := sc["org.fleetup.test.kernel"]; c == nil || str(c, "phase") != "installed" || str(c, "after") != "2.0" {
		t.Errorf("%s: kernel %v, want installed and confirmed", stale.Name, c)
	}

	// Nothing of the run is left on any node: the engine was closed
	// before the reboot, and again after it on the node that came back.
	f.assertClean(t)
}

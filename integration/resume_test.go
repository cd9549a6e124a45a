package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
	"github.com/fleetup/fleetup/runstate"
)

// resumeScript appends a timestamp to /opt/fleetup-resume/stamps: one
// line per time the script ran to its end on the node. Where
// /opt/fleetup-resume/hold exists, it takes it and waits (for the kill)
// while /opt/fleetup-resume/held exists: once, so that a later run goes
// through.
const resumeScript = `#!/bin/sh
set -e
mkdir -p /opt/fleetup-resume
if [ -e /opt/fleetup-resume/hold ]; then
	mv /opt/fleetup-resume/hold /opt/fleetup-resume/held
	while [ -e /opt/fleetup-resume/held ]; do sleep 0.2; done
	exit 1
fi
date +%s.%N >> /opt/fleetup-resume/stamps
echo "$FLEETUP_COMPONENT_VERSION" > /opt/fleetup-resume/version
`

// TestResumeAfterKilledManager: a deploy on three nodes, one at a time, is
// killed (SIGKILL, with the engine of the node in progress) once the first
// node is complete and the second is in the middle of its script. `deploy
// --resume RUN` with the credentials again leaves the first node untouched
// (fwupd's history still holds one flash, the script's timestamp is
// unchanged), says so, works on the other two, lists all three and exits 0.
func TestResumeAfterKilledManager(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 3})
	n := f.lab.Nodes
	ctx := context.Background()
	if out, err := n[1].Shell(ctx, "mkdir -p /opt/fleetup-resume && touch /opt/fleetup-resume/hold"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	dir := t.TempDir()
	testbaseline.Cab(t, dir, "a-webcam-1.2.5.cab", "org.fleetup.test.webcam", "1.2.5", fakeDeviceGUID)
	testbaseline.Script(t, dir, "b-stamp", "1.0", resumeScript, "cat /opt/fleetup-resume/version 2>/dev/null", "linux")
	creds := []string{"--identity", f.lab.KeyFile(), "--known-hosts", f.lab.KnownHostsFile(), "--password-file", f.pwFile, "--no-agent"}

	args := []string{"deploy", "--baseline", dir, "--parallel", "1", "--fwupd-plugins", "test"}
	for _, node := range n {
		args = append(args, "--target", target("root", node))
	}
	r := start(t, f.stateDir, append(args, creds...)...)
	runLine := r.waitFor(time.Minute, func(m map[string]any) bool { return m["type"] == "run" })
	runID := str(runLine, "run_id")
	r.waitFor(2*time.Minute, func(m map[string]any) bool {
		return strings.Contains(str(m, "node"), n[0].Addr()) && str(m, "state") == "complete" && str(m, "component") == ""
	})
	r.waitFor(2*time.Minute, func(m map[string]any) bool {
		return strings.Contains(str(m, "node"), n[1].Addr()) && m["component"] == "b-stamp" && m["phase"] == "install"
	})
	// The event comes as the engine starts the script: wait until the
	// script holds.
	eventually(t, time.Minute, func() string {
		if _, err := n[1].Shell(ctx, "test -e /opt/fleetup-resume/held"); err != nil {
			return "the script on " + n[1].Name + " does not hold yet"
		}
		return ""
	})
	// The engine of the node in progress first, so that the closed
	// session cannot make it clean up; then the manager.
	if killed, err := n[1].Kill(syscall.SIGKILL, func(p lab.Process) bool { return strings.Contains(p.Cmdline, "fleetup-engine serve") }); err != nil || len(killed) == 0 {
		t.Fatalf("kill the engine: killed %v (%v)", killed, err)
	}
	_ = r.cmd.Process.Kill()
	r.wait(time.Minute)

	// What the killed run recorded: the first node complete, the second
	// not ended, the third never started.
	h, err := runstate.OpenHistory(f.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := h.Load(runID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Ended || len(rec.Nodes) != 1 || !strings.Contains(rec.Nodes[0].Node, n[0].Addr()) || rec.Nodes[0].State != "complete" {
		t.Fatalf("record of the killed run: ended %v, nodes %+v", rec.Ended, rec.Nodes)
	}
	for _, want := range []string{"password", f.lab.Password()} {
		data, _ := os.ReadFile(filepath.Join(h.Dir(), runID+".json"))
		if strings.Contains(string(data), want) {
			t.Errorf("the run record holds %q:\n%s", want, data)
		}
	}
	stampsBefore := nodeFile(t, n[0], "stat -c %y /opt/fleetup-resume/stamps && cat /opt/fleetup-resume/stamps")
	flash0 := lastFlash(t, n[0])
	flash1 := lastFlash(t, n[1]) // the killed run flashed the second node before its script

	// A flag that would change the run is refused, and nothing is done.
	bad := start(t, f.stateDir, append([]string{"deploy", "--resume", runID, "--downgrade"}, creds...)...)
	if code := bad.wait(time.Minute); code != 2 || !strings.Contains(bad.stderr.String(), "--downgrade cannot be used with --resume") {
		t.Errorf("--resume with --downgrade: exit %d, stderr %q; want 2 naming the flag", code, bad.stderr.String())
	}

	// fwupd's history has seconds: the resume's flash of the second node
	// must come in a later second than the killed run's.
	if d := time.Until(flash1.Add(1100 * time.Millisecond)); d > 0 {
		time.Sleep(d)
	}
	res := start(t, f.stateDir, append([]string{"deploy", "--resume", runID}, creds...)...)
	select {
	case <-res.done:
	case <-time.After(3 * time.Minute):
		_ = res.cmd.Process.Kill()
		<-res.done
		t.Fatalf("the resume did not finish within 3 minutes\n%s", res.dump())
	}
	if code := res.wait(time.Minute); code != 0 {
		t.Fatalf("resume: exit %d, want 0\n%s", code, res.dump())
	}
	defer func() {
		if t.Failed() {
			t.Logf("the resume:\n%s", res.dump())
		}
	}()
	// The killed run's script on the second node was stopped by the
	// resume's sweep; should it still wait, it exits now (and fails).
	_, _ = n[1].Shell(ctx, "rm -f /opt/fleetup-resume/held")
	results := res.resultsN(3)
	for i, node := range n {
		nr := resultFor(t, res, results, node.Addr())
		if s := str(nr, "state"); s != "complete" {
			t.Errorf("%s: state %s, want complete (%s)", node.Name, s, str(nr, "error"))
		}
		wantFrom := ""
		if i == 0 {
			wantFrom = runID
		}
		if got := str(nr, "from_run"); got != wantFrom {
			t.Errorf("%s: from_run %q, want %q", node.Name, got, wantFrom)
		}
		if c := components(nr)["b-stamp"]; str(c, "phase") != "installed" || str(c, "after") != "1.0" {
			t.Errorf("%s: b-stamp %v, want installed 1.0", node.Name, c)
		}
	}
	if !anyMessage(res, nodeKey(n[0].Addr()), "complete in run "+runID+" at ") || !anyMessage(res, nodeKey(n[0].Addr()), "not touched again") {
		t.Errorf("the resume does not say the first node was complete in run %s\n%s", runID, res.dump())
	}
	if !anyMessage(res, nodeKey(n[1].Addr()), "had not ended when run "+runID+" stopped") {
		t.Errorf("the resume does not say the second node had not ended\n%s", res.dump())
	}
	// The nodes themselves: the first untouched, the others worked on.
	if got := nodeFile(t, n[0], "stat -c %y /opt/fleetup-resume/stamps && cat /opt/fleetup-resume/stamps"); got != stampsBefore {
		t.Errorf("%s: the script's timestamp changed: %q, was %q", n[0].Name, got, stampsBefore)
	}
	// fwupd keeps one history entry per device and release: a flash again
	// replaces it, with a new time.
	if got := flashedVersions(t, n[0]); len(got) != 1 || got[0] != "1.2.5/success" {
		t.Errorf("%s: fwupd history %v, want the first run's flash alone", n[0].Name, got)
	}
	if got := lastFlash(t, n[0]); !got.Equal(flash0) {
		t.Errorf("%s: flashed again at %v (the first run flashed it at %v)", n[0].Name, got, flash0)
	}
	if got := lastFlash(t, n[1]); !got.After(flash1) {
		t.Errorf("%s: last flash at %v, not after the killed run's at %v", n[1].Name, got, flash1)
	}
	for _, node := range n[1:] {
		if got := flashedVersions(t, node); len(got) == 0 || got[len(got)-1] != "1.2.5/success" {
			t.Errorf("%s: fwupd history %v, want a successful flash to 1.2.5", node.Name, got)
		}
	}
	for _, node := range n[1:] {
		if got := nodeFile(t, node, "cat /opt/fleetup-resume/version"); got != "1.0\n" {
			t.Errorf("%s: version file %q, want 1.0", node.Name, got)
		}
	}
	// The resume is recorded as such, with the whole rollout.
	latest, err := h.Load(runstate.Latest)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Resumes != runID || !latest.Ended || len(latest.Nodes) != 3 {
		t.Errorf("record of the resume: resumes %q, ended %v, %d nodes", latest.Resumes, latest.Ended, len(latest.Nodes))
	}
	// What the killed run left on the second node was swept by the
	// resume, and nothing of either run is left anywhere.
	if !anyMessage(res, nodeKey(n[1].Addr()), "removed leftovers of an earlier run") {
		t.Errorf("the resume did not sweep what the killed run left on %s\n%s", n[1].Name, res.dump())
	}
	eventually(t, 10*time.Second, f.cleanMsg)
}

// lastFlash is when the node's fwupd history says it was last flashed.
func lastFlash(t *testing.T, node *lab.Node) time.Time {
	t.Helper()
	h, err := node.FwupdHistory(context.Background())
	if err != nil {
		t.Fatalf("%s: fwupd history: %v", node.Name, err)
	}
	if len(h) == 0 {
		t.Fatalf("%s: no flash in fwupd's history", node.Name)
	}
	return h[len(h)-1].Created
}

// nodeFile is what a shell command prints on node.
func nodeFile(t *testing.T, node *lab.Node, cmd string) string {
	t.Helper()
	out, err := node.Shell(context.Background(), cmd)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", node.Name, cmd, err, out)
	}
	return string(out)
}

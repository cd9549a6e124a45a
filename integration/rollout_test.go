package integration

// End-to-end tests of the rollout controls of a deploy (README "Waves",
// Baselines "Dependencies"): a canary that fails, --max-failures,
// component dependencies under each --on-failed-dependency, and
// --health-command. Failures are made node-specific with a file in the
// node's private /opt that a script component looks for; the components
// leave their marks in /opt too (private per node, outside the snapshot).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
)

// rolloutFailFlag is the file whose presence on a node makes the
// components of rolloutScript fail there.
const rolloutFailFlag = "/opt/fleetup-rollout-fail"

// rolloutScript writes a script component id at version "1.0" that fails
// (exit 1) on a node holding rolloutFailFlag and otherwise writes
// /opt/fleetup-rollout/ID (its version) and /opt/fleetup-rollout/ID.ns
// (the time of its install in nanoseconds). It returns the manifest's path.
func rolloutScript(t *testing.T, dir, id string) string {
	t.Helper()
	body := fmt.Sprintf("#!/bin/sh\nset -e\nif [ -e %s ]; then echo \"refusing: %s is here\" >&2; exit 1; fi\n"+
		"mkdir -p /opt/fleetup-rollout\ndate +%%s%%N > /opt/fleetup-rollout/%s.ns\nsleep 0.05\n"+
		"echo \"$FLEETUP_COMPONENT_VERSION\" > /opt/fleetup-rollout/%s\n", rolloutFailFlag, rolloutFailFlag, id, id)
	return testbaseline.Script(t, dir, id, "1.0", body, "cat /opt/fleetup-rollout/"+id+" 2>/dev/null", "linux")
}

// rolloutRequires adds a requires line to the manifest at path.
func rolloutRequires(t *testing.T, manifest string, reqs ...string) {
	t.Helper()
	f, err := os.OpenFile(manifest, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q := make([]string, len(reqs))
	for i, r := range reqs {
		q[i] = fmt.Sprintf("%q", r)
	}
	if _, err := fmt.Fprintf(f, "requires = [%s]\n", strings.Join(q, ", ")); err != nil {
		t.Fatal(err)
	}
}

// rolloutResult is n's result line among res.
func rolloutResult(t *testing.T, r *run, res map[string]map[string]any, n *lab.Node) map[string]any {
	t.Helper()
	for name, v := range res {
		if rolloutIsNode(name, n) {
			return v
		}
	}
	t.Fatalf("no result for %s (%s)\n%s", n.Name, n.Addr(), rolloutBrief(r))
	return nil
}

// rolloutIsNode reports whether a result's or event's node name is n's
// ("root@198.18.1.2:22").
func rolloutIsNode(name string, n *lab.Node) bool {
	hp := name
	if _, h, ok := strings.Cut(name, "@"); ok {
		hp = h
	}
	return hp == n.Addr() || strings.HasPrefix(hp, n.Addr()+":")
}

// rolloutBrief is dump without the nodes' inventories (hundreds of packages).
func rolloutBrief(r *run) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.events {
		c := map[string]any{}
		for k, v := range e {
			if k != "inventory" {
				c[k] = v
			}
		}
		j, _ := json.Marshal(c)
		b.Write(j)
		b.WriteByte('\n')
	}
	b.WriteString("stderr:\n")
	b.WriteString(r.stderr.String())
	return b.String()
}

// rolloutEvents are the events of n's node, in order (the result line too).
func rolloutEvents(r *run, n *lab.Node) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, e := range r.events {
		if rolloutIsNode(str(e, "node"), n) {
			out = append(out, e)
		}
	}
	return out
}

// rolloutRunMessage returns the message of the first event of the run (no node)
// that holds every one of subs, or "".
func rolloutRunMessage(r *run, subs ...string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if str(e, "node") != "" || e["type"] == "result" {
			continue
		}
		m := str(e, "message")
		ok := m != ""
		for _, s := range subs {
			ok = ok && strings.Contains(m, s)
		}
		if ok {
			return m
		}
	}
	return ""
}

// rolloutMarks lists what rolloutScript left on n ("" when nothing).
func rolloutMarks(t *testing.T, n *lab.Node) string {
	t.Helper()
	out, err := n.Shell(context.Background(), "ls -A /opt/fleetup-rollout 2>/dev/null || true")
	if err != nil {
		t.Fatalf("%s: %v: %s", n.Name, err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// rolloutFailOn makes rolloutScript's components fail on n, and takes n's
// snapshot again (the flag is outside the snapshot's directories, but the
// command that made it is a process like any other).
func rolloutFailOn(t *testing.T, f *fixture, i int) {
	t.Helper()
	n := f.lab.Nodes[i]
	if out, err := n.Shell(context.Background(), "touch "+rolloutFailFlag); err != nil {
		t.Fatalf("%s: %v: %s", n.Name, err, out)
	}
	s, err := n.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.before[i] = s
}

// rolloutCleanSoon is f.assertClean allowing the nodes' sshd a moment to
// end the session processes of connections the manager closed as it
// exited ("sshd: root@notty" is sometimes still there a few milliseconds
// after fleetup's exit).
func rolloutCleanSoon(t *testing.T, f *fixture) {
	t.Helper()
	eventually(t, 5*time.Second, f.cleanMsg)
}

// rolloutArgs are a deploy of dir to nodes as root, with extra flags.
func rolloutArgs(f *fixture, dir string, nodes []*lab.Node, extra ...string) []string {
	args := []string{"deploy", "--baseline", dir}
	for _, n := range nodes {
		args = append(args, "--target", target("root", n))
	}
	return append(append(args, extra...), f.authArgs()...)
}

// rolloutUntouched checks that node i of f was never worked on in r: it
// ended skipped with an error holding every one of want, its only events
// say so (no scouting, no engine), no component ran there, and it is
// exactly as before the run (at once: no session of the run to wind down).
func rolloutUntouched(t *testing.T, f *fixture, r *run, res map[string]map[string]any, i int, want ...string) {
	t.Helper()
	n := f.lab.Nodes[i]
	if s, err := n.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	} else if d := s.Diff(f.before[i]); d != "" {
		t.Errorf("%s, never started, is not as it was before the run:\n%s", n.Name, d)
	}
	nr := rolloutResult(t, r, res, n)
	if s := str(nr, "state"); s != "skipped" {
		t.Errorf("%s: state %q (%s), want skipped", n.Name, s, str(nr, "error"))
	}
	for _, w := range want {
		if e := str(nr, "error"); !strings.Contains(e, w) {
			t.Errorf("%s: error %q does not say %q", n.Name, e, w)
		}
	}
	if cs := components(nr); len(cs) != 0 {
		t.Errorf("%s: component results on a node never started: %v", n.Name, cs)
	}
	if nr["inventory"] != nil || nr["cleanup"] != nil {
		t.Errorf("%s: an inventory or clean-up report from a node never started: %v", n.Name, nr)
	}
	for _, e := range rolloutEvents(r, n) {
		if e["type"] != "result" && str(e, "state") != "skipped" {
			t.Errorf("%s: event of a node that should not have started: %v", n.Name, e)
		}
	}
	if m := rolloutMarks(t, n); m != "" {
		t.Errorf("%s: a component ran on a node that should not have started: /opt/fleetup-rollout holds %s", n.Name, m)
	}
}

// TestRolloutCanaryFails: the canary node's component fails, so the three
// other nodes are never started and end skipped, naming the canary.
func TestRolloutCanaryFails(t *testing.T) {
	f := newLabFixture(t, lab.Options{Nodes: 4})
	n := f.lab.Nodes
	rolloutFailOn(t, f, 0)
	dir := t.TempDir()
	rolloutScript(t, dir, "org.fleetup.test.rollout")
	r := start(t, f.stateDir, rolloutArgs(f, dir, n, "--canary", "1", "--parallel", "4")...)
	if code := r.wait(2 * time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3 (the canary failed)\n%s", code, rolloutBrief(r))
	}
	res := r.resultsN(4)
	canary := rolloutResult(t, r, res, n[0])
	canaryName := str(canary, "node")
	if str(canary, "state") != "failed" || str(canary, "failed_in") != "deploy" || canary["canary"] != true {
		t.Errorf("canary %s: state %q failed_in %q canary %v (%s), want a failed canary, in deploy",
			canaryName, str(canary, "state"), str(canary, "failed_in"), canary["canary"], str(canary, "error"))
	}
	if c := components(canary)["org.fleetup.test.rollout"]; str(c, "phase") != "failed" {
		t.Errorf("canary: component %v, want failed", c)
	}
	for i, node := range n[1:] {
		nr := rolloutResult(t, r, res, node)
		if nr["canary"] == true {
			t.Errorf("%s: marked canary with --canary 1", node.Name)
		}
		rolloutUntouched(t, f, r, res, i+1, "canary node "+canaryName+" failed in deploy", "the run stops after its canary wave")
	}
	// The run's events say what the waves were and why the second did not start.
	if m := rolloutRunMessage(r, "wave 1 (canary): 1 node: "+canaryName); m == "" {
		t.Errorf("no event names the canary wave\n%s", rolloutBrief(r))
	}
	if m := rolloutRunMessage(r, "wave 1 (canary): canary node "+canaryName+" failed in deploy", "the other 3 nodes are not started"); m == "" {
		t.Errorf("no event says the run stopped after the failed canary\n%s", rolloutBrief(r))
	}
	if m := rolloutRunMessage(r, "wave 2"); m != "" {
		t.Errorf("a second wave was announced after the canary failed: %q", m)
	}
	if m := rolloutMarks(t, n[0]); m != "" {
		t.Errorf("canary: the failing script left %s", m)
	}
	rolloutCleanSoon(t, f)
}

// TestRolloutMaxFailures: five nodes one at a time, the second and the
// fourth failing, --max-failures 1: the first failure is tolerated (the
// third node is worked on), the second stops the run (the fifth is not).
func TestRolloutMaxFailures(t *testing.T) {
	f := newLabFixture(t, lab.Options{Nodes: 5})
	n := f.lab.Nodes
	rolloutFailOn(t, f, 1)
	rolloutFailOn(t, f, 3)
	dir := t.TempDir()
	rolloutScript(t, dir, "org.fleetup.test.rollout")
	r := start(t, f.stateDir, rolloutArgs(f, dir, n, "--max-failures", "1", "--parallel", "1")...)
	if code := r.wait(2 * time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, rolloutBrief(r))
	}
	res := r.resultsN(5)
	for i, want := range []string{"complete", "failed", "complete", "failed", "skipped"} {
		nr := rolloutResult(t, r, res, n[i])
		if s := str(nr, "state"); s != want {
			t.Errorf("%s (#%d): state %q (%s), want %s", n[i].Name, i, s, str(nr, "error"), want)
		}
		switch want {
		case "complete":
			if m := rolloutMarks(t, n[i]); m != "org.fleetup.test.rollout org.fleetup.test.rollout.ns" {
				t.Errorf("%s: /opt/fleetup-rollout holds %q, want the component's marks", n[i].Name, m)
			}
		case "failed":
			if fi := str(nr, "failed_in"); fi != "deploy" {
				t.Errorf("%s: failed in %q, want deploy", n[i].Name, fi)
			}
		}
	}
	rolloutUntouched(t, f, r, res, 4, "not started: 2 nodes failed, more than --max-failures 1")
	if m := rolloutRunMessage(r, "2 nodes failed, more than --max-failures 1", "no new node starts", "the 1 node not started yet end skipped"); m == "" {
		t.Errorf("no event says the run stopped starting nodes\n%s", rolloutBrief(r))
	}
	if m := rolloutRunMessage(r, "1 node failed, more than"); m != "" {
		t.Errorf("the first failure stopped the run: %q", m)
	}
	rolloutCleanSoon(t, f)
}

// rolloutDepsBaseline is base (2.0), app requiring "base >= 2.0", and tool
// requiring "missing.component >= 1", which is nowhere. By file name app
// comes before base, so only the dependency puts base first.
func rolloutDepsBaseline(t *testing.T) string {
	dir := t.TempDir()
	rolloutDepsScript(t, dir, "base", "2.0")
	rolloutRequires(t, rolloutDepsScript(t, dir, "app", "1.0"), "base >= 2.0")
	rolloutRequires(t, rolloutDepsScript(t, dir, "tool", "1.0"), "missing.component >= 1")
	return dir
}

// rolloutDepsScript writes a script component that records its install time in
// /opt/fleetup-deps/ID.ns and its version in /opt/fleetup-deps/ID, or
// fails on a node holding /opt/fleetup-deps-fail-ID.
func rolloutDepsScript(t *testing.T, dir, id, version string) string {
	t.Helper()
	body := fmt.Sprintf("#!/bin/sh\nset -e\nif [ -e /opt/fleetup-deps-fail-%s ]; then echo \"%s fails here\" >&2; exit 1; fi\n"+
		"mkdir -p /opt/fleetup-deps\ndate +%%s%%N > /opt/fleetup-deps/%s.ns\nsleep 0.05\necho %s > /opt/fleetup-deps/%s\n", id, id, id, version, id)
	return testbaseline.Script(t, dir, id, version, body, "cat /opt/fleetup-deps/"+id+" 2>/dev/null", "linux")
}

// rolloutDepsMark is the install time (ns) of id on n, "" when it did not run.
func rolloutDepsMark(t *testing.T, n *lab.Node, id string) string {
	t.Helper()
	out, err := n.Shell(context.Background(), "cat /opt/fleetup-deps/"+id+".ns 2>/dev/null || true")
	if err != nil {
		t.Fatalf("%s: %v: %s", n.Name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// rolloutFailedDeps are the failed_dependencies of a result line.
func rolloutFailedDeps(nr map[string]any) []map[string]any {
	var out []map[string]any
	fds, _ := nr["failed_dependencies"].([]any)
	for _, fd := range fds {
		if m, ok := fd.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestRolloutDependencies runs the dependency baseline under each
// --on-failed-dependency, one node each; and, on a fourth node, a
// dependency whose install fails (with the default policy), next to a
// requirement a package of the node meets. The four runs at once.
func TestRolloutDependencies(t *testing.T) {
	f := newLabFixture(t, lab.Options{Nodes: 4})
	dir := rolloutDepsBaseline(t)
	hostN, compN, forceN, failN := f.lab.Nodes[0], f.lab.Nodes[1], f.lab.Nodes[2], f.lab.Nodes[3]
	failDir := t.TempDir()
	rolloutDepsScript(t, failDir, "base", "2.0")
	rolloutRequires(t, rolloutDepsScript(t, failDir, "app", "1.0"), "base >= 2.0")
	rolloutRequires(t, rolloutDepsScript(t, failDir, "pkgdep", "1.0"), "dpkg >= 1.17")
	if out, err := failN.Shell(context.Background(), "touch /opt/fleetup-deps-fail-base"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rFail := start(t, t.TempDir(), rolloutArgs(f, failDir, []*lab.Node{failN})...)
	const toolWhy = "requires missing.component >= 1, which is not in the baseline, and no package of that name is installed on this node"
	rHost := start(t, t.TempDir(), rolloutArgs(f, dir, []*lab.Node{hostN})...) // the default: omit-host
	rComp := start(t, t.TempDir(), rolloutArgs(f, dir, []*lab.Node{compN}, "--on-failed-dependency", "omit-component")...)
	rForce := start(t, t.TempDir(), rolloutArgs(f, dir, []*lab.Node{forceN}, "--on-failed-dependency", "force")...)

	t.Run("omit-component", func(t *testing.T) {
		r := rComp
		if code := r.wait(2 * time.Minute); code != 3 {
			t.Fatalf("exit %d, want 3\n%s", code, rolloutBrief(r))
		}
		nr := rolloutResult(t, r, r.resultsN(1), compN)
		if str(nr, "state") != "failed" || str(nr, "failed_in") != "deploy" ||
			!strings.Contains(str(nr, "error"), "1 component(s) omitted for failed dependencies (tool): tool "+toolWhy) {
			t.Errorf("state %q failed_in %q error %q, want failed in deploy naming the omitted tool", str(nr, "state"), str(nr, "failed_in"), str(nr, "error"))
		}
		cs := components(nr)
		for _, id := range []string{"base", "app"} {
			if c := cs[id]; str(c, "phase") != "installed" || str(c, "after") == "" {
				t.Errorf("%s: %v, want installed", id, c)
			}
		}
		if c := cs["tool"]; str(c, "phase") != "skipped" || !strings.HasPrefix(str(c, "reason"), "omitted: "+toolWhy) {
			t.Errorf("tool: %v, want skipped, omitted: %s", c, toolWhy)
		}
		fds := rolloutFailedDeps(nr)
		if len(fds) != 1 || str(fds[0], "component") != "tool" || str(fds[0], "action") != "omit-component" ||
			!strings.Contains(str(fds[0], "why"), "is not in the baseline") {
			t.Errorf("failed_dependencies %v, want tool's, omit-component", nr["failed_dependencies"])
		}
		// base before app: on the node, and in the events.
		b, a := rolloutDepsMark(t, compN, "base"), rolloutDepsMark(t, compN, "app")
		if b == "" || a == "" || len(b) != len(a) || b >= a {
			t.Errorf("install times on the node: base %q app %q, want base first", b, a)
		}
		if m := rolloutDepsMark(t, compN, "tool"); m != "" {
			t.Errorf("the omitted tool ran on the node (at %s)", m)
		}
		baseDone, appStart := -1, -1
		for i, e := range rolloutEvents(r, compN) {
			switch {
			case e["component"] == "base" && e["phase"] == "installed" && baseDone < 0:
				baseDone = i
			case e["component"] == "app" && (e["phase"] == "download" || e["phase"] == "install") && appStart < 0:
				appStart = i
			case e["component"] == "tool" && e["phase"] != nil && e["phase"] != "skipped":
				t.Errorf("the omitted tool was worked on: %v", e)
			}
		}
		if baseDone < 0 || appStart < 0 || baseDone > appStart {
			t.Errorf("events: base installed at #%d, app started at #%d; want base installed before app starts\n%s", baseDone, appStart, rolloutBrief(r))
		}
	})

	t.Run("omit-host", func(t *testing.T) {
		r := rHost
		if code := r.wait(2 * time.Minute); code != 3 {
			t.Fatalf("exit %d, want 3\n%s", code, rolloutBrief(r))
		}
		nr := rolloutResult(t, r, r.resultsN(1), hostN)
		e := str(nr, "error")
		if str(nr, "state") != "failed" || str(nr, "failed_in") != "analysis" ||
			!strings.Contains(e, "failed dependencies, so nothing is installed on this node (on-failed-dependency omit-host)") ||
			!strings.Contains(e, "tool "+toolWhy) {
			t.Errorf("state %q failed_in %q error %q, want failed in analysis naming tool's failed dependency", str(nr, "state"), str(nr, "failed_in"), e)
		}
		for id, c := range components(nr) {
			if ph := str(c, "phase"); ph == "installed" || ph == "failed" {
				t.Errorf("%s: phase %q on an omitted host", id, ph)
			}
		}
		if c := components(nr)["tool"]; !strings.HasPrefix(str(c, "reason"), "host omitted: "+toolWhy) {
			t.Errorf("tool: %v, want the reason host omitted: %s", c, toolWhy)
		}
		if fds := rolloutFailedDeps(nr); len(fds) != 1 || str(fds[0], "component") != "tool" || str(fds[0], "action") != "omit-host" {
			t.Errorf("failed_dependencies %v, want tool's, omit-host", nr["failed_dependencies"])
		}
		for _, id := range []string{"base", "app", "tool"} {
			if m := rolloutDepsMark(t, hostN, id); m != "" {
				t.Errorf("%s ran on an omitted host (at %s)", id, m)
			}
		}
	})

	t.Run("force", func(t *testing.T) {
		r := rForce
		if code := r.wait(2 * time.Minute); code != 0 {
			t.Fatalf("exit %d, want 0 (everything installed)\n%s", code, rolloutBrief(r))
		}
		nr := rolloutResult(t, r, r.resultsN(1), forceN)
		if s := str(nr, "state"); s != "complete" {
			t.Errorf("state %q (%s), want complete", s, str(nr, "error"))
		}
		cs := components(nr)
		for _, id := range []string{"base", "app", "tool"} {
			if c := cs[id]; str(c, "phase") != "installed" {
				t.Errorf("%s: %v, want installed", id, c)
			}
			if rolloutDepsMark(t, forceN, id) == "" {
				t.Errorf("%s did not run on the node", id)
			}
		}
		if c := cs["tool"]; !strings.Contains(str(c, "reason"), "dependency forced: "+toolWhy) {
			t.Errorf("tool: reason %q, want dependency forced: %s", str(c, "reason"), toolWhy)
		}
		if fds := rolloutFailedDeps(nr); len(fds) != 1 || str(fds[0], "component") != "tool" || str(fds[0], "action") != "force" {
			t.Errorf("failed_dependencies %v, want tool's, force", nr["failed_dependencies"])
		}
		// Forced or not, base still goes before app.
		if b, a := rolloutDepsMark(t, forceN, "base"), rolloutDepsMark(t, forceN, "app"); b == "" || len(b) != len(a) || b >= a {
			t.Errorf("install times on the node: base %q app %q, want base first", b, a)
		}
		forced := false
		for _, e := range rolloutEvents(r, forceN) {
			forced = forced || e["component"] == "tool" && strings.HasPrefix(str(e, "message"), "dependency forced: ")
		}
		if !forced {
			t.Errorf("no event says tool's dependency was forced\n%s", rolloutBrief(r))
		}
	})

	t.Run("dependency-fails", func(t *testing.T) {
		r := rFail
		if code := r.wait(2 * time.Minute); code != 3 {
			t.Fatalf("exit %d, want 3\n%s", code, rolloutBrief(r))
		}
		nr := rolloutResult(t, r, r.resultsN(1), failN)
		const appWhy = "requires base >= 2.0, which failed to install: "
		if e := str(nr, "error"); str(nr, "state") != "failed" || str(nr, "failed_in") != "deploy" ||
			!strings.Contains(e, "1 component(s) failed") || !strings.Contains(e, "1 component(s) omitted for failed dependencies (app): app "+appWhy) {
			t.Errorf("state %q failed_in %q error %q, want failed in deploy, base failed and app omitted", str(nr, "state"), str(nr, "failed_in"), e)
		}
		cs := components(nr)
		if c := cs["base"]; str(c, "phase") != "failed" || !strings.Contains(str(c, "error"), "base fails here") {
			t.Errorf("base: %v, want failed with its script's message", c)
		}
		if c := cs["app"]; str(c, "phase") != "skipped" || !strings.HasPrefix(str(c, "reason"), "omitted: "+appWhy) ||
			!strings.Contains(str(c, "reason"), "base fails here") {
			t.Errorf("app: %v, want skipped, omitted: %s...", c, appWhy)
		}
		// A requirement on a package the node has (dpkg) is met.
		if c := cs["pkgdep"]; str(c, "phase") != "installed" || strings.Contains(str(c, "reason"), "requires") {
			t.Errorf("pkgdep (requires dpkg >= 1.17, which the node has): %v, want installed", c)
		}
		fds := rolloutFailedDeps(nr)
		if len(fds) != 1 || str(fds[0], "component") != "app" || str(fds[0], "action") != "omit-component" ||
			!strings.HasPrefix(str(fds[0], "why"), "failed to install") {
			t.Errorf("failed_dependencies %v, want app's only, omit-component (a failure during the deploy)", nr["failed_dependencies"])
		}
		for id, want := range map[string]bool{"base": false, "app": false, "pkgdep": true} {
			if got := rolloutDepsMark(t, failN, id) != ""; got != want {
				t.Errorf("%s ran on the node: %v, want %v", id, got, want)
			}
		}
	})
	rolloutCleanSoon(t, f)
}

// TestRolloutHealthCommand: after an update, a health command that fails
// fails the node in phase health (and, on a canary, keeps the next wave
// from starting); one that passes (and sees the update) leaves the node
// complete. The two runs at once.
func TestRolloutHealthCommand(t *testing.T) {
	f := newLabFixture(t, lab.Options{Nodes: 3})
	bad, good, spare := f.lab.Nodes[0], f.lab.Nodes[1], f.lab.Nodes[2]
	dir := t.TempDir()
	rolloutScript(t, dir, "org.fleetup.test.rollout")
	rBad := start(t, t.TempDir(), rolloutArgs(f, dir, []*lab.Node{bad, spare}, "--canary", "1", "--health-command", "echo checking; test -e /nonexistent")...)
	// The passing check logs in as a sudo user: the command runs as that
	// user, not through sudo, in the C locale, after the update (whose
	// directory it looks for; it cannot look inside: script components
	// run with the engine's umask 077).
	goodArgs := append([]string{"deploy", "--baseline", dir, "--target", target(lab.UserSudoNoPass, good),
		"--health-command", `echo "user=$(id -un) lc=$LC_ALL"; test -d /opt/fleetup-rollout && echo healthy`}, f.authArgs()...)
	rGood := start(t, t.TempDir(), goodArgs...)

	if code := rBad.wait(2 * time.Minute); code != 3 {
		t.Errorf("failing health command: exit %d, want 3\n%s", code, rolloutBrief(rBad))
	} else {
		res := rBad.resultsN(2)
		nr := rolloutResult(t, rBad, res, bad)
		h, _ := nr["health"].(map[string]any)
		if str(nr, "state") != "failed" || str(nr, "failed_in") != "health" ||
			!strings.Contains(str(nr, "error"), "the health command exited with status 1; its last lines: checking") {
			t.Errorf("state %q failed_in %q error %q, want failed in health with the exit status and output", str(nr, "state"), str(nr, "failed_in"), str(nr, "error"))
		}
		if h == nil || h["passed"] != false || h["exit_code"] != float64(1) {
			t.Errorf("health %v, want not passed, exit code 1", nr["health"])
		}
		// The update itself went through before the check.
		if c := components(nr)["org.fleetup.test.rollout"]; str(c, "phase") != "installed" {
			t.Errorf("component %v, want installed", c)
		}
		// A failed health check counts as the canary's failure.
		rolloutUntouched(t, f, rBad, res, 2, "canary node "+str(nr, "node")+" failed in health: the health command exited with status 1")
	}
	if code := rGood.wait(2 * time.Minute); code != 0 {
		t.Errorf("passing health command: exit %d, want 0\n%s", code, rolloutBrief(rGood))
	} else {
		nr := rolloutResult(t, rGood, rGood.resultsN(1), good)
		h, _ := nr["health"].(map[string]any)
		if str(nr, "state") != "complete" || h == nil || h["passed"] != true || h["exit_code"] != float64(0) ||
			!strings.Contains(str(h, "output"), "user="+lab.UserSudoNoPass+" lc=C\nhealthy") {
			t.Errorf("state %q (%s) health %v, want complete with a passed check run as %s", str(nr, "state"), str(nr, "error"), nr["health"], lab.UserSudoNoPass)
		}
		passed := false
		for _, e := range rolloutEvents(rGood, good) {
			passed = passed || str(e, "state") == "health" && str(e, "message") == "passed"
		}
		if !passed {
			t.Errorf("no event says the health command passed\n%s", rolloutBrief(rGood))
		}
	}
	rolloutCleanSoon(t, f)
}

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
)

// The fault matrix: one deploy to many nodes, each node but two healthy
// ones getting one fault at one phase of its run, triggered when the node
// reaches that phase. For every cell the manager must not crash (it exits
// 3, "some nodes failed"), the other nodes must complete, the faulted node
// must end failed with an error that says where (the phase) and why (the
// cause), and once the fault is undone the node must end clean: by itself
// (its engine's idle timeout) or after `fleetup cleanup --target`.
//
// Phases, and how each is caught and made long enough to hit:
//
//	scouting      node side: the scout script's mktemp running in the node's
//	              SSH session, +0.3 s (the node's mktemp sleeps 2 s first: a
//	              shim on its PATH), so the fault lands in the session, not
//	              before it
//	engine copy   node side: the engine's file in fleetup-RUN.* (SFTP
//	              writes it under a temporary name, renamed when complete)
//	              growing past 1 MB (the node's link limited to 16 mbit:
//	              ~5 s for 11 MB)
//	engine start  node side: the engine process appearing (its exe in the
//	              run's directory), +0.3 s (the node's nft sleeps 1 s first:
//	              a shim on its PATH; the engine runs nft 2-3 times to find
//	              and open the node's firewall before it is ready)
//	inventory     the "inventory" event, +0.5 s (the node's fwupdtool
//	              sleeps 3 s first: a shim on its PATH)
//	download      a-big's "download" event, +1 s (a 24 MB payload, the
//	              node's link limited to 40 mbit: ~5 s)
//	install       b-slow's "install" event, +1 s (the script sleeps 8 s)
//	clean-up      the "cleanup" event, +0.5 s (c-daemon left a daemon that
//	              ignores SIGTERM, so the engine's clean-up waits 3 s for it)
//
// Faults: the node's link cut (its end of the veth down), the engine
// killed with SIGKILL, every sshd process of the node killed with SIGKILL,
// the node's firewall starting to drop the engine's port range
// 62286-62385, both ways, established connections included.
//
// Cells not run, and why:
//
//	scouting × engine killed      no engine exists yet: it is not even copied.
//	engine copy × engine killed   the engine is a file being written, not a
//	                              process; there is nothing to kill.
//	scouting × port dropped,      physically the same cell as engine start ×
//	engine copy × port dropped    port dropped: in all three the port drops
//	                              before the engine listens and before the
//	                              manager first tries it. That cell is run,
//	                              its fault applied as the engine file appears
//	                              (the earliest moment that is surely before
//	                              the engine listens).
//
// Every node's input is filtered (nftables on half of them, iptables on the
// others), so each engine opens its port with a rule tagged fleetup:RUN
// that clean-up must remove. The run uses --engine-idle-timeout 5s (the
// manager pings every 1.25 s and declares a node lost after three missed
// pings) and --connect-timeout 5s. After the run every fault is undone
// (link up, sshd started again, the drop removed); a node that still holds
// anything of the run 30 s later gets `fleetup cleanup --target`, and its
// result must then not have claimed a confirmed clean-up.
//
// Cells where the node is to complete, by design:
//
//	engine start × port dropped   the manager cannot reach the engine's port
//	                              and talks to the engine through the SSH
//	                              connection instead (README, "What a run
//	                              does on a node", step 2).
//	clean-up × port dropped       clean-up goes over the SSH session; the
//	                              manager no longer uses the engine's port.

type faultKind string

const (
	faultLink   faultKind = "link cut"
	faultEngine faultKind = "engine killed"
	faultSSHD   faultKind = "sshd killed"
	faultPort   faultKind = "engine port dropped"
)

type faultPhase string

const (
	phaseScout     faultPhase = "scouting"
	phaseCopy      faultPhase = "engine copy"
	phaseStart     faultPhase = "engine start"
	phaseInventory faultPhase = "inventory"
	phaseDownload  faultPhase = "download"
	phaseInstall   faultPhase = "install"
	phaseCleanup   faultPhase = "clean-up"
)

var bgCtx = context.Background()

// The engine's port range: the default and the 99 it may move to.
const enginePortFirst, enginePortLast = 62286, 62385

// faultCell is one phase × fault, on a node of its own.
type faultCell struct {
	phase faultPhase
	fault faultKind
	// survives says why the node is to complete despite the fault; empty
	// when it is to fail.
	survives string

	node *lab.Node
	name string // the node's target, root@ADDR
	key  string // the node's address, as nodeKey gives it

	mu      sync.Mutex
	fired   bool
	fireErr error
	did     string // what firing did, for messages
}

func (c *faultCell) String() string { return string(c.phase) + " × " + string(c.fault) }

// faultWords says, per phase, what an error naming it contains. For the
// phases the node's state or the component's events tell apart, the event
// sequence counts too (see phaseNamed).
var faultWords = map[faultPhase]*regexp.Regexp{
	phaseScout:     regexp.MustCompile(`(?i)scout|ssh to`),
	phaseCopy:      regexp.MustCompile(`(?i)\bcop(y|ying|ied)\b|sftp|place`),
	phaseStart:     regexp.MustCompile(`(?i)\bstart|hello|\bready\b|reach the engine`),
	phaseInventory: regexp.MustCompile(`(?i)inventory`),
	phaseDownload:  regexp.MustCompile(`(?i)download|fetch|transfer`),
	phaseInstall:   regexp.MustCompile(`(?i)not installed|installing|\binstall (of )?[a-z]-`),
	phaseCleanup:   regexp.MustCompile(`(?i)clean-?up|clean up`),
}

// faultCauses says, per fault, what an error naming its cause contains.
// A bare "lost" names no cause: the link, sshd and the engine port each
// lose the connection differently, and the error is to say how.
var faultCauses = map[faultKind]*regexp.Regexp{
	faultLink:   regexp.MustCompile(`(?i)keepalive|timed? ?out|timeout|unreachable|no route|not answered|no answer|deadline`),
	faultEngine: regexp.MustCompile(`(?i)exit|killed|signal|\bEOF\b|reset|refused|broke off|ended|closed`),
	faultSSHD:   regexp.MustCompile(`(?i)closed|\bEOF\b|reset|refused|broken pipe|ended|exit`),
	faultPort:   regexp.MustCompile(`(?i)not answered|no answer|timed? ?out|timeout|deadline|unreachable|filtered`),
}

func TestFaultMatrix(t *testing.T) {
	cells := []*faultCell{
		{phase: phaseScout, fault: faultLink},
		{phase: phaseScout, fault: faultSSHD},
		{phase: phaseCopy, fault: faultLink},
		{phase: phaseCopy, fault: faultSSHD},
		{phase: phaseStart, fault: faultLink},
		{phase: phaseStart, fault: faultEngine},
		{phase: phaseStart, fault: faultSSHD},
		{phase: phaseStart, fault: faultPort, survives: "the manager talks to the engine through the SSH connection"},
	}
	for _, ph := range []faultPhase{phaseInventory, phaseDownload, phaseInstall, phaseCleanup} {
		for _, fk := range []faultKind{faultLink, faultEngine, faultSSHD, faultPort} {
			c := &faultCell{phase: ph, fault: fk}
			if ph == phaseCleanup && fk == faultPort {
				c.survives = "clean-up does not use the engine's port"
			}
			cells = append(cells, c)
		}
	}
	const healthy = 2
	f := newLabFixture(t, lab.Options{Nodes: len(cells) + healthy})
	nodes := f.lab.Nodes
	for i, c := range cells {
		c.node = nodes[i]
		c.name = target("root", c.node)
		c.key = c.node.Addr()
	}
	healthyNodes := nodes[len(cells):]

	// Every node filters its input (half with nftables, half with
	// iptables), so the engine opens its port with a rule tagged with the
	// run: a rule that clean-up must remove.
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = lockDown(n, i%2 == 0)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cells {
		var err error
		switch c.phase {
		case phaseCopy:
			err = c.node.SetRate("16mbit")
		case phaseStart:
			if c.fault == faultPort {
				err = c.node.SetRate("40mbit")
			} else {
				err = c.node.Shim("nft", "#!/bin/sh\nsleep 1\nexec /usr/sbin/nft \"$@\"\n")
			}
		case phaseDownload:
			err = c.node.SetRate("40mbit")
		case phaseScout:
			err = c.node.Shim("mktemp", "#!/bin/sh\nsleep 2\nexec /usr/bin/mktemp \"$@\"\n")
		case phaseInventory:
			err = c.node.Shim("fwupdtool", "#!/bin/sh\nsleep 3\nexec /usr/bin/fwupdtool \"$@\"\n")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = n.SetRate("")
		}
	})
	f.snapshotBefore(t)

	dir := t.TempDir()
	bigScript := "#!/bin/sh\nset -e\nmkdir -p /opt/fleetup-fault\necho 1.0 > /opt/fleetup-fault/a-big\nexit 0\n" +
		strings.Repeat("# padding to make the payload large\n", (24<<20)/36)
	testbaseline.Script(t, dir, "a-big", "1.0", bigScript, "cat /opt/fleetup-fault/a-big 2>/dev/null", "linux")
	testbaseline.Script(t, dir, "b-slow", "1.0", "#!/bin/sh\nset -e\nsleep 8\nmkdir -p /opt/fleetup-fault\necho 1.0 > /opt/fleetup-fault/b-slow\n",
		"cat /opt/fleetup-fault/b-slow 2>/dev/null", "linux")
	// A daemon that ignores SIGTERM, as some an install starts do: the
	// engine's clean-up stops it, after its grace of a few seconds.
	testbaseline.Script(t, dir, "c-daemon", "1.0", "#!/bin/sh\nset -e\nsetsid sh -c 'trap \"\" TERM; exec sleep 600' </dev/null >/dev/null 2>&1 &\nmkdir -p /opt/fleetup-fault\necho 1.0 > /opt/fleetup-fault/c-daemon\n",
		"cat /opt/fleetup-fault/c-daemon 2>/dev/null", "linux")

	args := []string{"deploy", "--baseline", dir, "--parallel", fmt.Sprint(len(nodes)),
		"--engine-idle-timeout", "5s", "--connect-timeout", "5s"}
	for _, n := range nodes {
		args = append(args, "--target", target("root", n))
	}
	began := time.Now()
	r := start(t, f.stateDir, append(args, f.authArgs()...)...)
	tr := newFaultTrigger(t, r, cells)
	code := r.wait(6 * time.Minute)
	tr.stop()
	took := time.Since(began)
	t.Logf("deploy took %s, exit %d", took.Round(time.Millisecond), code)

	// Undo every fault before anything is checked on the nodes.
	for _, c := range cells {
		if err := c.restore(); err != nil {
			t.Errorf("%s: undo the fault: %v", c, err)
		}
	}

	if code != 3 {
		t.Errorf("exit %d, want 3 (some nodes failed; 2 is also what a panic exits with)\n%s", code, r.dump())
	}
	if strings.Contains(r.stderr.String(), "panic:") || strings.Contains(r.stderr.String(), "goroutine ") {
		t.Errorf("the manager panicked:\n%s", r.stderr.String())
	}
	res := resultsByAddr(r)
	if len(res) != len(nodes) {
		t.Errorf("%d result lines, want %d (one per node)", len(res), len(nodes))
	}
	runID := tr.runID()

	for _, n := range healthyNodes {
		checkComplete(t, r, res, n, "healthy node")
	}
	for _, c := range cells {
		c.mu.Lock()
		fired, fireErr, did := c.fired, c.fireErr, c.did
		c.mu.Unlock()
		switch {
		case !fired:
			t.Errorf("%s (%s): the fault was never applied: the node did not reach the phase (events: %s)", c, c.name, eventTrail(r, c.key))
			continue
		case fireErr != nil:
			t.Errorf("%s (%s): applying the fault failed: %v", c, c.name, fireErr)
			continue
		}
		if c.survives != "" {
			checkComplete(t, r, res, c.node, c.String()+" ("+c.survives+")")
			continue
		}
		checkFailed(t, r, res[c.key], c, did)
	}
	if c := cellFor(cells, phaseStart, faultPort); c != nil && !anyMessage(r, c.key, "through the SSH connection") {
		t.Errorf("%s: no event says the manager talked to the engine through the SSH connection (events: %s)", c, eventTrail(r, c.key))
	}

	// The nodes end clean: those that ended well at once, the faulted
	// ones' engines remove themselves after their idle timeout (5 s, plus
	// the rest of an install they finish first, plus the clean-up's grace
	// for processes); what is left after that goes with `fleetup cleanup`.
	dirty := f.waitClean(t, 10*time.Second)
	var healthyDirty []string
	for _, n := range healthyNodes {
		if d, ok := dirty[n.Name]; ok {
			healthyDirty = append(healthyDirty, n.Name+":\n"+d)
		}
	}
	for _, c := range cells {
		if d, ok := dirty[c.node.Name]; ok && c.survives != "" {
			healthyDirty = append(healthyDirty, c.String()+" "+c.node.Name+":\n"+d)
		}
	}
	if len(healthyDirty) > 0 {
		t.Errorf("nodes that ended well are not clean 10s after the run:\n%s", strings.Join(healthyDirty, "\n"))
	}
	if len(dirty) > 0 {
		dirty = f.waitClean(t, 20*time.Second)
	}
	if len(dirty) > 0 {
		var names []string
		cargs := []string{"cleanup"}
		for _, c := range cells {
			d, ok := dirty[c.node.Name]
			if !ok {
				continue
			}
			names = append(names, c.String())
			cargs = append(cargs, "--target", c.name)
			t.Logf("%s (%s): left after %s without the manager, for fleetup cleanup:\n%s", c, c.node.Name, 30*time.Second, d)
			// The manager must not have claimed a clean-up it did not
			// confirm.
			if nr := res[c.key]; nr != nil && str(nr, "cleanup_error") == "" {
				t.Errorf("%s: the node kept leftovers of the run, yet its result claims a confirmed clean-up (no cleanup_error):\n%s", c, d)
			}
		}
		t.Logf("fleetup cleanup for: %s", strings.Join(names, ", "))
		cr := start(t, f.stateDir, append(cargs, f.authArgs()...)...)
		if code := cr.wait(3 * time.Minute); code != 0 {
			t.Errorf("fleetup cleanup: exit %d\n%s", code, cr.dump())
		}
	}
	still := f.waitClean(t, 15*time.Second)
	for _, name := range sortedKeys(still) {
		t.Errorf("%s is not clean (run %s), also after fleetup cleanup:\n%s", name, runID, still[name])
	}
	// The same, in the run's own terms (the snapshots above see more).
	for _, n := range nodes {
		if left := runLeftovers(n, runID); left != "" {
			t.Errorf("%s holds what run %s left: %s", n.Name, runID, left)
		}
	}
	t.Logf("fault matrix: %s in all", time.Since(began).Round(time.Millisecond))
}

// runLeftovers says what of run id is on the node: its directories
// (fleetup-RUN.* in the places scouting tries and the homes), processes
// marked FLEETUP_RUN=RUN, firewall rules tagged fleetup:RUN; "" for none.
func runLeftovers(n *lab.Node, id string) string {
	if id == "" {
		return "no run id: the run printed no run line"
	}
	var out []string
	root := strings.TrimSuffix(n.HostPath("/"), "/")
	for _, d := range []string{"/tmp", "/var/tmp", "/dev/shm", "/root", "/home/*"} {
		ms, _ := filepath.Glob(root + d + "/fleetup-" + id + ".*")
		for _, m := range ms {
			out = append(out, "directory "+strings.TrimPrefix(m, root))
		}
	}
	ps, err := n.Marked("FLEETUP_RUN", id)
	if err != nil {
		out = append(out, err.Error())
	}
	for _, p := range ps {
		out = append(out, fmt.Sprintf("process %d (%s)", p.PID, p.Cmdline))
	}
	rules, err := n.Shell(bgCtx, "nft list ruleset; iptables-save; ip6tables-save")
	if err != nil {
		out = append(out, err.Error())
	}
	for _, l := range strings.Split(string(rules), "\n") {
		if strings.Contains(l, "fleetup:"+id) {
			out = append(out, "firewall rule "+strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "; ")
}

// lockDown makes the node's firewall drop all input but SSH, loopback,
// replies and ICMPv6, with nftables or with iptables.
func lockDown(n *lab.Node, nft bool) error {
	script := `set -e
iptables -P INPUT DROP
iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -p tcp --dport 22 -j ACCEPT`
	if nft {
		script = `nft -f - <<'EOF'
table inet lockdown {
  chain input {
    type filter hook input priority 0; policy drop;
    iif lo accept
    ct state established,related accept
    tcp dport 22 accept
    meta l4proto ipv6-icmp accept
  }
}
EOF`
	}
	if out, err := n.Shell(bgCtx, script); err != nil {
		return fmt.Errorf("%s: lock down: %v\n%s", n.Name, err, out)
	}
	return nil
}

// snapshotBefore takes the nodes' snapshots again (after the test set
// them up), in parallel.
func (f *fixture) snapshotBefore(t *testing.T) {
	t.Helper()
	errs := make([]error, len(f.lab.Nodes))
	var wg sync.WaitGroup
	for i, n := range f.lab.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.before[i], errs[i] = n.Snapshot(bgCtx)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitClean waits up to timeout for every node to be as before the run
// and returns, by node name, what each that is not still holds.
func (f *fixture) waitClean(t *testing.T, timeout time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		dirty := map[string]string{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, n := range f.lab.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := n.Snapshot(bgCtx)
				d := ""
				if err != nil {
					d = err.Error()
				} else {
					d = s.Diff(f.before[i])
				}
				if d != "" {
					mu.Lock()
					dirty[n.Name] = d
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(dirty) == 0 || time.Now().After(deadline) {
			return dirty
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkComplete checks a node that is to end well: state complete, every
// component installed and its effect on the node.
func checkComplete(t *testing.T, r *run, res map[string]map[string]any, n *lab.Node, what string) {
	t.Helper()
	name := n.Addr()
	nr := res[name]
	if nr == nil {
		t.Errorf("%s %s: no result (events: %s)", what, name, eventTrail(r, name))
		return
	}
	if s := str(nr, "state"); s != "complete" {
		t.Errorf("%s %s: state %s, want complete: error %q, clean-up error %q (events: %s)", what, name, s, str(nr, "error"), str(nr, "cleanup_error"), eventTrail(r, name))
		return
	}
	cs := components(nr)
	if len(cs) != 3 {
		t.Errorf("%s %s: %d component results, want 3: %v", what, name, len(cs), cs)
	}
	for _, id := range []string{"a-big", "b-slow", "c-daemon"} {
		if c := cs[id]; str(c, "phase") != "installed" || str(c, "after") != "1.0" {
			t.Errorf("%s %s: %s: %v, want installed, the node reporting 1.0", what, name, id, c)
		}
	}
	out, err := n.Exec(bgCtx, "cat", "/opt/fleetup-fault/a-big", "/opt/fleetup-fault/b-slow", "/opt/fleetup-fault/c-daemon")
	if err != nil || string(out) != "1.0\n1.0\n1.0\n" {
		t.Errorf("%s %s: the components' effects on the node: %q (%v)", what, name, out, err)
	}
}

// checkFailed checks a faulted node's result: failed, naming the phase
// and the cause.
func checkFailed(t *testing.T, r *run, nr map[string]any, c *faultCell, did string) {
	t.Helper()
	if nr == nil {
		t.Errorf("%s (%s): no result (events: %s)", c, c.name, eventTrail(r, c.key))
		return
	}
	text := errorText(r, nr, c.key)
	if s := str(nr, "state"); s != "failed" {
		t.Errorf("%s (%s; %s): state %s, want failed; error %q, clean-up error %q, failed_in %q (events: %s)",
			c, c.name, did, s, str(nr, "error"), str(nr, "cleanup_error"), str(nr, "failed_in"), eventTrail(r, c.key))
		return
	}
	if ok, how := phaseNamed(r, nr, c, text); !ok {
		t.Errorf("%s (%s; %s): neither the error nor the events name the phase (%s): failed_in %q, error %q, clean-up error %q (events: %s)",
			c, c.name, did, c.phase, str(nr, "failed_in"), str(nr, "error"), str(nr, "cleanup_error"), eventTrail(r, c.key))
	} else {
		t.Logf("%s: phase named by %s", c, how)
	}
	if !faultCauses[c.fault].MatchString(text) {
		t.Errorf("%s (%s; %s): the error does not name the cause (%s; want /%s/): error %q, clean-up error %q",
			c, c.name, did, c.fault, faultCauses[c.fault], str(nr, "error"), str(nr, "cleanup_error"))
	}
	t.Logf("%s: error %q; clean-up error %q", c, str(nr, "error"), str(nr, "cleanup_error"))
}

// errorText is everything a node's result and its failure events say went
// wrong: the error, the clean-up error, the components' errors and the
// messages of its failed component events.
func errorText(r *run, nr map[string]any, name string) string {
	parts := []string{str(nr, "error"), str(nr, "cleanup_error")}
	for _, cr := range components(nr) {
		parts = append(parts, str(cr, "error"))
	}
	for _, e := range nodeEvents(r, name) {
		if str(e, "phase") == "failed" {
			parts = append(parts, str(e, "message"))
		}
	}
	return strings.Join(parts, " | ")
}

// phaseNamed reports whether the node's failure names the cell's phase,
// and how: its error text, or for the phases the node's state or the
// component's events tell apart, those (failed_in, or the last phase the
// component reported before it stopped).
func phaseNamed(r *run, nr map[string]any, c *faultCell, text string) (bool, string) {
	if faultWords[c.phase].MatchString(text) {
		return true, "the error text"
	}
	failedIn := str(nr, "failed_in")
	switch c.phase {
	case phaseScout:
		if failedIn == "scouting" {
			return true, "failed_in scouting"
		}
	case phaseInventory:
		if failedIn == "inventory" {
			return true, "failed_in inventory"
		}
	case phaseDownload, phaseInstall:
		comp, want := "a-big", "download"
		if c.phase == phaseInstall {
			comp, want = "b-slow", "install"
		}
		last := ""
		for _, e := range nodeEvents(r, c.key) {
			if str(e, "component") == comp && str(e, "phase") != "" {
				last = str(e, "phase")
			}
		}
		if failedIn == "deploy" && last == want {
			return true, "failed_in deploy and " + comp + "'s last event " + want
		}
	case phaseCleanup:
		if failedIn == "cleanup" {
			return true, "failed_in cleanup"
		}
	}
	return false, ""
}

// nodeKey is the address of the node fleetup names name ("root@ADDR" or
// "root@ADDR:22"), as lab.Node.Addr writes it.
func nodeKey(name string) string {
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		name = name[i+1:]
	}
	if h, _, err := net.SplitHostPort(name); err == nil {
		name = h
	}
	if strings.Contains(name, ":") && !strings.HasPrefix(name, "[") {
		name = "[" + name + "]"
	}
	return name
}

// resultsByAddr are the run's result lines by node address (nodeKey).
func resultsByAddr(r *run) map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, nr := range r.results() {
		out[nodeKey(name)] = nr
	}
	return out
}

// nodeEvents are the events of the node at address key (nodeKey).
func nodeEvents(r *run, key string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, e := range r.events {
		if e["type"] == "event" && nodeKey(str(e, "node")) == key {
			out = append(out, e)
		}
	}
	return out
}

// eventTrail is a node's events in short: state, component phase,
// message.
func eventTrail(r *run, name string) string {
	var parts []string
	for _, e := range nodeEvents(r, name) {
		p := str(e, "state")
		if c := str(e, "component"); c != "" {
			p += " " + c
			if ph := str(e, "phase"); ph != "" {
				p += "/" + ph
			}
		}
		if m := str(e, "message"); m != "" {
			if len(m) > 160 {
				m = m[:160] + "…"
			}
			p += ": " + m
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " → ")
}

func anyMessage(r *run, name, sub string) bool {
	for _, e := range nodeEvents(r, name) {
		if strings.Contains(str(e, "message"), sub) {
			return true
		}
	}
	return false
}

func cellFor(cells []*faultCell, ph faultPhase, fk faultKind) *faultCell {
	for _, c := range cells {
		if c.phase == ph && c.fault == fk {
			return c
		}
	}
	return nil
}

// fire applies the cell's fault, once.
func (c *faultCell) fire(runID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fired {
		return
	}
	c.fired = true
	switch c.fault {
	case faultLink:
		c.fireErr = c.node.LinkDown()
		c.did = "link down"
	case faultSSHD:
		c.fireErr = c.node.KillSSHD()
		c.did = "sshd killed"
	case faultPort:
		c.fireErr = c.node.DropTCP(enginePortFirst, enginePortLast)
		c.did = fmt.Sprintf("tcp %d-%d dropped", enginePortFirst, enginePortLast)
	case faultEngine:
		killed, err := c.node.Kill(syscall.SIGKILL, func(p lab.Process) bool { return isEngine(p, runID) })
		c.fireErr = err
		if err == nil && len(killed) == 0 {
			c.fireErr = fmt.Errorf("no engine process of run %s on %s", runID, c.node.Name)
		}
		c.did = fmt.Sprintf("killed %v", killed)
	}
}

// restore undoes the cell's fault, if it was applied.
func (c *faultCell) restore() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fired || c.fireErr != nil {
		return nil
	}
	switch c.fault {
	case faultLink:
		return c.node.LinkUp()
	case faultSSHD:
		return c.node.StartSSHD()
	case faultPort:
		return c.node.UndropTCP()
	}
	return nil
}

// isEngine reports whether p is the engine of run runID: a program named
// fleetup-engine in one of the run's directories.
func isEngine(p lab.Process, runID string) bool {
	f := strings.Fields(p.Cmdline)
	return len(f) > 0 && strings.HasSuffix(f[0], "/fleetup-engine") && strings.Contains(f[0], "/fleetup-"+runID+".")
}

// faultTrigger fires each cell's fault when its node reaches the cell's
// phase: on the manager's events, or, for engine copy and engine start,
// on what appears on the node.
type faultTrigger struct {
	t     *testing.T
	r     *run
	cells map[string]*faultCell // by node address (nodeKey)

	mu     sync.Mutex
	id     string
	over   bool
	done   chan struct{}
	idSeen chan struct{}
	wg     sync.WaitGroup
}

func newFaultTrigger(t *testing.T, r *run, cells []*faultCell) *faultTrigger {
	tr := &faultTrigger{t: t, r: r, cells: map[string]*faultCell{}, done: make(chan struct{}), idSeen: make(chan struct{})}
	var nodeSide []*faultCell
	for _, c := range cells {
		tr.cells[c.key] = c
		if c.phase == phaseScout || c.phase == phaseCopy || c.phase == phaseStart {
			nodeSide = append(nodeSide, c)
		}
	}
	tr.wg.Add(2)
	go tr.watchEvents()
	go tr.watchNodes(nodeSide)
	return tr
}

func (tr *faultTrigger) runID() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.id
}

// stop ends the watching; faults not fired by now never are.
func (tr *faultTrigger) stop() {
	tr.mu.Lock()
	tr.over = true
	tr.mu.Unlock()
	select {
	case <-tr.done:
	default:
		close(tr.done)
	}
	tr.wg.Wait()
}

// fireAfter fires c after delay, unless the run is over by then.
func (tr *faultTrigger) fireAfter(c *faultCell, delay time.Duration) {
	id := tr.runID()
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		select {
		case <-time.After(delay):
		case <-tr.done:
			return
		}
		tr.mu.Lock()
		over := tr.over
		tr.mu.Unlock()
		if !over {
			c.fire(id)
		}
	}()
}

func (tr *faultTrigger) watchEvents() {
	defer tr.wg.Done()
	for m := range tr.r.seen {
		if m["type"] == "run" {
			tr.mu.Lock()
			if tr.id == "" {
				tr.id = str(m, "run_id")
				close(tr.idSeen)
			}
			tr.mu.Unlock()
			continue
		}
		if m["type"] != "event" {
			continue
		}
		c := tr.cells[nodeKey(str(m, "node"))]
		if c == nil {
			continue
		}
		state, comp, ph := str(m, "state"), str(m, "component"), str(m, "phase")
		switch {
		case c.phase == phaseInventory && state == "inventory" && comp == "":
			tr.fireAfter(c, 500*time.Millisecond)
		case c.phase == phaseDownload && comp == "a-big" && ph == "download":
			tr.fireAfter(c, time.Second)
		case c.phase == phaseInstall && comp == "b-slow" && ph == "install":
			tr.fireAfter(c, time.Second)
		case c.phase == phaseCleanup && state == "cleanup" && comp == "" && str(m, "message") == "":
			tr.fireAfter(c, 500*time.Millisecond)
		}
	}
}

// watchNodes fires the scouting, engine copy and engine start cells on what
// appears on their nodes: the scout script's mktemp, the engine file
// growing in the run's directory, the engine process starting.
func (tr *faultTrigger) watchNodes(cells []*faultCell) {
	defer tr.wg.Done()
	select {
	case <-tr.idSeen:
	case <-tr.done:
		return
	}
	id := tr.runID()
	type watched struct {
		c     *faultCell
		netns string
	}
	var ws []watched
	for _, c := range cells {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", c.node.PID()))
		if err != nil {
			tr.t.Errorf("%s: %v", c, err)
			continue
		}
		ws = append(ws, watched{c, ns})
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for len(ws) > 0 {
		select {
		case <-tr.done:
			return
		case <-tick.C:
		}
		var engines, scouts map[string]bool // netns of the run's engines, scout scripts' mktemp
		left := ws[:0]
		for _, w := range ws {
			c := w.c
			fire := false
			switch {
			case c.phase == phaseScout:
				if scouts == nil {
					engines, scouts = scanRun(id)
				}
				fire = scouts[w.netns]
			case c.phase == phaseCopy:
				fire = engineCopySize(c.node, id) >= 1<<20
			case c.phase == phaseStart && c.fault == faultPort:
				fire = engineCopySize(c.node, id) >= 0 || engineFileSize(c.node, id) >= 0
			default:
				if engines == nil {
					engines, scouts = scanRun(id)
				}
				fire = engines[w.netns]
			}
			if fire {
				if c.phase == phaseScout || c.phase == phaseStart && c.fault != faultPort {
					tr.fireAfter(c, 300*time.Millisecond)
				} else {
					c.fire(id)
				}
				continue
			}
			left = append(left, w)
		}
		ws = left
	}
}

// engineFileSize is the size of the engine file of run id on the node
// (in any of the directories scouting tries), or -1.
func engineFileSize(n *lab.Node, id string) int64 {
	return runFileSize(n, id, "fleetup-engine")
}

// engineCopySize is the size of the engine file of run id on the node
// while it is being copied (the SSH transport writes it under a temporary
// name, .fleetup-engine.fleetup-RANDOM, and renames it when complete), or
// -1.
func engineCopySize(n *lab.Node, id string) int64 {
	return runFileSize(n, id, ".fleetup-engine.fleetup-*")
}

// runFileSize is the size of the first file matching pattern in a
// directory of run id on the node, or -1.
func runFileSize(n *lab.Node, id, pattern string) int64 {
	for _, d := range []string{"/tmp", "/var/tmp", "/dev/shm", "/root"} {
		ms, _ := filepath.Glob(n.HostPath(d) + "/fleetup-" + id + ".*/" + pattern)
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil {
				return fi.Size()
			}
		}
	}
	return -1
}

// scanRun returns the network namespaces of every running engine process
// of run id on this machine (its executable in one of the run's
// directories), and of every mktemp making a directory of the run (the
// scout script's).
func scanRun(id string) (engines, scouts map[string]bool) {
	engines, scouts = map[string]bool{}, map[string]bool{}
	dir := "/fleetup-" + id + "."
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		p := "/proc/" + e.Name()
		set := engines
		if exe, err := os.Readlink(p + "/exe"); err != nil {
			continue
		} else if !strings.HasSuffix(exe, "/fleetup-engine") || !strings.Contains(exe, dir) {
			cmd, err := os.ReadFile(p + "/cmdline")
			if err != nil || !bytes.Contains(cmd, []byte("mktemp\x00-d\x00")) || !bytes.Contains(cmd, []byte(dir)) {
				continue
			}
			set = scouts
		}
		if ns, err := os.Readlink(p + "/ns/net"); err == nil {
			set[ns] = true
		}
	}
	return engines, scouts
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

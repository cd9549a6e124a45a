package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/lab"
)

// managerLine is the run's "manager" line: the ports it listens on.
func managerLine(t *testing.T, r *run) map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e["type"] == "manager" {
			return e
		}
	}
	t.Fatalf("no manager line\n%s", r.dump())
	return nil
}

func intField(m map[string]any, k string) int {
	f, _ := m[k].(float64)
	return int(f)
}

// freePort is a TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestHPSUMIniMovesPorts: an existing hpsum.ini with port= and ssl_port=
// moves the manager's web server, the node still fetches from it and is
// flashed; a flag beats the ini file.
func TestHPSUMIniMovesPorts(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	httpPort, httpsPort, flagPort := freePort(t), freePort(t), freePort(t)
	ini := filepath.Join(t.TempDir(), "hpsum.ini")
	body := fmt.Sprintf("; HP SUM settings\n[hpsum]\nport=%d\nssl_port=%d\nsilent=yes\n", httpPort, httpsPort)
	if err := os.WriteFile(ini, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := standardBaseline(t)
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n), "--config", ini}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	m := managerLine(t, r)
	if intField(m, "http_port") != httpPort || intField(m, "https_port") != httpsPort {
		t.Errorf("manager listened on %v/%v, want the ini's %d/%d", m["http_port"], m["https_port"], httpPort, httpsPort)
	}
	if got := flashedVersions(t, n); len(got) != 1 || got[0] != "1.2.5/success" {
		t.Errorf("fwupd history %v, want one successful flash to 1.2.5", got)
	}
	f.assertClean(t)

	// HP SUM's spelling of the flag beats the ini file.
	r = start(t, f.stateDir, append([]string{"deploy", "--dry-run", "--baseline", dir, "--target", target("root", n), "--config", ini, "/port", strconv.Itoa(flagPort)}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	m = managerLine(t, r)
	if intField(m, "http_port") != flagPort || intField(m, "https_port") != httpsPort {
		t.Errorf("manager listened on %v/%v, want the flag's %d and the ini's %d", m["http_port"], m["https_port"], flagPort, httpsPort)
	}
	f.assertClean(t)
}

// TestTakenPort: a port the user chose that another process holds stops
// the run before any node is touched, naming the port and the process; a
// taken default port moves and the run says so.
func TestTakenPort(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	dir := standardBaseline(t)
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n), "--port", strconv.Itoa(port)}, f.authArgs()...)...)
	if code := r.wait(time.Minute); code != 2 {
		t.Fatalf("exit %d, want 2 (usage)\n%s", code, r.dump())
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	want := fmt.Sprintf("http port %d is in use by pid %d (%s)", port, os.Getpid(), strings.TrimSpace(string(comm)))
	if !strings.Contains(r.stderr.String(), want) || !strings.Contains(r.stderr.String(), "flag --port") {
		t.Errorf("stderr %q does not say %q and which flag chose it", r.stderr.String(), want)
	}
	if got := flashedVersions(t, n); len(got) != 0 {
		t.Errorf("fwupd history %v after a refused run", got)
	}
	f.assertClean(t)

	// The same port as the default (through the environment's https port
	// left alone): take the default http port when it is free, so that it
	// surely is taken.
	if l, err := net.Listen("tcp", ":63001"); err == nil {
		defer l.Close()
	}
	r = start(t, f.stateDir, append([]string{"deploy", "--dry-run", "--baseline", dir, "--target", target("root", n)}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	if m := managerLine(t, r); intField(m, "http_port") == 63001 {
		t.Errorf("manager listens on the taken 63001")
	}
	if !strings.Contains(r.dump(), "http port 63001 is in use; using") {
		t.Errorf("no notice that the http port moved\n%s", r.dump())
	}
	eventually(t, 10*time.Second, f.cleanMsg)
}

// TestOpenFirewall: the manager runs on a machine (a lab node's network
// namespace) whose input policy is drop, with only SSH let in, and deploys
// to that same machine. Without --open-firewall the node cannot reach the
// manager's ports and the run falls back to the SSH connection; with it,
// the node fetches directly, and the ruleset afterwards is exactly as
// before.
func TestOpenFirewall(t *testing.T) {
	f, n, rulesBefore := lockedDownNode(t)
	ctx := context.Background()
	dir := standardBaseline(t)
	in := []string{"ip", "netns", "exec", n.Namespace}
	args := append([]string{"deploy", "--baseline", dir, "--target", "root@" + n.IPv4.String()}, f.authArgs()...)

	tunnelled := func(r *run) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.events {
			if strings.Contains(str(e, "message"), "through the SSH connection") {
				return true
			}
		}
		return false
	}
	r := startIn(t, f.stateDir, in, "", append(args, "--dry-run")...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("without --open-firewall: exit %d\n%s", code, r.dump())
	}
	if !tunnelled(r) {
		t.Fatalf("without --open-firewall the node reached the manager through a drop policy: the test proves nothing\n%s", r.dump())
	}

	r = startIn(t, f.stateDir, in, "", append(args, "--open-firewall")...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("with --open-firewall: exit %d\n%s", code, r.dump())
	}
	if tunnelled(r) {
		t.Errorf("with --open-firewall the node still could not reach the manager\n%s", r.dump())
	}
	if m := managerLine(t, r); len(m["firewall_rules"].([]any)) == 0 {
		t.Errorf("the manager line names no firewall rule: %v", m)
	}
	if got := flashedVersions(t, n); len(got) != 1 || got[0] != "1.2.5/success" {
		t.Errorf("fwupd history %v, want one successful flash to 1.2.5", got)
	}
	rulesAfter, err := n.Exec(ctx, "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	if string(rulesAfter) != string(rulesBefore) {
		t.Errorf("nft list ruleset changed:\nbefore:\n%s\nafter:\n%s", rulesBefore, rulesAfter)
	}
	f.assertClean(t)

	// SIGTERM, or SIGHUP (the user's session went away), mid-deploy: the
	// run is cancelled, and the manager closes the ports it opened before
	// it exits.
	held := t.TempDir()
	holdScript(t, held, "/opt/release")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		r = startIn(t, f.stateDir, in, "", append([]string{"deploy", "--baseline", held, "--target", "root@" + n.IPv4.String(), "--open-firewall"}, f.authArgs()...)...)
		r.waitFor(time.Minute, func(m map[string]any) bool { return m["component"] == "hold" && m["phase"] == "install" })
		if out, _ := n.Exec(ctx, "nft", "list", "ruleset"); !strings.Contains(string(out), "fleetup:mgr-") {
			t.Errorf("no fleetup:mgr- rule while the run is on:\n%s", out)
		}
		if err := r.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		// The component being installed finishes (HP SUM's abort).
		if out, err := n.Shell(ctx, "touch /opt/release"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if code := r.wait(2 * time.Minute); code != 130 {
			t.Errorf("after %v: exit %d, want 130\n%s", sig, code, r.dump())
		}
		if out, err := n.Shell(ctx, "rm -f /opt/release /opt/held"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if rulesAfter, _ = n.Exec(ctx, "nft", "list", "ruleset"); string(rulesAfter) != string(rulesBefore) {
			t.Errorf("nft list ruleset changed by a run cancelled with %v:\nbefore:\n%s\nafter:\n%s", sig, rulesBefore, rulesAfter)
		}
		eventually(t, 10*time.Second, f.cleanMsg)
	}

	// A reader of the output that goes away (fleetup ... | head -n 1) does
	// not kill the manager: the run goes on and closes its ports.
	argv := append([]string{filepath.Join(binDir, "fleetup"), "deploy", "--dry-run", "--json", "--baseline", dir,
		"--target", "root@" + n.IPv4.String(), "--open-firewall", "--state-dir", f.stateDir}, f.authArgs()...)
	pipe := exec.Command("ip", "netns", "exec", n.Namespace, "bash", "-c", `"$@" | head -n 1 >/dev/null; exit "${PIPESTATUS[0]}"`, "fleetup")
	pipe.Args = append(pipe.Args, argv...)
	pipe.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "FLEETUP_PASSWORD=")
	if out, err := pipe.CombinedOutput(); err != nil {
		t.Errorf("fleetup | head -n 1: %v\n%s", err, out)
	}
	if rulesAfter, _ = n.Exec(ctx, "nft", "list", "ruleset"); string(rulesAfter) != string(rulesBefore) {
		t.Errorf("nft list ruleset changed by a run whose output reader went away:\nbefore:\n%s\nafter:\n%s", rulesBefore, rulesAfter)
	}
	eventually(t, 10*time.Second, f.cleanMsg)
}

// TestFTPForSwitches: with --ftp-port 63006 the manager serves the run's
// components over FTP; a switch stand-in (the node's namespace, lftp)
// fetches one over IPv6 with the run's credentials while the run is on.
// Afterwards the credentials file is gone and the port is closed.
func TestFTPForSwitches(t *testing.T) {
	testenv.HoldPorts(t, "ftp")
	f := newFixture(t, lab.Options{Nodes: 1, IPv6Only: []int{0}})
	n := f.lab.Nodes[0]
	ctx := context.Background()
	dir := t.TempDir()
	testbaseline.Cab(t, dir, "switch-fw-7.1.cab", "org.fleetup.test.switch", "7.1.0", "00000000-0000-0000-0000-000000000001")
	// The node's part of the run waits until the test has fetched.
	holdScript(t, dir, "/opt/fetched")
	want, err := os.ReadFile(filepath.Join(dir, "switch-fw-7.1.cab"))
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n), "--ftp-port", "63006"}, f.authArgs()...)...)
	m := r.waitFor(time.Minute, func(m map[string]any) bool { return m["type"] == "manager" })
	if intField(m, "ftp_port") != 63006 {
		t.Fatalf("manager line %v, want ftp_port 63006", m)
	}
	credFile := str(m, "ftp_credentials")
	st, err := os.Stat(credFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", st.Mode().Perm())
	}
	cred := map[string]string{}
	data, _ := os.ReadFile(credFile)
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			cred[k] = v
		}
	}
	if cred["user"] != str(m, "ftp_user") || cred["password"] == "" {
		t.Fatalf("credentials file %q does not match the run's user %q", data, str(m, "ftp_user"))
	}
	if strings.Contains(r.dump(), cred["password"]) {
		t.Errorf("the FTP password was printed")
	}
	r.waitFor(time.Minute, func(m map[string]any) bool { return m["component"] == "hold" && m["phase"] == "install" })
	script := fmt.Sprintf(`HOME=/tmp lftp -c 'set net:max-retries 1; set net:timeout 15; set ftp:ssl-allow no; set ftp:passive-mode yes; set cmd:fail-exit yes; open -u %s,%s ftp://[%s]:63006; get switch-fw-7.1.cab -o /tmp/got.cab' && sha256sum /tmp/got.cab && touch /opt/fetched`,
		cred["user"], cred["password"], n.HostIPv6)
	out, err := n.Shell(ctx, script)
	if err != nil {
		t.Fatalf("lftp on the node over IPv6: %v\n%s", err, out)
	}
	sum := sha256.Sum256(want)
	if !strings.Contains(string(out), hex.EncodeToString(sum[:])) {
		t.Errorf("fetched file's sha256 is not the component's:\n%s", out)
	}
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	if _, err := os.Stat(credFile); !os.IsNotExist(err) {
		t.Errorf("credentials file still there after the run: %v", err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:63006", time.Second); err == nil {
		c.Close()
		t.Errorf("the FTP port still accepts after the run")
	}
	if _, err := n.Shell(ctx, "rm -f /opt/fetched /opt/held /tmp/got.cab; rm -rf /tmp/.lftp /tmp/.local /tmp/.cache /tmp/.config"); err != nil {
		t.Fatal(err)
	}
	f.assertClean(t)
}

// holdScript adds a script component "hold" whose install waits (up to a
// minute) until the file release exists on the node, then leaves
// /opt/held.
func holdScript(t *testing.T, dir, release string) {
	t.Helper()
	body := fmt.Sprintf("#!/bin/sh\ni=0\nwhile [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\ntouch /opt/held\n", release)
	testbaseline.Script(t, dir, "hold", "1.0", body, "test -e /opt/held && echo 1.0", "linux")
}

// lockdown is an nftables ruleset that drops every new connection but SSH
// and loopback traffic to loopback addresses: a node's own address reached
// from the node itself stays filtered, as from anywhere else.
const lockdown = `nft -f - <<'EOF'
table inet lockdown {
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iif lo ip daddr 127.0.0.0/8 accept
    iif lo ip6 daddr ::1 accept
    tcp dport 22 accept
    meta l4proto ipv6-icmp accept
  }
}
EOF`

// lockedDownNode is a fixture of one node with the lockdown ruleset, its
// snapshot taken after, and the ruleset as nft lists it.
func lockedDownNode(t *testing.T) (*fixture, *lab.Node, []byte) {
	t.Helper()
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	ctx := context.Background()
	if out, err := n.Shell(ctx, lockdown); err != nil {
		t.Fatalf("set up firewall: %v\n%s", err, out)
	}
	var err error
	if f.before[0], err = n.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	rules, err := n.Exec(ctx, "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	return f, n, rules
}

// TestCleanupLocalAfterKilledManager: a manager with --open-firewall is
// killed (SIGKILL) mid-deploy; "fleetup cleanup --local" removes the rules
// it left in its machine's firewall, "fleetup cleanup --target" what it
// left on the node, and the ruleset is as before.
func TestCleanupLocalAfterKilledManager(t *testing.T) {
	f, n, rulesBefore := lockedDownNode(t)
	ctx := context.Background()
	dir := t.TempDir()
	holdScript(t, dir, "/opt/never")
	in := []string{"ip", "netns", "exec", n.Namespace}
	tgt := "root@" + n.IPv4.String()
	// FTP in the node's namespace: its ports are that namespace's own.
	r := startIn(t, f.stateDir, in, "", append([]string{"deploy", "--baseline", dir, "--target", tgt, "--open-firewall", "--ftp-port", "63006"}, f.authArgs()...)...)
	cred := str(r.waitFor(time.Minute, func(m map[string]any) bool { return m["type"] == "manager" }), "ftp_credentials")
	r.waitFor(time.Minute, func(m map[string]any) bool { return m["component"] == "hold" && m["phase"] == "install" })
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	r.wait(time.Minute)
	if out, _ := n.Exec(ctx, "nft", "list", "ruleset"); !strings.Contains(string(out), "fleetup:mgr-") {
		t.Fatalf("the killed manager left no rule: the test proves nothing\n%s", out)
	}

	c := startIn(t, f.stateDir, in, "", "cleanup", "--local")
	if code := c.wait(time.Minute); code != 0 {
		t.Fatalf("cleanup --local: exit %d\n%s", code, c.dump())
	}
	var removed []any
	c.mu.Lock()
	for _, e := range c.events {
		if e["type"] == "cleanup-local" {
			removed, _ = e["removed"].([]any)
		}
	}
	c.mu.Unlock()
	if len(removed) == 0 {
		t.Errorf("cleanup --local removed nothing\n%s", c.dump())
	}
	if _, err := os.Stat(cred); !os.IsNotExist(err) {
		t.Errorf("the killed run's FTP credentials %s are still there (%v)", cred, err)
	}
	c = startIn(t, f.stateDir, in, "", append([]string{"cleanup", "--target", tgt}, f.authArgs()...)...)
	if code := c.wait(time.Minute); code != 0 {
		t.Fatalf("cleanup --target: exit %d\n%s", code, c.dump())
	}
	rulesAfter, err := n.Exec(ctx, "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	if string(rulesAfter) != string(rulesBefore) {
		t.Errorf("nft list ruleset changed:\nbefore:\n%s\nafter:\n%s", rulesBefore, rulesAfter)
	}
	eventually(t, 10*time.Second, f.cleanMsg)
}

// TestHPSUMInputFile: an HP SUM input file names the nodes, one section
// with its own user and password (a sudo user), one with the manager's
// own credentials (root with the lab's key); DRYRUN=YES makes a dry run,
// and the same file without it, given the HP SUM way (/inputfile FILE /s),
// flashes both nodes.
func TestHPSUMInputFile(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 2})
	n1, n2 := f.lab.Nodes[0], f.lab.Nodes[1]
	dir := standardBaseline(t)
	body := fmt.Sprintf("SILENT=YES\nSOURCEPATH=%s\n[TARGETS]\nHOST=%s\nUID=%s\nPWD=%s\n[END]\n[TARGETS]\nHOST=root@%s\nUSECURRENTCREDENTIAL=YES\n[END]\n",
		dir, n1.Addr(), lab.UserSudo, f.lab.Password(), n2.Addr())
	in := filepath.Join(t.TempDir(), "input.txt")
	if err := os.WriteFile(in, []byte("DRYRUN=YES\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	// No --password-file: the sudo user's password comes from the file.
	auth := []string{"--identity", f.lab.KeyFile(), "--known-hosts", f.lab.KnownHostsFile(), "--fwupd-plugins", "test", "--no-agent"}
	r := start(t, f.stateDir, append([]string{"deploy", "--inputfile", in}, auth...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, r.dump())
	}
	res := r.results()
	if len(res) != 2 {
		t.Fatalf("results for %d nodes, want 2\n%s", len(res), r.dump())
	}
	for name, nr := range res {
		if !strings.HasPrefix(name, lab.UserSudo+"@") && !strings.HasPrefix(name, "root@") {
			t.Errorf("node %s: not the input file's user", name)
		}
		if c := components(nr)["org.fleetup.test.webcam"]; str(c, "action") != "update" {
			t.Errorf("%s: webcam action %q, want update", name, str(c, "action"))
		}
	}
	for _, n := range []*lab.Node{n1, n2} {
		if got := flashedVersions(t, n); len(got) != 0 {
			t.Errorf("%s flashed %v in a dry run", n.Name, got)
		}
	}
	eventually(t, 10*time.Second, f.cleanMsg)

	if err := os.WriteFile(in, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r = start(t, f.stateDir, append([]string{"deploy", "/inputfile", in, "/s"}, auth...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, r.dump())
	}
	for _, n := range []*lab.Node{n1, n2} {
		if got := flashedVersions(t, n); len(got) != 1 || got[0] != "1.2.5/success" {
			t.Errorf("%s: fwupd history %v, want one successful flash to 1.2.5", n.Name, got)
		}
	}
	eventually(t, 10*time.Second, f.cleanMsg)
}

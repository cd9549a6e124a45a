package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
)

// bigScript writes a script component whose payload is size bytes (a short
// script padded after its exit), so its transfer takes a while.
func bigScript(t *testing.T, dir, id string, size int) {
	t.Helper()
	body := "#!/bin/sh\necho big > /opt/fleetup-big\nexit 0\n"
	pad := strings.Repeat("# padding to make the payload large\n", size/36+1)
	testbaseline.Script(t, dir, id, "1.0", body+pad, "cat /opt/fleetup-big 2>/dev/null >/dev/null && echo 1.0", "linux")
}

func TestCancelMidDeploy(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 2})
	dir := t.TempDir()
	testbaseline.Script(t, dir, "a-first", "1.0", "#!/bin/sh\nsleep 6\nmkdir -p /opt/first && touch /opt/first/done\n", "test -e /opt/first/done && echo 1.0", "linux")
	testbaseline.Script(t, dir, "b-second", "1.0", "#!/bin/sh\nmkdir -p /opt/second && touch /opt/second/done\n", "test -e /opt/second/done && echo 1.0", "linux")
	args := []string{"deploy", "--baseline", dir}
	for _, n := range f.lab.Nodes {
		args = append(args, "--target", target("root", n))
	}
	r := start(t, f.stateDir, append(args, f.authArgs()...)...)
	// Both nodes must be installing a-first when the cancel comes, or the
	// test says nothing about the component in progress on one of them.
	installing := map[string]bool{}
	for len(installing) < len(f.lab.Nodes) {
		m := r.waitFor(time.Minute, func(m map[string]any) bool { return m["component"] == "a-first" && m["phase"] == "install" })
		installing[str(m, "node")] = true
	}
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(2 * time.Minute); code != 130 {
		t.Fatalf("exit %d, want 130 (cancelled)\n%s", code, r.dump())
	}
	for name, nr := range r.resultsN(len(f.lab.Nodes)) {
		if s := str(nr, "state"); s != "cancelled" {
			t.Errorf("%s: state %s, want cancelled", name, s)
		}
		// HP SUM's abort: the component being installed finishes, the
		// rest is skipped.
		cs := components(nr)
		if c := cs["a-first"]; str(c, "phase") != "installed" || str(c, "after") != "1.0" {
			t.Errorf("%s: a-first, in progress at the cancel: %v, want installed, the node reporting 1.0", name, c)
		}
		if c := cs["b-second"]; str(c, "phase") != "skipped" {
			t.Errorf("%s: b-second, not started at the cancel: %v, want skipped", name, c)
		}
	}
	ctx := context.Background()
	for _, n := range f.lab.Nodes {
		if out, err := n.Exec(ctx, "ls", "/opt/first/done"); err != nil {
			t.Errorf("%s: a-first's effect is not on the node: %s %v", n.Name, out, err)
		}
		if out, err := n.Exec(ctx, "ls", "/opt/second"); err == nil {
			t.Errorf("%s: b-second ran after the cancel: %s", n.Name, out)
		}
	}
	f.assertClean(t)
}

func TestLinkDownMidTransfer(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 3})
	dir := t.TempDir()
	bigScript(t, dir, "big", 48<<20)
	slow := f.lab.Nodes[1]
	if err := slow.SetRate("40mbit"); err != nil {
		t.Fatal(err)
	}
	args := []string{"deploy", "--baseline", dir, "--engine-idle-timeout", "4s", "--parallel", "3"}
	for _, n := range f.lab.Nodes {
		args = append(args, "--target", target("root", n))
	}
	r := start(t, f.stateDir, append(args, f.authArgs()...)...)
	r.waitFor(time.Minute, func(m map[string]any) bool {
		return strings.Contains(str(m, "node"), slow.Addr()) && m["phase"] == "download"
	})
	time.Sleep(time.Second) // well into the transfer
	if err := slow.LinkDown(); err != nil {
		t.Fatal(err)
	}
	code := r.wait(3 * time.Minute)
	if err := slow.LinkUp(); err != nil {
		t.Fatal(err)
	}
	if code != 3 {
		t.Fatalf("exit %d, want 3 (a node failed)\n%s", code, r.dump())
	}
	for name, nr := range r.resultsN(len(f.lab.Nodes)) {
		if strings.Contains(name, slow.Addr()) {
			if str(nr, "state") != "failed" || !strings.Contains(str(nr, "error")+str(nr, "cleanup_error"), "lost") {
				t.Errorf("%s: state %s error %q cleanup %q, want failed with a lost connection", name, str(nr, "state"), str(nr, "error"), str(nr, "cleanup_error"))
			}
			continue
		}
		if str(nr, "state") != "complete" {
			t.Errorf("%s: state %s (%s), want complete", name, str(nr, "state"), str(nr, "error"))
		}
	}
	// The cut-off engine removes itself once it has not heard from the
	// manager for its idle timeout.
	eventually(t, time.Minute, f.cleanMsg)
}

func TestWrongPassword(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	dir := standardBaseline(t)
	bad := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(bad, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, f.stateDir, "deploy", "--baseline", dir, "--target", target(lab.UserPassword, f.lab.Nodes[0]),
		"--known-hosts", f.lab.KnownHostsFile(), "--password-file", bad, "--no-agent")
	if code := r.wait(time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, r.dump())
	}
	for name, nr := range r.resultsN(1) {
		if e := str(nr, "error"); !strings.Contains(e, "authentication failed") || !strings.Contains(e, lab.UserPassword) {
			t.Errorf("%s: error %q does not say authentication failed for %s", name, e, lab.UserPassword)
		}
	}
	f.assertClean(t)
}

// TestUserWithoutSudo: a user who logs in but may not use sudo gets a
// clear error, and nothing stays on the node.
func TestUserWithoutSudo(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	dir := standardBaseline(t)
	r := start(t, f.stateDir, "deploy", "--baseline", dir, "--target", target(lab.UserPassword, f.lab.Nodes[0]),
		"--known-hosts", f.lab.KnownHostsFile(), "--password-file", f.pwFile, "--no-agent")
	if code := r.wait(time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, r.dump())
	}
	for name, nr := range r.resultsN(1) {
		e := str(nr, "error")
		if !strings.Contains(e, "may not use sudo") || !strings.Contains(e, "not in the sudoers file") || strings.Contains(e, "FLEETUP-") {
			t.Errorf("%s: error %q does not say plainly that the user may not use sudo", name, e)
		}
	}
	eventually(t, 10*time.Second, f.cleanMsg)
}

func TestChangedHostKeyRefused(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	if err := n.RotateHostKey(); err != nil {
		t.Fatal(err)
	}
	f.before[0], _ = n.Snapshot(context.Background())
	dir := standardBaseline(t)
	// Even --accept-new-host-keys never accepts a changed key.
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n), "--accept-new-host-keys"}, f.authArgs()...)...)
	if code := r.wait(time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, r.dump())
	}
	for name, nr := range r.resultsN(1) {
		e := str(nr, "error")
		if !strings.Contains(e, "SHA256:") || !strings.Contains(e, n.Addr()) {
			t.Errorf("%s: error %q does not name the node and the key's fingerprint", name, e)
		}
	}
	if got := flashedVersions(t, n); len(got) != 0 {
		t.Errorf("flashed despite a changed host key: %v", got)
	}
	f.assertClean(t)
}

func TestUnknownHostKeyRefusedThenAccepted(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	known := filepath.Join(t.TempDir(), "known_hosts")
	dir := t.TempDir()
	testbaseline.Script(t, dir, "marker", "1.0", "#!/bin/sh\nmkdir -p /opt/m && echo 1.0 > /opt/m/v\n", "cat /opt/m/v 2>/dev/null", "linux")
	base := []string{"deploy", "--baseline", dir, "--target", target("root", n), "--identity", f.lab.KeyFile(), "--known-hosts", known, "--no-agent"}
	r := start(t, f.stateDir, base...)
	if code := r.wait(time.Minute); code != 3 {
		t.Fatalf("unknown key: exit %d, want 3\n%s", code, r.dump())
	}
	for _, nr := range r.resultsN(1) {
		if e := str(nr, "error"); !strings.Contains(e, "SHA256:") {
			t.Errorf("unknown key: error %q names no fingerprint", e)
		}
	}
	r = start(t, f.stateDir, append(base, "--accept-new-host-keys")...)
	if code := r.wait(time.Minute); code != 0 {
		t.Fatalf("accepted key: exit %d\n%s", code, r.dump())
	}
	b, err := os.ReadFile(known)
	if err != nil || len(b) == 0 {
		t.Errorf("the accepted key was not recorded in %s (%v)", known, err)
	}
	f.assertClean(t)
}

func TestFirewallBlocksEnginePort(t *testing.T) {
	for _, kind := range []string{"nftables", "iptables"} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, lab.Options{Nodes: 1})
			n := f.lab.Nodes[0]
			ctx := context.Background()
			if err := lockDown(n, kind == "nftables"); err != nil {
				t.Fatalf("set up firewall: %v", err)
			}
			var err error
			if f.before[0], err = n.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
			dir := standardBaseline(t)
			r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n)}, f.authArgs()...)...)
			if code := r.wait(2 * time.Minute); code != 0 {
				t.Fatalf("exit %d\n%s", code, r.dump())
			}
			opened := false
			r.mu.Lock()
			for _, e := range r.events {
				if strings.Contains(str(e, "message"), "opened the node's firewall") {
					opened = true
				}
			}
			r.mu.Unlock()
			if !opened {
				t.Errorf("no event says the firewall was opened for the engine\n%s", r.dump())
			}
			if got := flashedVersions(t, n); len(got) != 1 {
				t.Errorf("fwupd history %v, want one flash", got)
			}
			f.assertClean(t) // includes the nft ruleset and iptables-save output
		})
	}
}

// TestCleanupAfterKilledManager kills the manager and the engine with
// SIGKILL mid-install, so nothing on the node could clean up, then checks
// that `fleetup cleanup` finds and removes every leftover, and that a later
// deploy is not bothered by leftovers either.
func TestCleanupAfterKilledManager(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	ctx := context.Background()
	// A firewall that makes the engine add a rule, so a rule is left too.
	if out, err := n.Shell(ctx, "iptables -P INPUT DROP && iptables -A INPUT -p tcp --dport 22 -j ACCEPT && iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	f.before[0], _ = n.Snapshot(ctx)
	dir := t.TempDir()
	testbaseline.Script(t, dir, "hang", "1.0", "#!/bin/sh\nsleep 300\n", "true", "linux")
	killRun := func() {
		r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n)}, f.authArgs()...)...)
		r.waitFor(time.Minute, func(m map[string]any) bool { return m["component"] == "hang" && m["phase"] == "install" })
		// The install event comes just before the script starts: wait
		// for its sleep, so that the kill is in mid-install.
		eventually(t, 30*time.Second, func() string {
			ps, err := n.Processes()
			if err != nil {
				return err.Error()
			}
			for _, p := range ps {
				if strings.HasPrefix(p.Cmdline, "sleep 300") {
					return ""
				}
			}
			return "the install's sleep is not running yet"
		})
		// The engine first, so that the closed session cannot make it
		// clean up; then the manager. Only this node's: the lab's nodes
		// share the machine's process ids, so a pkill on a node would
		// kill the engines of every test running.
		killed, err := n.Kill(syscall.SIGKILL, func(p lab.Process) bool { return strings.Contains(p.Cmdline, "fleetup-engine serve") })
		if err != nil || len(killed) == 0 {
			t.Fatalf("kill the engine: killed %v (%v)", killed, err)
		}
		_ = r.cmd.Process.Kill()
		r.wait(time.Minute)
		time.Sleep(500 * time.Millisecond)
		s, _ := n.Snapshot(ctx)
		if s.Diff(f.before[0]) == "" {
			t.Fatal("the killed run left nothing behind; the test proves nothing")
		}
	}
	killRun()
	r := start(t, f.stateDir, append([]string{"cleanup", "--target", target("root", n)}, f.authArgs()...)...)
	if code := r.wait(time.Minute); code != 0 {
		t.Fatalf("cleanup: exit %d\n%s", code, r.dump())
	}
	var report string
	r.mu.Lock()
	for _, e := range r.events {
		report += fmt.Sprint(e) + "\n"
	}
	r.mu.Unlock()
	for _, want := range []string{"fleetup-", "sleep", "fleetup:"} {
		if !strings.Contains(report, want) {
			t.Errorf("cleanup report does not mention %q:\n%s", want, report)
		}
	}
	// The SSH session processes of the killed run end once cleanup has
	// stopped what they waited for: a moment after cleanup exits.
	eventually(t, 10*time.Second, f.cleanMsg)

	// Leftovers again, then a new deploy: it removes them and succeeds.
	killRun()
	dir2 := t.TempDir()
	testbaseline.Script(t, dir2, "quick", "1.0", "#!/bin/sh\nmkdir -p /opt/q && echo 1.0 > /opt/q/v\n", "cat /opt/q/v 2>/dev/null", "linux")
	r = start(t, f.stateDir, append([]string{"deploy", "--baseline", dir2, "--target", target("root", n)}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("deploy after leftovers: exit %d\n%s", code, r.dump())
	}
	swept := false
	r.mu.Lock()
	for _, e := range r.events {
		if strings.Contains(str(e, "message"), "leftovers") {
			swept = true
		}
	}
	r.mu.Unlock()
	if !swept {
		t.Errorf("the deploy did not say it removed an earlier run's leftovers\n%s", r.dump())
	}
	f.assertClean(t)
}

// TestBlockedReturnPath: the node may be reached on port 22 only, and may
// reach nothing of the manager's. The deploy goes through the SSH
// connection in both directions and leaves the node's firewall as it was.
func TestBlockedReturnPath(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	ctx := context.Background()
	script := `nft -f - <<'EOF'
table inet lockdown {
  chain input {
    type filter hook input priority 0; policy drop;
    iif lo accept
    ct state established,related accept
    tcp dport 22 accept
    meta l4proto ipv6-icmp accept
  }
  chain output {
    type filter hook output priority 0; policy accept;
    oif lo accept
    tcp dport 63000-63100 drop
  }
}
EOF`
	if out, err := n.Shell(ctx, script); err != nil {
		t.Fatalf("set up firewall: %v\n%s", err, out)
	}
	var err error
	if f.before[0], err = n.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	dir := standardBaseline(t)
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n)}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	said := false
	r.mu.Lock()
	for _, e := range r.events {
		if strings.Contains(str(e, "message"), "through the SSH connection") {
			said = true
		}
		if strings.Contains(str(e, "message"), "opened the node's firewall") {
			t.Errorf("the engine opened a firewall port although it was tunnelled: %v", e)
		}
	}
	r.mu.Unlock()
	if !said {
		t.Errorf("no event says the node's traffic went through the SSH connection\n%s", r.dump())
	}
	if got := flashedVersions(t, n); len(got) != 1 || got[0] != "1.2.5/success" {
		t.Errorf("fwupd history %v, want one successful flash to 1.2.5", got)
	}
	f.assertClean(t)
}

// TestEngineFindsExecutableDirAndFreePort: /tmp is mounted noexec and the
// engine's default port is taken on the node; the engine goes elsewhere and
// says so.
func TestEngineFindsExecutableDirAndFreePort(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	ctx := context.Background()
	if out, err := n.Shell(ctx, "mount -o remount,noexec /tmp && (setsid python3 -c 'import socket,time; s=socket.socket(socket.AF_INET6); s.bind((\"::\", 62286)); s.listen(); time.sleep(600)' >/dev/null 2>&1 &) && sleep 0.5"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		// This node's holder only (a pkill would see every node's processes).
		_, _ = n.Kill(syscall.SIGTERM, func(p lab.Process) bool { return strings.Contains(p.Cmdline, `s.bind(("::", 62286))`) })
		_, _ = n.Shell(ctx, "mount -o remount,exec /tmp")
	})
	var err error
	if f.before[0], err = n.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testbaseline.Script(t, dir, "marker", "1.0", "#!/bin/sh\nmkdir -p /opt/m && echo 1.0 > /opt/m/v\n", "cat /opt/m/v 2>/dev/null", "linux")
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n)}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.dump())
	}
	var moved, elsewhere bool
	r.mu.Lock()
	for _, e := range r.events {
		m := str(e, "message")
		if strings.Contains(m, "port 62286 is in use") {
			moved = true
		}
		if strings.Contains(m, "/var/tmp/fleetup-") {
			elsewhere = true
		}
	}
	r.mu.Unlock()
	if !moved {
		t.Errorf("no event says the engine port moved\n%s", r.dump())
	}
	if !elsewhere {
		t.Errorf("the engine did not run from /var/tmp with /tmp noexec\n%s", r.dump())
	}
	f.assertClean(t)
}

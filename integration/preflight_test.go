package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup/lab"
	"github.com/fleetup/fleetup/preflight"
	sshtr "github.com/fleetup/fleetup/transport/ssh"
)

// TestPreflight checks preflight.Run against lab nodes: a clean node, a
// node whose nft input drops the engine port, one whose output drops the
// manager's ports, and one whose iptables rejects new SSH connections with
// a reset. After each, the node is as it was.
func TestPreflight(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 2})
	ctx := context.Background()
	n0, n1 := f.lab.Nodes[0], f.lab.Nodes[1]

	shell := func(t *testing.T, n *lab.Node, script string) {
		t.Helper()
		if out, err := n.Shell(ctx, script); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	// run dials n as user, calls setup (when set), and runs preflight.
	run := func(t *testing.T, n *lab.Node, user string, setup func()) *preflight.Report {
		t.Helper()
		conn, err := sshtr.Dial(ctx, net.JoinHostPort(n.IPv4.String(), "22"), sshtr.Options{
			User: user, Signers: []gossh.Signer{f.lab.Signer()}, KnownHostsFile: f.lab.KnownHostsFile(), Timeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		if setup != nil {
			setup()
		}
		snap, err := n.Snapshot(ctx)
		if err != nil {
			conn.Close()
			t.Fatal(err)
		}
		rep, err := preflight.Run(ctx, conn, preflight.Options{Node: n.Name, Timeout: time.Second})
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.MarshalIndent(rep, "", "  ")
		t.Logf("report:\n%s", j)
		// Preflight only reads and connects: nothing on the node is new.
		eventually(t, 10*time.Second, func() string {
			s, err := n.Snapshot(ctx)
			if err != nil {
				return err.Error()
			}
			return s.Diff(snap)
		})
		return rep
	}

	t.Run("clean", func(t *testing.T) {
		rep := run(t, n0, "root", nil)
		want := map[string]string{"manager>22": preflight.Open, "manager>62286": preflight.Refused, "node>63001": preflight.Open, "node>63002": preflight.Open}
		checkHops(t, rep, n0.Name, want)
		if rep.FirewallKind != "none" {
			t.Errorf("FirewallKind = %q, want none", rep.FirewallKind)
		}
		h := hop(t, rep, "manager", 62286)
		if !strings.Contains(h.Detail, "nothing listens yet") || h.Problem || h.Fix != "" {
			t.Errorf("engine port hop = %+v, want refused, nothing listens yet, no problem and no fix", h)
		}
		if rep.Problems() != 0 {
			t.Errorf("Problems() = %d, want 0", rep.Problems())
		}
		if rep.ManagerAddr != n0.HostIPv4.String() {
			t.Errorf("ManagerAddr = %q, want %s", rep.ManagerAddr, n0.HostIPv4)
		}
	})

	t.Run("nft input drops the engine port", func(t *testing.T) {
		shell(t, n0, `nft add table inet pf; nft add chain inet pf input '{ type filter hook input priority 0 ; }'; nft add rule inet pf input tcp dport 62286 drop`)
		t.Cleanup(func() { shell(t, n0, `nft delete table inet pf`) })
		rep := run(t, n0, "root", nil)
		checkHops(t, rep, n0.Name, map[string]string{"manager>22": preflight.Open, "manager>62286": preflight.Filtered, "node>63001": preflight.Open, "node>63002": preflight.Open})
		h := hop(t, rep, "manager", 62286)
		wantFix := fmt.Sprintf("nft insert rule inet pf input ip saddr %s tcp dport 62286 accept", n0.HostIPv4)
		if h.Fix != wantFix || h.FixOn != preflight.OnNode || !h.Problem {
			t.Errorf("engine port hop = %+v, want Fix %q on the node, a problem", h, wantFix)
		}
		if rep.FirewallKind != "nft" {
			t.Errorf("FirewallKind = %q, want nft", rep.FirewallKind)
		}
		// The command given opens the hop: the port is then only refused
		// (nothing listens yet).
		shell(t, n0, wantFix)
		rep = run(t, n0, "root", nil)
		if h := hop(t, rep, "manager", 62286); h.Status != preflight.Refused || h.Problem {
			t.Errorf("after the fix, engine port hop = %+v, want refused and no problem", h)
		}
	})

	t.Run("node output drops the manager ports", func(t *testing.T) {
		shell(t, n1, `nft add table inet out; nft add chain inet out o '{ type filter hook output priority 0 ; }'; nft add rule inet out o tcp dport '{63001,63002}' drop`)
		t.Cleanup(func() { shell(t, n1, `nft delete table inet out`) })
		rep := run(t, n1, "root", nil)
		checkHops(t, rep, n1.Name, map[string]string{"manager>22": preflight.Open, "manager>62286": preflight.Refused, "node>63001": preflight.Filtered, "node>63002": preflight.Filtered})
		for _, port := range []int{63001, 63002} {
			h := hop(t, rep, n1.Name, port)
			wantFix := fmt.Sprintf("nft insert rule inet out o ip daddr %s tcp dport %d accept", n1.HostIPv4, port)
			if h.Fix != wantFix || h.FixOn != preflight.OnNode || !strings.Contains(h.Detail, "output") || !h.Problem {
				t.Errorf("hop to manager port %d = %+v, want Fix %q on the node naming its output", port, h, wantFix)
			}
		}
	})

	t.Run("iptables rejects new ssh connections", func(t *testing.T) {
		rule := `INPUT -p tcp --dport 22 --syn -j REJECT --reject-with tcp-reset`
		// Only new connections (SYN) are rejected; the SSH connection is
		// made before the rule goes in, as a sudoer without password: the
		// firewall is read through sudo -n.
		rep := run(t, n1, lab.UserSudoNoPass, func() {
			// iptables-nft makes its table on the first rule; the clean-up
			// removes it again when the node had none.
			_, err := n1.Shell(ctx, `nft list table ip filter`)
			hadTable := err == nil
			shell(t, n1, `iptables -I `+rule)
			t.Cleanup(func() {
				shell(t, n1, `iptables -D `+rule)
				if !hadTable {
					shell(t, n1, `nft delete table ip filter`)
				}
			})
		})
		checkHops(t, rep, n1.Name, map[string]string{"manager>22": preflight.Refused, "manager>62286": preflight.Refused, "node>63001": preflight.Open, "node>63002": preflight.Open})
		h := hop(t, rep, "manager", 22)
		wantFix := fmt.Sprintf("iptables -I INPUT -s %s -p tcp --dport 22 -j ACCEPT", n1.HostIPv4)
		if h.Fix != wantFix || h.FixOn != preflight.OnNode || !h.Problem || !strings.Contains(h.Detail, "listens") {
			t.Errorf("ssh hop = %+v, want refused although listening, Fix %q on the node", h, wantFix)
		}
		if rep.FirewallKind != "iptables" {
			t.Errorf("FirewallKind = %q, want iptables", rep.FirewallKind)
		}
	})

	t.Run("user without sudo", func(t *testing.T) {
		rep := run(t, n0, lab.UserKey, nil)
		checkHops(t, rep, n0.Name, map[string]string{"manager>22": preflight.Open, "manager>62286": preflight.Refused, "node>63001": preflight.Open, "node>63002": preflight.Open})
		if rep.FirewallKind != "unknown" || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "sudo") {
			t.Errorf("FirewallKind %q, notes %q: want unknown and a note about sudo", rep.FirewallKind, rep.Notes)
		}
	})

	// Every node is as it was before the test.
	eventually(t, 10*time.Second, f.cleanMsg)
}

func hopKey(h preflight.Hop) string {
	if h.From == "manager" {
		return fmt.Sprintf("manager>%d", h.Port)
	}
	return fmt.Sprintf("node>%d", h.Port)
}

// checkHops compares each hop's status to want (keyed "manager>PORT" or
// "node>PORT") and checks every hop names the node.
func checkHops(t *testing.T, rep *preflight.Report, node string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, h := range rep.Hops {
		got[hopKey(h)] = h.Status
		if h.From != node && h.To != node {
			t.Errorf("hop %+v does not name node %s", h, node)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("hop %s: status %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("hops %v, want %v", got, want)
	}
}

func hop(t *testing.T, rep *preflight.Report, from string, port int) preflight.Hop {
	t.Helper()
	for _, h := range rep.Hops {
		if h.From == from && h.Port == port {
			return h
		}
	}
	t.Fatalf("no hop from %s to port %d in %+v", from, port, rep.Hops)
	return preflight.Hop{}
}

// TestPreflightCLI runs "fleetup preflight" against a lab node.
func TestPreflightCLI(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	// Another process holds the http port: preflight says so.
	if l, err := net.Listen("tcp", ":63001"); err == nil {
		defer l.Close()
	}
	r := start(t, f.stateDir, append([]string{"preflight", "--target", target("root", n), "--hop-timeout", "1s"}, f.authArgs()...)...)
	if code := r.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0\n%s", code, r.dump())
	}
	var rep map[string]any
	r.mu.Lock()
	for _, e := range r.events {
		if e["type"] == "preflight" {
			rep = e
		}
	}
	r.mu.Unlock()
	if rep == nil {
		t.Fatalf("no preflight line\n%s", r.dump())
	}
	got := map[string]string{}
	hops, _ := rep["hops"].([]any)
	for _, h := range hops {
		m := h.(map[string]any)
		got[fmt.Sprintf("%s>%v", str(m, "from"), m["port"])] = str(m, "status")
		if m["port"] == float64(63001) && str(m, "from") != "manager" && !strings.Contains(str(m, "note"), "is held by") {
			t.Errorf("hop to 63001 has no note that another process holds the port: %v", m)
		}
	}
	want := map[string]string{"manager>22": "open", "manager>62286": "refused", target("root", n) + ":22>63001": "open", target("root", n) + ":22>63002": "open"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("hop %s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	eventually(t, 10*time.Second, f.cleanMsg)
}

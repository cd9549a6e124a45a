package firewall_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/firewall/firewalltest"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/proc"
)

func TestMain(m *testing.M) { firewalltest.Main(m) }

// run runs each command line through r.
func run(ctx context.Context, r *proc.Runner, lines ...string) error {
	for _, l := range lines {
		f := strings.Fields(l)
		if _, err := r.Output(ctx, f[0], f[1:]...); err != nil {
			return fmt.Errorf("%s: %w", l, err)
		}
	}
	return nil
}

// iptablesBlock is a typical host firewall: loopback, replies, ICMPv6 and
// ssh accepted, everything else dropped by policy.
func iptablesBlock(cmd4, cmd6 string) []string {
	var out []string
	for _, c := range []string{cmd4, cmd6} {
		out = append(out,
			c+" -w -A INPUT -i lo -j ACCEPT",
			c+" -w -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
			c+" -w -A INPUT -p tcp --dport 22 -j ACCEPT",
		)
	}
	return append(out,
		cmd6+" -w -A INPUT -p ipv6-icmp -j ACCEPT",
		cmd4+" -w -P INPUT DROP",
		cmd6+" -w -P INPUT DROP",
	)
}

// dumpAll concatenates the output of each command line.
func dumpAll(ctx context.Context, r *proc.Runner, lines ...string) (string, error) {
	var b strings.Builder
	for _, l := range lines {
		f := strings.Fields(l)
		out, err := r.Output(ctx, f[0], f[1:]...)
		if err != nil {
			return "", fmt.Errorf("%s: %w", l, err)
		}
		fmt.Fprintf(&b, "== %s\n%s", l, out)
	}
	return b.String(), nil
}

func TestIPTables(t *testing.T) {
	testenv.RequireTools(t, "iptables", "ip6tables", "iptables-save", "ip6tables-save", "nft")
	firewalltest.Run(t, func(t *testing.T) (firewall.Backend, *firewalltest.Env) {
		ns := firewalltest.NewNamespace(t)
		return firewall.NewIPTables(ns.Runner), &firewalltest.Env{
			NS: ns,
			Block: func(ctx context.Context) error {
				return run(ctx, ns.Runner, iptablesBlock("iptables", "ip6tables")...)
			},
			Dump: func(ctx context.Context) (string, error) {
				// iptables-nft keeps its rules in nf_tables: compare both views.
				return dumpAll(ctx, ns.Runner, "iptables-save", "ip6tables-save", "nft list ruleset")
			},
		}
	})
}

func TestIPTablesLegacy(t *testing.T) {
	testenv.RequireTools(t, "iptables-legacy", "ip6tables-legacy", "iptables-legacy-save", "ip6tables-legacy-save")
	firewalltest.Run(t, func(t *testing.T) (firewall.Backend, *firewalltest.Env) {
		ns := firewalltest.NewNamespace(t)
		return firewall.NewIPTablesLegacy(ns.Runner), &firewalltest.Env{
			NS: ns,
			Block: func(ctx context.Context) error {
				return run(ctx, ns.Runner, iptablesBlock("iptables-legacy", "ip6tables-legacy")...)
			},
			Dump: func(ctx context.Context) (string, error) {
				// Without -t, *-save prints only the tables that exist, and so
				// creates none.
				return dumpAll(ctx, ns.Runner, "iptables-legacy-save", "ip6tables-legacy-save")
			},
		}
	})
}

// nftBlock has an inet table dropping by policy and a second ip table with
// its own input chain: a rule in the inet chain alone would not let IPv4
// through.
const nftBlock = `
table inet fufw {
	chain input {
		type filter hook input priority 0; policy drop;
		iif lo accept
		ct state established,related accept
		meta l4proto ipv6-icmp accept
		tcp dport 22 accept
	}
}
table ip fufw_extra {
	chain in4 {
		type filter hook input priority 10; policy drop;
		ct state established,related accept
		tcp dport 22 accept
	}
}
`

func nftSetup(t *testing.T) (firewall.Backend, *firewalltest.Env) {
	ns := firewalltest.NewNamespace(t)
	return firewall.NewNFTables(ns.Runner), &firewalltest.Env{
		NS: ns,
		Block: func(ctx context.Context) error {
			_, err := ns.Runner.Run(ctx, strings.NewReader(nftBlock), "nft", "-f", "-")
			return err
		},
		Dump: func(ctx context.Context) (string, error) {
			return dumpAll(ctx, ns.Runner, "nft list ruleset")
		},
	}
}

func TestNFTables(t *testing.T) {
	testenv.RequireTools(t, "nft")
	firewalltest.Run(t, nftSetup)
}

package firewall_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/firewall/firewalltest"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/proc"
)

func names(bs []firewall.Backend) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, b.Name())
	}
	return out
}

const nftOnly = `
table inet admin {
	chain input {
		type filter hook input priority 0; policy drop;
		meta l4proto ipv6-icmp accept
		tcp dport 22 accept
	}
}
`

func TestDetect(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save",
		"iptables-legacy", "ip6tables-legacy", "iptables-legacy-save", "ip6tables-legacy-save", "nft")
	ctx := context.Background()
	nft := func(r *proc.Runner) error {
		_, err := r.Run(ctx, strings.NewReader(nftOnly), "nft", "-f", "-")
		return err
	}
	tests := []struct {
		name  string
		setup func(r *proc.Runner) error
		want  []string
	}{
		{name: "no filtering", setup: func(*proc.Runner) error { return nil }, want: []string{}},
		{name: "iptables-nft rule", setup: func(r *proc.Runner) error {
			return run(ctx, r, "iptables -w -A INPUT -p tcp --dport 22 -j ACCEPT")
		}, want: []string{"iptables"}},
		{name: "ip6tables drop policy", setup: func(r *proc.Runner) error {
			return run(ctx, r, "ip6tables -w -P INPUT DROP")
		}, want: []string{"iptables"}},
		{name: "iptables-nft forward only", setup: func(r *proc.Runner) error {
			return run(ctx, r, "iptables -w -P FORWARD DROP", "iptables -w -A OUTPUT -j ACCEPT")
		}, want: []string{}},
		{name: "native nftables", setup: nft, want: []string{"nftables"}},
		{name: "iptables-nft and native nftables", setup: func(r *proc.Runner) error {
			if err := nft(r); err != nil {
				return err
			}
			return run(ctx, r, "iptables -w -P INPUT DROP")
		}, want: []string{"iptables", "nftables"}},
		{name: "iptables-legacy", setup: func(r *proc.Runner) error {
			return run(ctx, r, "iptables-legacy -w -A INPUT -j ACCEPT")
		}, want: []string{"iptables-legacy"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := firewalltest.NewNamespace(t)
			if err := tc.setup(ns.Runner); err != nil {
				t.Fatalf("setup: %v", err)
			}
			got, err := firewall.Detect(ctx, ns.Runner)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, names(got)); diff != "" {
				t.Errorf("Detect (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSweep opens the port through every backend Detect finds on a node
// with iptables-nft rules, a native nftables table and legacy rules, then
// sweeps with All and checks that nothing of fleetup's is left and every
// ruleset is as before.
func TestSweep(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save",
		"iptables-legacy", "ip6tables-legacy", "iptables-legacy-save", "ip6tables-legacy-save", "nft")
	ctx := context.Background()
	ns := firewalltest.NewNamespace(t)
	r := ns.Runner
	if _, err := r.Run(ctx, strings.NewReader(nftOnly), "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, r, append(iptablesBlock("iptables", "ip6tables"), "iptables-legacy -w -A INPUT -p tcp --dport 22 -j ACCEPT")...); err != nil {
		t.Fatal(err)
	}
	dump := func() string {
		s, err := dumpAll(ctx, r, "iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save", "nft list ruleset")
		if err != nil {
			t.Fatal(err)
		}
		return firewalltest.StripCounters(s)
	}
	before := dump()

	bs, err := firewall.Detect(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"iptables", "iptables-legacy", "nftables"}, names(bs)); diff != "" {
		t.Fatalf("Detect (-want +got):\n%s", diff)
	}
	for _, b := range bs {
		for _, src := range []firewall.Rule{
			{Tag: "fleetup:killed", Port: 62286, Source: ns.Host4},
			{Tag: "fleetup:killed", Port: 62286, Source: ns.Host6},
		} {
			if err := b.Allow(ctx, src); err != nil {
				t.Fatalf("%s: Allow: %v", b.Name(), err)
			}
		}
	}
	// iptables: v4 and v6; iptables-legacy: v4 only (no legacy ip6 filter
	// table exists, so IPv6 is not filtered there); nftables: inet chain,
	// both families.
	wantRemoved := map[string]int{"iptables": 2, "iptables-legacy": 1, "nftables": 2}
	for _, b := range firewall.All(r) {
		removed, err := b.Remove(ctx, firewall.TagPrefix)
		if err != nil {
			t.Fatalf("%s: Remove: %v", b.Name(), err)
		}
		if len(removed) != wantRemoved[b.Name()] {
			t.Errorf("%s: removed %q, want %d rules", b.Name(), removed, wantRemoved[b.Name()])
		}
	}
	if diff := cmp.Diff(before, dump()); diff != "" {
		t.Errorf("rulesets after the sweep differ (-before +after):\n%s", diff)
	}
}

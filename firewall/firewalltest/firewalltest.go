// Package firewalltest is the suite every firewall.Backend must pass. Each
// case gets a fresh network namespace (a Namespace) standing for a node,
// a real TCP listener inside it, and the backend driving that namespace's
// own netfilter; connections are made from the host side of a veth pair.
//
// A test package runs it as
//
//	func TestMain(m *testing.M) { firewalltest.Main(m) }
//
//	func TestNFTables(t *testing.T) {
//		firewalltest.Run(t, func(t *testing.T) (firewall.Backend, *firewalltest.Env) {
//			ns := firewalltest.NewNamespace(t)
//			return firewall.NewNFTables(ns.Runner), &firewalltest.Env{NS: ns, Block: ..., Dump: ...}
//		})
//	}
//
// The suite needs root and ip (iproute2); it skips without them, or fails
// when FLEETUP_NO_SKIP=1.
package firewalltest

import (
	"context"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/internal/testenv"
)

// Env is what the suite needs besides the backend: the namespace the
// backend drives and how to set up and print that namespace's ruleset with
// the backend's own tool.
type Env struct {
	NS *Namespace
	// Block installs, in an empty ruleset, input filtering in both
	// families that drops new TCP connections to every port but 22 (it
	// must let ICMPv6 neighbour discovery through).
	Block func(ctx context.Context) error
	// Dump prints the ruleset as the backend's tools show it; the suite
	// compares dumps after StripCounters.
	Dump func(ctx context.Context) (string, error)
}

// Dial timeouts: a dropped connection is expected to time out after
// blockedWait; a connection expected to succeed gets openWait, which it
// never needs on a veth pair but which keeps a loaded machine from
// failing the test.
const (
	blockedWait = 300 * time.Millisecond
	openWait    = 10 * time.Second
)

var (
	xtCounters  = regexp.MustCompile(`\[\d+:\d+\]`)
	nftCounters = regexp.MustCompile(`counter packets \d+ bytes \d+`)
)

// StripCounters drops comment lines (iptables-save's dated headers) and
// replaces packet and byte counters of iptables-save and nft output with
// zeros, so that two dumps of the same ruleset compare equal.
func StripCounters(dump string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(dump, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		line = xtCounters.ReplaceAllString(line, "[0:0]")
		line = nftCounters.ReplaceAllString(line, "counter packets 0 bytes 0")
		b.WriteString(line)
	}
	return b.String()
}

// family is one address family's view of a Namespace.
type family struct {
	name              string
	host, other, node netip.Addr
}

func families(ns *Namespace) []family {
	return []family{
		{"ipv4", ns.Host4, ns.Other4, ns.Node4},
		{"ipv6", ns.Host6, ns.Other6, ns.Node6},
	}
}

// Run runs the suite, each case a subtest with its own backend and Env
// from newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) (firewall.Backend, *Env)) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip")
	ctx := context.Background()

	setup := func(t *testing.T, block bool) (firewall.Backend, *Env) {
		t.Helper()
		b, env := newBackend(t)
		if block {
			if err := env.Block(ctx); err != nil {
				t.Fatalf("block: %v", err)
			}
		}
		return b, env
	}
	dump := func(t *testing.T, env *Env) string {
		t.Helper()
		s, err := env.Dump(ctx)
		if err != nil {
			t.Fatalf("dump ruleset: %v", err)
		}
		return StripCounters(s)
	}
	blocked := func(t *testing.T, src, dst netip.Addr, port int) {
		t.Helper()
		err := Dial(src, dst, port, blockedWait)
		if err == nil {
			t.Fatalf("connect from %s to %s port %d: succeeded, want dropped", src, dst, port)
		}
		if !IsTimeout(err) {
			t.Fatalf("connect from %s to %s port %d: %v, want a time-out (dropped)", src, dst, port, err)
		}
	}
	open := func(t *testing.T, src, dst netip.Addr, port int) {
		t.Helper()
		if err := Dial(src, dst, port, openWait); err != nil {
			t.Fatalf("connect from %s to %s port %d: %v, want it to connect", src, dst, port, err)
		}
	}
	list := func(t *testing.T, b firewall.Backend, prefix string) []string {
		t.Helper()
		got, err := b.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		return got
	}

	for _, fam := range []int{0, 1} {
		name := []string{"ipv4", "ipv6"}[fam]

		t.Run(name+"/allow opens the port to the source only", func(t *testing.T) {
			b, env := setup(t, true)
			f := families(env.NS)[fam]
			port := env.NS.Listen(t)
			blocked(t, f.host, f.node, port)
			if err := b.Allow(ctx, firewall.Rule{Tag: "fleetup:run1", Port: port, Source: f.host}); err != nil {
				t.Fatalf("Allow: %v", err)
			}
			open(t, f.host, f.node, port)
			blocked(t, f.other, f.node, port)
			if got := list(t, b, "fleetup:run1"); len(got) == 0 {
				t.Errorf("List after Allow found no rule")
			}
		})

		t.Run(name+"/remove restores the ruleset exactly", func(t *testing.T) {
			b, env := setup(t, true)
			f := families(env.NS)[fam]
			port := env.NS.Listen(t)
			before := dump(t, env)
			if err := b.Allow(ctx, firewall.Rule{Tag: "fleetup:run1", Port: port, Source: f.host}); err != nil {
				t.Fatalf("Allow: %v", err)
			}
			if dump(t, env) == before {
				t.Fatalf("Allow did not change the ruleset:\n%s", before)
			}
			listed := list(t, b, firewall.TagPrefix)
			removed, err := b.Remove(ctx, firewall.TagPrefix)
			if err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if len(removed) == 0 {
				t.Errorf("Remove returned no rules")
			}
			if diff := cmp.Diff(listed, removed); diff != "" {
				t.Errorf("Remove returned other rules than List (-list +remove):\n%s", diff)
			}
			if diff := cmp.Diff(before, dump(t, env)); diff != "" {
				t.Errorf("ruleset after Remove differs from before Allow (-before +after):\n%s", diff)
			}
			if got := list(t, b, firewall.TagPrefix); len(got) != 0 {
				t.Errorf("List after Remove = %q, want none", got)
			}
			blocked(t, f.host, f.node, port)
		})

		t.Run(name+"/two runs: removing one keeps the other", func(t *testing.T) {
			b, env := setup(t, true)
			f := families(env.NS)[fam]
			port := env.NS.Listen(t)
			before := dump(t, env)
			for _, tag := range []string{"fleetup:run1", "fleetup:run2"} {
				if err := b.Allow(ctx, firewall.Rule{Tag: tag, Port: port, Source: f.host}); err != nil {
					t.Fatalf("Allow %s: %v", tag, err)
				}
			}
			removed, err := b.Remove(ctx, "fleetup:run1")
			if err != nil {
				t.Fatalf("Remove run1: %v", err)
			}
			if len(removed) == 0 {
				t.Errorf("Remove run1 returned no rules")
			}
			for _, r := range removed {
				if !strings.Contains(r, "fleetup:run1") {
					t.Errorf("Remove run1 removed %q", r)
				}
			}
			left := list(t, b, firewall.TagPrefix)
			if len(left) == 0 {
				t.Fatalf("Remove run1 also removed run2's rules")
			}
			for _, r := range left {
				if !strings.Contains(r, "fleetup:run2") {
					t.Errorf("after Remove run1, rule %q is left", r)
				}
			}
			open(t, f.host, f.node, port)
			if _, err := b.Remove(ctx, "fleetup:run2"); err != nil {
				t.Fatalf("Remove run2: %v", err)
			}
			if diff := cmp.Diff(before, dump(t, env)); diff != "" {
				t.Errorf("ruleset after removing both runs differs (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("any source opens the port to everyone in both families", func(t *testing.T) {
		b, env := setup(t, true)
		port := env.NS.Listen(t)
		before := dump(t, env)
		for _, f := range families(env.NS) {
			blocked(t, f.host, f.node, port)
		}
		for _, src := range []netip.Addr{firewall.AnyIPv4, firewall.AnyIPv6} {
			if err := b.Allow(ctx, firewall.Rule{Tag: "fleetup:run1", Port: port, Source: src, AnySource: true}); err != nil {
				t.Fatalf("Allow from %s: %v", src, err)
			}
		}
		for _, f := range families(env.NS) {
			open(t, f.host, f.node, port)
			open(t, f.other, f.node, port)
		}
		if _, err := b.Remove(ctx, "fleetup:run1"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if diff := cmp.Diff(before, dump(t, env)); diff != "" {
			t.Errorf("ruleset after Remove differs from before Allow (-before +after):\n%s", diff)
		}
		for _, f := range families(env.NS) {
			blocked(t, f.other, f.node, port)
		}
	})

	t.Run("filtering", func(t *testing.T) {
		b, env := setup(t, false)
		if got, err := b.Filtering(ctx); err != nil || got {
			t.Fatalf("Filtering on an empty ruleset = %v, %v; want false", got, err)
		}
		if err := env.Block(ctx); err != nil {
			t.Fatalf("block: %v", err)
		}
		if got, err := b.Filtering(ctx); err != nil || !got {
			t.Fatalf("Filtering with a drop policy = %v, %v; want true", got, err)
		}
	})

	t.Run("allow without filtering changes nothing", func(t *testing.T) {
		b, env := setup(t, false)
		before := dump(t, env)
		for _, f := range families(env.NS) {
			if err := b.Allow(ctx, firewall.Rule{Tag: "fleetup:run1", Port: 62286, Source: f.host}); err != nil {
				t.Fatalf("Allow %s: %v", f.name, err)
			}
		}
		if diff := cmp.Diff(before, dump(t, env)); diff != "" {
			t.Errorf("Allow on an empty ruleset changed it (-before +after):\n%s", diff)
		}
		if got, err := b.Filtering(ctx); err != nil || got {
			t.Errorf("Filtering after Allow on an empty ruleset = %v, %v; want false", got, err)
		}
	})

	t.Run("remove without tagged rules is a no-op", func(t *testing.T) {
		b, env := setup(t, true)
		before := dump(t, env)
		removed, err := b.Remove(ctx, firewall.TagPrefix)
		if err != nil || len(removed) != 0 {
			t.Fatalf("Remove = %q, %v; want nothing", removed, err)
		}
		if diff := cmp.Diff(before, dump(t, env)); diff != "" {
			t.Errorf("Remove without tagged rules changed the ruleset (-before +after):\n%s", diff)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		b, env := setup(t, true)
		before := dump(t, env)
		for _, p := range []string{"", "run1", "fleetup"} {
			if _, err := b.Remove(ctx, p); !errors.Is(err, firewall.ErrInvalidPrefix) {
				t.Errorf("Remove(%q) = %v, want ErrInvalidPrefix", p, err)
			}
			if _, err := b.List(ctx, p); !errors.Is(err, firewall.ErrInvalidPrefix) {
				t.Errorf("List(%q) = %v, want ErrInvalidPrefix", p, err)
			}
		}
		bad := []firewall.Rule{
			{Tag: "run1", Port: 1, Source: env.NS.Host4},
			{Tag: `fleetup:x" accept`, Port: 1, Source: env.NS.Host4},
			{Tag: "fleetup:run1", Port: 0, Source: env.NS.Host4},
			{Tag: "fleetup:run1", Port: 1},
			{Tag: "fleetup:run1", Port: 1, Source: firewall.AnyIPv4}, // any source not asked for
		}
		for _, r := range bad {
			if err := b.Allow(ctx, r); !errors.Is(err, firewall.ErrInvalidRule) {
				t.Errorf("Allow(%+v) = %v, want ErrInvalidRule", r, err)
			}
		}
		if diff := cmp.Diff(before, dump(t, env)); diff != "" {
			t.Errorf("bad input changed the ruleset (-before +after):\n%s", diff)
		}
	})
}

package firewall

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fleetup/fleetup/proc"
)

// NFTables is the Backend for native nftables rulesets, driven with nft.
// It leaves alone the tables that iptables-nft manages (see IPTables).
//
// It reads the ruleset with "nft -j -a list ruleset" and changes it with
// nft's JSON commands on standard input ("nft -j -f -"), which take table
// and chain names as data, so no name can be misread as nft syntax. The
// rules it inserts read, in "nft list ruleset",
//
//	ip saddr SRC tcp dport PORT accept comment "TAG"
//
// (ip6 saddr for an IPv6 source). A rule for any source has no saddr match;
// in an inet table it matches its family with "meta nfproto ipv4" (ipv6)
// instead.
type NFTables struct {
	r *proc.Runner
}

var _ Backend = (*NFTables)(nil)

// NewNFTables returns the backend for nft, run through r.
func NewNFTables(r *proc.Runner) *NFTables { return &NFTables{r: r} }

// Name returns "nftables".
func (b *NFTables) Name() string { return "nftables" }

func (b *NFTables) available() bool { return proc.LookPath("nft") }

func (b *NFTables) load(ctx context.Context) (*nftRuleset, error) {
	out, err := b.r.Output(ctx, "nft", "-j", "-a", "list", "ruleset")
	if err != nil {
		return nil, fmt.Errorf("list nftables ruleset: %w", err)
	}
	return parseNFT(out)
}

// Filtering reports whether any base chain of type filter on the input
// hook, in a family inet, ip or ip6 table that iptables-nft does not
// manage, has a drop policy or any rule.
func (b *NFTables) Filtering(ctx context.Context) (bool, error) {
	rs, err := b.load(ctx)
	if err != nil {
		return false, err
	}
	return len(rs.inputChains()) > 0, nil
}

// Allow inserts r at the head of every chain Filtering counts whose family
// carries r.Source's family (inet both, ip IPv4, ip6 IPv6): an accept in
// one base chain does not stop a drop in another, so each needs its own.
// All insertions are one nft transaction: either all or none are made.
func (b *NFTables) Allow(ctx context.Context, r Rule) error {
	if err := r.Validate(); err != nil {
		return err
	}
	src := r.Source.Unmap()
	proto := "ip"
	if src.Is6() {
		proto = "ip6"
	}
	rs, err := b.load(ctx)
	if err != nil {
		return err
	}
	var cmds []any
	for _, c := range rs.inputChains() {
		if c.Family != "inet" && c.Family != proto {
			continue
		}
		var expr []any
		switch {
		case !r.AnySource:
			expr = append(expr, match(proto, "saddr", src.String()))
		case c.Family == "inet":
			expr = append(expr, map[string]any{"match": map[string]any{
				"op": "==", "left": map[string]any{"meta": map[string]any{"key": "nfproto"}}, "right": nfproto[proto],
			}})
		}
		expr = append(expr, match("tcp", "dport", r.Port), map[string]any{"accept": nil})
		cmds = append(cmds, map[string]any{"insert": map[string]any{"rule": map[string]any{
			"family": c.Family, "table": c.Table, "chain": c.Name, "comment": r.Tag, "expr": expr,
		}}})
	}
	if len(cmds) == 0 {
		return nil
	}
	if err := b.apply(ctx, cmds); err != nil {
		return fmt.Errorf("allow tcp port %d from %s: %w", r.Port, src, err)
	}
	return nil
}

// nfproto names a payload protocol's family for "meta nfproto".
var nfproto = map[string]string{"ip": "ipv4", "ip6": "ipv6"}

func match(proto, field string, right any) map[string]any {
	return map[string]any{"match": map[string]any{
		"op":    "==",
		"left":  map[string]any{"payload": map[string]any{"protocol": proto, "field": field}},
		"right": right,
	}}
}

// apply runs nft JSON commands as one transaction.
func (b *NFTables) apply(ctx context.Context, cmds []any) error {
	data, err := json.Marshal(map[string]any{"nftables": cmds})
	if err != nil {
		return fmt.Errorf("encode nft commands: %w", err)
	}
	if _, err := b.r.Run(ctx, bytes.NewReader(data), "nft", "-j", "-f", "-"); err != nil {
		return err
	}
	return nil
}

func describe(r nftRule) string {
	return fmt.Sprintf("nftables: %s %s %s handle %d comment %q", r.Family, r.Table, r.Chain, r.Handle, r.Comment)
}

// List returns "nftables: FAMILY TABLE CHAIN handle H comment "TAG"" for
// every rule whose comment starts with tagPrefix.
func (b *NFTables) List(ctx context.Context, tagPrefix string) ([]string, error) {
	if err := validPrefix(tagPrefix); err != nil {
		return nil, err
	}
	rs, err := b.load(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rs.tagged(tagPrefix) {
		out = append(out, describe(r))
	}
	return out, nil
}

// Remove deletes, by handle, every rule List finds. Each rule is deleted
// on its own, so that one rule gone meanwhile does not keep the others.
func (b *NFTables) Remove(ctx context.Context, tagPrefix string) ([]string, error) {
	if err := validPrefix(tagPrefix); err != nil {
		return nil, err
	}
	rs, err := b.load(ctx)
	if err != nil {
		return nil, err
	}
	var (
		removed []string
		errs    []error
	)
	for _, r := range rs.tagged(tagPrefix) {
		cmd := map[string]any{"delete": map[string]any{"rule": map[string]any{
			"family": r.Family, "table": r.Table, "chain": r.Chain, "handle": r.Handle,
		}}}
		if err := b.apply(ctx, []any{cmd}); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", describe(r), err))
			continue
		}
		removed = append(removed, describe(r))
	}
	return removed, errors.Join(errs...)
}

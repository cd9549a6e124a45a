package firewall

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fleetup/fleetup/proc"
)

// All returns every backend whose tools exist on the node, whether or not
// it filters, in the order iptables, iptables-legacy, nftables: what a
// sweep calls Remove on. It runs nothing. The legacy backend looks only at
// the legacy tables the kernel already has in the runner's network
// namespace; where the node's iptables is itself the legacy flavour both
// backends see the same tables, which is harmless for Remove and List (the
// second finds nothing left) and which Detect avoids.
func All(r *proc.Runner) []Backend {
	var out []Backend
	if ipt := NewIPTables(r); ipt.available() {
		out = append(out, ipt)
	}
	if legacy := NewIPTablesLegacy(r); legacy.available() {
		out = append(out, legacy)
	}
	if nft := NewNFTables(r); nft.available() {
		out = append(out, nft)
	}
	return out
}

// isLegacy reports whether the node's iptables is the legacy flavour
// (Debian's alternatives can point it at either), in which case
// NewIPTables already covers the legacy tables. It reads the flavour from
// the version line, "iptables v1.8.9 (legacy)" or "(nf_tables)", which is
// fixed text of iptables, not a translated message.
func isLegacy(ctx context.Context, r *proc.Runner) bool {
	out, err := r.Output(ctx, "iptables", "-V")
	return err == nil && strings.Contains(string(out), "legacy")
}

// Detect returns the backends of All that have input filtering in place
// (Filtering true), in the same order, leaving out iptables-legacy when the
// node's iptables is the legacy flavour. A node with both iptables-nft
// rules and a native nftables table gets both backends. When a backend
// cannot tell, Detect goes on with the others and returns those that
// filter together with the errors joined, so that a caller can still open
// the port where it can.
func Detect(ctx context.Context, r *proc.Runner) ([]Backend, error) {
	all := All(r)
	if quiet(ctx, r, all) {
		return nil, nil
	}
	var (
		out  []Backend
		errs []error
	)
	for _, b := range all {
		if ipt, ok := b.(*IPTables); ok && ipt.legacy {
			if !ipt.legacyPresent(ctx) {
				continue // no legacy filter table: nothing to filter there
			}
			if isLegacy(ctx, r) {
				continue // the node's iptables is already the legacy one
			}
		}
		ok, err := b.Filtering(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			continue
		}
		if ok {
			out = append(out, b)
		}
	}
	return out, errors.Join(errs...)
}

// quiet reports whether one look shows that nothing on the node filters
// anything: nft lists no table at all, and the kernel has no legacy
// filter table. iptables-nft keeps its rules in nftables tables, which nft
// lists; iptables-legacy keeps them in x_tables, which /proc names. It
// spares the iptables-save calls of Detect on a node without a firewall;
// when it cannot tell (no nft, nft fails) it says false.
func quiet(ctx context.Context, r *proc.Runner, all []Backend) bool {
	for _, b := range all {
		nft, ok := b.(*NFTables)
		if !ok {
			continue
		}
		rs, err := nft.load(ctx)
		if err != nil || len(rs.Tables) > 0 {
			return false
		}
		return !NewIPTablesLegacy(r).legacyPresent(ctx)
	}
	return false
}

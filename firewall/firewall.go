// Package firewall opens and closes a node's host firewall for fleetup's
// own traffic. It runs on the node (inside the engine, as root) and drives
// the node's own tools, iptables/ip6tables and nft, through a proc.Runner;
// it does not speak netlink itself, so the rules it makes are exactly what
// an administrator would see and could have typed.
//
// Every rule fleetup adds carries a comment "fleetup:<run id>" (the Tag), so
// a later sweep can find and remove the rules of a run that was killed.
package firewall

import (
	"context"
	"net/netip"

	"github.com/fleetup/fleetup/proc"
)

// TagPrefix starts the comment of every rule fleetup adds.
const TagPrefix = "fleetup:"

// Rule is an accept rule for TCP traffic from Source to the node's Port.
type Rule struct {
	// Tag is the rule's comment, TagPrefix followed by the run id.
	Tag    string
	Port   int
	Source netip.Addr // the manager's address; IPv4 or IPv6
}

// Backend is one firewall tool on a node. Implementations: IPTables
// (iptables and ip6tables, legacy or nf_tables flavour) and NFTables (nft,
// for tables that are not iptables-nft's).
type Backend interface {
	// Name is "iptables" or "nftables".
	Name() string
	// Filtering reports whether this backend has input filtering in place
	// that could block a new port: a base chain on the input hook with
	// rules or a drop policy. A node with no filtering needs no rule.
	Filtering(ctx context.Context) (bool, error)
	// Allow inserts r at the head of every input base chain of the
	// matching address family, so that no later rule drops it.
	Allow(ctx context.Context, r Rule) error
	// Remove deletes every rule whose comment starts with tagPrefix and
	// returns a one-line description of each rule it removed.
	Remove(ctx context.Context, tagPrefix string) ([]string, error)
	// List returns a one-line description of every rule whose comment
	// starts with tagPrefix.
	List(ctx context.Context, tagPrefix string) ([]string, error)
}

// Detect returns the backends whose tools exist on the node and that have
// input filtering in place (Filtering true), in the order iptables, nftables.
func Detect(ctx context.Context, r *proc.Runner) ([]Backend, error) {
	panic("implemented in detect.go")
}

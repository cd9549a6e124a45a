// Package firewall opens and closes a node's host firewall for fleetup's
// own traffic. It runs on the node (inside the engine, as root) and drives
// the node's own tools, iptables/ip6tables and nft, through a proc.Runner;
// it does not speak netlink itself, so the rules it makes are exactly what
// an administrator would see and could have typed.
//
// Every rule fleetup adds carries a comment "fleetup:<run id>" (the Tag), so
// a later sweep can find and remove the rules of a run that was killed.
//
// The contract every Backend keeps: Allow changes nothing when the backend
// has no input filtering for the rule's address family; after Allow and a
// Remove of the rule's tag the ruleset is exactly what it was before (as
// printed by iptables-save and nft list ruleset, counters aside); List,
// Filtering and Remove of a prefix that matches nothing change nothing.
// Rules without a fleetup tag are never touched.
package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// TagPrefix starts the comment of every rule fleetup adds.
const TagPrefix = "fleetup:"

// maxTagLen bounds a tag so that it fits an nftables rule comment (128
// bytes with its terminating NUL) and iptables' comment match (256).
const maxTagLen = 127

// Rule is an accept rule for TCP traffic from Source to the node's Port.
type Rule struct {
	// Tag is the rule's comment, TagPrefix followed by the run id.
	Tag  string
	Port int
	// Source is the one address allowed in, IPv4 or IPv6 (for the engine,
	// the manager's); with AnySource, the unspecified address of a family
	// (AnyIPv4 or AnyIPv6), which only names the family.
	Source netip.Addr
	// AnySource lets every source of Source's family in (the manager
	// opening its own ports). It must be asked for explicitly, so that an
	// unspecified Source by mistake is refused rather than opening the
	// port to all.
	AnySource bool
}

// AnyIPv4 and AnyIPv6 are the Sources of AnySource rules.
var (
	AnyIPv4 = netip.IPv4Unspecified()
	AnyIPv6 = netip.IPv6Unspecified()
)

// ErrInvalidRule is wrapped by every error Rule.Validate returns.
var ErrInvalidRule = errors.New("invalid firewall rule")

// ErrInvalidPrefix is returned by Remove and List for a tag prefix that
// does not start with TagPrefix, which would match rules that are not
// fleetup's.
var ErrInvalidPrefix = errors.New("invalid tag prefix")

// Validate reports whether r can be turned into a rule: Tag is TagPrefix
// followed by 1 or more of [A-Za-z0-9._-] (127 bytes at most), Port is
// 1-65535 and Source is a specific unicast address without a zone, or,
// with AnySource, the unspecified address of its family. An IPv4-mapped
// IPv6 source is taken as IPv4 by the backends.
func (r Rule) Validate() error {
	if err := validTag(r.Tag); err != nil {
		return err
	}
	if r.Port < 1 || r.Port > 65535 {
		return fmt.Errorf("%w: port %d out of range 1-65535", ErrInvalidRule, r.Port)
	}
	if !r.Source.IsValid() {
		return fmt.Errorf("%w: no source address", ErrInvalidRule)
	}
	src := r.Source.Unmap()
	if src.Zone() != "" {
		return fmt.Errorf("%w: source %s has a zone", ErrInvalidRule, r.Source)
	}
	if r.AnySource {
		if !src.IsUnspecified() {
			return fmt.Errorf("%w: any-source rule with the specific source %s (want %s or %s)", ErrInvalidRule, r.Source, AnyIPv4, AnyIPv6)
		}
		return nil
	}
	if src.IsUnspecified() || src.IsMulticast() {
		return fmt.Errorf("%w: source %s is not a unicast address", ErrInvalidRule, r.Source)
	}
	return nil
}

func validTag(tag string) error {
	id, ok := strings.CutPrefix(tag, TagPrefix)
	if !ok {
		return fmt.Errorf("%w: tag %q does not start with %q", ErrInvalidRule, tag, TagPrefix)
	}
	if id == "" {
		return fmt.Errorf("%w: tag %q has no run id", ErrInvalidRule, tag)
	}
	if len(tag) > maxTagLen {
		return fmt.Errorf("%w: tag %q is longer than %d bytes", ErrInvalidRule, tag, maxTagLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: tag %q has character %q (allowed: A-Z a-z 0-9 . _ -)", ErrInvalidRule, tag, c)
		}
	}
	return nil
}

func validPrefix(prefix string) error {
	if !strings.HasPrefix(prefix, TagPrefix) {
		return fmt.Errorf("%w: %q does not start with %q", ErrInvalidPrefix, prefix, TagPrefix)
	}
	return nil
}

// Backend is one firewall tool on a node. Implementations: IPTables
// (iptables and ip6tables, legacy or nf_tables flavour) and NFTables (nft,
// for tables that are not iptables-nft's).
type Backend interface {
	// Name is "iptables", "iptables-legacy" or "nftables".
	Name() string
	// Filtering reports whether this backend has input filtering in place
	// that could block a new port, in either address family: a base chain
	// on the input hook with rules or a drop policy. A node with no
	// filtering needs no rule.
	Filtering(ctx context.Context) (bool, error)
	// Allow inserts r at the head of every input base chain of the
	// matching address family that filters, so that no later rule drops
	// it. With no such chain it changes nothing.
	Allow(ctx context.Context, r Rule) error
	// Remove deletes every rule whose comment starts with tagPrefix (which
	// must start with TagPrefix) and returns a one-line description of
	// each rule it removed. A prefix is matched as a string: removing
	// "fleetup:run1" also removes "fleetup:run10"'s rules.
	Remove(ctx context.Context, tagPrefix string) ([]string, error)
	// List returns a one-line description of every rule whose comment
	// starts with tagPrefix (which must start with TagPrefix).
	List(ctx context.Context, tagPrefix string) ([]string, error)
}

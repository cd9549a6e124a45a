package firewall

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/fleetup/fleetup/proc"
)

// IPTables is the Backend for iptables and ip6tables: the node's default
// ones (on Debian 12 the nf_tables flavour, iptables-nft) or, from
// NewIPTablesLegacy, the legacy x_tables flavour. It works on the filter
// table only: Filtering looks at its INPUT chain, Allow inserts at the head
// of INPUT, Remove and List look at every chain of the table.
type IPTables struct {
	r      *proc.Runner
	name   string
	legacy bool
	fams   [2]iptFamily // IPv4, IPv6
}

var _ Backend = (*IPTables)(nil)

type iptFamily struct {
	cmd, save string // "iptables", "iptables-save"
	v6        bool
	// names is the /proc file listing the legacy tables that exist in the
	// network namespace; consulted for the legacy flavour only, so that
	// looking at a family never creates its tables.
	names string
}

// NewIPTables returns the backend for the node's iptables, ip6tables,
// iptables-save and ip6tables-save, run through r.
func NewIPTables(r *proc.Runner) *IPTables {
	return &IPTables{r: r, name: "iptables", fams: [2]iptFamily{
		{cmd: "iptables", save: "iptables-save", names: "/proc/net/ip_tables_names"},
		{cmd: "ip6tables", save: "ip6tables-save", v6: true, names: "/proc/net/ip6_tables_names"},
	}}
}

// NewIPTablesLegacy returns the backend for iptables-legacy and
// ip6tables-legacy, which manage the kernel's x_tables beside (and
// independently of) nf_tables. It treats a family whose filter table the
// kernel does not have as empty, and so never loads or creates it, except
// that Allow in a family with filtering of course adds the rule.
func NewIPTablesLegacy(r *proc.Runner) *IPTables {
	return &IPTables{r: r, name: "iptables-legacy", legacy: true, fams: [2]iptFamily{
		{cmd: "iptables-legacy", save: "iptables-legacy-save", names: "/proc/net/ip_tables_names"},
		{cmd: "ip6tables-legacy", save: "ip6tables-legacy-save", v6: true, names: "/proc/net/ip6_tables_names"},
	}}
}

// Name returns "iptables" or "iptables-legacy".
func (b *IPTables) Name() string { return b.name }

// available reports whether all four tools are on PATH.
func (b *IPTables) available() bool {
	for _, f := range b.fams {
		if !proc.LookPath(f.cmd) || !proc.LookPath(f.save) {
			return false
		}
	}
	return true
}

// legacyPresent reports whether the kernel has legacy tables of any family
// in the runner's network namespace.
func (b *IPTables) legacyPresent(ctx context.Context) bool {
	for _, f := range b.fams {
		if ok, _ := b.hasFilter(ctx, f); ok {
			return true
		}
	}
	return false
}

// hasFilter reports whether the legacy filter table of family f exists.
func (b *IPTables) hasFilter(ctx context.Context, f iptFamily) (bool, error) {
	var out []byte
	var err error
	if len(b.r.Prefix) == 0 {
		// This process is in the runner's network namespace: no need for
		// a cat.
		out, err = os.ReadFile(f.names)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // x_tables not loaded
		}
	} else {
		out, err = b.r.Output(ctx, "cat", f.names)
		var ee *proc.ExitError
		if errors.As(err, &ee) {
			return false, nil // no such file: x_tables not loaded
		}
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", f.names, err)
	}
	for _, n := range strings.Fields(string(out)) {
		if n == "filter" {
			return true, nil
		}
	}
	return false, nil
}

// load returns family f's filter table.
func (b *IPTables) load(ctx context.Context, f iptFamily) (*saveTable, error) {
	if b.legacy {
		ok, err := b.hasFilter(ctx, f)
		if err != nil {
			return nil, err
		}
		if !ok {
			return &saveTable{Name: "filter", Policies: map[string]string{}}, nil
		}
	}
	out, err := b.r.Output(ctx, f.save, "-t", "filter")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.save, err)
	}
	t, err := parseSave(out, "filter")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.save, err)
	}
	return t, nil
}

// filters reports whether t's INPUT chain can drop anything.
func (t *saveTable) filters() bool {
	if p, ok := t.Policies["INPUT"]; ok && p != "ACCEPT" {
		return true
	}
	for _, r := range t.Rules {
		if r.Chain == "INPUT" {
			return true
		}
	}
	return false
}

// Filtering reports whether the INPUT chain of the filter table of either
// family has a policy other than ACCEPT or any rule.
func (b *IPTables) Filtering(ctx context.Context) (bool, error) {
	for _, f := range b.fams {
		t, err := b.load(ctx, f)
		if err != nil {
			return false, err
		}
		if t.filters() {
			return true, nil
		}
	}
	return false, nil
}

// Allow inserts, as rule 1 of INPUT in the family of r.Source,
// "-s SRC -p tcp --dport PORT -m comment --comment TAG -j ACCEPT" (without
// "-s SRC" for any source), unless
// that family's INPUT chain does not filter (inserting would then create
// tables and chains that Remove leaves behind).
func (b *IPTables) Allow(ctx context.Context, r Rule) error {
	if err := r.Validate(); err != nil {
		return err
	}
	src := r.Source.Unmap()
	f := b.fams[0]
	if src.Is6() {
		f = b.fams[1]
	}
	t, err := b.load(ctx, f)
	if err != nil {
		return err
	}
	if !t.filters() {
		return nil
	}
	args := []string{"-w", "-t", "filter", "-I", "INPUT", "1"}
	if !r.AnySource {
		args = append(args, "-s", netip.PrefixFrom(src, src.BitLen()).String())
	}
	args = append(args, "-p", "tcp", "--dport", strconv.Itoa(r.Port),
		"-m", "comment", "--comment", r.Tag, "-j", "ACCEPT")
	if _, err := b.r.Output(ctx, f.cmd, args...); err != nil {
		return fmt.Errorf("allow tcp port %d from %s: %w", r.Port, src, err)
	}
	return nil
}

// List returns "CMD: -A CHAIN ..." for every rule of the filter table of
// either family with a comment starting with tagPrefix.
func (b *IPTables) List(ctx context.Context, tagPrefix string) ([]string, error) {
	if err := validPrefix(tagPrefix); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range b.fams {
		t, err := b.load(ctx, f)
		if err != nil {
			return out, err
		}
		for _, r := range t.Rules {
			if r.hasTag(tagPrefix) {
				out = append(out, f.cmd+": "+r.Line)
			}
		}
	}
	return out, nil
}

// Remove deletes, by rule specification, every rule List finds, and
// returns the descriptions of those it deleted. It goes on after a failed
// deletion and returns all errors joined.
func (b *IPTables) Remove(ctx context.Context, tagPrefix string) ([]string, error) {
	if err := validPrefix(tagPrefix); err != nil {
		return nil, err
	}
	var (
		removed []string
		errs    []error
	)
	for _, f := range b.fams {
		t, err := b.load(ctx, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range t.Rules {
			if !r.hasTag(tagPrefix) {
				continue
			}
			args := append([]string{"-w", "-t", "filter", "-D", r.Chain}, r.Spec...)
			if _, err := b.r.Output(ctx, f.cmd, args...); err != nil {
				errs = append(errs, fmt.Errorf("delete %q: %w", r.Line, err))
				continue
			}
			removed = append(removed, f.cmd+": "+r.Line)
		}
	}
	return removed, errors.Join(errs...)
}

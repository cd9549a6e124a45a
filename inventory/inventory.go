// Package inventory collects what a node is and has: OS, kernel and
// architecture, installed packages (dpkg, rpm), fwupd devices and their
// firmware versions, and which installer tools exist. It runs on the node
// (inside the engine) and starts every command through a proc.Runner, so
// each carries the run's marker.
//
// A Collector owns one part of the Inventory and sets it: running the same
// collector twice on one Inventory gives what running it once gives. A
// collector whose tool is absent adds nothing and returns nil; an error
// means the tool exists but failed (or printed what could not be parsed),
// and Collect records it as a warning "name: error" in Inventory.Warnings.
// Every Collector passes the shared suite in inventorytest.
//
// The parsers of tool output (ParseOSRelease, ParseDpkgQuery,
// ParseRPMQuery, ParseFwupdDevices) are exported so that installers and
// tests can use them; each is fuzzed.
package inventory

import (
	"context"
	"fmt"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// Collector fills in one part of an Inventory.
type Collector interface {
	Name() string
	// Collect sets its part of inv, replacing what an earlier call of the
	// same collector put there. A collector whose tool is absent adds
	// nothing and returns nil; an error means the tool exists but failed,
	// and becomes a warning in the inventory.
	Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error
}

// Options configure the default collectors. The zero value is right for a
// real node.
type Options struct {
	// FwupdPlugins, when set, limits fwupdtool to these plugins
	// (--plugins), e.g. "test" in the lab.
	FwupdPlugins []string
	// OSRelease lists the os-release files tried in order; default
	// /etc/os-release then /usr/lib/os-release.
	OSRelease []string
	// DpkgAdminDir and RPMDBPath point the package tools at another
	// database (tests); empty on real nodes.
	DpkgAdminDir string
	RPMDBPath    string
}

// All returns the default collectors, configured by opts, in the order
// Collect runs them: system, tools, dpkg, rpm, fwupd on Linux; on Windows
// those of collect_windows.go (system, tools, programs, hotfixes,
// drivers, bios).
func All(opts Options) []Collector { return defaultCollectors(opts) }

// Collect runs the collectors cs (All(opts) when none are given) one after
// the other and returns the inventory; collector errors are recorded in
// inv.Warnings as "name: error". A nil Runner runs commands unmarked.
func Collect(ctx context.Context, r *proc.Runner, opts Options, cs ...Collector) *fleetup.Inventory {
	if r == nil {
		r = &proc.Runner{}
	}
	if len(cs) == 0 {
		cs = All(opts)
	}
	inv := &fleetup.Inventory{}
	for _, c := range cs {
		if err := c.Collect(ctx, r, inv); err != nil {
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("%s: %v", c.Name(), err))
		}
	}
	return inv
}

// withEnv returns a copy of r that adds env to every command.
func withEnv(r *proc.Runner, env ...string) *proc.Runner {
	c := *r
	c.Env = append(append([]string{}, r.Env...), env...)
	return &c
}

// replacePackages drops inv's packages of manager and appends pkgs.
func replacePackages(inv *fleetup.Inventory, manager string, pkgs []fleetup.Package) {
	kept := inv.Packages[:0:0]
	for _, p := range inv.Packages {
		if p.Manager != manager {
			kept = append(kept, p)
		}
	}
	inv.Packages = append(kept, pkgs...)
}

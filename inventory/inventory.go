// Package inventory collects what a node is and has: OS, kernel and
// architecture, installed packages (dpkg, rpm), fwupd devices and their
// firmware versions, and which installer tools exist. It runs on the node
// (inside the engine). Every Collector passes the shared suite in
// inventorytest.
package inventory

import (
	"context"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// Collector fills in one part of an Inventory.
type Collector interface {
	Name() string
	// Collect adds what it finds to inv. A collector whose tool is absent
	// adds nothing and returns nil; an error means the tool exists but
	// failed, and becomes a warning in the inventory.
	Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error
}

// Collect runs every collector (All() when none are given) and returns the
// inventory; collector errors are recorded in inv.Warnings.
func Collect(ctx context.Context, r *proc.Runner, cs ...Collector) *fleetup.Inventory {
	panic("implemented in collect.go")
}

package inventory

import (
	"context"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// ToolNames are the installer tools the Tools collector looks for, in the
// order it lists them.
var ToolNames = []string{"fwupdtool", "fwupdmgr", "dpkg", "rpm", "sh"}

// Tools records which of ToolNames are on PATH.
type Tools struct{}

var _ Collector = (*Tools)(nil)

// Name returns "tools".
func (*Tools) Name() string { return "tools" }

// Collect sets inv.Tools. It never fails.
func (*Tools) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	inv.Tools = nil
	for _, t := range ToolNames {
		if proc.LookPath(t) {
			inv.Tools = append(inv.Tools, t)
		}
	}
	return nil
}

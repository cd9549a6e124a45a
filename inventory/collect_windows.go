package inventory

import (
	"context"
	"errors"
	"os/exec"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

func defaultCollectors(Options) []Collector {
	return []Collector{
		&WindowsSystem{},
		&WindowsTools{},
		&Programs{},
		&Hotfixes{},
		&Drivers{},
		&BIOS{},
	}
}

// uname is Linux's: on Windows the System collector (os-release, uname)
// has nothing to read; WindowsSystem describes the node.
func uname(ctx context.Context, r *proc.Runner) ([]byte, error) {
	if len(r.Prefix) > 0 {
		return r.Output(ctx, "uname", "-n", "-r", "-m")
	}
	return nil, errors.New("no uname on Windows")
}

// WindowsToolNames are the installer tools WindowsTools looks for, in the
// order it lists them (their names without ".exe").
var WindowsToolNames = []string{"msiexec", "wusa", "powershell", "cmd"}

// WindowsTools records which of WindowsToolNames are on PATH.
type WindowsTools struct{}

var _ Collector = (*WindowsTools)(nil)

// Name returns "tools".
func (*WindowsTools) Name() string { return "tools" }

// Collect sets inv.Tools. It never fails.
func (*WindowsTools) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	inv.Tools = nil
	for _, t := range WindowsToolNames {
		if _, err := exec.LookPath(t + ".exe"); err == nil {
			inv.Tools = append(inv.Tools, t)
		}
	}
	return nil
}

//go:build !linux

package manager

import (
	"runtime"

	"github.com/fleetup/fleetup/agent"
)

// openLocal refuses the local node: fleetup updates the machine it runs on
// only on Linux; elsewhere it is a manager of remote nodes.
func openLocal(string, []string) (agent.Agent, error) {
	return nil, configErrorf("no --target given, and fleetup updates the machine it runs on only on Linux (this is %s): name the nodes with --target, --nodes or --inputfile", runtime.GOOS)
}

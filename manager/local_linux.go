package manager

import (
	"github.com/fleetup/fleetup/agent"
	localagent "github.com/fleetup/fleetup/agent/local"
)

// openLocal is the agent for the machine fleetup runs on (no --target).
func openLocal(runID string, plugins []string) (agent.Agent, error) {
	return localagent.New(localagent.Options{RunID: runID, FwupdPlugins: plugins})
}

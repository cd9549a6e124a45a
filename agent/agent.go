// Package agent is the manager's handle on one node for the duration of a
// run. Remote puts the engine on a Linux node over a transport (SSH),
// starts it, talks to it over mutual TLS and takes it all away again at
// Close; Local does the same work in-process for the machine the manager
// runs on. The orchestrator sees only the Agent interface.
package agent

import (
	"context"
	"github.com/fleetup/fleetup/wire"

	"github.com/fleetup/fleetup"
)

// Agent does a run's work on one node.
type Agent interface {
	// Name is the node as the user named it.
	Name() string
	Inventory(ctx context.Context) (*fleetup.Inventory, error)
	Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error)
	// Install installs the items in order; see engine.Service.Install.
	Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error)
	// Cancel lets the component being installed finish and skips the rest.
	Cancel(ctx context.Context) error
	// Close removes everything the agent put on the node (engine, its
	// files, the processes its installs started, firewall rules) and
	// releases the connection. It must be called even after a failure or
	// a cancel, with a context that is not the cancelled run's.
	Close(ctx context.Context) (*wire.CleanupReport, error)
}

var _ Agent = (*Remote)(nil)

package agent

import (
	"context"
	"os"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/engine"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
)

// Local updates the machine the manager runs on, in-process: no SSH, no
// engine binary, no TLS. Payloads are read from the baseline, copied into a
// private work directory while their hash is checked, and installed from
// there.
type Local struct {
	svc *engine.Service
}

// LocalOptions configure a Local agent.
type LocalOptions struct {
	RunID        string
	FwupdPlugins []string
}

// NewLocal returns the agent for the local node.
func NewLocal(opts LocalOptions) (*Local, error) {
	dir, err := engine.MakeDir(os.TempDir(), opts.RunID)
	if err != nil {
		return nil, err
	}
	runner := &proc.Runner{Marker: opts.RunID, Env: []string{"NO_COLOR=1"}}
	svc := &engine.Service{
		Node:       "localhost",
		Runner:     runner,
		Installers: installer.ByKind(installer.Config{Runner: runner, FwupdPlugins: opts.FwupdPlugins}),
		Inventory:  inventory.Options{FwupdPlugins: opts.FwupdPlugins},
		Fetcher:    engine.FileFetcher{},
		WorkDir:    dir,
	}
	return &Local{svc: svc}, nil
}

// Name implements Agent.
func (l *Local) Name() string { return "localhost" }

// Inventory implements Agent.
func (l *Local) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	return l.svc.Collect(ctx), nil
}

// Probe implements Agent.
func (l *Local) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	return l.svc.Probe(ctx, l.svc.Collect(ctx), comps), nil
}

// Install implements Agent.
func (l *Local) Install(ctx context.Context, req engine.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	return l.svc.Install(ctx, req, emit), nil
}

// Cancel implements Agent.
func (l *Local) Cancel(ctx context.Context) error {
	l.svc.Cancel()
	return nil
}

// Close implements Agent.
func (l *Local) Close(ctx context.Context) (*engine.CleanupReport, error) {
	return l.svc.Cleanup(3 * time.Second), nil
}

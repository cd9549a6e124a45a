package manager

import (
	"context"
	"runtime"
	"time"

	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// POSIXNode opens a Linux node: a connection to it (SSH), then the engine
// scouted, placed, started as root and connected to (agent.NewRemote).
type POSIXNode struct {
	// Dial connects to the node.
	Dial func(ctx context.Context) (transport.Conn, error)
	// SudoPassword answers sudo's prompt for a non-root login; nil when
	// sudo must not ask.
	SudoPassword func() ([]byte, error)
	// Engine returns the engine build for a node architecture
	// (agent.FindEngine when nil).
	Engine func(goarch string) (string, error)
	// EnginePort (the default when 0) and whether the user chose it.
	EnginePort         int
	EnginePortExplicit bool
	// IdleTimeout is how long the engine waits for the manager before it
	// removes itself.
	IdleTimeout  time.Duration
	FwupdPlugins []string
	// Tunnel carries all of the node's traffic through the SSH connection.
	Tunnel bool
}

// Open implements Opener.
func (p *POSIXNode) Open(ctx context.Context, name string, run *Env) (agent.Agent, error) {
	conn, err := p.Dial(ctx)
	if err != nil {
		return nil, err
	}
	engine := p.Engine
	if engine == nil {
		engine = func(goarch string) (string, error) { return agent.FindEngine(goarch, runtime.GOARCH) }
	}
	rem, err := agent.NewRemote(ctx, name, conn, agent.RemoteOptions{
		RunID:              run.RunID,
		Node:               name,
		Password:           p.SudoPassword,
		Engine:             engine,
		CA:                 run.CA,
		Manager:            run.Manager,
		DepotPort:          run.DepotPort,
		EnginePort:         p.EnginePort,
		EnginePortExplicit: p.EnginePortExplicit,
		IdleTimeout:        p.IdleTimeout,
		FwupdPlugins:       p.FwupdPlugins,
		SweepRuns:          run.SweepRuns(name),
		Tunnel:             p.Tunnel,
		Placed:             run.Placed(name),
		Removed:            run.Removed(name),
		Notice:             func(msg string) { run.Notice(name, msg) },
	})
	if err != nil {
		return nil, err
	}
	return rem, nil
}

// Sweep places a fresh engine on the node and has it remove what the
// runs named left there (engine directories, processes, firewall rules),
// as `fleetup cleanup` does.
func (p *POSIXNode) Sweep(ctx context.Context, name string, runs []string) (*wire.CleanupReport, error) {
	conn, err := p.Dial(ctx)
	if err != nil {
		return nil, err
	}
	engine := p.Engine
	if engine == nil {
		engine = func(goarch string) (string, error) { return agent.FindEngine(goarch, runtime.GOARCH) }
	}
	return agent.Sweep(ctx, name, conn, agent.RemoteOptions{RunID: "cleanup-" + NewRunID(), Password: p.SudoPassword, Engine: engine}, runs, false)
}

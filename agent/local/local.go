//go:build linux

// Package local is the agent for the machine the manager runs on: the
// node-side work (package engine's Service) done in-process, with no SSH,
// no engine binary and no TLS. It passes the same conformance suite
// (agent/agenttest) as the remote agents. The local node is a Linux node
// (fwupd, dpkg, rpm); on other systems the manager reaches nodes only.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/engine"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// Agent updates the machine the manager runs on, in-process. Payloads are
// read from the baseline, copied into a private work directory while their
// hash is checked, and installed from there.
type Agent struct {
	svc *engine.Service

	mu      sync.Mutex
	closed  bool
	closing sync.Once
	rep     *wire.CleanupReport
}

var (
	_ agent.Agent         = (*Agent)(nil)
	_ agent.HealthChecker = (*Agent)(nil)
)

// Options configure a local agent.
type Options struct {
	RunID        string
	FwupdPlugins []string
}

// New returns the agent for the local node.
func New(opts Options) (*Agent, error) {
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
	return &Agent{svc: svc}, nil
}

// check refuses work after Close or with an ended context, as every agent
// does.
func (l *Agent) check(ctx context.Context) error {
	if l.isClosed() {
		return agent.ErrClosed
	}
	return ctx.Err()
}

func (l *Agent) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Name implements agent.Agent.
func (l *Agent) Name() string { return "localhost" }

// Inventory implements agent.Agent.
func (l *Agent) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	if err := l.check(ctx); err != nil {
		return nil, err
	}
	inv := l.svc.Collect(ctx)
	// An inventory cut short by the context is no inventory.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return inv, nil
}

// Probe implements agent.Agent.
func (l *Agent) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	if err := l.check(ctx); err != nil {
		return nil, err
	}
	p := l.svc.Probe(ctx, l.svc.Collect(ctx), comps)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

// Install implements agent.Agent.
func (l *Agent) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	if err := l.check(ctx); err != nil {
		return nil, err
	}
	return l.svc.Install(ctx, req, emit), nil
}

// Cancel implements agent.Agent.
func (l *Agent) Cancel(ctx context.Context) error {
	if l.isClosed() {
		return agent.ErrClosed
	}
	l.svc.Cancel()
	return nil
}

// Health implements agent.HealthChecker: command runs through /bin/sh -c
// as the manager's own user, like the run's other commands (the C locale,
// an environment without the password variables, the run's marker, its
// own process group), so that Close stops whatever it left running.
func (l *Agent) Health(ctx context.Context, command string) (string, error) {
	if err := l.check(ctx); err != nil {
		return "", err
	}
	out := &transport.TailWriter{}
	cmd := l.svc.Runner.Command(ctx, nil, "/bin/sh", "-c", command)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	switch {
	case err == nil:
		return out.String(), nil
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// It succeeded; something it started still holds its output
		// open. That process carries the run's marker: Close stops it.
		return out.String(), nil
	case ctx.Err() != nil:
		return out.String(), fmt.Errorf("health command: %w", ctx.Err())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return out.String(), fmt.Errorf("health command: %w", err)
	}
	code := ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal()) // as a shell says it
	}
	return out.String(), &transport.ExitError{Cmd: command, ExitCode: code}
}

// Close implements agent.Agent.
func (l *Agent) Close(ctx context.Context) (*wire.CleanupReport, error) {
	l.closing.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.svc.Cancel()
		l.rep = l.svc.Cleanup(3 * time.Second)
	})
	return l.rep, nil
}

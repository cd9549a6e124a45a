// Package agent is the manager's handle on one node for the duration of a
// run. Every kind of node is an Agent: the orchestrator sees nothing else.
//
// A remote node's agent is made of three parts, each replaceable by node
// kind:
//
//   - placing the engine (place.go): scouting the node for a private
//     directory where programs may run, and copying the engine build for
//     the node's architecture there;
//   - launching it (Launcher, Session): on a POSIX node a shell session
//     that runs the engine as root (directly, or through sudo from a
//     root-owned copy whose SHA-256 is checked first) and does the
//     start-up handshake on the engine's standard streams (posix.go); a
//     Windows node will start it as a temporary service;
//   - controlling it (Remote, control.go): the mutual-TLS client of the
//     engine's API, the heartbeat that declares a silent node lost, and
//     the clean-up check at Close.
//
// The local node's agent (package agent/local) does the same work
// in-process. Package agenttest holds the conformance suite every agent
// passes.
package agent

import (
	"context"
	"errors"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/wire"
)

// Agent does a run's work on one node. Its methods may be called from
// several goroutines at once (Cancel while Install runs, say).
//
// The contract every agent keeps, and agenttest checks:
//   - Inventory and Probe return an error, never a half-empty answer,
//     when the node cannot be asked (ctx ended, node lost, agent closed);
//     a collector that failed on a node that answered is a Warning of the
//     inventory.
//   - Probe returns one Probe per component, in order.
//   - Install returns one result per item, in order, or an error when the
//     node's state is unknown (stream broke off, node lost).
//   - Cancel lets the component being installed finish and skips the
//     rest; Install then returns with the skipped items PhaseSkipped.
//   - Close removes everything the agent put on the node and says what in
//     its report; an error says what could not be confirmed removed. It
//     is idempotent, and after it every other method returns ErrClosed.
type Agent interface {
	// Name is the node as the user named it.
	Name() string
	Inventory(ctx context.Context) (*fleetup.Inventory, error)
	Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error)
	// Install installs the items in order, passing progress to emit.
	Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error)
	// Cancel lets the component being installed finish and skips the rest.
	Cancel(ctx context.Context) error
	// Close removes everything the agent put on the node (engine, its
	// files, the processes its installs started, firewall rules) and
	// releases the connection. It must be called even after a failure or
	// a cancel, with a context that is not the cancelled run's.
	Close(ctx context.Context) (*wire.CleanupReport, error)
}

// HealthChecker is an Agent whose node runs commands: the run's health
// command after a deploy (package orchestrator's Options.HealthCommand).
// Callers find it by type assertion; a BMC's agent is none.
type HealthChecker interface {
	// Health runs command on the node through /bin/sh -c as the user the
	// agent acts as (the SSH login user, never root through sudo; the
	// local agent: the manager's own user), in the C locale, with no
	// standard input and none of the run's secrets (no password, in its
	// environment or anywhere else). It returns the end of the command's
	// standard output and error, interleaved, at most
	// transport.StderrTail bytes. A command that exited non-zero returns
	// a *transport.ExitError with its status; one still running when ctx
	// ends is killed with its process group and the error wraps ctx's.
	// An agent that finds it has no way to run commands on its node
	// returns an error wrapping errors.ErrUnsupported.
	Health(ctx context.Context, command string) (output string, err error)
}

// ErrClosed is returned by an agent's methods after Close.
var ErrClosed = errors.New("agent: closed")

var (
	_ Agent         = (*Remote)(nil)
	_ HealthChecker = (*Remote)(nil)
)

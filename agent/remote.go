package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// RemoteOptions configure a remote agent on a POSIX node (NewRemote).
type RemoteOptions struct {
	RunID string
	// Node is the node's name for events and reports.
	Node string
	// Password, when set, answers sudo's prompt (the SSH password is the
	// sudo password, as in HP SUM).
	Password func() ([]byte, error)
	// Engine returns the engine binary for a node architecture ("amd64").
	Engine func(goarch string) (string, error)
	CA     *pki.CA
	// Manager is the manager's TLS identity as a client of the engine.
	Manager *pki.Leaf
	// DepotPort is the manager's HTTPS port the engine pulls from.
	DepotPort int
	// EnginePort (wire.DefaultPort when 0) and whether the user chose it.
	EnginePort         int
	EnginePortExplicit bool
	// IdleTimeout is how long the engine waits for the manager before it
	// removes itself (60s when 0). The manager pings four times as often.
	IdleTimeout  time.Duration
	FwupdPlugins []string
	// SweepRuns are earlier runs the journal says left something on this node.
	SweepRuns []string
	// Placed is called once the engine directory exists on the node, so the
	// caller can journal it before anything else happens, and again with
	// the engine's directory, pid and port once it runs. An error (the
	// journal cannot be written) ends the node: what was placed is removed
	// again.
	Placed func(dir string, pid, port int) error
	// Removed is called when a start that failed has removed everything
	// it placed.
	Removed func() error
	// Notice receives messages the user should see (port moved, firewall
	// opened, leftovers removed, tunnel used).
	Notice func(msg string)
	// Tunnel sends all of the node's traffic through the SSH connection:
	// its downloads and status posts to the manager, and the manager's
	// calls to the engine, which then listens on the node's loopback only
	// and opens no firewall port. Without it, the tunnel is used when the
	// node cannot reach the manager's HTTPS port (checked before anything
	// is transferred).
	Tunnel bool
	// DepotLocal is the depot's address on the manager for tunnelled
	// connections ("127.0.0.1:63002" when empty, from DepotPort).
	DepotLocal string
	// StartTimeout bounds each step of the engine's start (60s when 0).
	StartTimeout time.Duration
}

func (o *RemoteOptions) spec() Spec {
	return Spec{
		RunID:  o.RunID,
		Node:   o.Node,
		Engine: o.Engine,
		CA:     o.CA,
		Config: wire.Config{
			Port:         o.EnginePort,
			PortExplicit: o.EnginePortExplicit,
			IdleTimeout:  wire.Duration(o.idle()),
			FwupdPlugins: o.FwupdPlugins,
			SweepRuns:    o.SweepRuns,
		},
		DepotPort:  o.DepotPort,
		DepotLocal: o.DepotLocal,
		Tunnel:     o.Tunnel,
		Placed:     o.Placed,
		Removed:    o.Removed,
		Notice:     o.Notice,
	}
}

func (o *RemoteOptions) idle() time.Duration {
	if o.IdleTimeout > 0 {
		return o.IdleTimeout
	}
	return 60 * time.Second
}

// NewRemote scouts the POSIX node behind conn, places and starts the
// engine (POSIX), and connects to it (Control). On error everything it
// placed is removed again and conn is closed.
func NewRemote(ctx context.Context, name string, conn transport.Conn, opts RemoteOptions) (*Remote, error) {
	if opts.Node == "" {
		opts.Node = name
	}
	l := &POSIX{Conn: conn, Password: opts.Password, StartTimeout: opts.StartTimeout}
	sess, err := l.Launch(ctx, opts.spec())
	if err != nil {
		return nil, err
	}
	r, err := Control(ctx, name, sess, opts.CA, opts.Manager, opts.idle(), opts.Notice, opts.Removed)
	if err != nil {
		return nil, err
	}
	r.shell = conn
	return r, nil
}

// Health implements HealthChecker over the node's connection (for SSH, a
// session of its own beside the engine's), as the login user: the
// command is the operator's, and root is neither needed nor given (a
// command that wants it can run sudo -n itself). Nothing is sent on its
// standard input.
func (r *Remote) Health(ctx context.Context, command string) (string, error) {
	if r.shell == nil {
		return "", fmt.Errorf("run a command on %s: its engine was started without a shell: %w", r.name, errors.ErrUnsupported)
	}
	octx, done, err := r.op(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	out := &transport.TailWriter{}
	err = r.shell.Run(octx, healthLine(command), nil, out, out)
	return out.String(), r.wrap(octx, err)
}

// healthLine is the shell command line that runs command through
// /bin/sh -c in the C locale, whatever the login shell and its locale.
func healthLine(command string) string {
	return "LC_ALL=C; export LC_ALL; exec /bin/sh -c " + transport.ShellQuote(command)
}

package agent

import (
	"context"
	"net"
	"time"

	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/wire"
)

// A Launcher starts the engine on one kind of node: it places the engine,
// runs it with the run's identity and configuration, and hands back the
// running Session. On error, everything it placed is removed again (or,
// when the node stopped answering, the error says what may be left).
type Launcher interface {
	Launch(ctx context.Context, spec Spec) (Session, error)
}

// Spec is what a launcher needs to start an engine for a run.
type Spec struct {
	RunID string
	// Node is the node's name: the engine's certificate is issued for it,
	// and the manager accepts no other node's engine under this name.
	Node string
	// Engine returns the engine binary for a node architecture ("amd64").
	Engine func(goarch string) (string, error)
	CA     *pki.CA
	// Config is the engine's configuration without what the launcher
	// fills in (certificate, key, CA, manager address, depot URL).
	Config wire.Config
	// DepotPort is the manager's HTTPS port; DepotLocal its address on the
	// manager for connections tunnelled back from the node.
	DepotPort  int
	DepotLocal string
	// Tunnel carries all of the node's traffic through the launcher's own
	// connection to the node.
	Tunnel bool
	// Placed is called once something of the run is on the node (the
	// directory), and again with the engine's directory, pid and port; an
	// error (the journal cannot be written) ends the launch.
	Placed func(dir string, pid, port int) error
	// Removed is called when a launch that failed has removed everything
	// it placed (the journal may forget the node); an error is reported
	// with the launch's.
	Removed func() error
	// Notice receives messages the user should see.
	Notice func(msg string)
}

func (s *Spec) notice(msg string) {
	if s.Notice != nil {
		s.Notice(msg)
	}
}

func (s *Spec) placed(dir string, pid, port int) error {
	if s.Placed == nil {
		return nil
	}
	return s.Placed(dir, pid, port)
}

func (s *Spec) removed() error {
	if s.Removed == nil {
		return nil
	}
	return s.Removed()
}

func (s *Spec) idle() time.Duration {
	if d := time.Duration(s.Config.IdleTimeout); d > 0 {
		return d
	}
	return 60 * time.Second
}

// A Session is an engine running on a node.
type Session interface {
	// Endpoint says how the manager reaches the engine's TLS API.
	Endpoint() Endpoint
	// Ready is the engine's answer to its configuration.
	Ready() *wire.Ready
	// Shutdown has the engine clean up (finish the component it installs,
	// stop its processes, remove its firewall rules and files), waits for
	// its report, checks that nothing of the run is left and releases the
	// connection.
	Shutdown(ctx context.Context) (*wire.CleanupReport, error)
	// Abandon releases the connection at once, for a node that stopped
	// answering; the engine removes itself after its idle timeout.
	Abandon()
}

// Endpoint is how the manager reaches an engine's TLS API.
type Endpoint struct {
	// Addr is the engine's address (host:port) on the network.
	Addr string
	// Via, when set, reaches the engine through the launcher's own
	// connection to the node; it is tried when Addr cannot be reached.
	Via func(ctx context.Context) (net.Conn, error)
	// ViaOnly skips Addr (the engine listens on the node's loopback).
	ViaOnly bool
}

package manager

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/agent/bmc"
	"github.com/fleetup/fleetup/depot"
)

// BMCNode opens a BMC node: a Redfish session over HTTPS, the BMC's
// certificate checked against its pin first. Nothing is placed on a BMC;
// it pulls its images from the manager's web server through URLs granted
// to it alone.
type BMCNode struct {
	// Endpoint is "https://host:port".
	Endpoint string
	User     string
	// Password returns the BMC's password (a fresh copy each call).
	Password func() ([]byte, error)
	// TLS checks the BMC's certificate (tlspin.Store.Config).
	TLS *tls.Config
	// Dial makes the connections to the BMC (net.Dialer when nil).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ResetTimeout bounds the wait for the BMC after a flash
	// (bmc.DefaultResetTimeout when 0); Poll is how often its progress
	// is read (2 s when 0).
	ResetTimeout time.Duration
	Poll         time.Duration
}

// Open implements Opener.
func (b *BMCNode) Open(ctx context.Context, name string, run *Env) (agent.Agent, error) {
	a, err := bmc.Open(ctx, bmc.Options{
		Node:         name,
		Endpoint:     b.Endpoint,
		User:         b.User,
		Password:     b.Password,
		TLS:          b.TLS,
		Dial:         b.Dial,
		ResetTimeout: b.ResetTimeout,
		Poll:         b.Poll,
		Depot:        run.depotFor(name),
		Notice:       func(msg string) { run.Notice(name, msg) },
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// CancelGrace is how long a cancelled run waits for this BMC: a flash in
// progress and the reset after it cannot be interrupted. The agent gives
// the task and the read-back through the reset each the reset timeout,
// and a minute to see the reset begin.
func (b *BMCNode) CancelGrace() time.Duration {
	t := b.ResetTimeout
	if t <= 0 {
		t = bmc.DefaultResetTimeout
	}
	return 2*t + 3*time.Minute
}

// depotFor is the manager's web server as one node sees it; nil before
// the depot started (an inventory-only run still starts it).
func (e *Env) depotFor(node string) bmc.Depot {
	if e.depot == nil {
		return nil
	}
	return &nodeDepot{d: e.depot, node: node}
}

type nodeDepot struct {
	d    *depot.Depot
	node string
}

func (n *nodeDepot) Grant(c *fleetup.Component) (string, error) {
	return n.d.Grant(n.node, c.SHA256, c.File)
}
func (n *nodeDepot) Served(path string) int64 { return n.d.GrantServed(path) }
func (n *nodeDepot) RevokeGrants()            { n.d.RevokeGrants(n.node) }
func (n *nodeDepot) HTTPSPort() int           { return n.d.HTTPSPort() }
func (n *nodeDepot) HTTPPort() int            { return n.d.HTTPPort() }

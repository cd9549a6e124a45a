package windows

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport/smb"
	"github.com/fleetup/fleetup/wire"
)

// Remote is the agent of a Windows node: agent.Remote (the engine's TLS
// API, heartbeat and clean-up) with the payloads pushed over SMB before an
// install when the node cannot reach the manager's depot.
type Remote struct {
	*agent.Remote
	sess *Session
}

var _ agent.Agent = (*Remote)(nil)

// RemoteOptions configure a Windows node's agent (NewRemote).
type RemoteOptions struct {
	RunID string
	Node  string
	// Engine returns the engine's Windows build for an architecture
	// (agent.FindWindowsEngine when nil).
	Engine  func(goarch string) (string, error)
	CA      *pki.CA
	Manager *pki.Leaf
	// DepotPort is the manager's HTTPS port the engine pulls from.
	DepotPort          int
	EnginePort         int
	EnginePortExplicit bool
	IdleTimeout        time.Duration
	SweepRuns          []string
	// PushPayloads always sends the payloads over SMB.
	PushPayloads bool
	Placed       func(dir string, pid, port int) error
	Removed      func() error
	Notice       func(msg string)
	// StartTimeout bounds the wait for the engine's ready.json (60s when
	// 0).
	StartTimeout time.Duration
}

func (o *RemoteOptions) idle() time.Duration {
	if o.IdleTimeout > 0 {
		return o.IdleTimeout
	}
	return 60 * time.Second
}

// NewRemote starts the engine on the Windows node behind sess (an SMB
// session on its ADMIN$), connects to it (agent.Control) and returns its
// agent. On error everything it placed is removed again and sess is
// closed.
func NewRemote(ctx context.Context, name string, sess *smb.Session, opts RemoteOptions) (*Remote, error) {
	l := &Launcher{
		Files:        sess,
		Services:     func(ctx context.Context) (Services, error) { return sess.OpenSCM(ctx) },
		Host:         sess.Host(),
		ManagerAddr:  hostOf(sess.LocalAddr().String()),
		Manager:      opts.Manager,
		Release:      sess.Close,
		StartTimeout: opts.StartTimeout,
		PushPayloads: opts.PushPayloads,
	}
	return newRemote(ctx, name, l, opts)
}

func newRemote(ctx context.Context, name string, l *Launcher, opts RemoteOptions) (*Remote, error) {
	if opts.Node == "" {
		opts.Node = name
	}
	engine := opts.Engine
	if engine == nil {
		engine = agent.FindWindowsEngine
	}
	spec := agent.Spec{
		RunID:  opts.RunID,
		Node:   opts.Node,
		Engine: engine,
		CA:     opts.CA,
		Config: wire.Config{
			Port:         opts.EnginePort,
			PortExplicit: opts.EnginePortExplicit,
			IdleTimeout:  wire.Duration(opts.idle()),
			SweepRuns:    opts.SweepRuns,
		},
		DepotPort: opts.DepotPort,
		Placed:    opts.Placed,
		Removed:   opts.Removed,
		Notice:    opts.Notice,
	}
	// A launch that fails releases the SMB session itself (its
	// take-back ends with it).
	s, err := l.Launch(ctx, spec)
	if err != nil {
		return nil, err
	}
	r, err := agent.Control(ctx, name, s, opts.CA, opts.Manager, opts.idle(), opts.Notice, opts.Removed)
	if err != nil {
		return nil, err
	}
	return &Remote{Remote: r, sess: s.(*Session)}, nil
}

// Install implements agent.Agent: when the node cannot reach the depot,
// every payload of req goes to the engine's payloads\<sha256> first (the
// engine checks it as it checks a download).
func (r *Remote) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	if r.sess.push {
		if err := r.sess.pushPayloads(ctx, req.Items); err != nil {
			return nil, err
		}
	}
	return r.Remote.Install(ctx, req, emit)
}

// pushPayloads copies the payloads of items the engine does not have yet.
func (s *Session) pushPayloads(ctx context.Context, items []wire.InstallItem) error {
	s.mu.Lock()
	if s.pushed == nil {
		s.pushed = map[string]bool{}
	}
	noticed := s.noticed
	s.noticed = true
	s.mu.Unlock()
	if !noticed {
		s.notice("pushing payloads over SMB: the node cannot reach the manager")
	}
	if err := s.l.Files.MkdirAll(ctx, s.path(PushedDir)); err != nil {
		return fmt.Errorf("push payloads: %w", err)
	}
	for _, it := range items {
		c := it.Component
		if c.SHA256 == "" {
			continue
		}
		s.mu.Lock()
		done := s.pushed[c.SHA256]
		s.mu.Unlock()
		if done {
			continue
		}
		if c.Path == "" {
			return fmt.Errorf("push the payload of %s: the manager has no path for it", c.ID)
		}
		if err := s.pushOne(ctx, c); err != nil {
			return fmt.Errorf("push the payload of %s over SMB: %w", c.ID, err)
		}
		s.mu.Lock()
		s.pushed[c.SHA256] = true
		s.mu.Unlock()
	}
	return nil
}

func (s *Session) pushOne(ctx context.Context, c fleetup.Component) error {
	f, err := os.Open(c.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	name := s.path(PushedDir + `\` + c.SHA256)
	if ok, err := s.l.Files.Exists(ctx, name); err == nil && ok {
		return nil
	}
	return s.l.Files.WriteFileFrom(ctx, name, f)
}

func hostOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			h := addr[:i]
			if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
				h = h[1 : len(h)-1]
			}
			return h
		}
	}
	return addr
}

// Swept is what the engine removed of earlier runs as it started (their
// firewall rules, RemoteOptions.SweepRuns); nil when nothing.
func (r *Remote) Swept() *wire.CleanupReport {
	if r.sess == nil || r.sess.ready == nil {
		return nil
	}
	return r.sess.ready.Swept
}

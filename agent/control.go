package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// Remote is the manager's control of an engine a Launcher started: the
// mutual-TLS client of its API, the heartbeat that keeps the engine's
// watchdog fed and declares a silent node lost, and the clean-up at Close.
// It is the Agent of every node kind that runs an engine.
type Remote struct {
	name   string
	sess   Session
	client *wire.Client
	idle   time.Duration
	// shell runs the health command as the login user (NewRemote sets it
	// to the node's connection); nil when the launcher gave none.
	shell transport.Shell

	stopBeat context.CancelFunc
	beatDone chan struct{}
	// lost is cancelled when the node stops answering; every call to the
	// engine is bound to it.
	lost    context.Context
	setLost context.CancelCauseFunc

	mu     sync.Mutex
	closed bool

	closeOnce sync.Once
	closeRep  *wire.CleanupReport
	closeErr  error
}

// Control connects to the engine of sess for the node named node, whose
// certificate must have been issued by manager's CA for that node, and
// starts the heartbeat. On error the session is shut down (and removed,
// when set, told that it was).
func Control(ctx context.Context, node string, sess Session, ca *pki.CA, manager *pki.Leaf, idle time.Duration, notice func(string), removed func() error) (*Remote, error) {
	if idle <= 0 {
		idle = 60 * time.Second
	}
	r := &Remote{name: node, sess: sess, idle: idle}
	r.lost, r.setLost = context.WithCancelCause(context.Background())
	c, err := connect(ctx, sess.Endpoint(), EngineTLS(ca, manager, node), pingTimeout(idle), notice)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), launchCleanupTimeout)
		defer cancel()
		if _, cerr := sess.Shutdown(cctx); cerr != nil {
			err = fmt.Errorf("%w (and %v)", err, cerr)
		} else if removed != nil {
			if jerr := removed(); jerr != nil {
				err = fmt.Errorf("%w (and the journal: %v)", err, jerr)
			}
		}
		return nil, err
	}
	r.client = c
	bctx, cancel := context.WithCancel(context.Background())
	r.stopBeat = cancel
	r.beatDone = make(chan struct{})
	go r.heartbeat(bctx)
	return r, nil
}

// lostShutdownTimeout bounds the clean-up through the launcher's session
// of a node whose engine stopped answering.
const lostShutdownTimeout = 15 * time.Second

// EngineTLS is the manager's client configuration for the engine of node:
// the run's CA only, the manager's certificate, and a server certificate
// issued for that node. An engine of the same run on another node (whose
// certificate the same CA signed) is refused, naming both.
func EngineTLS(ca *pki.CA, manager *pki.Leaf, node string) *tls.Config {
	cfg := pki.ClientTLS(ca.Pool(), manager.Cert, pki.EngineName)
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if got := pki.PeerName(&cs); got != node {
			return fmt.Errorf("the engine presented the certificate of node %q, not of %q", pki.PeerName(&cs), node)
		}
		return nil
	}
	return cfg
}

// connect reaches the engine's TLS port: directly, or, when that is
// blocked (or ep says so), through the launcher's connection.
// pingTimeout bounds each attempt to reach a new engine: well inside its
// idle timeout, so that the engine's watchdog never ends it while the
// manager is still trying the first way.
func pingTimeout(idle time.Duration) time.Duration {
	return min(10*time.Second, idle/3)
}

func connect(ctx context.Context, ep Endpoint, tlsConf *tls.Config, timeout time.Duration, notice func(string)) (*wire.Client, error) {
	var via func(ctx context.Context, _, _ string) (net.Conn, error)
	if ep.Via != nil {
		via = func(ctx context.Context, _, _ string) (net.Conn, error) { return ep.Via(ctx) }
	}
	try := func(dial func(ctx context.Context, _, _ string) (net.Conn, error)) (*wire.Client, error) {
		c := wire.NewClient(ep.Addr, tlsConf, dial)
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := c.Ping(pctx); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	if ep.ViaOnly {
		if via == nil {
			return nil, errors.New("reach the engine: no way through the node connection")
		}
		c, err := try(via)
		if err != nil {
			return nil, fmt.Errorf("reach the engine through the SSH connection: %w", err)
		}
		return c, nil
	}
	c, err := try(nil)
	if err == nil {
		return c, nil
	}
	if ctx.Err() != nil || via == nil || isCertError(err) {
		return nil, fmt.Errorf("reach the engine at %s: %w", ep.Addr, err)
	}
	c, terr := try(via)
	if terr != nil {
		return nil, fmt.Errorf("reach the engine at %s: directly: %v; through the SSH connection: %w", ep.Addr, err, terr)
	}
	if notice != nil {
		notice(fmt.Sprintf("engine port %s is not reachable from the manager (%v); talking to the engine through the SSH connection", portOf(ep.Addr), err))
	}
	return c, nil
}

// isCertError reports whether err is the engine's certificate refused: no
// other path makes that engine trustworthy.
func isCertError(err error) bool {
	var ce *tls.CertificateVerificationError
	return errors.As(err, &ce) || strings.Contains(err.Error(), "presented the certificate of node")
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

// heartbeat pings the engine four times per idle timeout, which keeps the
// engine's watchdog fed, and declares the node lost after three pings in a
// row went unanswered: every call in flight then fails at once.
func (r *Remote) heartbeat(ctx context.Context) {
	defer close(r.beatDone)
	t := time.NewTicker(r.idle / 4)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, r.idle/4)
			err := r.client.Ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				missed = 0
				continue
			}
			if missed++; missed >= 3 {
				r.setLost(fmt.Errorf("connection to %s lost: the engine has not answered for %s (last error: %v)", r.name, 3*r.idle/4, err))
				return
			}
		}
	}
}

// op binds ctx to the node's liveness and turns a failure after the node
// was lost into the loss's own error.
func (r *Remote) op(ctx context.Context) (context.Context, context.CancelFunc, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, nil, ErrClosed
	}
	if err := context.Cause(r.lost); err != nil {
		return nil, nil, err
	}
	octx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(r.lost, func() { cancel(context.Cause(r.lost)) })
	return octx, func() { stop(); cancel(nil) }, nil
}

func (r *Remote) wrap(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cause := context.Cause(r.lost); cause != nil {
		return cause
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}

// Lost reports why the node was declared lost, or nil.
func (r *Remote) Lost() error { return context.Cause(r.lost) }

// Name implements Agent.
func (r *Remote) Name() string { return r.name }

// Inventory implements Agent.
func (r *Remote) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	octx, done, err := r.op(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	inv, err := r.client.Inventory(octx)
	if err != nil {
		return nil, r.wrap(octx, err)
	}
	return inv, nil
}

// Probe implements Agent.
func (r *Remote) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	octx, done, err := r.op(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	p, err := r.client.Probe(octx, comps)
	if err != nil {
		return nil, r.wrap(octx, err)
	}
	return p, nil
}

// Install implements Agent.
func (r *Remote) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	octx, done, err := r.op(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := r.client.Install(octx, req, emit)
	if err != nil {
		return nil, r.wrap(octx, err)
	}
	if len(res) != len(req.Items) {
		return nil, fmt.Errorf("engine: %d results for %d components", len(res), len(req.Items))
	}
	for i := range res {
		if res[i].ComponentID != req.Items[i].Component.ID {
			return nil, fmt.Errorf("engine: result %d is for %q, not %q", i, res[i].ComponentID, req.Items[i].Component.ID)
		}
	}
	return res, nil
}

// Cancel implements Agent.
func (r *Remote) Cancel(ctx context.Context) error {
	octx, done, err := r.op(ctx)
	if err != nil {
		return err
	}
	defer done()
	return r.wrap(octx, r.client.Cancel(octx))
}

// Close implements Agent: it shuts the session down (see Session.Shutdown)
// unless the node was lost, in which case it says what may be left.
func (r *Remote) Close(ctx context.Context) (*wire.CleanupReport, error) {
	r.closeOnce.Do(func() { r.closeRep, r.closeErr = r.close(ctx) })
	return r.closeRep, r.closeErr
}

func (r *Remote) close(ctx context.Context) (*wire.CleanupReport, error) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stopBeat()
	<-r.beatDone
	r.client.Close()
	if lost := r.Lost(); lost != nil {
		// The engine's port went silent; the session that started it may
		// still work (a firewall that began to drop the port, say): a
		// shutdown through it is tried, bounded.
		sctx, cancel := context.WithTimeout(ctx, lostShutdownTimeout)
		rep, err := r.sess.Shutdown(sctx)
		cancel()
		if err == nil {
			return rep, nil
		}
		// Nothing can be done on the node now. The engine removes itself
		// once it has not heard from the manager for its idle timeout.
		r.sess.Abandon()
		if rep == nil {
			rep = &wire.CleanupReport{Node: r.name}
		}
		why := strings.TrimPrefix(err.Error(), "clean-up on "+r.name+": ")
		return rep, fmt.Errorf("clean-up on %s not confirmed: the node is unreachable (%s); its engine removes itself after %s without the manager, and `fleetup cleanup --target %s` removes anything left once the node is reachable", r.name, why, r.idle, r.name)
	}
	return r.sess.Shutdown(ctx)
}

// Describe is a one-line account of a clean-up report.
func Describe(rep *wire.CleanupReport) string {
	var parts []string
	if len(rep.Processes) > 0 {
		parts = append(parts, "processes "+strings.Join(rep.Processes, ", "))
	}
	if len(rep.Firewall) > 0 {
		parts = append(parts, "firewall rules "+strings.Join(rep.Firewall, ", "))
	}
	if len(rep.Files) > 0 {
		parts = append(parts, "files "+strings.Join(rep.Files, ", "))
	}
	if len(rep.Sessions) > 0 {
		parts = append(parts, "sessions "+strings.Join(rep.Sessions, ", "))
	}
	if len(rep.Errors) > 0 {
		parts = append(parts, "errors "+strings.Join(rep.Errors, "; "))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

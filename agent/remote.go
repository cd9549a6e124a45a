package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fleetup/fleetup/wire"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport"
)

// RemoteOptions configure a Remote agent.
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
	// EnginePort (DefaultPort when 0) and whether the user chose it.
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
	// the engine's pid and port once it runs. An error (the journal cannot
	// be written) ends the node: what was placed is removed again.
	Placed func(dir string, pid, port int) error
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
}

// Remote is a node reached over a transport, running the engine.
type Remote struct {
	name   string
	conn   transport.Conn
	opts   RemoteOptions
	proc   transport.Process
	client *wire.Client
	dir    string
	ready  *wire.Ready

	lines    chan []byte  // the engine's stdout lines after Ready
	tunnel   bool         // traffic goes through the SSH connection
	forward  net.Listener // the node-side listener forwarding to the depot
	stderrMu sync.Mutex
	stderr   bytes.Buffer
	stopBeat context.CancelFunc
	beatDone chan struct{}
	// lost is cancelled when the node stops answering; every call to the
	// engine is bound to it.
	lost      context.Context
	setLost   context.CancelCauseFunc
	closeOnce sync.Once
	closeRep  *wire.CleanupReport
	closeErr  error
}

// Scouting errors the orchestrator and the CLI tell apart.
var (
	ErrNoExecDir    = errors.New("no directory on the node where a program may be run")
	ErrSudoPassword = errors.New("sudo on the node needs a password")
	ErrSudoRejected = errors.New("sudo on the node rejected the password")
	ErrNoSudo       = errors.New("the user may not use sudo on the node")
)

// scoutScript finds the node's architecture and makes the run's private
// directory (mode 0700, by mktemp) in the first candidate where programs
// may be executed; it says why it skipped the others, and names the
// directory it made (in $found).
const scoutScript = `set -u
echo "arch=$(uname -m)"
found=
for d in "${TMPDIR:-/tmp}" /tmp /var/tmp /dev/shm "$HOME"; do
  [ -d "$d" ] || { echo "skip=$d: no such directory"; continue; }
  dir=$(mktemp -d "$d/%s.XXXXXX" 2>/dev/null) || { echo "skip=$d: cannot create a directory there"; continue; }
  printf '#!/bin/sh\nexit 0\n' > "$dir/probe" && chmod 700 "$dir/probe" || { rm -rf "$dir"; echo "skip=$d: cannot write"; continue; }
  if "$dir/probe" 2>/dev/null; then rm -f "$dir/probe"; found=$dir; break; fi
  rm -rf "$dir"; echo "skip=$d: mounted noexec"
done
[ -n "$found" ] || exit 0
echo "dir=$found"
`

// startTail follows scoutScript in the session that becomes the engine's:
// it waits until the manager has placed the engine in $found (over SFTP)
// and says "start", then runs the engine command; anything else, or the
// session closing, removes the directory.
const startTail = `IFS= read -r go || go=
[ "$go" = start ] || { rm -rf "$found"; exit 0; }
cd / && `

// NewRemote scouts the node behind conn, places and starts the engine, and
// connects to it. On error everything it placed is removed again and conn
// is closed.
func NewRemote(ctx context.Context, name string, conn transport.Conn, opts RemoteOptions) (_ *Remote, err error) {
	r := &Remote{name: name, conn: conn, opts: opts, lines: make(chan []byte, 16)}
	r.lost, r.setLost = context.WithCancelCause(context.Background())
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			_, _ = r.Close(cctx)
		}
	}()
	if err := r.start(ctx); err != nil {
		return r, err
	}
	if err := r.connect(ctx); err != nil {
		return r, err
	}
	bctx, cancel := context.WithCancel(context.Background())
	r.stopBeat = cancel
	r.beatDone = make(chan struct{})
	go r.heartbeat(bctx)
	return r, nil
}

func (r *Remote) notice(msg string) {
	if r.opts.Notice != nil {
		r.opts.Notice(msg)
	}
}

// scout runs scoutScript on its own and places the engine (agent.Sweep
// does so; a Remote scouts in the engine's own session, see launch).
func (r *Remote) scout(ctx context.Context) error {
	var out bytes.Buffer
	if err := r.conn.Run(ctx, r.scoutScript(), nil, &out, nil); err != nil {
		return fmt.Errorf("scout: %w", err)
	}
	return r.place(ctx, strings.Split(out.String(), "\n"))
}

func (r *Remote) scoutScript() string {
	return fmt.Sprintf(scoutScript, wire.DirPrefix+r.opts.RunID)
}

// place reads the scout's report (its lines up to and including dir=) and
// copies the right engine build into the directory it made.
func (r *Remote) place(ctx context.Context, lines []string) error {
	var arch string
	var skips []string
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "arch":
			arch = v
		case "dir":
			r.dir = v
		case "skip":
			skips = append(skips, v)
		}
	}
	if r.dir == "" {
		return fmt.Errorf("%w (%s)", ErrNoExecDir, strings.Join(skips, "; "))
	}
	if r.opts.Placed != nil {
		if err := r.opts.Placed(r.dir, 0, 0); err != nil {
			return fmt.Errorf("journal the engine directory %s: %w", r.dir, err)
		}
	}
	goarch, ok := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[arch]
	if !ok {
		return fmt.Errorf("scout: node architecture %q has no engine build", arch)
	}
	bin, err := r.opts.Engine(goarch)
	if err != nil {
		return err
	}
	f, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("engine binary: %w", err)
	}
	defer f.Close()
	if err := r.conn.WriteFile(ctx, r.dir+"/"+wire.BinaryName, 0o700, f); err != nil {
		return fmt.Errorf("copy engine to %s: %w", r.dir, err)
	}
	return nil
}

// engineCommand is the shell command that runs the engine at bin (a
// shell word) with args: directly as root, else through sudo.
func (r *Remote) engineCommand(bin, args string) string {
	if r.conn.User() == "root" {
		return "exec " + bin + " " + args
	}
	if r.opts.Password != nil {
		return "exec sudo -S -p " + transport.ShellQuote(wire.SudoPrompt) + " -- " + bin + " " + args
	}
	return "exec sudo -n -- " + bin + " " + args
}

// launch starts the engine with args (as root: directly, or through sudo,
// answering its prompt), and waits for the engine's Hello. When the engine
// is placed already (r.dir is set) the session just runs it; else the
// session first scouts the node (scoutScript), the engine is copied into
// the directory it made, and the same session then runs it: one session
// for scouting and engine alike.
func (r *Remote) launch(ctx context.Context, args string) error {
	scouting := r.dir == ""
	cmd := "cd / && " + r.engineCommand(transport.ShellQuote(r.dir+"/"+wire.BinaryName), args)
	if scouting {
		cmd = r.scoutScript() + startTail + r.engineCommand(`"$found"/`+wire.BinaryName, args)
	}
	p, err := r.conn.Start(context.WithoutCancel(ctx), cmd)
	if err != nil {
		if scouting {
			return fmt.Errorf("scout: %w", err)
		}
		return fmt.Errorf("start engine: %w", err)
	}
	r.proc = p
	prompts := make(chan struct{}, 4)
	go r.readStderr(prompts)
	stdout := bufio.NewReaderSize(p.Stdout(), 64<<10)
	if scouting {
		if err := r.scoutAndPlace(ctx, stdout); err != nil {
			// Closing stdin makes the session remove the directory; Close
			// checks it is gone.
			_ = p.Stdin().Close()
			_ = p.Close()
			r.proc = nil
			return err
		}
	}
	hello := make(chan error, 1)
	go r.readStdout(stdout, hello)

	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	asked := 0
	for {
		select {
		case err := <-hello:
			if err != nil {
				return r.startError(err)
			}
			return nil
		case <-prompts:
			asked++
			if asked > 1 {
				return ErrSudoRejected
			}
			pw, err := r.opts.Password()
			if err != nil {
				return fmt.Errorf("sudo password: %w", err)
			}
			_, werr := p.Stdin().Write(append(pw, '\n'))
			for i := range pw {
				pw[i] = 0
			}
			if werr != nil {
				return fmt.Errorf("answer sudo: %w", werr)
			}
		case <-timer.C:
			return r.startError(errors.New("the engine did not start within 60s"))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// scoutAndPlace reads the scouting part of the engine's session from
// stdout, places the engine and tells the session to start it.
func (r *Remote) scoutAndPlace(ctx context.Context, stdout *bufio.Reader) error {
	// Reading blocks on the session; ending ctx closes it.
	stop := context.AfterFunc(ctx, func() { _ = r.proc.Close() })
	defer stop()
	var lines []string
	for {
		l, err := stdout.ReadString('\n')
		l = strings.TrimSuffix(l, "\n")
		lines = append(lines, l)
		if strings.HasPrefix(l, "dir=") {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !strings.HasPrefix(lines[0], "arch=") {
				return r.startError(fmt.Errorf("scout: the session ended: %w", err))
			}
			return r.place(ctx, lines) // no directory: ErrNoExecDir, with the reasons
		}
	}
	if err := r.place(ctx, lines); err != nil {
		return err
	}
	if _, err := io.WriteString(r.proc.Stdin(), "start\n"); err != nil {
		return r.startError(fmt.Errorf("start engine: %w", err))
	}
	return nil
}

func (r *Remote) start(ctx context.Context) error {
	// Unless the tunnel is chosen already, the engine first tries the
	// manager's HTTPS port from the node (serve --dial), in the same
	// session: no second session, no second engine process.
	direct := net.JoinHostPort(hostOf(r.conn.LocalAddr()), strconv.Itoa(r.opts.DepotPort))
	r.tunnel = r.opts.Tunnel
	check := !r.tunnel && r.conn.LocalAddr() != nil
	args := "serve"
	if check {
		args += " --dial " + transport.ShellQuote(direct)
	}
	if err := r.launch(ctx, args); err != nil {
		return err
	}
	p := r.proc
	depotURL, err := r.returnPath(ctx, direct, check)
	if err != nil {
		return err
	}
	// The engine's certificate names the node (the depot knows who fetches
	// by it) and carries the engine role, which the manager verifies.
	leaf, err := r.opts.CA.Issue(r.name, []string{hostOf(r.conn.RemoteAddr())})
	if err != nil {
		return err
	}
	cfg := wire.Config{
		RunID:        r.opts.RunID,
		Node:         r.name,
		Port:         r.opts.EnginePort,
		PortExplicit: r.opts.EnginePortExplicit,
		CertPEM:      leaf.CertPEM,
		KeyPEM:       leaf.KeyPEM,
		CAPEM:        r.opts.CA.CertPEM(),
		ManagerAddr:  hostOf(r.conn.LocalAddr()),
		OpenFirewall: !r.tunnel,
		DepotURL:     depotURL,
		IdleTimeout:  wire.Duration(r.idle()),
		FwupdPlugins: r.opts.FwupdPlugins,
		SweepRuns:    r.opts.SweepRuns,
	}
	if r.tunnel {
		cfg.Listen = "127.0.0.1"
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if _, err := p.Stdin().Write(append(b, '\n')); err != nil {
		return r.startError(fmt.Errorf("send config: %w", err))
	}
	select {
	case l, ok := <-r.lines:
		if !ok {
			return r.startError(errors.New("the engine exited before it was ready"))
		}
		var sl wire.StartLine
		if err := json.Unmarshal(l, &sl); err != nil || sl.Ready == nil {
			return r.startError(fmt.Errorf("unexpected engine answer %q", l))
		}
		if sl.Ready.Error != "" {
			return fmt.Errorf("engine: %s", sl.Ready.Error)
		}
		r.ready = sl.Ready
		if sl.Swept != nil {
			r.notice("removed leftovers of an earlier run: " + describe(sl.Swept))
		}
	case <-time.After(3 * time.Minute):
		return r.startError(errors.New("the engine did not answer its configuration within 3m"))
	}
	if r.opts.Placed != nil {
		if err := r.opts.Placed(r.dir, r.ready.PID, r.ready.Port); err != nil {
			return fmt.Errorf("journal the engine: %w", err)
		}
	}
	if r.ready.PortMoved != "" {
		r.notice(r.ready.PortMoved)
	}
	for _, fw := range r.ready.Firewall {
		r.notice("opened the node's firewall: " + fw)
	}
	return nil
}

// returnPath decides how the engine reaches the manager's web server and
// returns the URL it is to use. Before anything is transferred the node
// itself has tried the manager's HTTPS port at direct (when checked, the
// engine's first line says how that went); when it cannot reach it (or
// Tunnel asks for it), the node's traffic goes through the SSH connection:
// a port on the node's loopback forwarded to the manager's web server, and
// the manager's calls to the engine through the same connection.
func (r *Remote) returnPath(ctx context.Context, direct string, checked bool) (string, error) {
	if checked {
		status, err := r.dialResult(ctx)
		if err != nil {
			return "", err
		}
		if status != "open" {
			r.tunnel = true
			r.notice(fmt.Sprintf("the node cannot reach the manager at %s (%s); its downloads, status posts and the manager's calls to the engine go through the SSH connection", direct, status))
		}
	} else if r.tunnel {
		r.notice("--tunnel: the node's downloads, status posts and the manager's calls to the engine go through the SSH connection")
	}
	if !r.tunnel {
		return "https://" + direct, nil
	}
	ln, err := r.conn.ListenNode(ctx, "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("forward a port on the node to the manager: %w", err)
	}
	r.forward = ln
	local := r.opts.DepotLocal
	if local == "" {
		local = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.opts.DepotPort))
	}
	go forwardTo(ln, local)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil || port == "0" {
		return "", fmt.Errorf("forward a port on the node: the node did not say which port it bound (%v)", ln.Addr())
	}
	return "https://" + net.JoinHostPort("127.0.0.1", port), nil
}

// dialResult reads the engine's report of its attempt to reach the
// manager (serve --dial): "open", or the status and why.
func (r *Remote) dialResult(ctx context.Context) (string, error) {
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case l, ok := <-r.lines:
		if !ok {
			return "", r.startError(errors.New("the engine exited before it was ready"))
		}
		var sl wire.StartLine
		if err := json.Unmarshal(l, &sl); err != nil || sl.Dial == nil {
			return "", r.startError(fmt.Errorf("unexpected engine answer %q", l))
		}
		status := sl.Dial.Status
		if sl.Dial.Error != "" {
			status += ": " + sl.Dial.Error
		}
		if status == "" {
			status = "no answer"
		}
		return status, nil
	case <-timer.C:
		return "", r.startError(errors.New("the engine did not report its dial within 1m"))
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// forwardTo copies every connection accepted on ln to a new connection to
// addr, until ln is closed.
func forwardTo(ln net.Listener, addr string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			defer d.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(d, c); closeWrite(d); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, d); closeWrite(c); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (r *Remote) idle() time.Duration {
	if r.opts.IdleTimeout > 0 {
		return r.opts.IdleTimeout
	}
	return 60 * time.Second
}

// startError adds what the engine or sudo said on stderr.
func (r *Remote) startError(err error) error {
	r.stderrMu.Lock()
	msg := strings.TrimSpace(r.stderr.String())
	r.stderrMu.Unlock()
	if strings.Contains(msg, "a password is required") {
		return fmt.Errorf("%w: give one with --password-file or FLEETUP_PASSWORD, or allow NOPASSWD", ErrSudoPassword)
	}
	if strings.Contains(msg, "incorrect password") || strings.Contains(msg, "Sorry, try again") {
		return ErrSudoRejected
	}
	// Our prompt marker is no part of what the node said.
	msg = strings.TrimSpace(strings.ReplaceAll(msg, wire.SudoPrompt, ""))
	if strings.Contains(msg, "not in the sudoers file") || strings.Contains(msg, "is not allowed to execute") {
		return fmt.Errorf("%w (%s): connect as root or as a user with sudo rights", ErrNoSudo, msg)
	}
	if msg != "" {
		if len(msg) > 1000 {
			msg = msg[len(msg)-1000:]
		}
		return fmt.Errorf("%w; the node said: %s", err, msg)
	}
	return err
}

func (r *Remote) readStdout(stdout io.Reader, hello chan<- error) {
	defer close(r.lines)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	gotHello := false
	for sc.Scan() {
		l := sc.Bytes()
		if !gotHello {
			if string(l) == wire.Hello {
				gotHello = true
				hello <- nil
			}
			continue
		}
		r.lines <- append([]byte(nil), l...)
	}
	if !gotHello {
		hello <- errors.New("the engine exited before it started")
	}
}

func (r *Remote) readStderr(prompts chan<- struct{}) {
	buf := make([]byte, 4096)
	var pending []byte
	for {
		n, err := r.proc.Stderr().Read(buf)
		if n > 0 {
			r.stderrMu.Lock()
			if r.stderr.Len() < 64<<10 {
				r.stderr.Write(buf[:n])
			}
			r.stderrMu.Unlock()
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.Index(pending, []byte(wire.SudoPrompt))
				if i < 0 {
					break
				}
				pending = pending[i+len(wire.SudoPrompt):]
				select {
				case prompts <- struct{}{}:
				default:
				}
			}
			if len(pending) > len(wire.SudoPrompt) {
				pending = pending[len(pending)-len(wire.SudoPrompt):]
			}
		}
		if err != nil {
			return
		}
	}
}

// connect reaches the engine's TLS port: directly at the node's address,
// or, when that is blocked, through the transport's own connection.
func (r *Remote) connect(ctx context.Context) error {
	tlsConf := pki.ClientTLS(r.opts.CA.Pool(), r.opts.Manager.Cert, pki.EngineName)
	port := strconv.Itoa(r.ready.Port)
	direct := net.JoinHostPort(hostOf(r.conn.RemoteAddr()), port)
	// Through the SSH connection, to the node's loopback.
	tunnel := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return r.conn.DialNode(ctx, net.JoinHostPort("127.0.0.1", port))
	}
	if r.tunnel {
		c := wire.NewClient(direct, tlsConf, tunnel)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := c.Ping(pctx); err != nil {
			c.Close()
			return fmt.Errorf("reach the engine through the SSH connection: %w", err)
		}
		r.client = c
		return nil
	}
	c := wire.NewClient(direct, tlsConf, nil)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.Ping(pctx)
	cancel()
	if err == nil {
		r.client = c
		return nil
	}
	c.Close()
	c = wire.NewClient(direct, tlsConf, tunnel)
	pctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	terr := c.Ping(pctx)
	cancel()
	if terr != nil {
		c.Close()
		return fmt.Errorf("reach the engine on port %s: directly: %v; through the SSH connection: %w", port, err, terr)
	}
	r.notice(fmt.Sprintf("engine port %s is not reachable from the manager (%v); talking to the engine through the SSH connection", port, err))
	r.client = c
	return nil
}

// heartbeat pings the engine four times per idle timeout, which keeps the
// engine's watchdog fed, and declares the node lost after three pings in a
// row went unanswered: every call in flight then fails at once.
func (r *Remote) heartbeat(ctx context.Context) {
	defer close(r.beatDone)
	t := time.NewTicker(r.idle() / 4)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, r.idle()/4)
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
				r.setLost(fmt.Errorf("connection to %s lost: the engine has not answered for %s (last error: %v)", r.name, 3*r.idle()/4, err))
				return
			}
		}
	}
}

// op binds ctx to the node's liveness and turns a failure after the node
// was lost into the loss's own error.
func (r *Remote) op(ctx context.Context) (context.Context, context.CancelFunc) {
	octx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(r.lost, func() { cancel(context.Cause(r.lost)) })
	return octx, func() { stop(); cancel(nil) }
}

func (r *Remote) wrap(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cause := context.Cause(r.lost); cause != nil {
		return cause
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("%w (%v)", err, cause)
	}
	return err
}

// Lost reports why the node was declared lost, or nil.
func (r *Remote) Lost() error { return context.Cause(r.lost) }

// Name implements Agent.
func (r *Remote) Name() string { return r.name }

// Inventory implements Agent.
func (r *Remote) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	octx, done := r.op(ctx)
	defer done()
	inv, err := r.client.Inventory(octx)
	return inv, r.wrap(octx, err)
}

// Probe implements Agent.
func (r *Remote) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	octx, done := r.op(ctx)
	defer done()
	p, err := r.client.Probe(octx, comps)
	return p, r.wrap(octx, err)
}

// Install implements Agent.
func (r *Remote) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	octx, done := r.op(ctx)
	defer done()
	res, err := r.client.Install(octx, req, emit)
	return res, r.wrap(octx, err)
}

// Cancel implements Agent.
func (r *Remote) Cancel(ctx context.Context) error {
	octx, done := r.op(ctx)
	defer done()
	return r.wrap(octx, r.client.Cancel(octx))
}

// Close implements Agent. It closes the engine's stdin, which makes the
// engine finish the component it installs, stop what its installs started,
// remove its firewall rules and its directory, and report; then it checks
// the directory is gone and closes the connection.
func (r *Remote) Close(ctx context.Context) (*wire.CleanupReport, error) {
	r.closeOnce.Do(func() { r.closeRep, r.closeErr = r.close(ctx) })
	return r.closeRep, r.closeErr
}

func (r *Remote) close(ctx context.Context) (*wire.CleanupReport, error) {
	rep := &wire.CleanupReport{Node: r.name}
	var errs []error
	if r.stopBeat != nil {
		r.stopBeat()
		<-r.beatDone
	}
	if r.client != nil {
		r.client.Close()
	}
	if lost := r.Lost(); lost != nil {
		// Nothing can be done on the node now. The engine removes itself
		// once it has not heard from the manager for its idle timeout.
		if r.proc != nil {
			_ = r.proc.Close()
		}
		_ = r.conn.Close()
		return rep, fmt.Errorf("clean-up on %s not confirmed: the node is unreachable; its engine removes itself after %s without the manager, and `fleetup cleanup --target %s` removes anything left once the node is reachable", r.name, r.idle(), r.name)
	}
	if r.proc != nil {
		_ = r.proc.Stdin().Close()
		got := false
	read:
		for {
			select {
			case l, ok := <-r.lines:
				if !ok {
					break read
				}
				var sl wire.StartLine
				if json.Unmarshal(l, &sl) == nil && sl.Cleanup != nil {
					rep.Merge(sl.Cleanup)
					got = true
				}
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("the engine did not report its clean-up: %w", ctx.Err()))
				break read
			}
		}
		_ = r.proc.Close()
		if !got && len(errs) == 0 {
			errs = append(errs, r.startError(errors.New("the engine exited without reporting its clean-up")))
		}
	}
	if r.dir != "" && !r.dirGone(ctx) {
		// The engine removes its directory itself; make sure, and remove
		// what is left (an engine that never started, say).
		var out bytes.Buffer
		q := transport.ShellQuote(r.dir)
		err := r.conn.Run(ctx, "if [ -e "+q+" ]; then rm -rf "+q+" && echo removed; fi", nil, &out, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("check %s: %w", r.dir, err))
		} else if strings.Contains(out.String(), "removed") {
			rep.Files = append(rep.Files, r.dir)
		}
	}
	if r.forward != nil {
		_ = r.forward.Close()
	}
	if err := r.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		errs = append(errs, err)
	}
	for _, e := range rep.Errors {
		errs = append(errs, errors.New(e))
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("clean-up on %s: %w", r.name, errors.Join(errs...))
	}
	return rep, nil
}

// dirGone reports whether the engine directory is known to be gone from the
// node, asked without a command where the transport can (SFTP).
func (r *Remote) dirGone(ctx context.Context) bool {
	pc, ok := r.conn.(transport.PathChecker)
	if !ok {
		return false
	}
	exists, err := pc.Exists(ctx, r.dir)
	return err == nil && !exists
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func describe(rep *wire.CleanupReport) string {
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
	if len(rep.Errors) > 0 {
		parts = append(parts, "errors "+strings.Join(rep.Errors, "; "))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}

// Describe is a one-line account of a clean-up report.
func Describe(rep *wire.CleanupReport) string { return describe(rep) }

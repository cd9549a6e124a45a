package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// POSIX is the launcher for nodes with a POSIX shell behind a transport
// (Linux over SSH; the local transport in tests). In one shell session it
// scouts the node, waits for the engine to be copied over the transport,
// and runs it as root: directly for root, else through sudo (answering its
// prompt with Password) from a root-owned copy.
//
// The engine runs from a directory only root can write to, and only after
// its SHA-256 matched the binary the manager copied (see rootScript): a
// process of the login user cannot swap the engine, or a payload it later
// verifies and installs, between the copy and its use.
type POSIX struct {
	Conn transport.Conn
	// Password, when set, answers sudo's prompt; without it a sudo that
	// asks for a password fails the node with ErrSudoPassword.
	Password func() ([]byte, error)
	// StartTimeout bounds the wait for each step of the start-up (the
	// engine's Hello, its dial report, its Ready); 60s when 0.
	StartTimeout time.Duration
}

// startTail follows scoutScript in the session that becomes the engine's:
// it waits until the manager has placed the engine in $found (over the
// transport) and says "start" and the engine's SHA-256, then runs the
// engine command; anything else, or the session closing, removes the
// directory.
const startTail = `IFS= read -r go || go=
[ "$go" = start ] || { rm -rf "$found"; exit 0; }
IFS= read -r sum || { rm -rf "$found"; exit 0; }
`

// rootScript runs as root (directly, or through sudo) with the login's
// directory, the engine's SHA-256 and the engine's arguments. For a root
// login it checks the engine in place (a directory mktemp made for root).
// Otherwise it copies the engine into a fresh directory of root's own
// (mktemp in a root-owned directory: sticky /tmp, /var/tmp, /dev/shm, or
// /root), checks the copy, removes the login's directory, and runs the
// copy: nothing the login user can write is ever run as root. A checksum
// that differs is said on stderr with the ErrorMarker and exits 97.
const rootScript = `set -u
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
src=$1 sum=$2; shift 2
umask 077
bin=fleetup-engine
if [ "$(id -u)" != 0 ]; then echo "FLEETUP-ERROR not-root: the engine must run as root" >&2; exit 96; fi
command -v sha256sum >/dev/null 2>&1 || { rm -rf -- "$src"; echo "FLEETUP-ERROR no-sha256sum: the node has no sha256sum (coreutils) to check the engine with; it was not run" >&2; exit 95; }
pre=${src##*/}; pre=${pre%.*}
if [ "$(stat -c %u -- "$src")" = 0 ]; then
  d=$src
else
  d= skipped=
  for p in /tmp /var/tmp /dev/shm /root; do
    [ -d "$p" ] && [ ! -L "$p" ] && [ "$(stat -c %u -- "$p")" = 0 ] || continue
    t=$(mktemp -d "$p/$pre.XXXXXX" 2>/dev/null) || continue
    printf '#!/bin/sh\nexit 0\n' > "$t/probe" && chmod 700 "$t/probe" && "$t/probe" 2>/dev/null || { rm -rf -- "$t"; continue; }
    rm -f -- "$t/probe"
    [ -f "$src/$bin" ] && [ ! -L "$src/$bin" ] || { rm -rf -- "$t" "$src"; echo "FLEETUP-ERROR copy: the engine in $src is not a plain file" >&2; exit 98; }
    if ! why=$(timeout 120 cp -- "$src/$bin" "$t/$bin" 2>&1); then rm -rf -- "$t"; skipped="$skipped $p: ${why:-cannot copy};"; continue; fi
    d=$t; break
  done
  rm -rf -- "$src"
  [ -n "$d" ] || { echo "FLEETUP-ERROR no-root-dir: no root-owned directory where programs may run and the engine fits (/tmp, /var/tmp, /dev/shm, /root):${skipped:-}" >&2; exit 98; }
fi
got=$(sha256sum < "$d/$bin" 2>/dev/null) || got=
got=${got%% *}
if [ "$got" != "$sum" ]; then rm -rf -- "$d"; echo "FLEETUP-ERROR engine-checksum: sha256 ${got:-unreadable} on the node, $sum copied" >&2; exit 97; fi
cd / && exec "$d/$bin" "$@"
`

// launchCleanupTimeout bounds the clean-up after a launch that failed.
const launchCleanupTimeout = 30 * time.Second

// ErrorMarker starts a line the node-side scripts print on stderr for a
// failure the manager tells apart by its word after the marker.
const ErrorMarker = "FLEETUP-ERROR "

// Launch implements Launcher.
func (l *POSIX) Launch(ctx context.Context, spec Spec) (_ Session, err error) {
	s := &posixSession{conn: l.Conn, spec: spec, password: l.Password, timeout: l.StartTimeout, lines: make(chan []byte, 16)}
	if s.timeout == 0 {
		s.timeout = 60 * time.Second
	}
	defer func() {
		if err != nil {
			// An engine that never got going has little to clean up;
			// a node that stopped answering must not hold the run.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), launchCleanupTimeout)
			defer cancel()
			if _, cerr := s.Shutdown(cctx); cerr != nil {
				err = fmt.Errorf("%w (and %v)", err, cerr)
			} else if jerr := s.spec.removed(); jerr != nil {
				err = fmt.Errorf("%w (and the journal: %v)", err, jerr)
			}
		}
	}()
	if err := s.start(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// posixSession is an engine started by POSIX. The goroutines it starts
// read the session's output into channels and stderr into a locked
// buffer; no field they use is reassigned after they start.
type posixSession struct {
	conn     transport.Conn
	spec     Spec
	password func() ([]byte, error)
	timeout  time.Duration

	proc      transport.Process
	lines     chan []byte // the engine's stdout lines after Hello
	stderr    transport.TailWriter
	loginDir  string // the directory scouting made, as the login user
	engineDir string // the directory the engine runs from (root-owned)
	ready     *wire.Ready
	tunnel    bool
	forward   net.Listener
	// reading is set once a goroutine reads stdout into lines;
	// stderrDone is closed when stderr has ended.
	reading    bool
	stderrDone chan struct{}
	// exited is closed when the session has ended, waitErr then says how.
	exited  chan struct{}
	waitErr error

	promptOnce sync.Once
	promptText string
	// hello is set once the engine said its Hello: it ran.
	hello bool

	shutOnce sync.Once
	shutRep  *wire.CleanupReport
	shutErr  error
}

func (s *posixSession) notice(msg string) { s.spec.notice(msg) }

// prompt is the session's sudo prompt: fleetup's marker and a random
// part made once per session.
func (s *posixSession) prompt() string {
	s.promptOnce.Do(func() { s.promptText = NewSudoPrompt() })
	return s.promptText
}

// NewSudoPrompt is a sudo prompt for one session: fleetup's marker and a
// random part, so that nothing but that session's sudo can ask for the
// password (see WatchPrompts).
func NewSudoPrompt() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return wire.SudoPrompt + hex.EncodeToString(b[:]) + ":"
}

// engineCommand is the shell command that runs rootScript as root
// (directly, or through sudo) for the engine in dir (a shell word) with
// the given SHA-256 and engine arguments.
func (s *posixSession) engineCommand(dir, sum, args string) string {
	run := "/bin/sh -c " + transport.ShellQuote(rootScript) + " fleetup-root " + dir + " " + sum + " " + args
	if s.conn.User() == "root" {
		return "exec " + run
	}
	// sudo always prompts with this session's own marker (random, so a
	// program of the login user cannot ask for the password by printing
	// a known one), so that a password it wants is seen as such (not read
	// from its English messages); without a password to give, the prompt
	// fails the node at once. sudo is run by its absolute path: a PATH
	// that the login's own scripts set cannot put another program there.
	return `if [ -x /usr/bin/sudo ]; then SUDO=/usr/bin/sudo; else SUDO=/bin/sudo; fi
exec "$SUDO" -S -p ` + transport.ShellQuote(s.prompt()) + " -- " + run
}

func (s *posixSession) scoutScript() string {
	return fmt.Sprintf(scoutScript, wire.DirPrefix+s.spec.RunID)
}

// launch starts the engine with args and waits for its Hello. When
// loginDir is set the engine is placed already; else the session first
// scouts the node, the engine is copied into the directory it made, and the
// same session then runs it.
func (s *posixSession) launch(ctx context.Context, args, sum string) error {
	scouting := s.loginDir == ""
	var cmd string
	if scouting {
		// The SHA-256 is known once the engine is copied: the session
		// reads it after "start".
		cmd = scoutTrap + s.scoutScript() + startTail
	} else {
		cmd = "LC_ALL=C; export LC_ALL; PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH; found=" + transport.ShellQuote(s.loginDir) + " sum=" + transport.ShellQuote(sum) + "\n"
	}
	cmd += s.engineCommand(`"$found"`, `"$sum"`, args)
	p, err := s.startSession(ctx, cmd)
	if err != nil {
		if scouting {
			return fmt.Errorf("scout: %w", err)
		}
		return fmt.Errorf("start engine: %w", err)
	}
	s.proc = p
	// One waiter for the session's end: its error is the transport's word
	// on how it ended (sessionEnd).
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = p.Wait()
		close(s.exited)
	}()
	prompts := make(chan struct{}, 4)
	s.stderrDone = make(chan struct{})
	go func() {
		defer close(s.stderrDone)
		WatchPrompts(p.Stderr(), &s.stderr, s.prompt(), prompts)
	}()
	stdout := bufio.NewReaderSize(p.Stdout(), 64<<10)
	if scouting {
		if err := s.scoutAndPlace(ctx, stdout); err != nil {
			return err
		}
	}
	hello := make(chan error, 1)
	s.reading = true
	go readStdout(stdout, hello, s.lines)

	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	asked := 0
	for {
		select {
		case err := <-hello:
			if err != nil {
				return s.startError(fmt.Errorf("%w%s", err, s.sessionEnd()))
			}
			s.hello = true
			return nil
		case <-prompts:
			asked++
			if s.password == nil {
				return fmt.Errorf("%w: give one with --password-file or FLEETUP_PASSWORD, or allow NOPASSWD", ErrSudoPassword)
			}
			if asked > 1 {
				return ErrSudoRejected
			}
			pw, err := s.password()
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
			return s.startError(fmt.Errorf("the engine did not start within %s", s.timeout))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// scoutAndPlace reads the scouting part of the engine's session from
// stdout, places the engine and tells the session to start it.
func (s *posixSession) scoutAndPlace(ctx context.Context, stdout *bufio.Reader) error {
	// Reading blocks on the session; ending ctx closes it.
	p := s.proc
	stop := context.AfterFunc(ctx, func() { _ = p.Close() })
	defer stop()
	var lines []string
	for len(lines) <= scoutMaxLines {
		l, err := readLine(stdout, scoutMaxLine)
		lines = append(lines, l)
		if strings.HasPrefix(l, "dir=") {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if _, perr := parseScout(lines, s.spec.RunID); errors.Is(perr, ErrNoExecDir) {
				return perr
			}
			return s.startError(fmt.Errorf("scout: the session ended before the scout finished (%v)%s", err, s.sessionEnd()))
		}
	}
	rep, err := parseScout(lines, s.spec.RunID)
	if err != nil {
		return err
	}
	s.loginDir = rep.Dir
	if err := s.spec.placed(rep.Dir, 0, 0); err != nil {
		return fmt.Errorf("journal the engine directory %s: %w", rep.Dir, err)
	}
	goarch, err := goarchOf(rep.Arch)
	if err != nil {
		return err
	}
	bin, err := s.spec.Engine(goarch)
	if err != nil {
		return err
	}
	sum, err := placeEngine(ctx, s.conn, rep.Dir, bin)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(p.Stdin(), "start\n"+sum+"\n"); err != nil {
		return s.startError(fmt.Errorf("start engine: %w", err))
	}
	return nil
}

// startSession starts cmd in a session that outlives ctx (the engine's),
// bounded by ctx and the start timeout: a node whose login hangs before
// the command runs (a login script that blocks, or floods stdout that
// nobody reads yet) fails the node instead of holding the run. A session
// that starts after the wait gave up is closed.
func (s *posixSession) startSession(ctx context.Context, cmd string) (transport.Process, error) {
	type started struct {
		p   transport.Process
		err error
	}
	ch := make(chan started) // unbuffered: a late start goes to giveUp
	giveUp := make(chan struct{})
	go func() {
		p, err := s.conn.Start(context.WithoutCancel(ctx), cmd)
		select {
		case ch <- started{p, err}:
		case <-giveUp:
			if p != nil {
				_ = p.Close()
			}
		}
	}()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.p, r.err
	case <-t.C:
		close(giveUp)
		_ = s.conn.Close() // unblocks the session's start
		return nil, fmt.Errorf("the node's login did not start the command within %s (a login script that blocks or floods the output?)", s.timeout)
	case <-ctx.Done():
		close(giveUp)
		_ = s.conn.Close()
		return nil, ctx.Err()
	}
}

// readLine reads one line of at most max bytes (without its newline).
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > max {
			return "", fmt.Errorf("a line of more than %d bytes from the node", max)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return strings.TrimSuffix(string(b), "\n"), err
	}
}

func (s *posixSession) start(ctx context.Context) error {
	// Unless the tunnel is chosen already, the engine first tries the
	// manager's HTTPS port from the node (serve --dial), in the same
	// session: no second session, no second engine process.
	direct := net.JoinHostPort(hostOf(s.conn.LocalAddr()), strconv.Itoa(s.spec.DepotPort))
	s.tunnel = s.spec.Tunnel
	check := !s.tunnel && s.conn.LocalAddr() != nil
	args := "serve"
	if check {
		args += " --dial " + transport.ShellQuote(direct)
	}
	if err := s.launch(ctx, args, ""); err != nil {
		return err
	}
	depotURL, err := s.returnPath(ctx, direct, check)
	if err != nil {
		return err
	}
	// The engine's certificate names the node and its address; the
	// manager accepts it for this node only (see Remote's TLS check).
	leaf, err := s.spec.CA.Issue(s.spec.Node, []string{hostOf(s.conn.RemoteAddr())})
	if err != nil {
		return err
	}
	cfg := s.spec.Config
	cfg.RunID = s.spec.RunID
	cfg.Node = s.spec.Node
	cfg.CertPEM, cfg.KeyPEM, cfg.CAPEM = leaf.CertPEM, leaf.KeyPEM, s.spec.CA.CertPEM()
	cfg.ManagerAddr = hostOf(s.conn.LocalAddr())
	cfg.OpenFirewall = !s.tunnel
	cfg.DepotURL = depotURL
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = wire.Duration(s.spec.idle())
	}
	if s.tunnel {
		cfg.Listen = "127.0.0.1"
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if _, err := s.proc.Stdin().Write(append(b, '\n')); err != nil {
		return s.startError(fmt.Errorf("send config: %w", err))
	}
	// The engine sweeps leftovers and opens its firewall port before it
	// answers: give it longer than the other steps.
	l, err := s.nextLine(ctx, 3*s.timeout, "its configuration")
	if err != nil {
		return err
	}
	ready, swept, err := parseReady(l)
	if err != nil {
		return s.startError(err)
	}
	if ready.Error != "" {
		return fmt.Errorf("engine: %s", ready.Error)
	}
	if ready.Dir != "" {
		if err := runDir(ready.Dir, s.spec.RunID); err != nil {
			return fmt.Errorf("engine: %w", err)
		}
		s.engineDir = ready.Dir
	}
	s.ready = ready
	if swept != nil {
		s.notice("removed leftovers of an earlier run: " + Describe(swept))
	}
	if err := s.spec.placed(s.dir(), ready.PID, ready.Port); err != nil {
		return fmt.Errorf("journal the engine: %w", err)
	}
	if ready.PortMoved != "" {
		s.notice(ready.PortMoved)
	}
	for _, fw := range ready.Firewall {
		s.notice("opened the node's firewall: " + fw)
	}
	return nil
}

// dir is the run's directory on the node: the engine's, else the login's.
func (s *posixSession) dir() string {
	if s.engineDir != "" {
		return s.engineDir
	}
	return s.loginDir
}

// nextLine waits up to d for the engine's next line.
func (s *posixSession) nextLine(ctx context.Context, d time.Duration, what string) ([]byte, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case l, ok := <-s.lines:
		if !ok {
			return nil, s.startError(fmt.Errorf("the engine's session ended before it was ready%s", s.sessionEnd()))
		}
		return l, nil
	case <-timer.C:
		return nil, s.startError(fmt.Errorf("the engine did not answer %s within %s", what, d))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// parseReady reads the engine's answer to its configuration.
func parseReady(l []byte) (*wire.Ready, *wire.CleanupReport, error) {
	var sl wire.StartLine
	if err := json.Unmarshal(l, &sl); err != nil || sl.Ready == nil {
		return nil, nil, fmt.Errorf("unexpected engine answer %q", truncate(l, 200))
	}
	if sl.Ready.Error == "" && (sl.Ready.Port <= 0 || sl.Ready.Port > 65535) {
		return nil, nil, fmt.Errorf("the engine said it listens on port %d", sl.Ready.Port)
	}
	return sl.Ready, sl.Swept, nil
}

// parseDial reads the engine's report of its attempt to reach the manager.
func parseDial(l []byte) (string, error) {
	var sl wire.StartLine
	if err := json.Unmarshal(l, &sl); err != nil || sl.Dial == nil {
		return "", fmt.Errorf("unexpected engine answer %q", truncate(l, 200))
	}
	status := sl.Dial.Status
	if sl.Dial.Error != "" {
		status += ": " + sl.Dial.Error
	}
	if status == "" {
		status = "no answer"
	}
	return string(truncate([]byte(status), 300)), nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return append(b[:n:n], "…"...)
	}
	return b
}

// returnPath decides how the engine reaches the manager's web server and
// returns the URL it is to use. Before anything is transferred the node
// itself has tried the manager's HTTPS port at direct (when checked, the
// engine's first line says how that went); when it cannot reach it (or
// Tunnel asks for it), the node's traffic goes through the transport's
// connection: a port on the node's loopback forwarded to the manager's web
// server, and the manager's calls to the engine through the same
// connection.
func (s *posixSession) returnPath(ctx context.Context, direct string, checked bool) (string, error) {
	if checked {
		l, err := s.nextLine(ctx, s.timeout, "with its dial report")
		if err != nil {
			return "", err
		}
		status, err := parseDial(l)
		if err != nil {
			return "", s.startError(err)
		}
		if status != "open" {
			s.tunnel = true
			s.notice(fmt.Sprintf("the node cannot reach the manager at %s (%s); its downloads, status posts and the manager's calls to the engine go through the SSH connection", direct, status))
		}
	} else if s.tunnel {
		s.notice("--tunnel: the node's downloads, status posts and the manager's calls to the engine go through the SSH connection")
	}
	if !s.tunnel {
		return "https://" + direct, nil
	}
	ln, err := s.conn.ListenNode(ctx, "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("forward a port on the node to the manager: %w", err)
	}
	s.forward = ln
	local := s.spec.DepotLocal
	if local == "" {
		local = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.spec.DepotPort))
	}
	go forwardTo(ln, local)
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil || port == "0" {
		return "", fmt.Errorf("forward a port on the node: the node did not say which port it bound (%v)", ln.Addr())
	}
	return "https://" + net.JoinHostPort("127.0.0.1", port), nil
}

// Endpoint implements Session.
func (s *posixSession) Endpoint() Endpoint {
	port := strconv.Itoa(s.ready.Port)
	return Endpoint{
		Addr: net.JoinHostPort(hostOf(s.conn.RemoteAddr()), port),
		Via: func(ctx context.Context) (net.Conn, error) {
			return s.conn.DialNode(ctx, net.JoinHostPort("127.0.0.1", port))
		},
		ViaOnly: s.tunnel,
	}
}

// Ready implements Session.
func (s *posixSession) Ready() *wire.Ready { return s.ready }

// Abandon implements Session.
func (s *posixSession) Abandon() {
	if s.proc != nil {
		_ = s.proc.Close()
	}
	if s.forward != nil {
		_ = s.forward.Close()
	}
	_ = s.conn.Close()
}

// Shutdown implements Session. It closes the engine's stdin, which makes
// the engine finish the component it installs, stop what its installs
// started, remove its firewall rules and its directory, and report; then
// it checks the run's directories are gone and closes the connection.
func (s *posixSession) Shutdown(ctx context.Context) (*wire.CleanupReport, error) {
	s.shutOnce.Do(func() { s.shutRep, s.shutErr = s.shutdown(ctx) })
	return s.shutRep, s.shutErr
}

func (s *posixSession) shutdown(ctx context.Context) (*wire.CleanupReport, error) {
	rep := &wire.CleanupReport{Node: s.spec.Node}
	var errs []error
	if s.proc != nil {
		_ = s.proc.Stdin().Close()
		got := false
		if s.hello {
		read:
			for {
				select {
				case l, ok := <-s.lines:
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
		}
		_ = s.proc.Close()
		if !got && len(errs) == 0 && s.hello {
			// The engine ran and died (killed, crashed) without cleaning
			// up: a fresh one removes what it left, while the node is
			// still reachable.
			died := s.startError(fmt.Errorf("the engine's session ended without its clean-up report%s", s.sessionEnd()))
			swept, err := s.sweepSelf(ctx)
			rep.Merge(swept)
			// Either way the node failed: its engine died. What is left
			// is said (nothing, when the sweep removed it all).
			if err != nil {
				errs = append(errs, fmt.Errorf("%w; removing what it left failed: %w", died, err))
			} else {
				errs = append(errs, fmt.Errorf("%w; a fresh engine removed what it left (%s)", died, Describe(swept)))
			}
		}
	}
	// The engine removes its directory itself, and rootScript the login's;
	// make sure, and remove what is left (an engine that never started).
	// Once the connection fails, the rest is said, not tried.
	dirs := []string{s.loginDir}
	if s.engineDir != s.loginDir {
		dirs = append(dirs, s.engineDir)
	}
	var unchecked []string
	if ctx.Err() != nil {
		// The engine's report took the budget: the directories get one
		// of their own.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		ctx = dctx
	}
	for _, dir := range dirs {
		if dir == "" || runDir(dir, s.spec.RunID) != nil {
			continue
		}
		if len(unchecked) > 0 {
			unchecked = append(unchecked, dir)
			continue
		}
		if s.dirGone(ctx, dir) {
			continue
		}
		var out bytes.Buffer
		q := transport.ShellQuote(dir)
		// As the login user: a root-owned directory the engine could not
		// remove is an error to report, not something to retry as root.
		err := s.conn.Run(ctx, "if [ -e "+q+" ]; then rm -rf -- "+q+" && echo removed; fi", nil, &out, nil)
		var exit *transport.ExitError
		switch {
		case errors.As(err, &exit):
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		case err != nil:
			errs = append(errs, fmt.Errorf("check %s: %w", dir, err))
			unchecked = append(unchecked, dir)
		case strings.Contains(out.String(), "removed"):
			rep.Files = append(rep.Files, dir)
		}
	}
	if len(unchecked) > 1 {
		errs = append(errs, fmt.Errorf("not checked either: %s", strings.Join(unchecked[1:], ", ")))
	}
	if s.forward != nil {
		_ = s.forward.Close()
	}
	if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
		errs = append(errs, err)
	}
	for _, e := range rep.Errors {
		errs = append(errs, errors.New(e))
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("clean-up on %s: %w", s.spec.Node, errors.Join(errs...))
	}
	return rep, nil
}

// sessionEnd says how the engine's session ended, when it has (the
// transport's word: connection lost, exit status), as ": ..." for an
// error message; "" while it runs or when it ended without a word.
func (s *posixSession) sessionEnd() string {
	if s.exited == nil {
		return ""
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return " (" + s.waitErr.Error() + ")"
		}
	case <-t.C:
	}
	return ""
}

// sweepSelf has a fresh engine remove what this run's engine left on the
// node (its directory, processes and firewall rules).
func (s *posixSession) sweepSelf(ctx context.Context) (*wire.CleanupReport, error) {
	spec := s.spec
	spec.Placed = nil
	if !strings.HasPrefix(spec.RunID, "cleanup-") {
		spec.RunID = "cleanup-" + spec.RunID
	}
	return sweepOn(ctx, s.conn, spec, s.password, s.timeout, []string{s.spec.RunID}, false)
}

// dirGone reports whether dir is known to be gone from the node, asked
// without a command where the transport can (SFTP).
func (s *posixSession) dirGone(ctx context.Context, dir string) bool {
	pc, ok := s.conn.(transport.PathChecker)
	if !ok {
		return false
	}
	exists, err := pc.Exists(ctx, dir)
	return err == nil && !exists
}

// startError adds what the engine, sudo or the node-side scripts said on
// stderr. Failures fleetup's own scripts report carry ErrorMarker; sudo's
// refusals are recognised by their text (sudo has no machine format for
// them; the session runs with LC_ALL=C).
func (s *posixSession) startError(err error) error {
	if s.stderrDone != nil {
		// What the node said last may still be on its way.
		t := time.NewTimer(2 * time.Second)
		select {
		case <-s.stderrDone:
		case <-t.C:
		}
		t.Stop()
	}
	msg := strings.TrimSpace(s.stderr.String())
	if i := strings.Index(msg, ErrorMarker+"engine-checksum"); i >= 0 {
		line, _, _ := strings.Cut(msg[i+len(ErrorMarker):], "\n")
		return fmt.Errorf("%w (%s): it was not run", ErrEngineChanged, strings.TrimPrefix(line, "engine-checksum: "))
	}
	if i := strings.Index(msg, ErrorMarker); i >= 0 {
		line, _, _ := strings.Cut(msg[i+len(ErrorMarker):], "\n")
		return fmt.Errorf("%w: %s", err, line)
	}
	if strings.Contains(msg, "incorrect password") {
		return ErrSudoRejected
	}
	// Our prompt marker is no part of what the node said.
	msg = strings.TrimSpace(strings.ReplaceAll(msg, s.prompt(), ""))
	if strings.Contains(msg, "not in the sudoers file") || strings.Contains(msg, "is not allowed to execute") || strings.Contains(msg, "may not run sudo") {
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

// readStdout passes the engine's stdout lines after its Hello to lines,
// and closes lines when the output ends. Lines before Hello (a login
// banner, say) are dropped; a line longer than 4 MiB ends the output.
func readStdout(stdout io.Reader, hello chan<- error, lines chan<- []byte) {
	defer close(lines)
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
		lines <- append([]byte(nil), l...)
	}
	if !gotHello {
		hello <- errors.New("the engine exited before it started")
	}
}

// WatchPrompts keeps the tail of a session's stderr in buf and signals
// prompts (without blocking) for each appearance of the session's sudo
// prompt in it, until stderr ends: the password is written to sudo only
// then.
func WatchPrompts(stderr io.Reader, buf *transport.TailWriter, prompt string, prompts chan<- struct{}) {
	b := make([]byte, 4096)
	var pending []byte
	for {
		n, err := stderr.Read(b)
		if n > 0 {
			_, _ = buf.Write(b[:n])
			pending = append(pending, b[:n]...)
			for {
				i := bytes.Index(pending, []byte(prompt))
				if i < 0 {
					break
				}
				pending = pending[i+len(prompt):]
				select {
				case prompts <- struct{}{}:
				default:
				}
			}
			if len(pending) > len(prompt) {
				pending = pending[len(pending)-len(prompt):]
			}
		}
		if err != nil {
			return
		}
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

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if v, ok := a.(*net.TCPAddr); ok {
		return v.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

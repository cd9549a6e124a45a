//go:build !windows

package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/wire"
)

// Main is the engine program: `fleetup-engine serve [--dial HOST:PORT]`
// (the handshake on stdin/stdout described at Hello), `fleetup-engine sweep` (remove what
// earlier runs left; prints a CleanupReport as JSON) and `fleetup-engine
// version`. It returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: fleetup-engine serve|sweep|dial|version")
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, Version)
		return 0
	case "serve":
		// serve [--dial HOST:PORT]: with --dial, the engine first tries a
		// TCP connection there (see Dial) and reports it on the line after
		// Hello, before it reads its Config.
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dial := fs.String("dial", "", "try a TCP connection to HOST:PORT first and report it")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		return serve(*dial, stdin, stdout, stderr)
	case "dial":
		return runDial(args[1:], stdout, stderr)
	case "sweep":
		fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
		fs.SetOutput(stderr)
		all := fs.Bool("all", false, "remove live engines too")
		var runs stringList
		fs.Var(&runs, "run", "a run id whose leftovers go even if its engine runs (repeatable)")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		opts := SweepOptions{All: *all, Runs: runs}
		if exe, err := os.Executable(); err == nil {
			opts.Keep = filepath.Dir(exe)
		}
		fmt.Fprintln(stdout, wire.Hello)
		rep := Sweep(context.Background(), opts)
		// The sweeper's own directory goes too: it is root's, which the
		// manager's login may not remove.
		if opts.Keep != "" && RunIDFromDir(opts.Keep) != "" {
			if err := os.RemoveAll(opts.Keep); err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			}
		}
		_ = json.NewEncoder(stdout).Encode(rep)
		return 0
	default:
		fmt.Fprintf(stderr, "fleetup-engine: unknown command %q\n", args[0])
		return 2
	}
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// dialTimeout bounds serve --dial's attempt.
const dialTimeout = 3 * time.Second

func serve(dial string, stdin io.Reader, stdout, stderr io.Writer) int {
	signal.Ignore(syscall.SIGPIPE)
	logger := log.New(stderr, "fleetup-engine: ", log.LstdFlags|log.Lmicroseconds)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	fmt.Fprintln(stdout, wire.Hello)
	if dial != "" {
		res := &wire.DialResult{Addr: dial}
		var err error
		if res.Status, err = wire.Dial(dial, dialTimeout); err != nil {
			res.Error = err.Error()
		}
		_ = json.NewEncoder(stdout).Encode(wire.StartLine{Dial: res})
	}

	br := bufio.NewReaderSize(stdin, 64<<10)
	line, err := br.ReadBytes('\n')
	if err != nil {
		logger.Printf("read config: %v", err)
		selfRemove(logger)
		return 1
	}
	var cfg wire.Config
	if err := json.Unmarshal(line, &cfg); err != nil {
		fail(stdout, logger, fmt.Errorf("config: %w", err))
		return 1
	}
	exe, err := os.Executable()
	if err != nil {
		fail(stdout, logger, err)
		return 1
	}
	dir := filepath.Dir(exe)
	if RunIDFromDir(dir) == "" {
		// Never remove a directory we did not make.
		dir = ""
	}
	e := &engine{cfg: cfg, dir: dir, logger: logger, runner: &proc.Runner{Marker: cfg.RunID, Env: []string{"NO_COLOR=1"}}}
	ready, swept, err := e.start()
	if err != nil {
		rep := e.cleanup(0)
		fail(stdout, logger, err)
		_ = json.NewEncoder(stdout).Encode(wire.StartLine{Cleanup: rep})
		return 1
	}
	_ = json.NewEncoder(stdout).Encode(wire.StartLine{Ready: ready, Swept: swept})

	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, br)
		close(eof)
	}()
	idle := time.Duration(cfg.IdleTimeout)
	if idle == 0 {
		idle = 60 * time.Second
	}
	tick := time.NewTicker(idle / 10)
	defer tick.Stop()
	var reason string
wait:
	for {
		select {
		case <-eof:
			reason = "the manager closed the session"
			break wait
		case s := <-sigs:
			reason = "signal " + s.String()
			break wait
		case <-tick.C:
			if e.handler.Idle() > idle {
				reason = fmt.Sprintf("no word from the manager for %s", idle)
				break wait
			}
		}
	}
	logger.Printf("stopping: %s", reason)
	rep := e.cleanup(2 * time.Minute)
	_ = json.NewEncoder(stdout).Encode(wire.StartLine{Cleanup: rep})
	return 0
}

func fail(stdout io.Writer, logger *log.Logger, err error) {
	logger.Print(err)
	_ = json.NewEncoder(stdout).Encode(wire.StartLine{Ready: &wire.Ready{Error: err.Error(), PID: os.Getpid()}})
}

// selfRemove removes the engine's own directory when it never got going.
func selfRemove(logger *log.Logger) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if dir := filepath.Dir(exe); RunIDFromDir(dir) != "" {
		if err := os.RemoveAll(dir); err != nil {
			logger.Print(err)
		}
	}
}

type engine struct {
	cfg      wire.Config
	dir      string
	logger   *log.Logger
	runner   *proc.Runner
	svc      *Service
	handler  *Handler
	srv      *http.Server
	status   *StatusPoster
	backends []firewall.Backend
	tag      string
}

func (e *engine) start() (*wire.Ready, *wire.CleanupReport, error) {
	cfg := e.cfg
	if !ValidRunID(cfg.RunID) {
		return nil, nil, fmt.Errorf("config: bad run id %q", cfg.RunID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Leftovers of earlier runs first: their engines may hold our port.
	swept := Sweep(ctx, SweepOptions{Keep: e.dir, Runs: cfg.SweepRuns})
	if swept.Empty() {
		swept = nil
	}

	cert, err := tls.X509KeyPair(cfg.CertPEM, cfg.KeyPEM)
	if err != nil {
		return nil, swept, fmt.Errorf("config: engine certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.CAPEM) {
		return nil, swept, errors.New("config: no CA certificate in ca_pem")
	}
	serverTLS, clientTLS := engineTLS(cert, pool, cfg.RunID)

	ln, port, moved, err := listen(cfg)
	if err != nil {
		return nil, swept, err
	}
	ready := &wire.Ready{Port: port, PID: os.Getpid(), Dir: e.dir, PortMoved: moved}
	e.tag = firewall.TagPrefix + cfg.RunID
	if e.dir != "" {
		st := State{RunID: cfg.RunID, PID: os.Getpid(), Port: port, Tag: e.tag, Started: time.Now()}
		b, _ := json.Marshal(st)
		if err := os.WriteFile(filepath.Join(e.dir, StateFile), b, 0o600); err != nil {
			ln.Close()
			return nil, swept, fmt.Errorf("write state: %w", err)
		}
	}
	if cfg.OpenFirewall && cfg.ManagerAddr != "" && cfg.Listen == "" {
		src, err := netip.ParseAddr(cfg.ManagerAddr)
		if err != nil {
			ln.Close()
			return nil, swept, fmt.Errorf("config: manager address %q: %w", cfg.ManagerAddr, err)
		}
		backends, err := firewall.Detect(ctx, e.runner)
		if err != nil {
			ln.Close()
			return nil, swept, fmt.Errorf("detect firewall: %w", err)
		}
		for _, b := range backends {
			e.backends = append(e.backends, b)
			if err := b.Allow(ctx, firewall.Rule{Tag: e.tag, Port: port, Source: src.Unmap()}); err != nil {
				ln.Close()
				return nil, swept, fmt.Errorf("open port %d in %s: %w", port, b.Name(), err)
			}
			ready.Firewall = append(ready.Firewall, fmt.Sprintf("%s: accept tcp from %s to port %d (%s)", b.Name(), src.Unmap(), port, e.tag))
		}
	}

	workDir := filepath.Join(e.dir, "payloads")
	if e.dir == "" {
		workDir, err = os.MkdirTemp("", wire.DirPrefix+cfg.RunID+".")
		if err != nil {
			ln.Close()
			return nil, swept, err
		}
	}
	// The launch runs under umask 077, and the engine's own files have
	// private modes of their own; what the installs write gets the umask
	// of a root login (022), so that a script's /etc/motd or a package's
	// maintainer scripts' files are readable as an admin would make them.
	syscall.Umask(0o022)
	icfg := installer.Config{Runner: e.runner, FwupdPlugins: cfg.FwupdPlugins}
	e.svc = &Service{
		Node:       cfg.Node,
		Runner:     e.runner,
		Installers: installer.ByKind(icfg),
		Inventory:  inventory.Options{FwupdPlugins: cfg.FwupdPlugins},
		Fetcher:    NewDepotFetcher(cfg.DepotURL, clientTLS),
		WorkDir:    workDir,
	}
	e.handler = NewHandler(e.svc)
	if cfg.DepotURL != "" {
		fetcher := e.svc.Fetcher.(*DepotFetcher)
		e.status = NewStatusPoster(cfg.DepotURL, fetcher.Client, e.logger)
		e.handler.OnEvent = e.status.Post
	}
	e.srv = &http.Server{
		Handler:           e.handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = e.srv.Serve(tls.NewListener(ln, serverTLS)) }()
	return ready, swept, nil
}

// cleanup stops installs (waiting up to grace for the component being
// installed), the server, every marked process, removes the firewall rules
// and the engine's directory, and says what it removed.
func (e *engine) cleanup(grace time.Duration) *wire.CleanupReport {
	rep := &wire.CleanupReport{Node: e.cfg.Node}
	if e.svc != nil {
		e.svc.stopInstalls(grace)
	}
	if e.status != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		e.status.Close(ctx)
		cancel()
	}
	if e.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = e.srv.Shutdown(ctx)
		cancel()
		_ = e.srv.Close()
	}
	if e.svc != nil {
		rep.Merge(e.svc.Cleanup(3 * time.Second))
	} else {
		killed, _ := killMarked(e.cfg.RunID, 3*time.Second)
		rep.Processes = append(rep.Processes, killed...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range e.backends {
		removed, err := b.Remove(ctx, e.tag)
		rep.Firewall = append(rep.Firewall, removed...)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", b.Name(), err))
		}
	}
	if e.dir != "" {
		if err := os.RemoveAll(e.dir); err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		} else {
			rep.Files = append(rep.Files, e.dir)
		}
	}
	return rep
}

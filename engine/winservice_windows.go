package engine

import (
	"context"
	"crypto/ecdsa"
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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/wire"
)

// runService is `fleetup-engine service --dir DIR`, the engine as the run's
// temporary Windows service (name ServiceName(run), binary path
// `"DIR\fleetup-engine.exe" service --dir "DIR"`, DIR being
// C:\Windows\Temp\fleetup-<RUNID>). It always runs under the service
// control manager (svc.Run; svc.IsWindowsService is false under Wine), and
// fails at once when not started by it.
//
// Its life: read DIR\config.json (a wire.Config without certificate or
// key); make an ECDSA P-256 key in memory and write its certificate request
// to engine.csr; wait for the manager's engine.crt (polled every 200 ms, 2
// minutes at most); listen on Config.Port (the next free port when it is
// taken and not chosen), on every address of both families, TLS 1.3,
// admitting only client certificates of the run's CA named
// "fleetup-manager"; add the firewall rule "fleetup:<RUNID>" for the
// manager's address when Config.OpenFirewall; write ready.json
// (wire.Ready); then serve the engine API, pulling payloads from the
// depot or taking them from DIR\payloads\<sha256>. Any failure before that
// is written to ready.json as wire.Ready{Error}, followed by the
// clean-up.
//
// It ends on POST /v1/shutdown (the clean-up's wire.CleanupReport is the
// answer), a service stop (the report goes to cleanup.json) or
// Config.IdleTimeout without a word from the manager; each first finishes
// the component being installed, ends every process the installs started
// (the engine's job object), removes its firewall rule and every file of
// DIR but its own exe. After the idle timeout it also deletes its service
// and has DIR removed once it has exited.
func runService(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("service", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the engine's directory (config.json, engine.csr, engine.crt, ready.json)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "usage: fleetup-engine service --dir DIR")
		return 2
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "fleetup-engine: service: %v\n", err)
		return 2
	}
	h := &serviceHandler{dir: abs}
	name := ServiceName(strings.TrimPrefix(filepath.Base(abs), wire.DirPrefix))
	if err := svc.Run(name, h); err != nil {
		fmt.Fprintf(stderr, "fleetup-engine: service %s (run it through the service manager): %v\n", name, err)
		return 1
	}
	return h.exitCode
}

// serviceHandler is the engine's svc.Handler.
type serviceHandler struct {
	dir      string
	exitCode int
}

// Execute implements svc.Handler.
func (h *serviceHandler) Execute(args []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	status <- svc.Status{State: svc.StartPending, WaitHint: 10000}
	// Running at once: the start (waiting for the certificate) takes as
	// long as the manager does, and a stop must be possible meanwhile.
	status <- svc.Status{State: svc.Running, Accepts: accepts}

	e := newWinEngine(h.dir)
	defer e.closeLog()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan error, 1)
	go func() { started <- e.start(ctx) }()

	var tick <-chan time.Time
	var reason string
	idle, failed, starting := false, false, true
loop:
	for {
		select {
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				reason = "the service was stopped"
				break loop
			}
		case err := <-started:
			starting = false
			if err != nil {
				e.logger.Printf("start: %v", err)
				e.writeReady(&wire.Ready{Error: err.Error(), PID: os.Getpid(), Dir: h.dir})
				reason, failed = "the start failed", true
				break loop
			}
			t := time.NewTicker(e.idle / 10)
			defer t.Stop()
			tick = t.C
		case <-e.shutdown:
			reason = "the manager shut the engine down"
			break loop
		case <-tick:
			if e.handler.Idle() > e.idle {
				reason, idle = fmt.Sprintf("no word from the manager for %s", e.idle), true
				break loop
			}
		}
	}
	status <- svc.Status{State: svc.StopPending, WaitHint: 180000}
	e.logger.Printf("stopping: %s", reason)
	cancel()
	if starting {
		<-started
	}
	e.keepReady = failed
	rep, byAPI := e.cleanup(2*time.Minute, true)
	if !byAPI && !idle && !failed {
		// Nobody asked through the API: leave the report for the
		// manager, who removes the directory.
		b, _ := json.Marshal(rep)
		if err := writeFileAtomic(h.dir, WinCleanupFile, b); err != nil {
			e.logger.Printf("write %s: %v", WinCleanupFile, err)
		}
	}
	if idle {
		e.removeSelf()
	}
	if failed {
		h.exitCode = 1
		return true, 1
	}
	return false, 0
}

// winEngine is one run of the Windows engine.
type winEngine struct {
	dir    string
	logger *log.Logger
	logOut *switchWriter
	cfg    wire.Config
	idle   time.Duration
	runner *proc.Runner

	svc      *Service
	handler  *Handler
	srv      *http.Server
	status   *StatusPoster
	netsh    *firewall.Netsh
	rule     string // the firewall rule added, "" for none
	shutdown chan struct{}
	shutOnce sync.Once

	keepReady bool // the clean-up leaves ready.json (a failed start's error) for the manager

	cleanOnce sync.Once
	report    *wire.CleanupReport
	reportAPI bool
}

func newWinEngine(dir string) *winEngine {
	e := &winEngine{dir: dir, logOut: &switchWriter{w: io.Discard}, shutdown: make(chan struct{}), idle: 60 * time.Second}
	if f, err := os.OpenFile(filepath.Join(dir, WinLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		e.logOut.set(f)
	}
	e.logger = log.New(e.logOut, "fleetup-engine: ", log.LstdFlags|log.Lmicroseconds)
	return e
}

func (e *winEngine) start(ctx context.Context) error {
	b, err := os.ReadFile(filepath.Join(e.dir, WinConfigFile))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var cfg wire.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("config %s: %w", WinConfigFile, err)
	}
	if !ValidRunID(cfg.RunID) {
		return fmt.Errorf("config: bad run id %q", cfg.RunID)
	}
	if len(cfg.KeyPEM) > 0 || len(cfg.CertPEM) > 0 {
		// The engine makes its own key; one on the node's disk is a
		// manager's mistake to be seen, not used.
		return fmt.Errorf("config: %s carries a certificate or key: the Windows engine makes its own key and asks for its certificate through %s", WinConfigFile, WinCSRFile)
	}
	if !strings.EqualFold(filepath.Base(e.dir), WinDirName(cfg.RunID)) {
		// Never clean a directory that is not the run's.
		return fmt.Errorf("config: run %s belongs in a directory named %s, not %s", cfg.RunID, WinDirName(cfg.RunID), e.dir)
	}
	e.cfg = cfg
	if cfg.IdleTimeout > 0 {
		e.idle = time.Duration(cfg.IdleTimeout)
	}
	e.runner = &proc.Runner{Marker: cfg.RunID, Env: []string{"NO_COLOR=1"}}
	if _, err := installJob(); err != nil {
		// Installs still run; what they leave is not ended by the job.
		e.logger.Printf("%v", err)
	}

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cfg.CAPEM) {
		return errors.New("config: no CA certificate in ca_pem")
	}
	key, csr, err := newKeyAndCSR(cfg.Node)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(e.dir, WinCSRFile, csr); err != nil {
		return fmt.Errorf("write %s: %w", WinCSRFile, err)
	}
	cert, err := waitCert(ctx, filepath.Join(e.dir, WinCertFile), key, pool, certPoll, certWait)
	if err != nil {
		return err
	}
	return e.serve(cfg, cert, key, pool)
}

func (e *winEngine) serve(cfg wire.Config, cert tls.Certificate, key *ecdsa.PrivateKey, pool *x509.CertPool) error {
	serverTLS, clientTLS := engineTLS(cert, pool, cfg.RunID)
	ln, port, moved, err := listen(cfg)
	if err != nil {
		return err
	}
	ready := &wire.Ready{Port: port, PID: os.Getpid(), Dir: e.dir, PortMoved: moved}
	swept := e.sweepRules(cfg.SweepRuns)
	if cfg.OpenFirewall && cfg.ManagerAddr != "" && cfg.Listen == "" {
		src, err := netip.ParseAddr(cfg.ManagerAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("config: manager address %q: %w", cfg.ManagerAddr, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e.netsh = firewall.NewNetsh(e.runner)
		tag := firewall.TagPrefix + cfg.RunID
		if err := e.netsh.Allow(ctx, firewall.Rule{Tag: tag, Port: port, Source: src.Unmap()}); err != nil {
			ln.Close()
			return fmt.Errorf("open port %d in the Windows firewall: %w", port, err)
		}
		e.rule = tag
		ready.Firewall = append(ready.Firewall, fmt.Sprintf("netsh: allow tcp from %s to port %d (%s)", src.Unmap(), port, tag))
	}

	var next Fetcher
	if cfg.DepotURL != "" {
		next = NewDepotFetcher(cfg.DepotURL, clientTLS)
	}
	e.svc = &Service{
		Node:       cfg.Node,
		Runner:     e.runner,
		Installers: installer.ByKind(installer.Config{Runner: e.runner}),
		Inventory:  inventory.Options{},
		Fetcher:    &PushedFetcher{Dir: filepath.Join(e.dir, WinPushedDir), Next: next},
		WorkDir:    filepath.Join(e.dir, "work"),
	}
	e.handler = NewHandler(e.svc)
	if d, ok := next.(*DepotFetcher); ok {
		e.status = NewStatusPoster(cfg.DepotURL, d.Client, e.logger)
		e.handler.OnEvent = e.status.Post
	}
	e.srv = &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = e.srv.Serve(tls.NewListener(ln, serverTLS)) }()
	// Whether this node reaches the manager's depot, for the manager to
	// push the payloads over SMB when it does not (the Linux engine's
	// serve --dial line).
	var dial *wire.DialResult
	if u, err := url.Parse(cfg.DepotURL); err == nil && u.Host != "" {
		status, derr := wire.Dial(u.Host, 5*time.Second)
		dial = &wire.DialResult{Addr: u.Host, Status: status}
		if derr != nil {
			dial.Error = derr.Error()
		}
	}
	b, _ := json.Marshal(struct {
		*wire.Ready
		Dial  *wire.DialResult    `json:"dial,omitempty"`
		Swept *wire.CleanupReport `json:"swept,omitempty"`
	}{ready, dial, swept})
	if err := writeFileAtomic(e.dir, WinReadyFile, b); err != nil {
		return fmt.Errorf("write %s: %w", WinReadyFile, err)
	}
	e.logger.Printf("listening on port %d", port)
	return nil
}

// serveHTTP is the engine API (Handler) plus POST /v1/shutdown, which
// the Linux engine does not need (its manager closes its stdin): it runs
// the clean-up, answers with its wire.CleanupReport and then ends the
// service.
func (e *winEngine) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/shutdown" {
		e.handler.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	rep, _ := e.cleanup(2*time.Minute, false)
	writeJSON(w, rep)
	_ = http.NewResponseController(w).Flush()
	e.shutOnce.Do(func() { close(e.shutdown) })
}

func (e *winEngine) writeReady(r *wire.Ready) {
	b, _ := json.Marshal(r)
	if err := writeFileAtomic(e.dir, WinReadyFile, b); err != nil {
		e.logger.Printf("write %s: %v", WinReadyFile, err)
	}
}

// cleanup runs once; a second call (the service stop after the API's
// shutdown) gets the first one's report and whether the API asked for
// it. closeServer also stops the API server, which the API's own shutdown
// leaves to the service, after its answer.
func (e *winEngine) cleanup(grace time.Duration, closeServer bool) (*wire.CleanupReport, bool) {
	e.cleanOnce.Do(func() {
		e.reportAPI = !closeServer
		e.report = e.doCleanup(grace, closeServer)
	})
	if closeServer {
		e.closeServer()
	}
	return e.report, e.reportAPI
}

func (e *winEngine) closeServer() {
	if e.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = e.srv.Shutdown(ctx)
	cancel()
	_ = e.srv.Close()
}

func (e *winEngine) doCleanup(grace time.Duration, closeServer bool) *wire.CleanupReport {
	rep := &wire.CleanupReport{Node: e.cfg.Node}
	if e.svc != nil {
		e.svc.stopInstalls(grace)
	}
	if e.status != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		e.status.Close(ctx)
		cancel()
	}
	if closeServer {
		e.closeServer()
	}
	if e.svc != nil {
		rep.Merge(e.svc.Cleanup(3 * time.Second))
	} else {
		killed, err := killMarked("", 3*time.Second)
		rep.Processes = append(rep.Processes, killed...)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	if e.rule != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		removed, err := e.netsh.Remove(ctx, e.rule)
		cancel()
		rep.Firewall = append(rep.Firewall, removed...)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	if e.cfg.RunID == "" {
		// The config was never read: the directory may not be a run's.
		return rep
	}
	e.logger.Printf("removing the files of %s", e.dir)
	e.closeLog()
	keep := []string{filepath.Join(e.dir, WinExeFile)}
	if e.keepReady {
		keep = append(keep, filepath.Join(e.dir, WinReadyFile))
	}
	removed, err := removeTree(e.dir, keep...)
	for _, p := range removed {
		if rel, rerr := filepath.Rel(e.dir, p); rerr == nil && !strings.ContainsRune(rel, filepath.Separator) {
			rep.Files = append(rep.Files, p) // the directory's own entries
		}
	}
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	return rep
}

// removeSelf deletes the engine's service (it goes once the engine has
// stopped) and has the directory removed after the engine exits: what
// the manager would have done, had it not been lost.
func (e *winEngine) removeSelf() {
	if e.cfg.RunID == "" {
		return
	}
	name := ServiceName(e.cfg.RunID)
	if err := deleteService(name); err != nil {
		e.logger.Printf("delete service %s: %v", name, err)
	}
	if _, err := removeDirLater(e.dir); err != nil {
		e.logger.Printf("%v", err)
	}
}

// deleteService marks the service name for deletion.
func deleteService(name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Delete()
}

func (e *winEngine) closeLog() {
	if c, ok := e.logOut.set(io.Discard).(io.Closer); ok {
		c.Close()
	}
}

// switchWriter is a writer whose destination can be changed (the log
// file, until it is closed for the directory's removal).
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// set makes w the destination and returns the previous one.
func (s *switchWriter) set(w io.Writer) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.w
	s.w = w
	return old
}

// sweepRules removes the Windows firewall rules of earlier runs whose
// manager's journal says they are over (Config.SweepRuns): an engine that
// was killed could not remove its own, and the manager cannot reach the
// firewall over SMB. Their services and directories the manager removes
// itself. Nil when there was nothing to remove.
func (e *winEngine) sweepRules(runs []string) *wire.CleanupReport {
	rep := &wire.CleanupReport{}
	nsh := firewall.NewNetsh(e.runner)
	for _, run := range runs {
		if !ValidRunID(run) {
			rep.Errors = append(rep.Errors, fmt.Sprintf("sweep: run id %q refused", run))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		removed, err := nsh.Remove(ctx, firewall.TagPrefix+run)
		cancel()
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
		rep.Firewall = append(rep.Firewall, removed...)
	}
	if rep.Empty() {
		return nil
	}
	return rep
}

package windows

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport/smb"
	"github.com/fleetup/fleetup/wire"
)

// Launcher starts the engine on one Windows node. It implements
// agent.Launcher.
type Launcher struct {
	// Files is the node's ADMIN$ share.
	Files Files
	// Services connects to the node's service manager; it is called once,
	// when the service is to be created (or, at the clean-up, found).
	Services func(ctx context.Context) (Services, error)
	// Host is the node's address (an IP literal) the manager reaches the
	// engine at; the engine's certificate names it.
	Host string
	// ManagerAddr is the manager's address as the node sees it (the SMB
	// connection's local address): the engine's firewall rule admits it
	// only, and the engine pulls from the depot there.
	ManagerAddr string
	// Manager is the manager's TLS identity, for the engine API's
	// shutdown at the end.
	Manager *pki.Leaf
	// Release closes the SMB session once the session is over (or the
	// launch failed). Nil: nothing to release.
	Release func() error
	// StartTimeout bounds the wait for ready.json after the certificate
	// (60s when 0); CSRTimeout the wait for engine.csr (2 minutes when 0).
	StartTimeout time.Duration
	CSRTimeout   time.Duration
	// Poll is how often the launcher looks for the engine's files (200ms
	// when 0).
	Poll time.Duration
	// PushPayloads sends every payload over SMB before an install, whatever
	// the engine says of its way to the depot.
	PushPayloads bool
}

// Timeouts of the clean-up.
const (
	launchCleanupTimeout = 60 * time.Second
	stopWait             = 30 * time.Second
	removeWait           = 10 * time.Second
	maxReadySize         = 64 << 10
	maxCleanupSize       = 1 << 20
)

// Ready is what ready.json holds: the engine's wire.Ready and, when the
// engine tried to reach the depot before it listened, how that went (the
// same report as the Linux engine's serve --dial line).
type Ready struct {
	wire.Ready
	Dial *wire.DialResult `json:"dial,omitempty"`
	// Swept is what the engine removed of earlier runs (their firewall
	// rules, Config.SweepRuns) as it started.
	Swept *wire.CleanupReport `json:"swept,omitempty"`
}

// Launch implements agent.Launcher. On any failure it takes back what it
// placed (service stopped and deleted, directory removed) and, when that
// worked, calls spec.Removed; the error says what could not be taken back.
func (l *Launcher) Launch(ctx context.Context, spec agent.Spec) (_ agent.Session, err error) {
	s := &Session{l: l, spec: spec, dir: ShareDir(spec.RunID), nodeDir: NodeDir(spec.RunID), service: ServiceName(spec.RunID)}
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), launchCleanupTimeout)
		defer cancel()
		if _, cerr := s.Shutdown(cctx); cerr != nil {
			err = fmt.Errorf("%w (and %w)", err, cerr)
		} else if spec.Removed != nil {
			if jerr := spec.Removed(); jerr != nil {
				err = fmt.Errorf("%w (and the journal: %v)", err, jerr)
			}
		}
	}()
	if err := s.start(ctx); err != nil {
		return nil, fmt.Errorf("start the engine on %s: %w", spec.Node, err)
	}
	return s, nil
}

func (l *Launcher) poll() time.Duration {
	if l.Poll > 0 {
		return l.Poll
	}
	return 200 * time.Millisecond
}

func (l *Launcher) startTimeout() time.Duration {
	if l.StartTimeout > 0 {
		return l.StartTimeout
	}
	return 60 * time.Second
}

func (l *Launcher) csrTimeout() time.Duration {
	if l.CSRTimeout > 0 {
		return l.CSRTimeout
	}
	return 2 * time.Minute
}

// Session is an engine started by Launcher. It implements agent.Session.
type Session struct {
	l       *Launcher
	spec    agent.Spec
	dir     string // on the share
	nodeDir string // on the node
	service string

	mu       sync.Mutex
	svc      Services
	madeDir  bool // the directory may exist
	created  bool // the service may exist
	started  bool
	ready    *Ready
	push     bool
	pushed   map[string]bool
	noticed  bool
	shutOnce sync.Once
	shutRep  *wire.CleanupReport
	shutErr  error
}

var _ agent.Session = (*Session)(nil)

func (s *Session) notice(msg string) {
	if s.spec.Notice != nil {
		s.spec.Notice(msg)
	}
}

func (s *Session) placed(pid, port int) error {
	if s.spec.Placed == nil {
		return nil
	}
	return s.spec.Placed(s.nodeDir, pid, port)
}

func (s *Session) path(name string) string { return s.dir + `\` + name }

func (s *Session) start(ctx context.Context) error {
	if s.spec.Engine == nil {
		return errors.New("no engine build given")
	}
	bin, err := s.spec.Engine("amd64")
	if err != nil {
		return err
	}
	f, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("the engine build: %w", err)
	}
	defer f.Close()
	// Journalled before it exists: a crash between the two leaves a
	// directory the journal knows of.
	if err := s.placed(0, 0); err != nil {
		return fmt.Errorf("journal the engine directory %s: %w", s.nodeDir, err)
	}
	s.madeDir = true
	if err := s.l.Files.MkdirAll(ctx, s.dir); err != nil {
		if errors.Is(err, smb.ErrAccessDenied) {
			// Refused: nothing was made (C:\Windows\Temp exists on
			// every node; the run's directory is the one to make).
			s.madeDir = false
			return fmt.Errorf("make %s on ADMIN$: %w (the user must be an administrator of the node; for a local account also set LocalAccountTokenFilterPolicy=1)", s.nodeDir, err)
		}
		return fmt.Errorf("make %s on ADMIN$: %w", s.nodeDir, err)
	}
	if err := s.l.Files.WriteFileFrom(ctx, s.path(ExeFile), f); err != nil {
		return fmt.Errorf("copy the engine: %w", err)
	}
	cfg, err := s.config()
	if err != nil {
		return err
	}
	if err := s.l.Files.WriteFile(ctx, s.path(ConfigFile), cfg); err != nil {
		return fmt.Errorf("write the engine's configuration: %w", err)
	}
	svc, err := s.services(ctx)
	if err != nil {
		return err
	}
	if err := svc.CreateService(ctx, smb.ServiceConfig{Name: s.service, DisplayName: ServiceDisplayName(s.spec.RunID), BinaryPath: BinaryPath(s.spec.RunID)}); err != nil {
		// The service manager's answer says no service was made; any
		// other failure (the connection broke) leaves it unknown.
		var se *smb.SCMError
		if !errors.As(err, &se) || se.Code == 1073 {
			s.created = true
		}
		return err
	}
	s.created = true
	s.started = true
	if err := svc.StartService(ctx, s.service); err != nil {
		return err
	}
	csr, err := s.waitFile(ctx, CSRFile, pki.MaxCSRSize, s.l.csrTimeout(), "its certificate request ("+CSRFile+")")
	if err != nil {
		return err
	}
	// The certificate names the node's address (a link-local one without
	// its zone, which is no part of an IP SAN).
	host, _, _ := strings.Cut(s.l.Host, "%")
	cert, err := s.spec.CA.SignCSR(csr, s.spec.Node, []string{host})
	if err != nil {
		return fmt.Errorf("the engine's certificate request: %w", err)
	}
	if err := s.l.Files.WriteFile(ctx, s.path(CertFile), cert); err != nil {
		return fmt.Errorf("write the engine's certificate: %w", err)
	}
	b, err := s.waitFile(ctx, ReadyFile, maxReadySize, s.l.startTimeout(), "that it is ready ("+ReadyFile+")")
	if err != nil {
		return err
	}
	ready, err := parseReady(b)
	if err != nil {
		return err
	}
	if ready.Error != "" {
		return fmt.Errorf("engine: %s", ready.Error)
	}
	s.ready = ready
	if err := s.placed(ready.PID, ready.Port); err != nil {
		return fmt.Errorf("journal the engine: %w", err)
	}
	if ready.PortMoved != "" {
		s.notice(ready.PortMoved)
	}
	for _, fw := range ready.Firewall {
		s.notice("opened the node's firewall: " + fw)
	}
	if ready.Swept != nil && !ready.Swept.Empty() {
		s.notice("removed leftovers of an earlier run: " + agent.Describe(ready.Swept))
	}
	s.push = s.l.PushPayloads || s.spec.Tunnel
	if d := ready.Dial; d != nil && d.Status != "open" {
		s.push = true
		why := d.Status
		if d.Error != "" {
			why += ": " + d.Error
		}
		s.notice(fmt.Sprintf("pushing payloads over SMB: the node cannot reach the manager at %s (%s)", d.Addr, why))
		s.noticed = true
	}
	return nil
}

// config is the engine's configuration: nothing secret (no certificate,
// no key), the run's CA, and how to reach the manager.
func (s *Session) config() ([]byte, error) {
	cfg := s.spec.Config
	cfg.RunID = s.spec.RunID
	cfg.Node = s.spec.Node
	cfg.CertPEM, cfg.KeyPEM = nil, nil
	cfg.CAPEM = s.spec.CA.CertPEM()
	cfg.ManagerAddr = s.l.ManagerAddr
	cfg.OpenFirewall = s.l.ManagerAddr != ""
	if s.l.ManagerAddr != "" && s.spec.DepotPort != 0 {
		cfg.DepotURL = "https://" + net.JoinHostPort(s.l.ManagerAddr, strconv.Itoa(s.spec.DepotPort))
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = wire.Duration(60 * time.Second)
	}
	return json.Marshal(cfg)
}

func parseReady(b []byte) (*Ready, error) {
	var r Ready
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("the engine's %s: %w", ReadyFile, err)
	}
	if r.Error == "" && (r.Port <= 0 || r.Port > 65535) {
		return nil, fmt.Errorf("the engine's %s says it listens on port %d", ReadyFile, r.Port)
	}
	return &r, nil
}

// services connects to the service manager once (again, after reset).
func (s *Session) services(ctx context.Context) (Services, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.svc != nil {
		return s.svc, nil
	}
	if s.l.Services == nil {
		return nil, errors.New("no service manager to start the engine with")
	}
	svc, err := s.l.Services(ctx)
	if err != nil {
		return nil, err
	}
	s.svc = svc
	return svc, nil
}

// waitFile polls for the engine's file name for up to d. A ready.json
// with an error, or the service found stopped, ends the wait early with
// the engine's word.
func (s *Session) waitFile(ctx context.Context, name string, max int64, d time.Duration, what string) ([]byte, error) {
	deadline := time.Now().Add(d)
	lastCheck := time.Now()
	for {
		b, err := s.l.Files.ReadFile(ctx, s.path(name), max)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read the engine's %s: %w", name, err)
		}
		if name != ReadyFile {
			if b, err := s.l.Files.ReadFile(ctx, s.path(ReadyFile), maxReadySize); err == nil {
				if r, perr := parseReady(b); perr == nil && r.Error != "" {
					return nil, fmt.Errorf("engine: %s", r.Error)
				}
			}
		}
		if time.Since(lastCheck) > 2*time.Second && s.svc != nil {
			lastCheck = time.Now()
			if st, err := s.svc.QueryServiceStatus(ctx, s.service); err == nil && st == smb.StateStopped {
				// It may have written its last word just before it ended.
				if b, err := s.l.Files.ReadFile(ctx, s.path(ReadyFile), maxReadySize); err == nil {
					if r, perr := parseReady(b); perr == nil && r.Error != "" {
						return nil, fmt.Errorf("engine: %s", r.Error)
					}
				}
				return nil, fmt.Errorf("the engine's service %s stopped before it wrote %s", s.service, name)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the engine did not write %s within %s", what, d)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.l.poll()):
		}
	}
}

// Endpoint implements agent.Session: the engine's port on the node's
// address (no other way to it: SMB carries files, not connections).
func (s *Session) Endpoint() agent.Endpoint {
	return agent.Endpoint{Addr: net.JoinHostPort(s.l.Host, strconv.Itoa(s.ready.Port))}
}

// Ready implements agent.Session.
func (s *Session) Ready() *wire.Ready {
	if s.ready == nil {
		return nil
	}
	return &s.ready.Ready
}

// Abandon implements agent.Session: the SMB session goes; the engine
// removes itself (and its service) after its idle timeout.
func (s *Session) Abandon() {
	s.mu.Lock()
	svc := s.svc
	s.mu.Unlock()
	if svc != nil {
		_ = svc.Close()
	}
	if s.l.Release != nil {
		_ = s.l.Release()
	}
}

// Shutdown implements agent.Session: the engine API's shutdown (the
// engine finishes the component it installs, ends its processes, removes
// its firewall rule and files, and reports), then the service stopped and
// deleted, the directory removed (retrying while the exe is locked), both
// checked gone, and the SMB session closed. The report lists what was
// removed; the error what could not be, or not be checked.
func (s *Session) Shutdown(ctx context.Context) (*wire.CleanupReport, error) {
	s.shutOnce.Do(func() { s.shutRep, s.shutErr = s.shutdown(ctx) })
	return s.shutRep, s.shutErr
}

func (s *Session) shutdown(ctx context.Context) (*wire.CleanupReport, error) {
	rep := &wire.CleanupReport{Node: s.spec.Node}
	var errs []error
	reported := false
	if s.ready != nil {
		r, err := s.engineShutdown(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("the engine did not report its clean-up: %w", err))
		} else {
			rep.Merge(r)
			reported = true
		}
	}
	if ctx.Err() != nil {
		// The engine's report took the budget: the rest gets its own.
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), launchCleanupTimeout)
		defer cancel()
		ctx = c
	}
	if s.created {
		if err := s.removeService(ctx, rep); err != nil {
			errs = append(errs, err)
		}
	}
	if s.started && !reported {
		// The engine stopped by the service manager leaves its report.
		if b, err := s.l.Files.ReadFile(ctx, s.path(CleanupFile), maxCleanupSize); err == nil {
			var r wire.CleanupReport
			if json.Unmarshal(b, &r) == nil {
				rep.Merge(&r)
			}
		}
	}
	if s.madeDir {
		existed, err := s.l.Files.Exists(ctx, s.dir)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("check %s: %w", s.nodeDir, err))
		case existed:
			if err := s.l.Files.RemoveAll(ctx, s.dir, removeWait); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", s.nodeDir, err))
			} else if gone, err := s.l.Files.Exists(ctx, s.dir); err != nil || gone {
				errs = append(errs, fmt.Errorf("%s is still there after its removal (%v)", s.nodeDir, err))
			} else {
				rep.Files = append(rep.Files, s.nodeDir)
			}
		}
	}
	s.mu.Lock()
	svc := s.svc
	s.mu.Unlock()
	if svc != nil {
		_ = svc.Close()
	}
	if s.l.Release != nil {
		if err := s.l.Release(); err != nil {
			errs = append(errs, fmt.Errorf("close the SMB session: %w", err))
		} else {
			rep.Sessions = append(rep.Sessions, "SMB session (ADMIN$)")
		}
	}
	for _, e := range rep.Errors {
		errs = append(errs, errors.New(e))
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("clean-up on %s: %w", s.spec.Node, errors.Join(errs...))
	}
	return rep, nil
}

// removeService stops the run's service, waits until it stopped, deletes
// it and checks it is gone.
func (s *Session) removeService(ctx context.Context, rep *wire.CleanupReport) error {
	svc, err := s.services(ctx)
	if err != nil {
		return fmt.Errorf("the service %s may be left: %w", s.service, err)
	}
	existed, err := stopAndDelete(ctx, svc, s.service)
	if errors.Is(err, smb.ErrClosed) {
		// The service manager's connection ended (an RPC fault closes
		// it): once more on a fresh one.
		s.mu.Lock()
		_ = s.svc.Close()
		s.svc = nil
		s.mu.Unlock()
		if svc, err = s.services(ctx); err != nil {
			return fmt.Errorf("the service %s may be left: %w", s.service, err)
		}
		existed, err = stopAndDelete(ctx, svc, s.service)
	}
	if err != nil {
		return err
	}
	if existed {
		rep.Processes = append(rep.Processes, "service "+s.service)
	}
	return nil
}

// Win32 errors of ControlService(STOP) that leave a service to delete.
const (
	errServiceCannotAcceptCtrl = 1061 // ERROR_SERVICE_CANNOT_ACCEPT_CTRL
	errServiceNotActive        = 1062 // ERROR_SERVICE_NOT_ACTIVE
)

// stopAndDelete stops name, waits for SERVICE_STOPPED, deletes it and
// checks it is gone. existed says whether there was a service to remove.
func stopAndDelete(ctx context.Context, svc Services, name string) (existed bool, err error) {
	st, err := svc.StopService(ctx, name)
	if errors.Is(err, smb.ErrNoService) {
		return false, nil
	}
	var se *smb.SCMError
	if errors.As(err, &se) && (se.Code == errServiceCannotAcceptCtrl || se.Code == errServiceNotActive) {
		// Not running, or its process died without telling the service
		// manager (a killed engine): it cannot be stopped, and it can
		// still be deleted.
		if q, qerr := svc.QueryServiceStatus(ctx, name); qerr == nil {
			st, err = q, nil
			if st != smb.StateStopped {
				st = smb.StateStopped // deleted below all the same; the check after says whether it went
			}
		}
	}
	if err != nil {
		return true, fmt.Errorf("the service %s may be left running: %w", name, err)
	}
	deadline := time.Now().Add(stopWait)
	for st != smb.StateStopped {
		if time.Now().After(deadline) {
			return true, fmt.Errorf("the service %s did not stop within %s (state %d)", name, stopWait, st)
		}
		select {
		case <-ctx.Done():
			return true, fmt.Errorf("the service %s may be left: %w", name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
		st, err = svc.QueryServiceStatus(ctx, name)
		if errors.Is(err, smb.ErrNoService) {
			return true, nil
		}
		if err != nil {
			return true, fmt.Errorf("the service %s may be left: %w", name, err)
		}
	}
	if err := svc.DeleteService(ctx, name); err != nil && !errors.Is(err, smb.ErrNoService) {
		return true, fmt.Errorf("the service %s is stopped but left: %w", name, err)
	}
	// Deleted once the last handle is closed: look again for a while.
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, err := svc.QueryServiceStatus(ctx, name)
		if errors.Is(err, smb.ErrNoService) {
			return true, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return true, fmt.Errorf("check that the service %s is gone: %w", name, err)
			}
			return true, fmt.Errorf("the service %s is still there after its deletion (marked for deletion until it is released)", name)
		}
		select {
		case <-ctx.Done():
			return true, fmt.Errorf("check that the service %s is gone: %w", name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// engineShutdown asks the engine's API to clean up and returns its report.
func (s *Session) engineShutdown(ctx context.Context) (*wire.CleanupReport, error) {
	if s.l.Manager == nil {
		return nil, errors.New("no manager identity to call the engine with")
	}
	hc := &http.Client{Transport: &http.Transport{
		// A port that drops packets fails the call in seconds: the
		// service stop does the clean-up then.
		DialContext:       (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:   agent.EngineTLS(s.spec.CA, s.l.Manager, s.spec.Node),
		ForceAttemptHTTP2: false,
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
	}}
	defer hc.CloseIdleConnections()
	// The engine finishes the component it installs first: as long as the
	// caller allows, at most ten minutes.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, "https://"+s.Endpoint().Addr+"/v1/shutdown", bytes.NewReader(nil))
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCleanupSize))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the engine answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var rep wire.CleanupReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("the engine's clean-up report: %w", err)
	}
	return &rep, nil
}

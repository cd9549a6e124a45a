package depot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A Host holds the manager's two ports for a manager that outlives its
// runs (`fleetup serve`): the depots of the runs going on attach to it
// (Attach) instead of listening themselves, and every request that is not
// a node's goes to the host's own handler (the web UI).
//
// On the https port the TLS handshake picks the configuration: a client
// that names an attached run's server name (the engines send
// wire.DepotServerName of their run) gets that run's depot configuration,
// with its certificate and its CA; any other client gets HostOptions.TLS
// (the web UI's certificate, no client certificate asked). A request is
// then a node's when it came over a run's handshake, or is a grant URL an
// attached depot made (BMCs, which send no server name); the rest is the
// UI's. On the http port, a request with a bearer token an attached depot
// knows, or a grant URL, is a node's; any other is sent to https (303).
type Host struct {
	opts HostOptions
	log  *slog.Logger

	mu    sync.RWMutex
	runs  map[string]*Depot // by server name
	state int

	httpPort, httpsPort int
	notices             []string
	servers             []*http.Server
	wg                  sync.WaitGroup
}

// HostOptions configure a Host.
type HostOptions struct {
	// Ports as for Options: zero is the default, a port that is not
	// Explicit moves when taken.
	HTTPPort, HTTPSPort                 int
	HTTPPortExplicit, HTTPSPortExplicit bool
	// TLS is the https port's configuration for browsers and scripts
	// (a certificate; no client certificate required). Required.
	TLS *tls.Config
	// Handler serves what is not a node's request on the https port.
	Handler http.Handler
	Logger  *slog.Logger
}

// NewHost returns a Host configured by opts; it listens once started.
func NewHost(opts HostOptions) (*Host, error) {
	if opts.TLS == nil || (len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil) {
		return nil, errors.New("depot host: no https certificate")
	}
	if opts.Handler == nil {
		opts.Handler = http.NotFoundHandler()
	}
	if err := defaultPorts("depot host", &opts.HTTPPort, &opts.HTTPSPort, opts.HTTPPortExplicit, opts.HTTPSPortExplicit); err != nil {
		return nil, err
	}
	if opts.HTTPPortExplicit && opts.HTTPSPortExplicit && opts.HTTPPort == opts.HTTPSPort && opts.HTTPPort != 0 {
		return nil, fmt.Errorf("depot host: http and https ports are both %d", opts.HTTPPort)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tlsConf := opts.TLS.Clone()
	if tlsConf.MinVersion < tls.VersionTLS12 {
		tlsConf.MinVersion = tls.VersionTLS12
	}
	h := &Host{opts: opts, log: log, runs: map[string]*Depot{}}
	tlsConf.GetConfigForClient = h.configFor
	h.opts.TLS = tlsConf
	return h, nil
}

// configFor picks the handshake's configuration by the server name the
// client sent: an attached run's, or the UI's.
func (h *Host) configFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if hello.ServerName == "" {
		return nil, nil
	}
	h.mu.RLock()
	d := h.runs[strings.ToLower(hello.ServerName)]
	h.mu.RUnlock()
	if d == nil {
		return nil, nil
	}
	return d.opts.TLS, nil
}

// Start binds both ports and serves them until Close; ctx bounds the
// start only. Ports behave as a Depot's (Start).
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.state != stateNew {
		h.mu.Unlock()
		return errors.New("depot host: already started")
	}
	h.state = stateStarted
	h.mu.Unlock()
	plans := []*listenPlan{
		{what: "http", port: h.opts.HTTPPort, explicit: h.opts.HTTPPortExplicit},
		{what: "https", port: h.opts.HTTPSPort, explicit: h.opts.HTTPSPortExplicit},
	}
	notices, err := bindPlans(ctx, plans, h.log)
	if err != nil {
		h.mu.Lock()
		h.state = stateClosed // nothing listens: no run may attach
		h.mu.Unlock()
		return err
	}
	errLog := slog.NewLogLogger(h.log.Handler(), slog.LevelInfo)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notices = notices
	for _, p := range plans {
		srv := &http.Server{
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          errLog,
		}
		ln := p.ln
		switch p.what {
		case "http":
			h.httpPort = portOf(ln)
			srv.Handler = http.HandlerFunc(h.serveHTTP)
		case "https":
			h.httpsPort = portOf(ln)
			srv.Handler = http.HandlerFunc(h.serveHTTPS)
			ln = tls.NewListener(ln, h.opts.TLS)
		}
		h.servers = append(h.servers, srv)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				h.log.Error("depot host server stopped", "proto", p.what, "err", err)
			}
		}()
		h.log.Info("listening", "proto", p.what, "port", portOf(p.ln))
	}
	return nil
}

// HTTPPort and HTTPSPort are the ports bound (0 before Start).
func (h *Host) HTTPPort() int  { h.mu.RLock(); defer h.mu.RUnlock(); return h.httpPort }
func (h *Host) HTTPSPort() int { h.mu.RLock(); defer h.mu.RUnlock(); return h.httpsPort }

// Notices say which default ports were taken and where they moved.
func (h *Host) Notices() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return append([]string(nil), h.notices...)
}

// Close stops both servers as Depot.Close does. Attached depots stay
// attached until their runs close them.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.state != stateStarted {
		h.state = stateClosed
		h.mu.Unlock()
		return nil
	}
	h.state = stateClosed
	servers := h.servers
	h.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
			errs = append(errs, fmt.Errorf("depot host: shut down: %w", err))
		}
	}
	h.wg.Wait()
	return errors.Join(errs...)
}

// Attach serves d (not started) on the host's ports to the engines that
// send serverName, until d is closed. d must have a TLS configuration
// whose certificate is valid for serverName.
func (h *Host) Attach(d *Depot, serverName string) error {
	serverName = strings.ToLower(serverName)
	if serverName == "" {
		return errors.New("depot host: attach: empty server name")
	}
	if d.opts.TLS == nil {
		return errors.New("depot host: attach: the depot has no TLS configuration")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateStarted {
		return errors.New("depot host: attach: the host is not serving")
	}
	if _, ok := h.runs[serverName]; ok {
		return fmt.Errorf("depot host: attach: %s is attached already", serverName)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != stateNew {
		return errors.New("depot host: attach: the depot was started or closed")
	}
	d.state = stateStarted
	d.host, d.serverName = h, serverName
	d.httpPort, d.httpsPort = h.httpPort, h.httpsPort
	d.handlers = [2]http.Handler{d.handler(false), d.handler(true)}
	h.runs[serverName] = d
	return nil
}

// detach is d.Close's for an attached depot.
func (h *Host) detach(d *Depot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.runs[d.serverName] == d {
		delete(h.runs, d.serverName)
	}
}

// attached are the depots attached now.
func (h *Host) attached() []*Depot {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*Depot, 0, len(h.runs))
	for _, d := range h.runs {
		out = append(out, d)
	}
	return out
}

func (h *Host) serveHTTPS(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil && r.TLS.ServerName != "" {
		h.mu.RLock()
		d := h.runs[strings.ToLower(r.TLS.ServerName)]
		h.mu.RUnlock()
		if d != nil { // a run's handshake: the depot's, which checks the certificate
			d.handlers[1].ServeHTTP(w, r)
			return
		}
	}
	if d := h.grantHolder(r.URL.Path); d != nil {
		d.handlers[1].ServeHTTP(w, r)
		return
	}
	h.opts.Handler.ServeHTTP(w, r)
}

func (h *Host) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if d := h.grantHolder(r.URL.Path); d != nil {
		d.handlers[0].ServeHTTP(w, r)
		return
	}
	if r.Header.Get("Authorization") != "" {
		for _, d := range h.attached() {
			if d.identify(r, false) != "" {
				d.handlers[0].ServeHTTP(w, r)
				return
			}
		}
		http.Error(w, "unauthenticated", http.StatusUnauthorized)
		return
	}
	// A browser: to the UI over https, on the same host name.
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	if host == "" || strings.ContainsAny(host, "/\\@?#") {
		http.Error(w, "use https", http.StatusBadRequest)
		return
	}
	target := "https://" + net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(h.HTTPSPort())) + "/"
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		target = "https://" + net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(h.HTTPSPort())) + r.URL.RequestURI()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// grantHolder is the attached depot that made the grant of path, if any.
func (h *Host) grantHolder(path string) *Depot {
	if !strings.HasPrefix(path, GrantPrefix) {
		return nil
	}
	token, _, _ := strings.Cut(strings.TrimPrefix(path, GrantPrefix), "/")
	for _, d := range h.attached() {
		d.mu.Lock()
		_, ok := d.grants[token]
		d.mu.Unlock()
		if ok {
			return d
		}
	}
	return nil
}

// Package depot is the manager's own web server (HP SUM's 63001/63002): it
// serves component payloads to the engines of this run and receives the
// status events they post back.
//
// A Depot listens on two ports, each dual-stack (IPv4 and IPv6 on one
// socket): plain HTTP (default 63001), where a node proves who it is with a
// bearer token the manager gave it (AllowToken), and HTTPS (default 63002),
// where TLS 1.3 with a client certificate of the run's CA is required and
// the node is the certificate's common name. A default port that is taken
// moves to the next free port and says so in Notices; a port the user chose
// is never moved: Start fails with a *PortInUseError naming the process that
// holds it.
//
// Routes, for authenticated nodes only (anything else is 401):
//
//	GET|HEAD /v1/blobs/{sha256}  the payload registered with Add under that hash
//	POST     /v1/status          one fleetup.Event, or a JSON array of them
//
// and, for BMCs, which have neither a certificate nor a token, one route
// whose URL is the secret (see Grant):
//
//	GET|HEAD /v1/grants/{token}/{name}  one payload for one node, until revoked
//
// Payloads are opened per request and streamed from disk (with range
// requests, If-Range and ETag = the hash); they are never read into memory
// whole. A payload whose size on disk no longer matches the size registered
// is refused (500), since it changed after the baseline was checked. The
// node field of every posted event is replaced by the authenticated
// identity before OnStatus sees it.
package depot

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/pki"
)

// The default ports, as HP SUM's.
const (
	DefaultHTTPPort  = 63001
	DefaultHTTPSPort = 63002
)

// MaxStatusBytes bounds the body of a status post.
const MaxStatusBytes = 64 << 10

// Options configures a Depot.
type Options struct {
	// HTTPPort and HTTPSPort are the ports to listen on; zero means the
	// default (63001, 63002). A port that is not Explicit moves to the next
	// free port (at most MaxPortMoves further) when taken; an explicit port
	// never moves, and an explicit zero lets the kernel pick a free port.
	HTTPPort, HTTPSPort                 int
	HTTPPortExplicit, HTTPSPortExplicit bool
	// TLS is the server configuration of the https port, normally from
	// pki.ServerTLS: it must require and verify client certificates. Nil
	// disables https.
	TLS *tls.Config
	// OnStatus receives every event posted by a node, with Node set to the
	// node's authenticated identity and Time set when the node left it
	// empty. It may be called from several goroutines at once.
	OnStatus func(node string, ev fleetup.Event)
	// Logger receives the depot's logs; nil discards them.
	Logger *slog.Logger
}

// NodeStats is what the depot did for one node.
type NodeStats struct {
	BytesServed  int64 `json:"bytes_served"`
	Requests     int   `json:"requests"`      // payload requests answered
	StatusEvents int   `json:"status_events"` // events received
}

// Depot is the manager's web server. Its methods are safe for concurrent use.
type Depot struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	blobs   map[string]blob   // by lower-case hex SHA-256
	tokens  map[string]string // token by node
	grants  map[string]*grant // by token
	stats   map[string]*NodeStats
	notices []string
	state   int // 0 new, 1 started, 2 closed

	httpPort, httpsPort int
	servers             []*http.Server
	wg                  sync.WaitGroup

	// host is set for a depot served on a Host's ports (Attach), with
	// the server name the run's engines send and the handlers of its
	// http and https port.
	host       *Host
	serverName string
	handlers   [2]http.Handler

	// closed cuts the payloads being sent when an attached depot's Close
	// runs out of time (its connections are the Host's, so they are not
	// closed with it); inflight are those sends.
	closed    chan struct{}
	closeOnce sync.Once
	inflight  sync.WaitGroup
}

type blob struct {
	path string
	size int64
	id   string
}

const (
	stateNew = iota
	stateStarted
	stateClosed
)

// New returns a Depot configured by opts; it listens only once started.
func New(opts Options) (*Depot, error) {
	if err := defaultPorts("depot", &opts.HTTPPort, &opts.HTTPSPort, opts.HTTPPortExplicit, opts.HTTPSPortExplicit); err != nil {
		return nil, err
	}
	if opts.TLS != nil {
		if opts.HTTPPortExplicit && opts.HTTPSPortExplicit && opts.HTTPPort == opts.HTTPSPort && opts.HTTPPort != 0 {
			return nil, fmt.Errorf("depot: http and https ports are both %d", opts.HTTPPort)
		}
		if opts.TLS.ClientAuth != tls.RequireAndVerifyClientCert || opts.TLS.ClientCAs == nil {
			return nil, errors.New("depot: https configuration must require and verify client certificates (use pki.ServerTLS)")
		}
		if len(opts.TLS.Certificates) == 0 && opts.TLS.GetCertificate == nil {
			return nil, errors.New("depot: https configuration has no server certificate")
		}
		// Grant URLs are for BMCs, which have no client certificate and
		// may speak TLS 1.2 only: the handshake asks for a certificate
		// but does not insist, and every other route still requires a
		// verified one over TLS 1.3 (identify).
		opts.TLS = opts.TLS.Clone()
		opts.TLS.ClientAuth = tls.VerifyClientCertIfGiven
		opts.TLS.MinVersion = tls.VersionTLS12
		// No session resumption: on a Host's shared port a ticket of one
		// run must never open another's (nor the UI's) configuration.
		opts.TLS.SessionTicketsDisabled = true
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Depot{
		closed: make(chan struct{}),
		opts:   opts,
		log:    log,
		blobs:  map[string]blob{},
		tokens: map[string]string{},
		stats:  map[string]*NodeStats{},
	}, nil
}

// Add registers the payload of c under its SHA-256, to be served from
// c.Path. The file must exist with size c.Size; the hash itself is trusted
// (the baseline checked it), and the engine verifies it again.
func (d *Depot) Add(c *fleetup.Component) error {
	sum := strings.ToLower(c.SHA256)
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return fmt.Errorf("depot: add %s: sha256 %q is not 64 hex digits", c.ID, c.SHA256)
	}
	if c.Path == "" {
		return fmt.Errorf("depot: add %s: no payload path", c.ID)
	}
	fi, err := os.Stat(c.Path)
	if err != nil {
		return fmt.Errorf("depot: add %s: %w", c.ID, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("depot: add %s: %s is not a regular file", c.ID, c.Path)
	}
	if fi.Size() != c.Size {
		return fmt.Errorf("depot: add %s: %s has %d bytes, component says %d", c.ID, c.Path, fi.Size(), c.Size)
	}
	d.mu.Lock()
	d.blobs[sum] = blob{path: c.Path, size: c.Size, id: c.ID}
	d.mu.Unlock()
	return nil
}

// AllowToken lets node use token as a bearer token on the http port,
// replacing any earlier token of the node. An empty token allows nothing.
func (d *Depot) AllowToken(node, token string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if token == "" {
		delete(d.tokens, node)
		return
	}
	d.tokens[node] = token
}

// RevokeToken withdraws node's bearer token.
func (d *Depot) RevokeToken(node string) {
	d.mu.Lock()
	delete(d.tokens, node)
	d.mu.Unlock()
}

// Notices returns what the user should be told about the ports, e.g.
// "http port 63001 is in use; using 63003".
func (d *Depot) Notices() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.notices...)
}

// HTTPPort returns the port the http server listens on (0 before Start).
func (d *Depot) HTTPPort() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.httpPort
}

// HTTPSPort returns the port the https server listens on (0 before Start,
// or without TLS).
func (d *Depot) HTTPSPort() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.httpsPort
}

// Stats returns, by node, what the depot served and received so far.
func (d *Depot) Stats() map[string]NodeStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]NodeStats, len(d.stats))
	for n, s := range d.stats {
		out[n] = *s
	}
	return out
}

type listenPlan struct {
	what     string
	port     int
	explicit bool
	ln       net.Listener
}

// Start binds both ports and serves them until Close. ctx bounds the start
// only. A taken explicit port fails with a *PortInUseError; a taken default
// port moves (see Notices).
func (d *Depot) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.state != stateNew {
		d.mu.Unlock()
		return errors.New("depot: already started")
	}
	d.state = stateStarted
	d.mu.Unlock()

	plans := []*listenPlan{{what: "http", port: d.opts.HTTPPort, explicit: d.opts.HTTPPortExplicit}}
	if d.opts.TLS != nil {
		plans = append(plans, &listenPlan{what: "https", port: d.opts.HTTPSPort, explicit: d.opts.HTTPSPortExplicit})
	}
	notices, err := bindPlans(ctx, plans, d.log)
	if err != nil {
		return err
	}

	errLog := slog.NewLogLogger(d.log.Handler(), slog.LevelInfo)
	d.mu.Lock()
	d.notices = append(d.notices, notices...)
	for _, p := range plans {
		srv := &http.Server{
			Handler:           d.handler(p.what == "https"),
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          errLog,
		}
		d.servers = append(d.servers, srv)
		d.wg.Add(1)
		switch p.what {
		case "http":
			d.httpPort = portOf(p.ln)
			go d.serve(p, func() error { return srv.Serve(p.ln) })
		case "https":
			d.httpsPort = portOf(p.ln)
			srv.TLSConfig = d.opts.TLS
			go d.serve(p, func() error { return srv.ServeTLS(p.ln, "", "") })
		}
		d.log.Info("depot listening", "proto", p.what, "port", portOf(p.ln))
	}
	d.mu.Unlock()
	return nil
}

// bindPlans binds every plan's port, explicit ports first: they cannot
// move, the default ones can. It returns the notices of moved ports; on
// error nothing is left bound.
func bindPlans(ctx context.Context, plans []*listenPlan, log *slog.Logger) ([]string, error) {
	closeAll := func() {
		for _, p := range plans {
			if p.ln != nil {
				p.ln.Close()
			}
		}
	}
	var notices []string
	// Explicit ports first: they cannot move, the default ones can.
	for _, p := range plans {
		if !p.explicit {
			continue
		}
		ln, err := listenDual(ctx, p.port)
		if err != nil {
			closeAll()
			if pe := InUse(p.what, p.port, err); pe != nil {
				return nil, pe
			}
			return nil, fmt.Errorf("depot: listen on %s port %d: %w", p.what, p.port, err)
		}
		p.ln = ln
	}
	for _, p := range plans {
		if p.explicit {
			continue
		}
		reserved := map[int]bool{}
		for _, o := range plans {
			if o == p {
				continue
			}
			if o.ln != nil {
				reserved[portOf(o.ln)] = true
			} else {
				reserved[o.port] = true // a default port not bound yet keeps its own
			}
		}
		var lastErr error
		for port := p.port; port <= p.port+MaxPortMoves && port <= 65535; port++ {
			if reserved[port] {
				continue
			}
			ln, err := listenDual(ctx, port)
			if err == nil {
				p.ln = ln
				break
			}
			if !isAddrInUse(err) {
				closeAll()
				return nil, fmt.Errorf("depot: listen on %s port %d: %w", p.what, port, err)
			}
			lastErr = err
		}
		if p.ln == nil {
			closeAll()
			return nil, fmt.Errorf("depot: %s port %d and the next %d ports are in use: %w", p.what, p.port, MaxPortMoves, lastErr)
		}
		if got := portOf(p.ln); got != p.port {
			n := fmt.Sprintf("%s port %d is in use; using %d", p.what, p.port, got)
			notices = append(notices, n)
			log.Warn(n)
		}
	}

	return notices, nil
}

func (d *Depot) serve(p *listenPlan, serve func() error) {
	defer d.wg.Done()
	if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.log.Error("depot server stopped", "proto", p.what, "err", err)
	}
}

// Close stops both servers: it stops accepting, lets requests in flight
// finish until ctx ends, then closes the remaining connections. It returns
// ctx's error when it had to cut connections. Close before Start, or twice,
// does nothing.
func (d *Depot) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.state != stateStarted {
		d.state = stateClosed
		d.mu.Unlock()
		return nil
	}
	d.state = stateClosed
	servers := d.servers
	host := d.host
	d.mu.Unlock()
	if host != nil {
		// As a standalone depot's servers shut down: new requests find
		// no depot, sends in flight may finish until ctx ends, and are
		// cut then (at their next read).
		host.detach(d)
		done := make(chan struct{})
		go func() { d.inflight.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
		}
		d.closeOnce.Do(func() { close(d.closed) })
		<-done
		return fmt.Errorf("depot: shut down: %w", ctx.Err())
	}

	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
				errs[i] = fmt.Errorf("depot: shut down: %w", err)
			}
		}()
	}
	wg.Wait()
	d.wg.Wait()
	return errors.Join(errs...)
}

func portOf(ln net.Listener) int {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// identify returns the authenticated node of r, or "".
func (d *Depot) identify(r *http.Request, secure bool) string {
	if secure {
		if r.TLS == nil || r.TLS.Version < tls.VersionTLS13 {
			return ""
		}
		return pki.PeerName(r.TLS)
	}
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	node := ""
	for n, t := range d.tokens {
		// Compare with every token, in constant time, so that timing
		// tells nothing about which token nearly matched.
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			node = n
		}
	}
	return node
}

type nodeKey struct{}

func (d *Depot) handler(secure bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/blobs/{sha256}", d.serveBlob)
	mux.HandleFunc("POST /v1/status", d.postStatus)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, GrantPrefix) {
			d.serveGrant(w, r)
			return
		}
		node := d.identify(r, secure)
		if node == "" {
			if !secure {
				w.Header().Set("WWW-Authenticate", `Bearer realm="fleetup"`)
			}
			d.log.Info("depot: unauthenticated request", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nodeKey{}, node)))
	})
}

func nodeOf(r *http.Request) string { s, _ := r.Context().Value(nodeKey{}).(string); return s }

func (d *Depot) serveBlob(w http.ResponseWriter, r *http.Request) {
	d.sendBlob(w, r, nodeOf(r), strings.ToLower(r.PathValue("sha256")))
}

// sendBlob streams the payload registered under sum to node and returns
// the bytes sent.
func (d *Depot) sendBlob(w http.ResponseWriter, r *http.Request, node, sum string) int64 {
	d.mu.Lock()
	b, ok := d.blobs[sum]
	d.mu.Unlock()
	if !ok {
		http.Error(w, "unknown blob", http.StatusNotFound)
		return 0
	}
	d.inflight.Add(1)
	defer d.inflight.Done()
	f, err := os.Open(b.path)
	if err != nil {
		d.log.Error("depot: open payload", "component", b.id, "sha256", sum, "err", err)
		http.Error(w, "payload unavailable", http.StatusInternalServerError)
		return 0
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		d.log.Error("depot: stat payload", "component", b.id, "sha256", sum, "err", err)
		http.Error(w, "payload unavailable", http.StatusInternalServerError)
		return 0
	}
	if !fi.Mode().IsRegular() || fi.Size() != b.size {
		d.log.Error("depot: payload changed on disk after it was checked; refusing to serve it",
			"component", b.id, "sha256", sum, "path", b.path, "size", fi.Size(), "registered_size", b.size, "node", node)
		http.Error(w, "payload changed on the manager after it was checked", http.StatusInternalServerError)
		return 0
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+sum+`"`)
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", fi.ModTime(), &stoppable{f: f, stop: d.closed})
	d.mu.Lock()
	s := d.statsOf(node)
	s.BytesServed += cw.n
	s.Requests++
	d.mu.Unlock()
	d.log.Debug("depot: served payload", "node", node, "component", b.id, "bytes", cw.n, "range", r.Header.Get("Range"))
	return cw.n
}

// statsOf returns node's stats; d.mu must be held.
func (d *Depot) statsOf(node string) *NodeStats {
	s := d.stats[node]
	if s == nil {
		s = &NodeStats{}
		d.stats[node] = s
	}
	return s
}

func (d *Depot) postStatus(w http.ResponseWriter, r *http.Request) {
	node := nodeOf(r)
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxStatusBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("status body larger than %d bytes", MaxStatusBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read status body", http.StatusBadRequest)
		return
	}
	evs, err := ParseEvents(data)
	if err != nil {
		d.log.Info("depot: bad status post", "node", node, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	d.mu.Lock()
	d.statsOf(node).StatusEvents += len(evs)
	d.mu.Unlock()
	for _, ev := range evs {
		ev.Node = node
		if ev.Time.IsZero() {
			ev.Time = now
		}
		if d.opts.OnStatus != nil {
			d.opts.OnStatus(node, ev)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// countingWriter counts the body bytes written through it. It keeps the
// underlying writer's io.ReaderFrom, so that plain http still sends files
// with sendfile(2).
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	c.n += n
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// errDepotClosed ends a payload's send when its depot closes.
var errDepotClosed = errors.New("depot closed")

// stoppable is a payload file that stops reading once stop is closed. It
// has Read and Seek only (no WriteTo), so that every copy goes through
// Read.
type stoppable struct {
	f    *os.File
	stop <-chan struct{}
}

func (s *stoppable) Read(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errDepotClosed
	default:
	}
	return s.f.Read(p)
}

func (s *stoppable) Seek(off int64, whence int) (int64, error) { return s.f.Seek(off, whence) }

// defaultPorts fills in the default http and https ports where none was
// chosen and checks both are ports; what names the server in errors.
func defaultPorts(what string, http, https *int, httpExplicit, httpsExplicit bool) error {
	if !httpExplicit && *http == 0 {
		*http = DefaultHTTPPort
	}
	if !httpsExplicit && *https == 0 {
		*https = DefaultHTTPSPort
	}
	for _, p := range []struct {
		what string
		port int
	}{{"http", *http}, {"https", *https}} {
		if p.port < 0 || p.port > 65535 {
			return fmt.Errorf("%s: %s port %d out of range 0-65535", what, p.what, p.port)
		}
	}
	return nil
}

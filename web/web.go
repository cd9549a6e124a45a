// Package web is the operator's side of `fleetup serve`: server-rendered
// pages, a JSON API under /api/v1 that the pages' own JavaScript and
// scripts (with an API token) use, and live run updates over Server-Sent
// Events.
//
// Every page and API call but the login, the first-administrator setup,
// the static files and /healthz needs a session (a cookie) or an API
// token (Authorization: Bearer). Requests of a cookie session that change
// something carry the session's CSRF token. Roles decide what an account
// may do: viewers read, operators also manage nodes, credentials,
// baselines and runs, administrators also accounts. Node credentials go
// into the store encrypted and are never sent back to a browser.
//
// The handler is served over HTTPS by the caller (Server.Handler).
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/store"
)

// Runner starts and follows runs (implemented by manager.Service).
type Runner interface {
	// Start records the run (store.BeginRun) and returns its id; the run goes on in the background.
	Start(ctx context.Context, req manager.RunRequest) (runID string, err error)
	// Cancel cancels a running run (its nodes clean up); ErrNotRunning when it is not running here.
	Cancel(runID string) error
	// Watch signals (non-blocking sends, coalesced) whenever events of runID were stored or it ended.
	Watch(runID string) (changed <-chan struct{}, stop func())
	// CheckBaseline checks a baseline directory as `fleetup baseline check` does.
	CheckBaseline(ctx context.Context, dir string) ([]store.ComponentSummary, []store.Problem, error)
}

// ErrNotRunning is what Runner.Cancel returns for a run that is not
// running in this process.
var ErrNotRunning = manager.ErrNotRunning

// Options configure a Server. Store and Runner are required.
type Options struct {
	Store  *store.DB
	Runner Runner
	// Logger receives the server's logs; nil: silent.
	Logger *slog.Logger
	// SetupToken is the one-time token printed at first start ("" when an
	// administrator exists). The store checks and consumes it
	// (store.UseSetupToken); the login page only uses it to know whether
	// to point at the setup link.
	SetupToken string
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
	// SessionTTL is how long a login lasts; 0: 12h.
	SessionTTL time.Duration
}

// Server is the web UI and API of `fleetup serve`. Make one with New.
type Server struct {
	db      *store.DB
	runner  Runner
	log     *slog.Logger
	now     func() time.Time
	ttl     time.Duration
	setup   string
	limiter *limiter
	pages   map[string]*template.Template
	static  http.Handler
	routes  []route
	mux     *http.ServeMux
	xorigin *http.CrossOriginProtection

	// heartbeat is the SSE comment interval; poll how often a stream
	// rereads the store for runs this process does not run.
	heartbeat time.Duration
	poll      time.Duration

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: event streams end
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New makes a Server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("web: Options.Store is required")
	}
	if opts.Runner == nil {
		return nil, errors.New("web: Options.Runner is required")
	}
	s := &Server{
		db:        opts.Store,
		runner:    opts.Runner,
		log:       opts.Logger,
		now:       opts.Now,
		ttl:       opts.SessionTTL,
		setup:     opts.SetupToken,
		heartbeat: 15 * time.Second,
		poll:      2 * time.Second,
		xorigin:   http.NewCrossOriginProtection(),
		closed:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ttl <= 0 {
		s.ttl = 12 * time.Hour
	}
	s.limiter = newLimiter(s.now)
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s.pages = pages
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	s.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	s.routes = s.routeTable()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("/", s.notFound)
	return s, nil
}

// Handler is the whole UI and API, to be served over HTTPS.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("X-Frame-Options", "DENY")
		s.mux.ServeHTTP(w, r)
	})
}

// Close ends the event streams (Server-Sent Events) that are open, which
// http.Server.Shutdown would otherwise wait for: call it before, or
// register it with http.Server.RegisterOnShutdown. The browsers'
// EventSource reconnects by itself and resumes where it was. The Server
// keeps serving everything else; new streams end at once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Who may call a route.
type access int

const (
	public   access = iota // anyone
	viewer                 // any account
	operator               // operators and administrators
	admin                  // administrators
)

// route is one entry of the route table: the mux pattern, who may call
// it, and how large its body may be.
type route struct {
	method  string
	pattern string
	access  access
	handler http.HandlerFunc
	// maxBody bounds the request body; 0: 1 MiB.
	maxBody int64
}

const (
	maxBody       = 1 << 20
	maxImportBody = 4 << 20
)

func (s *Server) routeTable() []route {
	return []route{
		// Public.
		{method: "GET", pattern: "/healthz", access: public, handler: s.healthz},
		{method: "GET", pattern: "/static/", access: public, handler: s.staticFile},
		{method: "GET", pattern: "/login", access: public, handler: s.loginPage},
		{method: "POST", pattern: "/login", access: public, handler: s.loginPost},
		{method: "GET", pattern: "/setup", access: public, handler: s.setupPage},
		{method: "POST", pattern: "/setup", access: public, handler: s.setupPost},

		// Pages.
		{method: "POST", pattern: "/logout", access: viewer, handler: s.logoutPost},
		{method: "GET", pattern: "/{$}", access: viewer, handler: s.dashboardPage},
		{method: "GET", pattern: "/nodes", access: viewer, handler: s.nodesPage},
		{method: "POST", pattern: "/nodes", access: operator, handler: s.nodesPost},
		{method: "POST", pattern: "/nodes/import", access: operator, handler: s.nodesImportPost, maxBody: maxImportBody},
		{method: "POST", pattern: "/nodes/{id}/delete", access: operator, handler: s.nodeDeletePost},
		{method: "GET", pattern: "/credentials", access: viewer, handler: s.credentialsPage},
		{method: "POST", pattern: "/credentials", access: operator, handler: s.credentialsPost},
		{method: "POST", pattern: "/credentials/{id}/delete", access: operator, handler: s.credentialDeletePost},
		{method: "GET", pattern: "/baselines", access: viewer, handler: s.baselinesPage},
		{method: "POST", pattern: "/baselines", access: operator, handler: s.baselinesPost},
		{method: "GET", pattern: "/baselines/{id}", access: viewer, handler: s.baselinePage},
		{method: "POST", pattern: "/baselines/{id}/check", access: operator, handler: s.baselineCheckPost},
		{method: "POST", pattern: "/baselines/{id}/delete", access: operator, handler: s.baselineDeletePost},
		{method: "GET", pattern: "/inventory", access: viewer, handler: s.inventoryPage},
		{method: "POST", pattern: "/inventory", access: operator, handler: s.inventoryPost},
		{method: "GET", pattern: "/review", access: viewer, handler: s.reviewPage},
		{method: "POST", pattern: "/review", access: operator, handler: s.reviewPost},
		{method: "GET", pattern: "/deploy", access: viewer, handler: s.deployPage},
		{method: "POST", pattern: "/deploy", access: operator, handler: s.deployPost},
		{method: "GET", pattern: "/runs", access: viewer, handler: s.runsPage},
		{method: "GET", pattern: "/runs/{id}", access: viewer, handler: s.runPage},
		{method: "POST", pattern: "/runs/{id}/cancel", access: operator, handler: s.runCancelPost},
		{method: "GET", pattern: "/runs/{id}/report", access: viewer, handler: s.report},
		{method: "GET", pattern: "/audit", access: viewer, handler: s.auditPage},
		{method: "GET", pattern: "/accounts", access: admin, handler: s.accountsPage},
		{method: "POST", pattern: "/accounts", access: admin, handler: s.accountsPost},
		{method: "GET", pattern: "/tokens", access: viewer, handler: s.tokensPage},
		{method: "POST", pattern: "/tokens", access: viewer, handler: s.tokensPost},
		{method: "POST", pattern: "/tokens/{id}/delete", access: viewer, handler: s.tokenDeletePost},

		// The JSON API.
		{method: "GET", pattern: "/api/v1/me", access: viewer, handler: s.apiMe},
		{method: "GET", pattern: "/api/v1/nodes", access: viewer, handler: s.apiNodes},
		{method: "POST", pattern: "/api/v1/nodes", access: operator, handler: s.apiNodeAdd},
		{method: "POST", pattern: "/api/v1/nodes/import", access: operator, handler: s.apiNodesImport, maxBody: maxImportBody},
		{method: "GET", pattern: "/api/v1/nodes/{id}", access: viewer, handler: s.apiNode},
		{method: "DELETE", pattern: "/api/v1/nodes/{id}", access: operator, handler: s.apiNodeDelete},
		{method: "GET", pattern: "/api/v1/credentials", access: viewer, handler: s.apiCredentials},
		{method: "POST", pattern: "/api/v1/credentials", access: operator, handler: s.apiCredentialAdd},
		{method: "DELETE", pattern: "/api/v1/credentials/{id}", access: operator, handler: s.apiCredentialDelete},
		{method: "GET", pattern: "/api/v1/baselines", access: viewer, handler: s.apiBaselines},
		{method: "POST", pattern: "/api/v1/baselines", access: operator, handler: s.apiBaselineAdd},
		{method: "GET", pattern: "/api/v1/baselines/{id}", access: viewer, handler: s.apiBaseline},
		{method: "DELETE", pattern: "/api/v1/baselines/{id}", access: operator, handler: s.apiBaselineDelete},
		{method: "POST", pattern: "/api/v1/baselines/{id}/check", access: operator, handler: s.apiBaselineCheck},
		{method: "GET", pattern: "/api/v1/inventory", access: viewer, handler: s.apiInventory},
		{method: "GET", pattern: "/api/v1/runs", access: viewer, handler: s.apiRuns},
		{method: "POST", pattern: "/api/v1/runs", access: operator, handler: s.apiRunStart},
		{method: "GET", pattern: "/api/v1/runs/{id}", access: viewer, handler: s.apiRun},
		{method: "POST", pattern: "/api/v1/runs/{id}/cancel", access: operator, handler: s.apiRunCancel},
		{method: "GET", pattern: "/api/v1/runs/{id}/events", access: viewer, handler: s.apiRunEvents},
		{method: "GET", pattern: "/api/v1/runs/{id}/report", access: viewer, handler: s.report},
		{method: "GET", pattern: "/api/v1/audit", access: viewer, handler: s.apiAudit},
		{method: "GET", pattern: "/api/v1/accounts", access: admin, handler: s.apiAccounts},
		{method: "POST", pattern: "/api/v1/accounts", access: admin, handler: s.apiAccountAdd},
		{method: "GET", pattern: "/api/v1/tokens", access: viewer, handler: s.apiTokens},
		{method: "POST", pattern: "/api/v1/tokens", access: viewer, handler: s.apiTokenAdd},
		{method: "DELETE", pattern: "/api/v1/tokens/{id}", access: viewer, handler: s.apiTokenDelete},
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

func (s *Server) staticFile(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	s.static.ServeHTTP(w, r)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	// Unknown paths need a login as much as known ones: no probing.
	_, ok := s.authenticate(r)
	switch {
	case isAPI(r) && !ok:
		writeError(w, http.StatusUnauthorized, "authentication required")
	case isAPI(r):
		writeError(w, http.StatusNotFound, "not found")
	case !ok:
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	default:
		http.NotFound(w, r)
	}
}

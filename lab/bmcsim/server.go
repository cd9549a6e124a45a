package bmcsim

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"time"
)

// ServeHTTP serves one request: 503 while the BMC is coming back from a
// reset, otherwise the Redfish service. Paths match with and without a
// trailing slash, and everything but the service root, its few public
// neighbours and logging in needs a session or basic auth.
func (b *BMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		b.logf("bmcsim: %s %s %s -> %d (%s)", b.opts.Flavor, r.Method, r.URL.RequestURI(), rec.status, time.Since(start).Round(time.Millisecond))
	}()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.writeError(rec, http.StatusServiceUnavailable, b.prof.baseMsg("ServiceTemporarilyUnavailable", "1"))
		return
	}
	b.reqs.Add(1)
	defer b.reqs.Done()
	ph := b.phase
	b.mu.Unlock()
	if ph != phaseUp {
		rec.Header().Set("Retry-After", "1")
		b.writeError(rec, http.StatusServiceUnavailable, b.prof.baseMsg("ServiceTemporarilyUnavailable", "1"))
		return
	}
	b.handler.ServeHTTP(rec, r)
}

// statusRecorder remembers the status sent, for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// authorized checks a request's credentials: an X-Auth-Token of a live
// session, HTTP basic auth with the account, or (iLO's upload form) a
// sessionKey cookie.
func (b *BMC) authorized(r *http.Request) (*session, bool) {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		return b.sessionByToken(tok)
	}
	if u, p, ok := r.BasicAuth(); ok {
		return nil, b.checkPassword(u, p)
	}
	if b.prof.flavor == ILO {
		if c, err := r.Cookie("sessionKey"); err == nil {
			return b.sessionByToken(c.Value)
		}
	}
	return nil, false
}

// sessionByToken finds the live session of a token and marks it used.
func (b *BMC) sessionByToken(tok string) (*session, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireSessionsLocked()
	s := b.st.sessions[tok]
	if s != nil {
		s.used = b.now()
	}
	return s, s != nil
}

// expireSessionsLocked ends the sessions unused for SessionTimeout. The
// caller holds b.mu.
func (b *BMC) expireSessionsLocked() {
	now := b.now()
	for tok, s := range b.st.sessions {
		if now.Sub(s.used) > b.opts.SessionTimeout {
			delete(b.st.sessions, tok)
			b.logf("bmcsim: %s: session %s expired", b.opts.Flavor, s.id)
		}
	}
}

func (b *BMC) checkPassword(user, pass string) bool {
	okU := subtle.ConstantTimeCompare([]byte(user), []byte(b.opts.User)) == 1
	okP := subtle.ConstantTimeCompare([]byte(pass), []byte(b.opts.Password)) == 1
	return okU && okP
}

// handlerFunc is a Redfish handler.
type handlerFunc func(w http.ResponseWriter, r *http.Request)

// router dispatches on normalized paths and answers what it does not know
// the Redfish way.
type router struct {
	b      *BMC
	mux    *http.ServeMux
	public map[string]bool // "METHOD path" that need no credentials
}

func (rt *router) handle(pattern string, public bool, h handlerFunc) {
	rt.mux.HandleFunc(pattern, h)
	if public {
		rt.public[pattern] = true
	}
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := rt.b
	// Redfish paths work with and without a trailing slash.
	p := r.URL.Path
	for len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = p, ""
	_, pattern := rt.mux.Handler(r2)
	if pattern == "" {
		rt.notFound(w, r2)
		return
	}
	if !rt.public[pattern] {
		_, ok := b.authorized(r2)
		// iLO's upload form may carry its session in a form field;
		// that handler checks it itself.
		if !ok && !(b.prof.flavor == ILO && r2.Method == http.MethodPost && p == b.prof.httpPushURI) {
			b.writeError(w, http.StatusUnauthorized, b.prof.baseMsg("NoValidSession"))
			return
		}
	}
	// Through the mux again, which sets the path values.
	if wantsExpand(r2) {
		rt.serveExpanded(w, r2)
		return
	}
	rt.mux.ServeHTTP(w, r2)
}

// notFound answers a request no route takes: 405 if the path exists for
// GET, 404 otherwise.
func (rt *router) notFound(w http.ResponseWriter, r *http.Request) {
	b := rt.b
	if r.Method != http.MethodGet {
		g := r.Clone(r.Context())
		g.Method = http.MethodGet
		if _, pattern := rt.mux.Handler(g); pattern != "" {
			if _, ok := b.authorized(r); !ok && !rt.public[pattern] {
				b.writeError(w, http.StatusUnauthorized, b.prof.baseMsg("NoValidSession"))
				return
			}
			w.Header().Set("Allow", "GET, HEAD")
			b.writeError(w, http.StatusMethodNotAllowed, b.prof.baseMsg("OperationNotAllowed"))
			return
		}
	}
	if _, ok := b.authorized(r); !ok && strings.HasPrefix(r.URL.Path, rootPath+"/") {
		b.writeError(w, http.StatusUnauthorized, b.prof.baseMsg("NoValidSession"))
		return
	}
	b.writeError(w, http.StatusNotFound, b.prof.baseMsg("ResourceMissingAtURI", r.URL.Path))
}

// routes builds the flavor's Redfish service.
func (b *BMC) routes() http.Handler {
	p := b.prof
	rt := &router{b: b, mux: http.NewServeMux(), public: map[string]bool{}}
	get := func(path string, public bool, render func(r *http.Request) (obj, bool)) {
		rt.handle("GET "+path, public, func(w http.ResponseWriter, r *http.Request) {
			b.mu.Lock()
			o, ok := render(r)
			b.mu.Unlock()
			if !ok {
				b.writeError(w, http.StatusNotFound, p.baseMsg("ResourceMissingAtURI", r.URL.Path))
				return
			}
			writeJSON(w, http.StatusOK, o)
		})
	}
	static := func(path string, render func() obj) {
		get(path, false, func(*http.Request) (obj, bool) { return render(), true })
	}

	rt.handle("GET /redfish", true, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, obj{"v1": "/redfish/v1/"})
	})
	get(rootPath, true, func(*http.Request) (obj, bool) { return b.serviceRoot(), true })
	get(rootPath+"/odata", true, func(*http.Request) (obj, bool) { return b.odataService(), true })
	rt.handle("GET "+rootPath+"/$metadata", true, b.metadata)

	static("/redfish/v1/SessionService", b.sessionService)
	static(sessionsPath, b.sessionCollection)
	rt.handle("POST "+sessionsPath, true, b.login)
	get(sessionsPath+"/{id}", false, func(r *http.Request) (obj, bool) { return b.sessionResource(r.PathValue("id")) })
	rt.handle("DELETE "+sessionsPath+"/{id}", false, b.logout)

	static("/redfish/v1/AccountService", b.accountService)
	static("/redfish/v1/AccountService/Accounts", b.accountCollection)
	get("/redfish/v1/AccountService/Accounts/{id}", false, func(r *http.Request) (obj, bool) { return b.account(r.PathValue("id")) })
	static("/redfish/v1/AccountService/Roles", b.roleCollection)
	get("/redfish/v1/AccountService/Roles/{id}", false, func(r *http.Request) (obj, bool) { return b.role(r.PathValue("id")) })

	static("/redfish/v1/Managers", b.managerCollection)
	static(p.managerPath(), b.manager)
	rt.handle("POST "+p.managerPath()+"/Actions/Manager.Reset", false, b.managerReset)
	static("/redfish/v1/Systems", b.systemCollection)
	static(p.systemPath(), b.system)
	static(p.systemPath()+"/Bios", b.bios)
	rt.handle("POST "+p.systemPath()+"/Actions/ComputerSystem.Reset", false, b.systemReset)
	static("/redfish/v1/Chassis", b.chassisCollection)
	static(p.chassisPath(), b.chassis)

	static(updatePath, b.updateService)
	static(fwInvPath, b.firmwareCollection)
	get(fwInvPath+"/{id}", false, func(r *http.Request) (obj, bool) { return b.firmwareResource(r.PathValue("id")) })
	if p.simpleUpdate {
		rt.handle("POST "+simplePath, false, b.simpleUpdate)
	}
	switch p.flavor {
	case ILO:
		static(updatePath+"/SoftwareInventory", func() obj {
			return b.collection(updatePath+"/SoftwareInventory", "#SoftwareInventoryCollection.SoftwareInventoryCollection", "Software Inventory", nil)
		})
		rt.handle("POST "+p.httpPushURI, false, b.iloUpload)
		static("/redfish/v1/ResourceDirectory", b.resourceDirectory)
	case IDRAC:
		rt.handle("POST "+p.multipartURI, false, b.pushUpdate)
		static(p.dellJobsPath(), func() obj { return b.jobCollection(p.dellJobsPath()) })
		get(p.dellJobsPath()+"/{id}", false, func(r *http.Request) (obj, bool) { return b.dellJob(p.dellJobsPath(), r.PathValue("id")) })
		static("/redfish/v1/JobService", b.jobService)
		static(jobsPath, func() obj { return b.jobCollection(jobsPath) })
		get(jobsPath+"/{id}", false, func(r *http.Request) (obj, bool) { return b.dellJob(jobsPath, r.PathValue("id")) })
	case OpenBMC:
		rt.handle("POST "+p.httpPushURI, false, b.pushUpdate)
		rt.handle("POST "+p.multipartURI, false, b.pushUpdate)
		rt.handle("GET "+tasksPath+"/{id}/Monitor", false, b.taskMonitor)
	}

	static("/redfish/v1/TaskService", b.taskService)
	static(tasksPath, b.taskCollection)
	rt.handle("GET "+tasksPath+"/{id}", false, b.task)

	static("/redfish/v1/JsonSchemas", func() obj {
		return b.collection("/redfish/v1/JsonSchemas", "#JsonSchemaFileCollection.JsonSchemaFileCollection", "JSON Schemas", nil)
	})
	static("/redfish/v1/Registries", func() obj {
		return b.collection("/redfish/v1/Registries", "#MessageRegistryFileCollection.MessageRegistryFileCollection", "Registry File Collection", nil)
	})
	return rt
}

package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/fleetup/fleetup/store"
	"time"
)

// sessionCookie is the name of the browser session's cookie.
const sessionCookie = "fleetup_session"

// caller is who makes a request: an account, by a cookie session (session
// set) or by an API token (session nil).
type caller struct {
	acct    *store.Account
	session *store.Session
}

// viaToken reports whether the request came with an API token.
func (c *caller) viaToken() bool { return c.session == nil }

// csrf is the session's CSRF token, for forms ("" with an API token).
func (c *caller) csrf() string {
	if c.session == nil {
		return ""
	}
	return c.session.CSRF
}

type ctxKey struct{}

func callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(ctxKey{}).(*caller)
	return c
}

// authenticate finds the caller of r: an Authorization: Bearer API token
// first, else the session cookie.
func (s *Server) authenticate(r *http.Request) (*caller, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || secret == "" {
			return nil, false
		}
		acct, err := s.db.APITokenAccount(r.Context(), strings.TrimSpace(secret))
		if err != nil {
			return nil, false
		}
		return &caller{acct: acct}, true
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, false
	}
	sess, acct, err := s.db.Session(r.Context(), ck.Value)
	if err != nil || acct == nil || sess == nil {
		return nil, false
	}
	return &caller{acct: acct, session: sess}, true
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

// wrap applies a route's rules before its handler: the body limit, the
// cross-origin check, authentication, CSRF and the role.
func (s *Server) wrap(rt route) http.Handler {
	limit := rt.maxBody
	if limit == 0 {
		limit = maxBody
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		if rt.access != public || !strings.HasPrefix(rt.pattern, "/static/") {
			w.Header().Set("Cache-Control", "no-store")
		}
		if !safeMethod(r.Method) {
			if err := s.xorigin.Check(r); err != nil {
				s.deny(w, r, http.StatusForbidden, "cross-origin request refused")
				return
			}
		}
		if rt.access == public {
			rt.handler(w, r)
			return
		}
		c, ok := s.authenticate(r)
		if !ok {
			if isAPI(r) {
				writeError(w, http.StatusUnauthorized, "authentication required")
				return
			}
			target := "/login"
			if safeMethod(r.Method) && r.URL.Path != "/" {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if !c.viaToken() && !safeMethod(r.Method) {
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf")
			}
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(c.session.CSRF)) != 1 {
				s.deny(w, r, http.StatusForbidden, "missing or wrong CSRF token")
				return
			}
		}
		if !allowed(c.acct.Role, rt.access) {
			s.deny(w, r, http.StatusForbidden, "your role ("+c.acct.Role+") may not do this")
			return
		}
		rt.handler(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)))
	})
}

func allowed(role string, a access) bool {
	switch a {
	case public, viewer:
		return role == store.RoleViewer || role == store.RoleOperator || role == store.RoleAdmin
	case operator:
		return role == store.RoleOperator || role == store.RoleAdmin
	case admin:
		return role == store.RoleAdmin
	}
	return false
}

// deny answers a refused request: JSON for the API, a short page else.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if isAPI(r) {
		writeError(w, code, msg)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(http.StatusText(code) + ": " + msg + "\n"))
}

// remoteIP is the address the request came from, without the port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// audit records what a caller did; a failure to record is logged.
func (s *Server) audit(r *http.Request, c *caller, action, object, detail string) {
	e := store.AuditEntry{
		Time:   s.now(),
		Action: action,
		Object: object,
		Detail: detail,
		Remote: remoteIP(r),
	}
	if c != nil && c.acct != nil {
		e.AccountID = c.acct.ID
		e.Account = c.acct.Name
	}
	if err := s.db.AddAudit(context.WithoutCancel(r.Context()), e); err != nil {
		s.log.Error("audit", "action", action, "err", err)
	}
}

func (s *Server) setSessionCookie(w http.ResponseWriter, sess *store.Session) {
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    sess.Token,
		Path:     "/",
		Expires:  sess.Expires,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// safeNext is a local path to go to after the login, or "/".
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

type loginData struct {
	Name      string
	Next      string
	Error     string
	NeedSetup bool
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if c, ok := s.authenticate(r); ok && c.session != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	d := loginData{Next: safeNext(r.URL.Query().Get("next"))}
	if n, err := s.db.AccountCount(r.Context()); err == nil && n == 0 {
		d.NeedSetup = true
	}
	s.render(w, r, http.StatusOK, "login", "Log in", d)
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	password := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	ip := remoteIP(r)
	d := loginData{Name: name, Next: next}

	if wait := s.limiter.wait(ip, name); wait > 0 {
		w.Header().Set("Retry-After", retryAfter(wait))
		d.Error = "Too many failed logins. Try again in " + retryAfter(wait) + " seconds."
		s.render(w, r, http.StatusTooManyRequests, "login", "Log in", d)
		return
	}
	acct, err := s.db.Authenticate(r.Context(), name, []byte(password))
	if err != nil {
		if !errors.Is(err, store.ErrBadCredentials) {
			s.log.Error("authenticate", "err", err)
		}
		s.limiter.fail(ip, name)
		s.audit(r, &caller{acct: &store.Account{Name: name}}, "login.failed", name, "")
		d.Error = "Wrong name or password."
		s.render(w, r, http.StatusUnauthorized, "login", "Log in", d)
		return
	}
	s.limiter.success(name)
	sess, err := s.db.NewSession(r.Context(), acct.ID, s.ttl)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.setSessionCookie(w, sess)
	s.audit(r, &caller{acct: acct}, "login", acct.Name, "")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logoutPost(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	if c.session != nil {
		if err := s.db.DeleteSession(r.Context(), c.session.Token); err != nil {
			s.log.Error("delete session", "err", err)
		}
	}
	clearSessionCookie(w)
	s.audit(r, c, "logout", c.acct.Name, "")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

type setupData struct {
	Token string
	Name  string
	Error string
	Done  bool
}

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	n, err := s.db.AccountCount(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	token := r.URL.Query().Get("token")
	if n > 0 || token == "" {
		s.render(w, r, http.StatusNotFound, "setup", "Set up", setupData{Done: n > 0, Error: "Open the setup link that `fleetup serve` printed at its first start."})
		return
	}
	s.render(w, r, http.StatusOK, "setup", "Set up", setupData{Token: token})
}

func (s *Server) setupPost(w http.ResponseWriter, r *http.Request) {
	token := r.PostFormValue("token")
	if token == "" {
		token = r.URL.Query().Get("token")
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	password := r.PostFormValue("password")
	d := setupData{Token: token, Name: name}
	n, err := s.db.AccountCount(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if n > 0 {
		d.Done, d.Token = true, ""
		d.Error = "An administrator exists already: log in."
		s.render(w, r, http.StatusForbidden, "setup", "Set up", d)
		return
	}
	if msg := checkAccountInput(name, password, r.PostFormValue("password2")); msg != "" {
		d.Error = msg
		s.render(w, r, http.StatusBadRequest, "setup", "Set up", d)
		return
	}
	ip := remoteIP(r)
	if wait := s.limiter.wait(ip, ""); wait > 0 {
		w.Header().Set("Retry-After", retryAfter(wait))
		d.Error = "Too many attempts. Try again later."
		s.render(w, r, http.StatusTooManyRequests, "setup", "Set up", d)
		return
	}
	if err := s.db.UseSetupToken(r.Context(), token); err != nil {
		s.limiter.fail(ip, "")
		d.Token = ""
		d.Error = "This setup link is not valid (unknown, used or expired)."
		s.render(w, r, http.StatusForbidden, "setup", "Set up", d)
		return
	}
	acct, err := s.db.CreateAccount(r.Context(), name, []byte(password), store.RoleAdmin)
	if err != nil {
		// The link is used up: without a new one nobody could set up the
		// service short of restarting it. The new link goes to the
		// service's log, where the first one was printed.
		if n, cerr := s.db.AccountCount(r.Context()); cerr == nil && n == 0 {
			if tok, terr := s.db.NewSetupToken(r.Context(), time.Hour); terr == nil {
				s.log.Warn("the first administrator could not be created; a new one-time setup link, valid one hour", "path", "/setup?token="+tok, "err", err)
			}
		}
		s.serverError(w, r, err)
		return
	}
	sess, err := s.db.NewSession(r.Context(), acct.ID, s.ttl)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.setSessionCookie(w, sess)
	s.audit(r, &caller{acct: acct}, "setup", acct.Name, "first administrator")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// checkAccountInput says what is wrong with a new account's name and
// password ("" when nothing). password2, when not empty, must repeat it.
func checkAccountInput(name, password, password2 string) string {
	switch {
	case name == "":
		return "Name is required."
	case len(name) > 64 || strings.ContainsAny(name, " \t\r\n<>\"'&/\\"):
		return "Name: at most 64 characters, no spaces, quotes or slashes."
	case len(password) < 10:
		return "Password: at least 10 characters."
	case len(password) > 1024:
		return "Password: at most 1024 characters."
	case password2 != "" && password2 != password:
		return "The two passwords differ."
	}
	return ""
}

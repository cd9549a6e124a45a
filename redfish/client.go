package redfish

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// serviceRoot is where every Redfish service answers, without a session.
const serviceRoot = "/redfish/v1/"

// defaultSessions is the session collection when the service root does not
// link one (DSP0266 fixes this URI).
const defaultSessions = "/redfish/v1/SessionService/Sessions"

// closeTimeout bounds the session's deletion in Close.
const closeTimeout = 10 * time.Second

// Client is a logged-in connection to one BMC's Redfish service.
type Client struct {
	cfg      Config // Password cleared: the copy is c.password
	endpoint string // "https://host:port" as configured, without a trailing slash
	base     *url.URL
	origin   origin
	tlsConf  *tls.Config
	tr       *http.Transport
	hc       *http.Client
	log      *slog.Logger

	mu       sync.Mutex
	password []byte
	token    string // X-Auth-Token of the session
	session  string // the session's URI (path), to delete it
	api      *gofish.APIClient
	root     root
	manager  string // the first Manager's Id, once known
	closed   bool

	localMu sync.Mutex // apart from mu: the dialler sets local
	local   netip.Addr
}

// Connect reaches the BMC's service root, checks that it is a Redfish
// service, and creates a session (X-Auth-Token). Its errors are specific: a
// *TLSError when the handshake was refused (it unwraps to the caller's
// verification error), an *UnreachableError when the BMC could not be
// reached, a *NotRedfishError when the endpoint is not a Redfish service,
// an *AuthError when the login was refused.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	base, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{
		endpoint: base.String(),
		base:     base,
		origin:   originOf(base),
		password: bytes.Clone(cfg.Password),
		log:      cfg.Logger.With("bmc", base.Host),
	}
	cfg.Password = nil
	c.cfg = cfg
	c.tlsConf = cfg.TLS.Clone()
	if c.tlsConf.ServerName == "" {
		c.tlsConf.ServerName = base.Hostname()
	}
	c.hc = c.newHTTPClient()

	r, err := c.probe(ctx)
	if err != nil {
		c.shutdown()
		return nil, err
	}
	c.root = r
	if err := c.login(ctx); err != nil {
		c.shutdown()
		return nil, err
	}
	return c, nil
}

// shutdown releases what a Client holds without talking to the BMC.
func (c *Client) shutdown() {
	c.mu.Lock()
	clear(c.password)
	c.password = nil
	c.closed = true
	c.mu.Unlock()
	c.tr.CloseIdleConnections()
}

// LocalAddr is the manager's address on its last connection to the BMC:
// an address the BMC can reach the manager at (for an ImageURI). It is
// valid once Connect has returned.
func (c *Client) LocalAddr() netip.Addr {
	c.localMu.Lock()
	defer c.localMu.Unlock()
	return c.local
}

func (c *Client) setLocal(a netip.Addr) {
	c.localMu.Lock()
	c.local = a
	c.localMu.Unlock()
}

// reply is a response from the BMC, its body read (bounded).
type reply struct {
	method string
	uri    string
	status int
	header http.Header
	body   []byte
}

// ok reports a 2xx status.
func (r *reply) ok() bool { return r.status >= 200 && r.status < 300 }

// statusError is r as an error, with the BMC's messages.
func (c *Client) statusError(r *reply) *StatusError {
	return &StatusError{Endpoint: c.endpoint, Method: r.method, URI: r.uri, Status: r.status, Messages: errorMessages(r.body)}
}

// request is one request to the BMC.
type request struct {
	method string
	uri    string // a path on the endpoint, from resolve
	body   io.Reader
	size   int64  // the body's length; -1 unknown (never for BMCs: they refuse chunked bodies)
	ctype  string // Content-Type of the body
	anon   bool   // without the session token
}

// do sends req and reads the whole answer. Any status is a reply; an error
// is an exchange that did not complete (see classify).
func (c *Client) do(ctx context.Context, req request) (*reply, error) {
	hr, err := http.NewRequestWithContext(ctx, req.method, c.endpoint+req.uri, req.body)
	if err != nil {
		return nil, fmt.Errorf("redfish at %s: %s %s: %w", c.endpoint, req.method, req.uri, err)
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("OData-Version", "4.0")
	if req.body != nil {
		hr.ContentLength = req.size
		hr.Header.Set("Content-Type", req.ctype)
		if req.size == 0 {
			hr.Body = http.NoBody
		}
	}
	if !req.anon {
		c.mu.Lock()
		tok, closed := c.token, c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if tok != "" {
			hr.Header.Set("X-Auth-Token", tok)
		}
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, c.classify(ctx, req.method, req.uri, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.classify(ctx, req.method, req.uri, err)
	}
	return &reply{method: req.method, uri: req.uri, status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// get is an authenticated GET.
func (c *Client) get(ctx context.Context, uri string) (*reply, error) {
	return c.do(ctx, request{method: http.MethodGet, uri: uri})
}

// getOK is an authenticated GET that must answer 2xx.
func (c *Client) getOK(ctx context.Context, uri string) (*reply, error) {
	r, err := c.get(ctx, uri)
	if err != nil {
		return nil, err
	}
	if !r.ok() {
		return nil, c.statusError(r)
	}
	return r, nil
}

// probe reads the service root without a session and checks that it is
// Redfish. A root that demands authentication is taken on trust, with the
// standard links; the root is read again after login.
func (c *Client) probe(ctx context.Context) (root, error) {
	r, err := c.do(ctx, request{method: http.MethodGet, uri: serviceRoot, anon: true})
	if err != nil {
		return root{}, err
	}
	switch {
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return defaultRoot(), nil
	case r.status >= 500:
		return root{}, &UnreachableError{Endpoint: c.endpoint, Err: c.statusError(r)}
	case r.status != http.StatusOK:
		return root{}, &NotRedfishError{Endpoint: c.endpoint, Reason: fmt.Sprintf("GET %s answered %d %s", serviceRoot, r.status, http.StatusText(r.status))}
	}
	rt, err := parseRoot(r.body, c.resolver(serviceRoot))
	if err != nil {
		return root{}, &NotRedfishError{Endpoint: c.endpoint, Reason: fmt.Sprintf("GET %s: %v", serviceRoot, err)}
	}
	return rt, nil
}

// login creates a session and makes it the client's. The password goes to
// the BMC in a body built here and zeroed after the request: gofish's
// CreateSession would take it as a string.
func (c *Client) login(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	body := sessionBody(c.cfg.User, c.password)
	sessions := c.root.sessions
	c.mu.Unlock()
	defer clear(body)

	r, err := c.do(ctx, request{method: http.MethodPost, uri: sessions, body: bytes.NewReader(body), size: int64(len(body)), ctype: "application/json", anon: true})
	if err != nil {
		return err
	}
	switch {
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return &AuthError{Endpoint: c.endpoint, User: c.cfg.User, Status: r.status, Messages: errorMessages(r.body)}
	case r.status >= 500:
		return &UnreachableError{Endpoint: c.endpoint, Err: c.statusError(r)}
	case !r.ok():
		return fmt.Errorf("redfish at %s: create a session: %w", c.endpoint, c.statusError(r))
	}
	token := r.header.Get("X-Auth-Token")
	if token == "" || len(token) > 4096 {
		return fmt.Errorf("redfish at %s: the BMC created a session without a usable X-Auth-Token", c.endpoint)
	}
	sess, err := c.resolve(sessions, r.header.Get("Location"))
	if err != nil {
		// Without a Location, the session's @odata.id in the body.
		sess, err = c.resolve(sessions, odataID(r.body))
	}
	if err != nil {
		c.log.Warn("redfish: the BMC did not say where the new session is; it cannot be deleted", "err", err)
		sess = ""
	}

	api, err := c.newAPI(ctx, sess, token)
	if err != nil {
		c.deleteSession(context.WithoutCancel(ctx), sess, token)
		return err
	}
	var rt root
	if c.rootAssumed() {
		// The root wanted a session: read it now that there is one.
		if rt, err = c.readRoot(ctx, api); err != nil {
			c.deleteSession(context.WithoutCancel(ctx), sess, token)
			return err
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.Join(ErrClosed, c.deleteSession(context.WithoutCancel(ctx), sess, token))
	}
	c.token, c.session, c.api = token, sess, api
	if rt.version != "" || rt.sessions != "" {
		c.root = rt
	}
	c.mu.Unlock()
	c.log.Debug("redfish: logged in", "user", c.cfg.User, "session", sess)
	return nil
}

// rootAssumed reports whether c.root holds the standard links rather than
// what the BMC said.
func (c *Client) rootAssumed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.root.assumed
}

// newAPI returns a gofish client on c's HTTP client, with the session.
// gofish reads the service root on connecting; the error is classified.
func (c *Client) newAPI(ctx context.Context, sess, token string) (*gofish.APIClient, error) {
	api, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint:              c.endpoint,
		HTTPClient:            c.hc,
		Session:               &gofish.Session{ID: sess, Token: token},
		ReuseConnections:      true, // else gofish closes every connection after its request
		NoModifyTransport:     true,
		MaxConcurrentRequests: 3,
	})
	if err != nil {
		return nil, c.gofishError(ctx, http.MethodGet, serviceRoot, err)
	}
	return api, nil
}

// readRoot reads the service root with the session, through gofish's
// client.
func (c *Client) readRoot(ctx context.Context, api *gofish.APIClient) (root, error) {
	resp, err := api.WithContext(ctx).Get(serviceRoot)
	if err != nil {
		return root{}, c.gofishError(ctx, http.MethodGet, serviceRoot, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return root{}, c.classify(ctx, http.MethodGet, serviceRoot, err)
	}
	rt, err := parseRoot(b, c.resolver(serviceRoot))
	if err != nil {
		return root{}, &NotRedfishError{Endpoint: c.endpoint, Reason: fmt.Sprintf("GET %s: %v", serviceRoot, err)}
	}
	return rt, nil
}

// gofishError turns an error of a gofish call into this package's: a
// status as a *StatusError (401 included), the rest as classify does.
func (c *Client) gofishError(ctx context.Context, method, uri string, err error) error {
	var se *schemas.Error
	if errors.As(err, &se) && se.HTTPReturnedStatusCode != 0 {
		msgs := []string{}
		if se.Message != "" {
			msgs = append(msgs, clean(se.Message))
		}
		for i, m := range se.ExtendedInfos {
			if i >= maxMessages {
				break
			}
			msgs = append(msgs, formatMessage(m.Message, m.MessageID))
		}
		if len(msgs) > maxMessages {
			msgs = msgs[:maxMessages]
		}
		e := &StatusError{Endpoint: c.endpoint, Method: method, URI: uri, Status: se.HTTPReturnedStatusCode, Messages: msgs}
		if e.Status >= 500 {
			return &UnreachableError{Endpoint: c.endpoint, Err: e}
		}
		return e
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) {
		return fmt.Errorf("redfish at %s: %s %s: unreadable JSON: %w", c.endpoint, method, uri, err)
	}
	return c.classify(ctx, method, uri, err)
}

// apiFor returns the gofish client bound to ctx.
func (c *Client) apiFor(ctx context.Context) (*gofish.APIClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	return c.api.WithContext(ctx), nil
}

// sessionBody is {"UserName": user, "Password": password} in a fresh slice
// the caller zeroes.
func sessionBody(user string, password []byte) []byte {
	u, _ := json.Marshal(user)
	b := make([]byte, 0, len(u)+len(password)*6+32)
	b = append(b, `{"UserName":`...)
	b = append(b, u...)
	b = append(b, `,"Password":"`...)
	for _, ch := range password {
		switch {
		case ch == '"' || ch == '\\':
			b = append(b, '\\', ch)
		case ch < 0x20 || ch == 0x7f:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[ch>>4], "0123456789abcdef"[ch&0xf])
		default:
			b = append(b, ch)
		}
	}
	return append(b, `"}`...)
}

// deleteSession deletes a session on the BMC. A session the BMC no longer
// knows (404, or 401 for its token) counts as deleted.
func (c *Client) deleteSession(ctx context.Context, sess, token string) error {
	if sess == "" {
		return fmt.Errorf("redfish at %s: the session was not deleted: the BMC never said where it is", c.endpoint)
	}
	ctx, cancel := context.WithTimeout(ctx, min(closeTimeout, c.cfg.RequestTimeout))
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.endpoint+sess, nil)
	if err != nil {
		return err
	}
	hr.Header.Set("X-Auth-Token", token)
	hr.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		return fmt.Errorf("redfish at %s: delete session %s: %w", c.endpoint, sess, c.classify(ctx, http.MethodDelete, sess, err))
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300,
		resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusUnauthorized:
		return nil
	}
	return fmt.Errorf("redfish at %s: delete session: %w", c.endpoint,
		c.statusError(&reply{method: http.MethodDelete, uri: sess, status: resp.StatusCode, body: b}))
}

// Close deletes the session on the BMC (with a deadline of its own, and
// even when ctx is already cancelled), releases idle connections and zeroes
// the kept password. It returns what could not be confirmed: a session the
// BMC may still hold. Close is idempotent; after it, every call returns
// ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	sess, tok := c.session, c.token
	c.session, c.token = "", ""
	clear(c.password)
	c.password = nil
	c.mu.Unlock()

	err := c.deleteSession(context.WithoutCancel(ctx), sess, tok)
	if err == nil {
		c.log.Debug("redfish: logged out", "session", sess)
	}
	c.tr.CloseIdleConnections()
	return err
}

// renewSession is called after a 401 (gone, the 401's error): when the BMC
// no longer accepts the session (it reset), it logs in again; when it still
// does, the 401 was about something else and gone is returned. The old
// session is not deleted: the BMC said it is gone.
func (c *Client) renewSession(ctx context.Context, gone error) error {
	alive, err := c.sessionAlive(ctx)
	if err != nil {
		return err
	}
	if alive {
		return gone
	}
	c.log.Info("redfish: session gone, logging in again")
	return c.login(ctx)
}

// sessionAlive reports whether the BMC still accepts the client's session:
// a GET of the session's own URI with its token.
func (c *Client) sessionAlive(ctx context.Context) (bool, error) {
	c.mu.Lock()
	sess := c.session
	c.mu.Unlock()
	if sess == "" {
		return false, nil
	}
	r, err := c.get(ctx, sess)
	if err != nil {
		return false, err
	}
	if r.status >= 500 {
		return false, &UnreachableError{Endpoint: c.endpoint, Err: c.statusError(r)}
	}
	return r.ok(), nil
}

// WaitService waits, up to timeout, for the Redfish service to answer
// again (after a reset: polling the service root with backoff) and makes
// sure the client has a session the BMC accepts, logging in again when the
// old one is gone. It returns a *ResetTimeoutError when the service did not
// come back in time. A timeout of zero or less is DefaultResetTimeout.
func (c *Client) WaitService(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultResetTimeout
	}
	start := time.Now()
	for {
		if err := c.awaitRoot(ctx, start, timeout, nil); err != nil {
			return err
		}
		alive, err := c.sessionAlive(ctx)
		if err == nil && !alive {
			c.log.Info("redfish: session gone, logging in again")
			if err = c.login(ctx); err == nil {
				return nil
			}
		}
		if err == nil {
			return nil
		}
		if !down(err) {
			return err
		}
		c.log.Debug("redfish: service answered, then failed again", "err", err)
	}
}

// WaitReset is for after an update of the BMC's own firmware, which the BMC
// applies by resetting, often just after its task said it completed: Wait
// may return before the reset, and an update started in that window would
// die in it. WaitReset watches the service root for up to within; when the
// BMC stops answering, it waits for it to come back and logs in again (as
// WaitService, for up to resetTimeout) and returns true. It returns false
// when the BMC kept answering for within. Call it when Wait reported no
// reset (no Progress with Resetting).
func (c *Client) WaitReset(ctx context.Context, within, resetTimeout time.Duration) (bool, error) {
	deadline := time.Now().Add(within)
	for {
		err := c.pingRoot(ctx, c.cfg.RequestTimeout)
		switch {
		case ctx.Err() != nil:
			return false, ctx.Err()
		case down(err):
			c.log.Info("redfish: the BMC is resetting", "err", err)
			return true, c.WaitService(ctx, resetTimeout)
		case err != nil:
			return false, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		if err := sleep(ctx, min(c.cfg.Poll, left)); err != nil {
			return false, err
		}
	}
}

// awaitRoot polls the service root until it answers as a Redfish service,
// with pauses from Poll doubling up to MaxBackoff, until timeout has passed
// since start; then it returns a *ResetTimeoutError naming the last failure
// (last, when nothing failed since). It returns nil at once when the root
// answers at the first try.
func (c *Client) awaitRoot(ctx context.Context, start time.Time, timeout time.Duration, last error) error {
	pause := c.cfg.Poll
	for {
		left := timeout - time.Since(start)
		if left <= 0 {
			return &ResetTimeoutError{Endpoint: c.endpoint, Waited: time.Since(start), Last: last}
		}
		err := c.pingRoot(ctx, left)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !down(err) {
			return err
		}
		last = err
		left = timeout - time.Since(start)
		if left <= 0 {
			continue
		}
		if err := sleep(ctx, min(pause, left)); err != nil {
			return err
		}
		pause = min(pause*2, c.cfg.MaxBackoff)
	}
}

// pingRoot reads the service root without a session, within limit.
func (c *Client) pingRoot(ctx context.Context, limit time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	r, err := c.do(pctx, request{method: http.MethodGet, uri: serviceRoot, anon: true})
	if err != nil {
		if ctx.Err() == nil && pctx.Err() != nil {
			return &UnreachableError{Endpoint: c.endpoint, Err: errors.New("GET " + serviceRoot + ": no answer")}
		}
		return err
	}
	switch {
	case r.status == http.StatusOK:
		if _, err := parseRoot(r.body, c.resolver(serviceRoot)); err != nil {
			// A BMC starting up may serve a placeholder page.
			return &UnreachableError{Endpoint: c.endpoint, Err: fmt.Errorf("GET %s: not yet a service root: %v", serviceRoot, err)}
		}
		return nil
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return nil // answering; the session is another matter
	case r.status >= 500 || r.status == http.StatusNotFound:
		return &UnreachableError{Endpoint: c.endpoint, Err: c.statusError(r)}
	}
	return c.statusError(r)
}

// down reports whether err means the BMC is not answering (yet): the
// errors Wait and WaitService wait through.
func down(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue)
}

// sleep pauses for d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryAfter is the Retry-After of h in seconds form, or 0.
func retryAfter(h http.Header) time.Duration {
	s, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(min(s, 10)) * time.Second // a BMC does not get to stretch the polls further
}

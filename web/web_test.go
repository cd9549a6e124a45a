package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/store"
)

// concrete fills a route pattern's wildcards.
func concrete(pattern string) string {
	p := strings.ReplaceAll(pattern, "{$}", "")
	p = strings.ReplaceAll(p, "{id}", "1")
	return p
}

func TestEveryRouteNeedsALogin(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	c := e.client()
	for _, rt := range e.server.routes {
		if rt.access == public {
			continue
		}
		path := concrete(rt.pattern)
		t.Run(rt.method+" "+rt.pattern, func(t *testing.T) {
			for _, auth := range []string{"", "Bearer fut_not-a-token", "Basic YWRtaW46YWRtaW4="} {
				h := map[string]string{}
				if auth != "" {
					h["Authorization"] = auth
				}
				r := c.request(rt.method, path, "application/x-www-form-urlencoded", "a=b", h)
				if strings.HasPrefix(path, "/api/") {
					if r.code != http.StatusUnauthorized || !strings.Contains(r.body, `"error"`) {
						t.Errorf("auth %q: got %s, want 401 JSON", auth, r)
					}
					continue
				}
				if r.code != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
					t.Errorf("auth %q: got %d Location %q, want 303 to /login", auth, r.code, r.header.Get("Location"))
				}
			}
		})
	}
	// Unknown paths too.
	if r := c.get("/no/such/page"); r.code != http.StatusSeeOther {
		t.Errorf("unknown page: %d", r.code)
	}
	if r := c.get("/api/v1/nope"); r.code != http.StatusUnauthorized {
		t.Errorf("unknown API path: %d", r.code)
	}
	// The public ones answer.
	for _, p := range []string{"/healthz", "/login", "/static/app.css", "/static/app.js"} {
		if r := c.get(p); r.code != http.StatusOK {
			t.Errorf("GET %s: %d", p, r.code)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	c := e.client()
	for _, p := range []string{"/login", "/api/v1/me", "/", "/static/app.css"} {
		r := c.get(p)
		want := map[string]string{
			"Content-Security-Policy":   "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
			"X-Content-Type-Options":    "nosniff",
			"Referrer-Policy":           "no-referrer",
			"Strict-Transport-Security": "max-age=31536000",
		}
		for k, v := range want {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", p, k, got, v)
			}
		}
	}
	// No inline script or style in any page.
	admin := e.account("root", store.RoleAdmin)
	for _, p := range []string{"/", "/nodes", "/credentials", "/baselines", "/inventory", "/review", "/deploy", "/runs", "/audit", "/accounts", "/tokens"} {
		body := admin.get(p).body
		if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]|<style|\sstyle=|\son[a-z]+=`).MatchString(body) {
			t.Errorf("%s has inline script or style", p)
		}
	}
}

func TestSessionCookie(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	if _, err := e.db.CreateAccount(context.Background(), "ann", []byte("password-ann"), store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	r := c.postForm("/login", url.Values{"name": {"ann"}, "password": {"password-ann"}})
	ck := r.header.Get("Set-Cookie")
	for _, want := range []string{"fleetup_session=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(ck, want) {
			t.Errorf("Set-Cookie %q lacks %q", ck, want)
		}
	}
	c.refreshCSRF()
	if r := c.postForm("/logout", url.Values{}); r.code != http.StatusSeeOther {
		t.Fatalf("logout: %s", r)
	}
	if r := c.get("/"); r.code != http.StatusSeeOther {
		t.Errorf("after logout: %d, want a redirect to the login", r.code)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	admin := e.account("root", store.RoleAdmin)
	form := func() url.Values {
		return url.Values{"name": {"lab"}, "user": {"root"}, "password": {"pw-lab-123"}}
	}
	noToken := form()
	noToken.Set("csrf", "")
	r := admin.request("POST", "/credentials", "application/x-www-form-urlencoded", noToken.Encode(), nil)
	if r.code != http.StatusForbidden {
		t.Errorf("POST without CSRF token: %s, want 403", r)
	}
	wrong := form()
	wrong.Set("csrf", admin.csrf+"x")
	if r := admin.postForm("/credentials", wrong); r.code != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d, want 403", r.code)
	}
	if r := admin.postForm("/credentials", form()); r.code != http.StatusSeeOther {
		t.Errorf("POST with the CSRF token: %s, want 303", r)
	}
	// The API with a cookie session needs the header.
	body := `{"name":"lab2","user":"root","password":"pw-lab2-123"}`
	if r := admin.request("POST", "/api/v1/credentials", "application/json", body, nil); r.code != http.StatusForbidden {
		t.Errorf("API POST without X-CSRF-Token: %s, want 403", r)
	}
	if r := admin.api("POST", "/api/v1/credentials", body); r.code != http.StatusCreated {
		t.Errorf("API POST with X-CSRF-Token: %s, want 201", r)
	}
	// A cross-origin request is refused even with the token.
	h := map[string]string{"X-CSRF-Token": admin.csrf, "Origin": "https://evil.example"}
	if r := admin.request("POST", "/api/v1/credentials", "application/json", `{"name":"x","user":"u","password":"p"}`, h); r.code != http.StatusForbidden {
		t.Errorf("cross-origin POST: %s, want 403", r)
	}
	h["Origin"] = e.ts.URL
	if r := admin.request("POST", "/api/v1/credentials", "application/json", `{"name":"same","user":"u","password":"pw-same-1"}`, h); r.code != http.StatusCreated {
		t.Errorf("same-origin POST: %s, want 201", r)
	}
	// Bodies are bounded.
	big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
	if r := admin.api("POST", "/api/v1/nodes", big); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: %d, want 413", r.code)
	}
	// Duplicates are 409.
	if r := admin.api("POST", "/api/v1/credentials", body); r.code != http.StatusConflict {
		t.Errorf("duplicate credential: %s, want 409", r)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	if _, err := e.db.CreateAccount(context.Background(), "ann", []byte("password-ann"), store.RoleOperator); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	wrongPw := c.postForm("/login", url.Values{"name": {"ann"}, "password": {"nope"}})
	unknown := c.postForm("/login", url.Values{"name": {"bob"}, "password": {"nope"}})
	if wrongPw.code != unknown.code || strings.ReplaceAll(wrongPw.body, "ann", "bob") != unknown.body {
		t.Errorf("unknown name and wrong password answer differently:\n%s\n%s", wrongPw, unknown)
	}
	var last response
	for i := 2; i <= 6; i++ {
		last = c.postForm("/login", url.Values{"name": {"ann"}, "password": {"nope"}})
		if i < 5 && last.code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i, last.code)
		}
	}
	if last.code != http.StatusTooManyRequests {
		t.Fatalf("6th failed login: %d, want 429", last.code)
	}
	ra, err := strconv.Atoi(last.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 900 {
		t.Errorf("Retry-After %q", last.header.Get("Retry-After"))
	}
	// Even the right password waits now.
	if r := c.postForm("/login", url.Values{"name": {"ann"}, "password": {"password-ann"}}); r.code != http.StatusTooManyRequests {
		t.Errorf("right password while limited: %d, want 429", r.code)
	}
	// The limiter's waits double up to 15 minutes; a success clears the name.
	l := newLimiter(time.Now)
	if backoff(0) != baseWait || backoff(1) != 2*baseWait || backoff(50) != maxWait {
		t.Errorf("backoff: %v %v %v", backoff(0), backoff(1), backoff(50))
	}
	for range 5 {
		l.fail("198.51.100.7", "ann")
	}
	if l.wait("203.0.113.9", "ann") == 0 || l.wait("198.51.100.7", "zed") == 0 {
		t.Error("limiter: name or address not limited")
	}
	l.success("ann")
	if l.wait("203.0.113.9", "ann") != 0 {
		t.Error("limiter: success did not clear the name")
	}
	var audit []store.AuditEntry
	audit, err = e.db.AuditLog(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(audit, func(a store.AuditEntry) bool { return a.Action == "login.failed" && a.Remote != "" }) {
		t.Errorf("no login.failed audit entry: %+v", audit)
	}
}

func TestSetup(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	c := e.client()
	if r := c.get("/setup"); r.code != http.StatusNotFound {
		t.Errorf("GET /setup without a token: %d", r.code)
	}
	if r := c.get("/setup?token=" + url.QueryEscape(e.setup)); r.code != http.StatusOK || !strings.Contains(r.body, `name="password2"`) {
		t.Errorf("GET /setup with the token: %s", r)
	}
	form := url.Values{"name": {"root"}, "password": {"correct-horse"}, "password2": {"correct-horse"}}
	bad := url.Values{"token": {"wrong"}}
	for k, v := range form {
		bad[k] = v
	}
	if r := c.postForm("/setup", bad); r.code != http.StatusForbidden {
		t.Errorf("setup with a wrong token: %s", r)
	}
	if n, _ := e.db.AccountCount(context.Background()); n != 0 {
		t.Fatalf("a wrong token made an account")
	}
	form.Set("token", e.setup)
	r := c.postForm("/setup", form)
	if r.code != http.StatusSeeOther || !strings.Contains(r.header.Get("Set-Cookie"), "fleetup_session=") {
		t.Fatalf("setup: %s", r)
	}
	c.refreshCSRF() // logged in
	if r := c.get("/api/v1/me"); !strings.Contains(r.body, `"role": "admin"`) {
		t.Errorf("me after setup: %s", r)
	}
	// Once only.
	other := e.client()
	form.Set("name", "mallory")
	if r := other.postForm("/setup", form); r.code != http.StatusForbidden {
		t.Errorf("second setup: %s", r)
	}
	if n, _ := e.db.AccountCount(context.Background()); n != 1 {
		t.Errorf("%d accounts after a second setup", n)
	}
	as, _ := e.db.AuditLog(context.Background(), 0, 10)
	if !slices.ContainsFunc(as, func(a store.AuditEntry) bool { return a.Action == "setup" && a.Account == "root" }) {
		t.Errorf("no setup audit entry: %+v", as)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t, 5*time.Millisecond)
	admin := e.account("root", store.RoleAdmin)
	viewer := e.account("vic", store.RoleViewer)
	op := e.account("olga", store.RoleOperator)
	nodeID := addNodeAPI(t, admin, "n1", "root@198.18.1.2")

	body := fmt.Sprintf(`{"kind":"inventory","node_ids":[%d]}`, nodeID)
	if r := viewer.api("POST", "/api/v1/runs", body); r.code != http.StatusForbidden {
		t.Errorf("viewer starts a run over the API: %s", r)
	}
	if r := viewer.postForm("/inventory", url.Values{"node": {itoa(nodeID)}}); r.code != http.StatusForbidden {
		t.Errorf("viewer starts a run from the page: %s", r)
	}
	if r := viewer.postForm("/deploy", url.Values{"node": {itoa(nodeID)}, "confirm": {"yes"}}); r.code != http.StatusForbidden {
		t.Errorf("viewer deploys from the page: %s", r)
	}
	if len(e.runner.requests()) != 0 {
		t.Fatalf("a viewer's run reached the runner")
	}
	if r := viewer.get("/nodes"); r.code != http.StatusOK || strings.Contains(r.body, "Add a node") {
		t.Errorf("viewer's nodes page: %d, offers to add: %v", r.code, strings.Contains(r.body, "Add a node"))
	}
	if r := op.get("/accounts"); r.code != http.StatusForbidden {
		t.Errorf("operator's accounts page: %d", r.code)
	}
	if r := op.api("POST", "/api/v1/accounts", `{"name":"x","password":"0123456789ab","role":"admin"}`); r.code != http.StatusForbidden {
		t.Errorf("operator makes an account: %s", r)
	}
	if r := op.api("POST", "/api/v1/runs", body); r.code != http.StatusCreated {
		t.Errorf("operator starts a run: %s", r)
	}
	if r := admin.api("POST", "/api/v1/accounts", `{"name":"x","password":"0123456789ab","role":"viewer"}`); r.code != http.StatusCreated {
		t.Errorf("admin makes an account: %s", r)
	}
	e.runner.wait()
	if e.runner.requests()[0].Source != store.SourceUI || e.runner.requests()[0].Account != "olga" {
		t.Errorf("run request: %+v", e.runner.requests()[0])
	}
}

func addNodeAPI(t *testing.T, c *client, name string, targets ...string) int64 {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"name": name, "targets": targets})
	r := c.api("POST", "/api/v1/nodes", string(b))
	if r.code != http.StatusCreated {
		t.Fatalf("add node %s: %s", name, r)
	}
	var n store.Node
	if err := json.Unmarshal([]byte(r.body), &n); err != nil {
		t.Fatal(err)
	}
	return n.ID
}

func TestAuditShowsOwnEntries(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	admin := e.account("root", store.RoleAdmin)
	op := e.account("olga", store.RoleOperator)
	addNodeAPI(t, admin, "admins-node", "root@198.18.1.2")
	addNodeAPI(t, op, "olgas-node", "root@198.18.1.3")

	var got struct{ Entries []store.AuditEntry }
	r := op.get("/api/v1/audit")
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	if len(got.Entries) == 0 {
		t.Fatal("operator sees no entries")
	}
	for _, a := range got.Entries {
		if a.Account != "olga" {
			t.Errorf("operator sees %+v", a)
		}
	}
	page := op.get("/audit").body
	if strings.Contains(page, "admins-node") || !strings.Contains(page, "olgas-node") {
		t.Errorf("operator's audit page shows the wrong entries")
	}
	r = admin.get("/api/v1/audit")
	if !strings.Contains(r.body, "admins-node") || !strings.Contains(r.body, "olgas-node") {
		t.Errorf("admin does not see everyone's entries: %s", r)
	}
	if !strings.Contains(admin.get("/audit").body, "olgas-node") {
		t.Errorf("admin's audit page lacks the operator's entry")
	}
}

func TestAPIToken(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	admin := e.account("root", store.RoleAdmin)
	r := admin.api("POST", "/api/v1/tokens", `{"name":"ci"}`)
	if r.code != http.StatusCreated {
		t.Fatalf("create token: %s", r)
	}
	var tok struct{ Secret string }
	json.Unmarshal([]byte(r.body), &tok)
	if !strings.HasPrefix(tok.Secret, "fut_") {
		t.Fatalf("token secret %q", tok.Secret)
	}
	script := e.client()
	bearer := map[string]string{"Authorization": "Bearer " + tok.Secret}
	r = script.request("POST", "/api/v1/credentials", "application/json", `{"name":"ci-cred","user":"root","password":"from-a-script"}`, bearer)
	if r.code != http.StatusCreated {
		t.Errorf("token POST without CSRF: %s", r)
	}
	r = script.request("GET", "/api/v1/me", "", "", bearer)
	if !strings.Contains(r.body, `"auth": "token"`) {
		t.Errorf("me with a token: %s", r)
	}
	// The token list never shows the secret again.
	if r := admin.get("/api/v1/tokens"); strings.Contains(r.body, tok.Secret) || !strings.Contains(r.body, `"ci"`) {
		t.Errorf("token list: %s", r)
	}
	// A page with a token: pages are for browsers, but a token is a login.
	if r := script.request("GET", "/runs", "", "", bearer); r.code != http.StatusOK {
		t.Errorf("page with a token: %d", r.code)
	}
	// A run started with a token is an API run.
	id := addNodeAPI(t, admin, "n1", "root@198.18.1.2")
	r = script.request("POST", "/api/v1/runs", "application/json", fmt.Sprintf(`{"kind":"inventory","node_ids":[%d]}`, id), bearer)
	if r.code != http.StatusCreated {
		t.Fatalf("run with a token: %s", r)
	}
	e.runner.wait()
	if e.runner.requests()[0].Source != store.SourceAPI {
		t.Errorf("source %q", e.runner.requests()[0].Source)
	}
	var tokens struct{ Tokens []store.APIToken }
	json.Unmarshal([]byte(admin.get("/api/v1/tokens").body), &tokens)
	if r := admin.api("DELETE", "/api/v1/tokens/"+itoa(tokens.Tokens[0].ID), ""); r.code != http.StatusNoContent {
		t.Errorf("delete token: %s", r)
	}
	if r := script.request("GET", "/api/v1/me", "", "", bearer); r.code != http.StatusUnauthorized {
		t.Errorf("deleted token: %d", r.code)
	}
}

// TestSecretsNeverSent adds credentials every way the UI takes them and
// reads every page and API answer, looking for the secrets.
func TestSecretsNeverSent(t *testing.T) {
	e := newEnv(t, 5*time.Millisecond)
	admin := e.account("root", store.RoleAdmin)
	secrets := []string{"Pa55-credentials-page", "Pa55-node-form", "Pa55-bmc-form", "Pa55-api-cred", "Pa55-hpsum-file", "Pa55-bad-node"}
	admin.postForm("/credentials", url.Values{"name": {"lab"}, "user": {"root"}, "password": {secrets[0]}})
	if r := admin.postForm("/nodes", url.Values{"name": {"n1"}, "targets": {"root@198.18.1.2\nbmc://admin@198.18.2.2"},
		"credential": {"new"}, "user": {"root"}, "password": {secrets[1]},
		"bmc_credential": {"new"}, "bmc_user": {"admin"}, "bmc_password": {secrets[2]}}); r.code != http.StatusSeeOther {
		t.Fatalf("add node: %s", r)
	}
	admin.api("POST", "/api/v1/credentials", fmt.Sprintf(`{"name":"api","user":"u","password":%q}`, secrets[3]))
	hpsum := "[TARGETS]\nHOST=198.18.1.9\nUID=root\nPWD=" + secrets[4] + "\n[END]\n"
	if r := admin.postForm("/nodes/import", url.Values{"content": {hpsum}}); r.code != http.StatusOK || strings.Contains(r.body, secrets[4]) {
		t.Fatalf("import: %d, leaks: %v", r.code, strings.Contains(r.body, secrets[4]))
	}
	// Failing forms do not echo the password.
	if r := admin.postForm("/nodes", url.Values{"targets": {"root@bad host"}, "user": {"root"}, "password": {secrets[5]}}); r.code != http.StatusBadRequest || strings.Contains(r.body, secrets[5]) {
		t.Errorf("bad node form: %d, leaks: %v", r.code, strings.Contains(r.body, secrets[5]))
	}
	bad := "[TARGETS]\nHOST=bad host\nUID=root\nPWD=" + secrets[5] + "\n[END]\n"
	if r := admin.postForm("/nodes/import", url.Values{"content": {bad}}); r.code != http.StatusBadRequest || strings.Contains(r.body, secrets[5]) {
		t.Errorf("bad import: %d, leaks: %v", r.code, strings.Contains(r.body, secrets[5]))
	}
	if r := admin.api("POST", "/api/v1/nodes/import", fmt.Sprintf(`{"content":%q}`, bad)); r.code != http.StatusBadRequest || strings.Contains(r.body, secrets[5]) {
		t.Errorf("bad API import: %s", r)
	}
	creds, _ := e.db.Credentials(context.Background())
	if len(creds) != 5 {
		t.Errorf("%d credentials stored, want 5", len(creds))
	}
	// A run, so that run pages exist.
	nodes, _ := e.db.Nodes(context.Background(), "")
	r := admin.api("POST", "/api/v1/runs", fmt.Sprintf(`{"kind":"inventory","node_ids":[%d]}`, nodes[0].ID))
	var run struct{ ID string }
	json.Unmarshal([]byte(r.body), &run)
	e.runner.wait()

	for _, rt := range e.server.routes {
		if rt.method != "GET" || strings.HasPrefix(rt.pattern, "/static/") {
			continue
		}
		var paths []string
		switch {
		case strings.Contains(rt.pattern, "/runs/{id}"):
			p := strings.ReplaceAll(rt.pattern, "{id}", run.ID)
			paths = []string{p, p + "?format=json", p + "?kind=inventory&format=json", p + "?kind=inventory&format=csv"}
		case strings.Contains(rt.pattern, "{id}"):
			for _, id := range []int64{1, 2, 3, 4, 5} {
				paths = append(paths, strings.ReplaceAll(rt.pattern, "{id}", itoa(id)))
			}
		default:
			paths = []string{concrete(rt.pattern)}
		}
		for _, p := range paths {
			body := admin.get(p).body
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Errorf("GET %s shows the secret %q", p, s)
				}
			}
		}
	}
	// The store has them, for the runner.
	_, sec, err := e.db.CredentialSecret(context.Background(), creds[0].ID)
	if err != nil || !slices.Contains(secrets, string(sec)) {
		t.Errorf("stored secret: %v", err)
	}
}

func TestNodeForms(t *testing.T) {
	e := newEnv(t, time.Millisecond)
	admin := e.account("root", store.RoleAdmin)
	r := admin.postForm("/nodes", url.Values{"name": {"n1"}, "targets": {"root@198.18.1.2\nroot@bad host"}})
	if r.code != http.StatusBadRequest {
		t.Fatalf("bad address: %d", r.code)
	}
	m := regexp.MustCompile(`id="targets-error">([^<]*)<`).FindStringSubmatch(r.body)
	if m == nil || !strings.Contains(m[1], "bad host") {
		t.Errorf("no parse error next to the addresses field:\n%s", r.body)
	}
	if !strings.Contains(r.body, "root@198.18.1.2") {
		t.Errorf("the form lost what was typed")
	}
	// The API names the field.
	r = admin.api("POST", "/api/v1/nodes", `{"name":"n1","targets":["root@198.18.1.2","ssh://x@@y"]}`)
	if r.code != http.StatusBadRequest || !strings.Contains(r.body, "targets[1]") {
		t.Errorf("API bad address: %s", r)
	}
	r = admin.api("POST", "/api/v1/nodes", `{"name":"n1","targets":["root@198.18.1.2"],"bogus":1}`)
	if r.code != http.StatusBadRequest {
		t.Errorf("API unknown field: %s", r)
	}

	// A nodes file: a line of two targets is one server.
	nodesFile := "# lab\nroot@198.18.1.2 bmc://admin@198.18.2.2\nroot@[fd42:5e:0:3::2]\nnode3.example\n"
	r = admin.postForm("/nodes/import", url.Values{"content": {nodesFile}, "format": {"nodes"}, "tags": {"lab"}})
	if r.code != http.StatusOK || !strings.Contains(r.body, "3 nodes added") {
		t.Fatalf("import nodes file: %d\n%s", r.code, r.body)
	}
	nodes, _ := e.db.Nodes(context.Background(), "lab")
	if len(nodes) != 3 || len(nodes[0].Targets) != 2 || nodes[0].Targets[1] != "bmc://admin@198.18.2.2" {
		t.Errorf("imported nodes: %+v", nodes)
	}
	// An HP SUM input file, uploaded as a file: PWD= becomes a credential.
	input := "SILENT=YES\n[TARGETS]\nHOST=198.18.1.20\nHOST=198.18.1.21\nUID=root\nPWD=hpsum-secret\n[END]\n[TARGETS]\nTYPE=bmc\nHOST=198.18.2.20\nUID=Administrator\nPWD=ilo-secret\n[END]\n"
	r = uploadImport(t, admin, "hpsum.txt", input)
	if r.code != http.StatusOK || !strings.Contains(r.body, "3 nodes added, 2 credentials stored") {
		t.Fatalf("import HP SUM file: %d\n%s", r.code, r.body)
	}
	all, _ := e.db.Nodes(context.Background(), "")
	byName := map[string]store.Node{}
	for _, n := range all {
		byName[n.Name] = n
	}
	if n := byName["198.18.1.20"]; n.CredentialID == 0 || n.Targets[0] != "root@198.18.1.20" {
		t.Errorf("HP SUM node: %+v", n)
	}
	if n := byName["198.18.2.20"]; n.BMCCredentialID == 0 || n.Targets[0] != "bmc://Administrator@198.18.2.20" {
		t.Errorf("HP SUM BMC node: %+v", n)
	}
	user, sec, err := e.db.CredentialSecret(context.Background(), byName["198.18.2.20"].BMCCredentialID)
	if err != nil || user != "Administrator" || string(sec) != "ilo-secret" {
		t.Errorf("HP SUM credential: %q %v", user, err)
	}
	// Importing again skips what exists.
	r = admin.api("POST", "/api/v1/nodes/import", fmt.Sprintf(`{"format":"nodes","content":%q}`, nodesFile))
	if r.code != http.StatusOK || !strings.Contains(r.body, `"skipped"`) {
		t.Errorf("second import: %s", r)
	}
	// The list filters by tag and shows address kinds.
	page := admin.get("/nodes?tag=lab").body
	if !strings.Contains(page, "kind-bmc") || strings.Contains(page, "198.18.1.20") {
		t.Errorf("tag filter")
	}
	// Delete.
	if r := admin.postForm("/nodes/"+itoa(nodes[0].ID)+"/delete", url.Values{}); r.code != http.StatusSeeOther {
		t.Errorf("delete node: %s", r)
	}
	if r := admin.api("DELETE", "/api/v1/nodes/"+itoa(nodes[0].ID), ""); r.code != http.StatusNotFound {
		t.Errorf("delete again: %s", r)
	}
	// A credential in use is not deleted.
	if r := admin.api("DELETE", "/api/v1/credentials/"+itoa(byName["198.18.2.20"].BMCCredentialID), ""); r.code != http.StatusConflict {
		t.Errorf("delete a used credential: %s", r)
	}
}

func uploadImport(t *testing.T, c *client, name, content string) response {
	t.Helper()
	boundary := "fleetupboundary42"
	var b strings.Builder
	fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n%s\r\n", boundary, c.csrf)
	fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\nauto\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=%q\r\nContent-Type: text/plain\r\n\r\n%s\r\n", boundary, name, content)
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return c.request("POST", "/nodes/import", "multipart/form-data; boundary="+boundary, b.String(), nil)
}

func exampleBaseline(t *testing.T) string {
	dir, err := filepath.Abs("../examples/baseline")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no examples/baseline")
	}
	return dir
}

func TestBaselinesAndRuns(t *testing.T) {
	e := newEnv(t, 5*time.Millisecond)
	admin := e.account("root", store.RoleAdmin)
	dir := exampleBaseline(t)
	if r := admin.postForm("/baselines", url.Values{"dir": {"relative/dir"}}); r.code != http.StatusBadRequest || !strings.Contains(r.body, "absolute") {
		t.Errorf("relative dir: %d", r.code)
	}
	if r := admin.api("POST", "/api/v1/baselines", `{"dir":"/no/such/dir"}`); r.code != http.StatusBadRequest || !strings.Contains(r.body, `dir:`) {
		t.Errorf("missing dir: %s", r)
	}
	r := admin.postForm("/baselines", url.Values{"dir": {dir}, "name": {"example"}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("add baseline: %s", r)
	}
	page := admin.get(r.header.Get("Location")).body
	for _, want := range []string{"dev.fleetup.example.hello", "1.0.0", "script", "linux", "hello.sh"} {
		if !strings.Contains(page, want) {
			t.Errorf("baseline page lacks %q", want)
		}
	}
	bs, _ := e.db.Baselines(context.Background())
	if len(bs) != 1 || len(bs[0].Components) == 0 {
		t.Fatalf("baselines: %+v", bs)
	}
	if r := admin.postForm("/baselines/"+itoa(bs[0].ID)+"/check", url.Values{}); r.code != http.StatusSeeOther {
		t.Errorf("re-check: %s", r)
	}
	node := addNodeAPI(t, admin, "n1", "root@198.18.1.2")

	// Deploy from the page: a confirm step, then the run.
	form := url.Values{"baseline": {itoa(bs[0].ID)}, "node": {itoa(node)}, "parallel": {"4"}, "reboot": {"on"}, "reboot_delay": {"30"}, "max_failures": {"10%"}}
	r = admin.postForm("/deploy", form)
	if r.code != http.StatusOK || !strings.Contains(r.body, "Confirm the deploy") || len(e.runner.requests()) != 0 {
		t.Fatalf("deploy without confirm: %d started=%d", r.code, len(e.runner.requests()))
	}
	form.Set("confirm", "yes")
	r = admin.postForm("/deploy", form)
	if r.code != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/runs/") {
		t.Fatalf("deploy: %s", r)
	}
	got := e.runner.requests()[0]
	if got.Kind != store.RunDeploy || got.Parallel != 4 || !got.Reboot || got.RebootDelay != 30*time.Second || got.MaxFailures != "10%" {
		t.Errorf("run request: %+v", got)
	}
	e.runner.wait()
	runPage := admin.get(r.header.Get("Location")).body
	for _, want := range []string{"ended", "complete", "installed", "format=csv"} {
		if !strings.Contains(runPage, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	// Review: the actions a deploy would take.
	r = admin.postForm("/review", url.Values{"baseline": {itoa(bs[0].ID)}, "node": {itoa(node)}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("review: %s", r)
	}
	e.runner.wait()
	if page := admin.get(r.header.Get("Location")).body; !strings.Contains(page, "install") {
		t.Errorf("review page lacks the action")
	}
	// Inventory.
	r = admin.postForm("/inventory", url.Values{"node": {itoa(node)}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("inventory: %s", r)
	}
	e.runner.wait()
	if page := admin.get("/inventory").body; !strings.Contains(page, "Debian GNU/Linux 12") || !strings.Contains(page, "Integrated Webcam") {
		t.Errorf("inventory page lacks the inventory")
	}
	// History and the API.
	if page := admin.get("/runs").body; strings.Count(page, `href="/runs/2`) < 3 {
		t.Errorf("runs page lists %d runs", strings.Count(page, `href="/runs/2`))
	}
	var runs struct{ Runs []json.RawMessage }
	json.Unmarshal([]byte(admin.get("/api/v1/runs").body), &runs)
	if len(runs.Runs) != 3 || !strings.Contains(string(runs.Runs[0]), `"options": {`) {
		t.Errorf("API runs: %s", runs.Runs)
	}
	// Reports.
	id := strings.TrimPrefix(r.header.Get("Location"), "/runs/")
	rep := admin.get("/runs/" + id + "/report?kind=inventory&format=csv")
	if rep.code != http.StatusOK || !strings.Contains(rep.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("CSV report: %d %q", rep.code, rep.header.Get("Content-Disposition"))
	}
	if rep := admin.get("/api/v1/runs/" + id + "/report?kind=bogus"); rep.code != http.StatusBadRequest || !strings.Contains(rep.body, "kind") {
		t.Errorf("bad report kind: %s", rep)
	}
	// Bad run requests name the field.
	for body, field := range map[string]string{
		`{"kind":"explode"}`:                                                     "kind",
		`{"kind":"deploy","node_ids":[1]}`:                                       "baseline_id",
		`{"kind":"inventory"}`:                                                   "node_ids",
		`{"kind":"inventory","node_ids":[99]}`:                                   "node_ids[0]",
		`{"kind":"inventory","tag":"nope"}`:                                      "tag",
		`{"kind":"inventory","node_ids":"x"}`:                                    "node_ids",
		`{"kind":"deploy","baseline_id":1,"node_ids":[1],"max_failures":"lots"}`: "max_failures",
	} {
		r := admin.api("POST", "/api/v1/runs", body)
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, field) {
			t.Errorf("%s: %s, want 400 naming %s", body, r, field)
		}
	}
	// Cancelling an ended run.
	if r := admin.api("POST", "/api/v1/runs/"+id+"/cancel", ""); r.code != http.StatusConflict {
		t.Errorf("cancel an ended run: %s", r)
	}
}

// sseEvent is one event of a stream.
type sseEvent struct {
	id, event, data string
}

// readSSE reads a stream until end or until stop says so.
func readSSE(t *testing.T, c *client, path, lastID string, stop func([]sseEvent) bool) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", c.e.ts.URL+path, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var evs []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" || cur.event != "" {
				evs = append(evs, cur)
				if cur.event == "end" || (stop != nil && stop(evs)) {
					return evs
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	return evs
}

func TestRunEventsStream(t *testing.T) {
	e := newEnv(t, 40*time.Millisecond)
	admin := e.account("root", store.RoleAdmin)
	dir := exampleBaseline(t)
	r := admin.api("POST", "/api/v1/baselines", fmt.Sprintf(`{"dir":%q}`, dir))
	var b store.Baseline
	json.Unmarshal([]byte(r.body), &b)
	n1 := addNodeAPI(t, admin, "n1", "root@198.18.1.2")
	r = admin.api("POST", "/api/v1/runs", fmt.Sprintf(`{"kind":"deploy","baseline_id":%d,"node_ids":[%d]}`, b.ID, n1))
	if r.code != http.StatusCreated {
		t.Fatalf("start: %s", r)
	}
	var run struct{ ID string }
	json.Unmarshal([]byte(r.body), &run)
	path := "/api/v1/runs/" + run.ID + "/events"

	// Wait for some stored events, then follow: stored first, live after.
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, _ := e.db.Events(context.Background(), run.ID, 0, 100)
		if len(evs) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no events stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	evs := readSSE(t, admin, path, "", nil)
	if len(evs) < 5 {
		t.Fatalf("%d events", len(evs))
	}
	last := evs[len(evs)-1]
	if last.event != "end" || !strings.Contains(last.data, `"ended"`) {
		t.Errorf("last event %+v, want end", last)
	}
	var prev int64
	var live bool
	for _, ev := range evs[:len(evs)-1] {
		seq, err := strconv.ParseInt(ev.id, 10, 64)
		if err != nil || seq <= prev {
			t.Fatalf("event ids out of order: %+v", evs)
		}
		prev = seq
		var rec store.EventRecord
		if err := json.Unmarshal([]byte(ev.data), &rec); err != nil || rec.Seq != seq || rec.RunID != run.ID {
			t.Fatalf("event %+v: %v", ev, err)
		}
		if rec.Event.Phase == "installed" {
			live = true
		}
	}
	if !live || time.Since(start) < 100*time.Millisecond {
		t.Errorf("the stream did not carry live events (installed seen: %v, after %v)", live, time.Since(start))
	}
	// Resume from the middle: only what came after.
	mid := evs[len(evs)/2].id
	resumed := readSSE(t, admin, path, mid, nil)
	midSeq, _ := strconv.ParseInt(mid, 10, 64)
	if len(resumed) != len(evs)-len(evs)/2-1 {
		t.Errorf("resumed from %s: %d events, want %d:\n%v\n%v", mid, len(resumed), len(evs)-len(evs)/2-1, evs, resumed)
	}
	if first, _ := strconv.ParseInt(resumed[0].id, 10, 64); first != midSeq+1 {
		t.Errorf("resumed stream starts at %d, want %d", first, midSeq+1)
	}
	// The JSON form.
	var page struct {
		Events  []store.EventRecord
		Running bool
	}
	r = admin.get(path + "?format=json&after=" + mid)
	if err := json.Unmarshal([]byte(r.body), &page); err != nil || len(page.Events) != len(resumed)-1 || page.Running {
		t.Errorf("JSON events: %d events, running %v, %v", len(page.Events), page.Running, err)
	}
	if r := admin.get(path + "?format=json&after=x"); r.code != http.StatusBadRequest {
		t.Errorf("bad after: %s", r)
	}
	if r := admin.get("/api/v1/runs/nope/events"); r.code != http.StatusNotFound {
		t.Errorf("unknown run: %s", r)
	}

	// Cancel a running one: its stream ends with cancelled.
	r = admin.api("POST", "/api/v1/runs", fmt.Sprintf(`{"kind":"deploy","baseline_id":%d,"node_ids":[%d]}`, b.ID, n1))
	json.Unmarshal([]byte(r.body), &run)
	path = "/api/v1/runs/" + run.ID + "/events"
	got := readSSE(t, admin, path, "", func(evs []sseEvent) bool { return len(evs) >= 1 })
	if len(got) == 0 {
		t.Fatal("no events from the second run")
	}
	if r := admin.postForm("/runs/"+run.ID+"/cancel", url.Values{}); r.code != http.StatusSeeOther {
		t.Fatalf("cancel: %s", r)
	}
	evs = readSSE(t, admin, path, got[0].id, nil)
	if end := evs[len(evs)-1]; end.event != "end" || !strings.Contains(end.data, "cancelled") {
		t.Errorf("cancelled run's end: %+v", end)
	}
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t, time.Hour) // a run that does not move
	e.server.heartbeat = 30 * time.Millisecond
	admin := e.account("root", store.RoleAdmin)
	n1 := addNodeAPI(t, admin, "n1", "root@198.18.1.2")
	r := admin.api("POST", "/api/v1/runs", fmt.Sprintf(`{"kind":"inventory","node_ids":[%d]}`, n1))
	var run struct{ ID string }
	json.Unmarshal([]byte(r.body), &run)
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/runs/"+run.ID+"/events?after=1000", nil)
	resp, err := admin.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == ": heartbeat" {
			break
		}
	}
	if sc.Err() != nil {
		t.Fatalf("no heartbeat: %v", sc.Err())
	}
	// Close ends the open streams, so that a shutdown does not wait.
	ended := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(ended)
	}()
	e.server.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("Close did not end the stream")
	}
}

// TestOpenAPIDocumentsEveryRoute matches the API routes against the
// path lines of docs/openapi.yaml, both ways, methods included.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]bool{} // "GET /api/v1/nodes/{id}"
	pathRE := regexp.MustCompile(`^  (/api/v1/\S*):\s*$`)
	methodRE := regexp.MustCompile(`^    (get|post|put|delete|patch):\s*$`)
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		if m := pathRE.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") {
			cur = ""
		}
		if !strings.HasPrefix(line, " ") {
			cur = ""
		}
		if m := methodRE.FindStringSubmatch(line); m != nil && cur != "" {
			doc[strings.ToUpper(m[1])+" "+cur] = true
		}
	}
	s, err := New(Options{Store: &store.DB{}, Runner: newFakeRunner(nil, 0)})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, rt := range s.routes {
		if strings.HasPrefix(rt.pattern, "/api/v1/") {
			routes[rt.method+" "+rt.pattern] = true
		}
	}
	for r := range routes {
		if !doc[r] {
			t.Errorf("route %s is not in docs/openapi.yaml", r)
		}
	}
	for d := range doc {
		if !routes[d] {
			t.Errorf("docs/openapi.yaml documents %s, which is not a route", d)
		}
	}
}

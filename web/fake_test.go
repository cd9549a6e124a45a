package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/baseline"
	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/store"
)

// fakeRunner records runs into the real store and plays each node through
// scouting, inventory, analysis and (for a deploy) a download and install
// of every component of the baseline, one step every step.
type fakeRunner struct {
	db   *store.DB
	step time.Duration

	mu       sync.Mutex
	watchers map[string]map[chan struct{}]bool
	cancels  map[string]context.CancelFunc
	done     map[string]chan struct{}
	started  []manager.RunRequest
}

var _ Runner = (*fakeRunner)(nil)

func newFakeRunner(db *store.DB, step time.Duration) *fakeRunner {
	return &fakeRunner{db: db, step: step, watchers: map[string]map[chan struct{}]bool{},
		cancels: map[string]context.CancelFunc{}, done: map[string]chan struct{}{}}
}

func (f *fakeRunner) CheckBaseline(ctx context.Context, dir string) ([]store.ComponentSummary, []store.Problem, error) {
	b, err := baseline.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	var comps []store.ComponentSummary
	for _, c := range b.Components {
		cs := store.ComponentSummary{ID: c.ID, Name: c.Name, Version: c.Version, Kind: string(c.Kind), File: c.File,
			Size: c.Size, SHA256: c.SHA256, Targets: c.Targets}
		for _, r := range c.Requires {
			cs.Requires = append(cs.Requires, r.String())
		}
		comps = append(comps, cs)
	}
	var problems []store.Problem
	for _, p := range b.Problems {
		problems = append(problems, store.Problem{File: p.File, Reason: p.Reason})
	}
	return comps, problems, nil
}

func (f *fakeRunner) Start(ctx context.Context, req manager.RunRequest) (string, error) {
	var targets []string
	seen := map[int64]bool{}
	add := func(n store.Node) {
		if !seen[n.ID] {
			seen[n.ID] = true
			targets = append(targets, n.Targets...)
		}
	}
	for _, id := range req.NodeIDs {
		n, err := f.db.Node(ctx, id)
		if err != nil {
			return "", err
		}
		add(*n)
	}
	if req.Tag != "" {
		ns, err := f.db.Nodes(ctx, req.Tag)
		if err != nil {
			return "", err
		}
		for _, n := range ns {
			add(n)
		}
	}
	var comps []store.ComponentSummary
	var dir string
	if req.BaselineID != 0 {
		b, err := f.db.Baseline(ctx, req.BaselineID)
		if err != nil {
			return "", err
		}
		comps, dir = b.Components, b.Dir
	}
	var rnd [3]byte
	rand.Read(rnd[:])
	id := time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(rnd[:])
	run := store.Run{ID: id, Kind: req.Kind, Source: req.Source, Account: req.Account, Baseline: dir,
		Targets: targets, Started: time.Now(), State: store.RunRunning, Options: []byte(`{"parallel":8}`)}
	if err := f.db.BeginRun(ctx, run); err != nil {
		return "", err
	}
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	f.mu.Lock()
	f.cancels[id] = cancel
	f.done[id] = done
	f.started = append(f.started, req)
	f.mu.Unlock()
	go f.play(rctx, run, comps, done)
	return id, nil
}

// play is one run: a step at a time, every node at once.
func (f *fakeRunner) play(ctx context.Context, run store.Run, comps []store.ComponentSummary, done chan struct{}) {
	defer close(done)
	bg := context.Background()
	emit := func(evs ...fleetup.Event) {
		for i := range evs {
			evs[i].Time = time.Now()
		}
		f.db.AddEvents(bg, run.ID, evs)
		f.notify(run.ID)
	}
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(f.step):
			return true
		}
	}
	each := func(st fleetup.NodeState, msg string) []fleetup.Event {
		var evs []fleetup.Event
		for _, t := range run.Targets {
			evs = append(evs, fleetup.Event{Node: t, State: st, Message: msg})
		}
		return evs
	}
	end := func(state fleetup.NodeState, runState string) {
		for _, t := range run.Targets {
			res := orchestrator.NodeResult{Node: t, State: state, Duration: time.Second,
				Inventory: &fleetup.Inventory{Hostname: t, OS: "debian", OSName: "Debian GNU/Linux 12 (bookworm)", OSVersion: "12",
					Kernel: "6.1.0-28-amd64", Arch: "x86_64", Packages: []fleetup.Package{{Name: "bash", Version: "5.2.15-2+b7", Arch: "amd64", Manager: "dpkg"},
						{Name: "fwupd", Version: "1.8.12-2", Arch: "amd64", Manager: "dpkg"}},
					Devices: []fleetup.Device{{ID: "b585990a", Name: "Integrated Webcam", Vendor: "ACME", Version: "1.2.2", Updatable: true, Plugin: "test"}}}}
			if state == fleetup.StateCancelled {
				res.Error, res.FailedIn = "cancelled", fleetup.StateDeploy
			}
			for _, c := range comps {
				cr := fleetup.ComponentResult{ComponentID: c.ID, Version: c.Version, Action: fleetup.ActionUpdate}
				if c.Kind == "fwupd" {
					cr.Installed = "1.2.2"
				}
				if run.Kind == store.RunDeploy && state == fleetup.StateComplete {
					cr.Phase, cr.After = fleetup.PhaseInstalled, c.Version
				}
				res.Components = append(res.Components, cr)
			}
			f.db.NodeEnded(bg, run.ID, res)
		}
		emit(each(state, "")...)
		f.db.EndRun(bg, run.ID, runState, time.Now())
		f.notify(run.ID)
	}
	cancelled := func() { end(fleetup.StateCancelled, store.RunCancelled) }

	for _, st := range []fleetup.NodeState{fleetup.StateScouting, fleetup.StateInventory, fleetup.StateAnalysis} {
		emit(each(st, string(st)+"…")...)
		if !wait() {
			cancelled()
			return
		}
	}
	if run.Kind == store.RunDeploy {
		emit(each(fleetup.StateDeploy, "deploying")...)
		for _, c := range comps {
			total := max(c.Size, 1)
			for i := int64(1); i <= 4; i++ {
				var evs []fleetup.Event
				for _, t := range run.Targets {
					evs = append(evs, fleetup.Event{Node: t, Component: c.ID, Phase: fleetup.PhaseDownload, Bytes: total * i / 4, Total: total})
				}
				emit(evs...)
				if !wait() {
					cancelled()
					return
				}
			}
			var evs []fleetup.Event
			for _, t := range run.Targets {
				evs = append(evs, fleetup.Event{Node: t, Component: c.ID, Phase: fleetup.PhaseInstalled})
			}
			emit(evs...)
		}
		emit(each(fleetup.StateCleanup, "cleaning up")...)
	}
	end(fleetup.StateComplete, store.RunEnded)
}

// requests are the run requests Start was given.
func (f *fakeRunner) requests() []manager.RunRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.started)
}

func (f *fakeRunner) Cancel(runID string) error {
	f.mu.Lock()
	cancel, ok := f.cancels[runID]
	done := f.done[runID]
	f.mu.Unlock()
	if !ok {
		return ErrNotRunning
	}
	select {
	case <-done:
		return ErrNotRunning
	default:
	}
	cancel()
	return nil
}

// wait waits for every run to end.
func (f *fakeRunner) wait() {
	f.mu.Lock()
	var dones []chan struct{}
	for _, d := range f.done {
		dones = append(dones, d)
	}
	f.mu.Unlock()
	for _, d := range dones {
		<-d
	}
}

func (f *fakeRunner) cancelAll() {
	f.mu.Lock()
	for _, c := range f.cancels {
		c()
	}
	f.mu.Unlock()
	f.wait()
}

func (f *fakeRunner) Watch(runID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	if f.watchers[runID] == nil {
		f.watchers[runID] = map[chan struct{}]bool{}
	}
	f.watchers[runID][ch] = true
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.watchers[runID], ch)
		f.mu.Unlock()
	}
}

func (f *fakeRunner) notify(runID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.watchers[runID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// testEnv is a Server over a real store behind an httptest TLS server.
type testEnv struct {
	t      *testing.T
	db     *store.DB
	runner *fakeRunner
	server *Server
	ts     *httptest.Server
	setup  string
}

func newEnv(t *testing.T, step time.Duration) *testEnv {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "fleetup.db"), filepath.Join(dir, "store.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	setup, err := db.NewSetupToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	runner := newFakeRunner(db, step)
	s, err := New(Options{Store: db, Runner: runner, SetupToken: setup})
	if err != nil {
		t.Fatal(err)
	}
	s.poll = 200 * time.Millisecond
	ts := httptest.NewTLSServer(s.Handler())
	e := &testEnv{t: t, db: db, runner: runner, server: s, ts: ts, setup: setup}
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		runner.cancelAll()
		db.Close()
	})
	return e
}

// client is a browser-like HTTP client: a cookie jar, no redirects
// followed.
type client struct {
	t    *testing.T
	e    *testEnv
	http *http.Client
	csrf string
}

func (e *testEnv) client() *client {
	jar, _ := cookiejar.New(nil)
	hc := e.ts.Client()
	c := &http.Client{Transport: hc.Transport, Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &client{t: e.t, e: e, http: c}
}

// account makes an account with role and returns a client logged in as it.
func (e *testEnv) account(name, role string) *client {
	e.t.Helper()
	if _, err := e.db.CreateAccount(context.Background(), name, []byte("password-"+name), role); err != nil {
		e.t.Fatal(err)
	}
	c := e.client()
	c.login(name, "password-"+name)
	return c
}

func (c *client) login(name, password string) {
	c.t.Helper()
	resp := c.postForm("/login", url.Values{"name": {name}, "password": {password}})
	if resp.code != http.StatusSeeOther {
		c.t.Fatalf("login %s: %d %s", name, resp.code, resp.body)
	}
	c.refreshCSRF()
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) refreshCSRF() {
	c.t.Helper()
	r := c.get("/")
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		c.t.Fatalf("no CSRF token on the dashboard: %d %s", r.code, r.body)
	}
	c.csrf = m[1]
}

type response struct {
	code   int
	header http.Header
	body   string
}

func (c *client) do(req *http.Request) response {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b.String()}
}

func (c *client) request(method, path, contentType, body string, header map[string]string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return c.do(req)
}

func (c *client) get(path string) response { return c.request("GET", path, "", "", nil) }

// postForm posts a form with the client's CSRF token (when it has one and
// the form has none).
func (c *client) postForm(path string, v url.Values) response {
	if c.csrf != "" && v.Get("csrf") == "" {
		v.Set("csrf", c.csrf)
	}
	return c.request("POST", path, "application/x-www-form-urlencoded", v.Encode(), nil)
}

// api calls the JSON API with the CSRF header of the client's session.
func (c *client) api(method, path, body string) response {
	h := map[string]string{}
	if c.csrf != "" {
		h["X-CSRF-Token"] = c.csrf
	}
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return c.request(method, path, ct, body, h)
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.code, r.body) }

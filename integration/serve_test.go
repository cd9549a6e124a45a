package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
)

const chromium = "/usr/bin/chromium"

// server is a `fleetup serve` process of a test.
type server struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder
	lines chan string
	done  chan struct{}
	code  int
}

// startServe starts `fleetup serve` with args on explicit ports.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "fleetup"), append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "FLEETUP_PASSWORD=")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	s := &server{t: t, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.out.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		if ee, ok := err.(*exec.ExitError); ok {
			s.code = ee.ExitCode()
		}
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// line waits for a line of the server's output that re matches, and
// returns its submatches.
func (s *server) line(re *regexp.Regexp, timeout time.Duration) []string {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-s.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-s.done:
			s.t.Fatalf("fleetup serve exited (%d) before printing %v:\n%s", s.code, re, s.output())
		case <-deadline:
			s.t.Fatalf("fleetup serve did not print %v within %s:\n%s", re, timeout, s.output())
		}
	}
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(2 * time.Minute):
		s.t.Fatalf("fleetup serve did not stop on SIGTERM:\n%s", s.output())
	}
	if s.code != 0 {
		s.t.Errorf("fleetup serve exited %d after SIGTERM:\n%s", s.code, s.output())
	}
}

// browser is a headless chromium of the test's, with the steps the test
// takes in it.
type browser struct {
	t         *testing.T
	ctx       context.Context
	base      string
	artifacts string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("FLEETUP_NO_SKIP") == "1" {
			t.Fatalf("%s is missing (FLEETUP_NO_SKIP=1): apt-get install chromium", chromium)
		}
		t.Skipf("%s is missing", chromium)
	}
	artifacts := os.Getenv("FLEETUP_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	artifacts = filepath.Join(artifacts, "serve")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		// The UI's certificate is its own, made at its first start: the
		// test checks its fingerprint instead (TestServe).
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1366, 900),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dialogs := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	t.Logf("screenshots in %s", artifacts)
	return &browser{t: t, ctx: ctx, base: base, artifacts: artifacts}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open navigates to path. A navigation the page's own script cut short
// (a run page reloads itself when its run ends) is tried again.
func (b *browser) open(path, readySel string) {
	b.t.Helper()
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
		err := chromedp.Do(ctx, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS(readySel)))
		cancel()
		if err == nil {
			return
		}
		if try == 2 || !strings.Contains(err.Error(), "ERR_ABORTED") {
			b.t.Fatalf("open %s: %v", path, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (b *browser) submit(what, sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// waitFor polls js until it is true.
func (b *browser) waitFor(what, js string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
			b.t.Fatalf("waiting for %s: %v\npage: %s", what, err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shoot keeps a full-page screenshot of the page at a laptop's and a
// phone's width.
func (b *browser) shoot(name string) {
	b.t.Helper()
	for _, v := range []struct {
		name string
		vp   chromedp.Action[chromedp.Void]
	}{{"1366", chromedp.EmulateViewport(1366, 900)}, {"375", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile)}} {
		b.do("viewport", v.vp, chromedp.Sleep(100*time.Millisecond))
		buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.artifacts, name+"-"+v.name+".png"), buf, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do("viewport", chromedp.EmulateViewport(1366, 900))
}

func (b *browser) login(name, password string) {
	b.t.Helper()
	b.open("/login", `input[name="name"]`)
	b.do("fill login",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), name),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password))
	b.submit("login", `form[action="/login"] button`)
	if got := b.text("h1"); got != "Dashboard" {
		b.t.Fatalf("after login: %q", got)
	}
}

// addNode adds a node through the nodes page; user and password, when
// set, become a new stored credential.
func (b *browser) addNode(name, addr, user, password string) {
	b.t.Helper()
	b.open("/nodes", "#node-form")
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.SendKeys(chromedp.CSS(`#node-form input[name="name"]`), name),
		chromedp.SendKeys(chromedp.CSS(`#node-form textarea[name="targets"]`), addr),
		chromedp.SendKeys(chromedp.CSS(`#node-form input[name="tags"]`), "lab"),
	}
	if user != "" {
		steps = append(steps,
			chromedp.SetValue(chromedp.CSS(`#node-form select[name="credential"]`), "new"),
			chromedp.SendKeys(chromedp.CSS(`#node-form input[name="user"]`), user),
			chromedp.SendKeys(chromedp.CSS(`#node-form input[name="password"]`), password))
	}
	b.do("fill node "+name, steps...)
	b.submit("add node "+name, `#node-form button[type="submit"]`)
	if got := b.text("main"); !strings.Contains(got, "Node added.") {
		b.t.Fatalf("adding node %s: %s", name, got)
	}
}

func (b *browser) addBaseline(name, dir string) {
	b.t.Helper()
	b.open("/baselines", `input[name="dir"]`)
	b.do("fill baseline",
		chromedp.SendKeys(chromedp.CSS(`input[name="dir"]`), dir),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), name))
	b.submit("add baseline "+name, `form[action="/baselines"] button`)
}

// deploy starts a deploy of baseline (its id) on the nodes (their ids)
// through the form and its confirmation, and returns the run's id.
func (b *browser) deploy(baseline string, nodes ...string) string {
	b.t.Helper()
	b.open("/deploy", "#deploy-form")
	steps := []chromedp.Action[chromedp.Void]{chromedp.SetValue(chromedp.CSS(`select[name="baseline"]`), baseline)}
	for _, n := range nodes {
		steps = append(steps, chromedp.Click(chromedp.CSS(`input[name="node"][value="`+n+`"]`)))
	}
	b.do("fill deploy", steps...)
	b.submit("deploy: next", "#deploy-next")
	b.submit("deploy: confirm", "#confirm-deploy")
	id, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("run").dataset.run`))
	if err != nil || id == "" {
		b.t.Fatalf("no run page after the deploy: %v", err)
	}
	return id
}

// api is a client of the server's JSON API with a token.
type api struct {
	t     *testing.T
	base  string
	token string
	c     *http.Client
}

func (a *api) get(path string, v any) {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		a.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		a.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// apiRun is what the test reads of a run.
type apiRun struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Nodes []struct {
		Node       string `json:"node"`
		State      string `json:"state"`
		Error      string `json:"error"`
		Components []struct {
			ID    string `json:"component_id"`
			Phase string `json:"phase"`
			After string `json:"after"`
		} `json:"components"`
	} `json:"nodes"`
}

func (a *api) waitRun(id string, timeout time.Duration) apiRun {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var r apiRun
		a.get("/api/v1/runs/"+id, &r)
		if r.State != "running" {
			return r
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("run %s still running after %s: %+v", id, timeout, r)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

var (
	servingRE = regexp.MustCompile(`serving the web UI at https://[^ ]+:(\d+) `)
	setupRE   = regexp.MustCompile(`/setup\?token=([A-Za-z0-9_-]+)`)
	certRE    = regexp.MustCompile(`certificate SHA-256 ([0-9A-F:]+)`)
)

// TestServe is an operator's session against `fleetup serve` in a real
// browser with two lab nodes (one over IPv6 with a sudo user and a stored
// password): the set-up link, a login, the nodes and baselines, an
// inventory, a review, a deploy watched live, a second deploy cancelled
// mid-way, the HTML report; the nodes are then looked at (flashed,
// installed, nothing left). A restart keeps nodes, baselines and history;
// a manager killed in mid-deploy leaves its run interrupted, and the next
// start cleans the node.
func TestServe(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 2, IPv6Only: []int{1}, Dpkg: true})
	n := f.lab.Nodes
	stateDir := t.TempDir()
	httpPort, httpsPort := freePort(t), freePort(t)
	args := []string{"--state-dir", stateDir, "--port", strconv.Itoa(httpPort), "--ssl-port", strconv.Itoa(httpsPort),
		"--identity", f.lab.KeyFile(), "--known-hosts", f.lab.KnownHostsFile(), "--fwupd-plugins", "test", "--no-agent"}
	srv := startServe(t, args...)
	if got := srv.line(servingRE, 30*time.Second)[1]; got != strconv.Itoa(httpsPort) {
		t.Fatalf("serving on %s, want %d", got, httpsPort)
	}
	fp := srv.line(certRE, 10*time.Second)[1]
	token := srv.line(setupRE, 10*time.Second)[1]
	base := "https://127.0.0.1:" + strconv.Itoa(httpsPort)

	// The UI's certificate is the one whose fingerprint was printed.
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(httpsPort), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := fingerprintOf(conn.ConnectionState().PeerCertificates[0].Raw); got != fp {
		t.Errorf("the UI's certificate is %s, the printed fingerprint %s", got, fp)
	}
	conn.Close()
	// The http port sends a browser to https.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirect.Get("http://127.0.0.1:" + strconv.Itoa(httpPort) + "/runs"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "https://") {
			t.Errorf("http port: %d to %q, want a redirect to https", resp.StatusCode, loc)
		}
	}

	b := newBrowser(t, base)
	b.open("/setup?token="+token, `input[name="name"]`)
	b.do("fill setup",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "ops"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct-horse-battery"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password2"]`), "correct-horse-battery"))
	b.submit("setup", `form[action="/setup"] button`)
	if got := b.text("h1"); got != "Dashboard" {
		t.Fatalf("after setup: %q", got)
	}

	// The nodes: root with the lab's key; a sudo user over IPv6 with its
	// password stored (encrypted) by the UI.
	b.addNode("n0", target("root", n[0]), "", "")
	b.addNode("n1", target(lab.UserSudo, n[1]), lab.UserSudo, f.lab.Password())
	b.shoot("nodes")
	full := standardBaseline(t)
	slow := t.TempDir()
	testbaseline.Script(t, slow, "a-first", "1.0", "#!/bin/sh\nsleep 8\nmkdir -p /opt/first && touch /opt/first/done\n", "test -e /opt/first/done && echo 1.0", "linux")
	testbaseline.Script(t, slow, "b-second", "1.0", "#!/bin/sh\nmkdir -p /opt/second && touch /opt/second/done\n", "test -e /opt/second/done && echo 1.0", "linux")
	hang := t.TempDir()
	testbaseline.Script(t, hang, "hang", "1.0", "#!/bin/sh\nsleep 300\n", "true", "linux")
	b.addBaseline("standard", full)
	if got := b.text("main"); !strings.Contains(got, "org.fleetup.test.webcam") {
		t.Fatalf("baseline page: %s", got)
	}
	b.shoot("baseline")
	b.addBaseline("slow", slow)
	b.addBaseline("hang", hang)

	// An API token, for the checks of this test.
	b.open("/tokens", `form[action="/tokens"] input[name="name"]`)
	b.do("fill token", chromedp.SendKeys(chromedp.CSS(`form[action="/tokens"] input[name="name"]`), "test"))
	b.submit("create token", `form[action="/tokens"] button`)
	a := &api{t: t, base: base, token: b.text("#new-token"), c: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}

	// Inventory of the nodes tagged lab.
	b.open("/inventory", `select[name="tag"]`)
	b.do("inventory tag", chromedp.SetValue(chromedp.CSS(`select[name="tag"]`), "lab"))
	b.submit("start inventory", `form[action="/inventory"] button`)
	b.waitFor("the inventory's end", `document.querySelector("[data-report]") !== null`, 2*time.Minute)
	b.open("/inventory", "footer")
	if got := b.text("main"); !strings.Contains(got, "Debian") {
		t.Errorf("the inventory page shows no OS:\n%s", got)
	}
	b.shoot("inventory")

	// A review: what a deploy would do, nothing changed.
	b.open("/review", `select[name="baseline"]`)
	b.do("fill review", chromedp.SetValue(chromedp.CSS(`select[name="baseline"]`), "1"),
		chromedp.Click(chromedp.CSS(`input[name="node"][value="1"]`)),
		chromedp.Click(chromedp.CSS(`input[name="node"][value="2"]`)))
	b.submit("start review", `form[action="/review"] button`)
	b.waitFor("the review's end", `document.querySelector("[data-report]") !== null`, 2*time.Minute)
	if got := b.text("#nodes"); !strings.Contains(got, "org.fleetup.test.webcam") {
		t.Errorf("review: %s", got)
	}
	b.shoot("review")
	for i, node := range n {
		if got := flashedVersions(t, node); len(got) != 0 {
			t.Errorf("node %d flashed by a review: %v", i, got)
		}
	}

	// The deploy, watched live.
	id := b.deploy("1", "1", "2")
	b.do("mark", chromedp.Evaluate[chromedp.Void](`window.fleetupNoReload = true`))
	b.waitFor("a node in deploy", `[...document.querySelectorAll('[data-field="state"]')].some(s => s.textContent === "deploy")`, 2*time.Minute)
	b.shoot("run-live")
	// The states changed without a reload (which would have wiped the
	// mark); once the run is over the page loads its results.
	if ok, _ := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.fleetupNoReload === true`)); !ok {
		t.Errorf("the run page reloaded to follow the run")
	}
	b.waitFor("the deploy's end", `document.getElementById("run-state").textContent !== "running"`, 5*time.Minute)
	b.waitFor("the run's results", `document.querySelector('[data-report="deploy-html"]') !== null`, time.Minute)
	b.shoot("run-done")
	run := a.waitRun(id, time.Minute)
	if run.State != "ended" || len(run.Nodes) != 2 {
		t.Fatalf("deploy run: %+v", run)
	}
	for _, nr := range run.Nodes {
		if nr.State != "complete" {
			t.Errorf("%s: %s (%s)", nr.Node, nr.State, nr.Error)
		}
		if len(nr.Components) != 3 {
			t.Errorf("%s: %d components, want 3", nr.Node, len(nr.Components))
		}
		for _, c := range nr.Components {
			if c.Phase != "installed" {
				t.Errorf("%s: %s %s", nr.Node, c.ID, c.Phase)
			}
		}
	}
	ctx := context.Background()
	for _, node := range n {
		if got := flashedVersions(t, node); len(got) != 1 || got[0] != "1.2.5/success" {
			t.Errorf("%s: fwupd history %v, want one flash to 1.2.5", node.Name, got)
		}
		if out, err := node.Exec(ctx, "cat", "/opt/fleetup-test-pkg/hello", "/opt/fleetup-marker/version"); err != nil || string(out) != "hello from a deb\n2.0\n" {
			t.Errorf("%s: installed files say %q (%v)", node.Name, out, err)
		}
	}
	f.assertClean(t)

	// The HTML report of that run, opened from its page.
	b.submit("open the report", `[data-report="deploy-html"]`)
	if got := b.text("body"); !strings.Contains(got, id) || !strings.Contains(got, "complete") {
		t.Errorf("report:\n%s", got)
	}
	b.shoot("report")

	// A second deploy, cancelled while a-first installs: a-first finishes,
	// b-second is skipped, the nodes clean up.
	id2 := b.deploy("2", "1", "2")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		busy := 0
		for _, node := range n {
			ps, _ := node.Processes()
			for _, p := range ps {
				if strings.HasPrefix(p.Cmdline, "sleep 8") {
					busy++
					break
				}
			}
		}
		if busy == len(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a-first is not installing on both nodes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.submit("cancel", "#cancel")
	b.waitFor("the cancelled state", `document.getElementById("run-state").textContent === "cancelled" && document.querySelector('[data-report="deploy-html"]') !== null`, 2*time.Minute)
	b.shoot("run-cancelled")
	run = a.waitRun(id2, time.Minute)
	for _, nr := range run.Nodes {
		phases := map[string]string{}
		for _, c := range nr.Components {
			phases[c.ID] = c.Phase
		}
		if nr.State != "cancelled" || phases["a-first"] != "installed" || phases["b-second"] != "skipped" {
			t.Errorf("%s after the cancel: %s %v", nr.Node, nr.State, phases)
		}
	}
	for _, node := range n {
		if _, err := node.Exec(ctx, "ls", "/opt/first/done"); err != nil {
			t.Errorf("%s: a-first did not finish", node.Name)
		}
		if out, err := node.Exec(ctx, "ls", "/opt/second"); err == nil {
			t.Errorf("%s: b-second ran after the cancel: %s", node.Name, out)
		}
	}
	f.assertClean(t)

	// A restart: nodes, baselines, history and the account are kept.
	srv.stop()
	srv = startServe(t, args...)
	srv.line(servingRE, 30*time.Second)
	if strings.Contains(srv.output(), "setup?token=") {
		t.Errorf("a set-up link after the restart:\n%s", srv.output())
	}
	// The browser's session is in the store: it outlives the restart.
	b.open("/", "footer")
	if got := b.text("h1"); got != "Dashboard" {
		t.Errorf("after the restart the session is gone: %q", got)
	}
	var lists struct {
		Nodes     []map[string]any `json:"nodes"`
		Baselines []map[string]any `json:"baselines"`
		Runs      []map[string]any `json:"runs"`
	}
	a.get("/api/v1/nodes", &lists)
	a.get("/api/v1/baselines", &lists)
	a.get("/api/v1/runs", &lists)
	if len(lists.Nodes) != 2 || len(lists.Baselines) != 3 || len(lists.Runs) < 4 {
		t.Errorf("after the restart: %d nodes, %d baselines, %d runs; want 2, 3, 4+", len(lists.Nodes), len(lists.Baselines), len(lists.Runs))
	}

	// A kill in mid-deploy: the engine first (so that it cannot clean up
	// itself), then the manager.
	id3 := b.deploy("3", "1")
	eventually(t, time.Minute, func() string {
		ps, _ := n[0].Processes()
		for _, p := range ps {
			if strings.HasPrefix(p.Cmdline, "sleep 300") {
				return ""
			}
		}
		return "hang is not installing yet"
	})
	if killed, err := n[0].Kill(syscall.SIGKILL, func(p lab.Process) bool { return strings.Contains(p.Cmdline, "fleetup-engine serve") }); err != nil || len(killed) == 0 {
		t.Fatalf("kill the engine: %v %v", killed, err)
	}
	_ = srv.cmd.Process.Kill()
	<-srv.done
	if s, _ := n[0].Snapshot(ctx); s.Diff(f.before[0]) == "" {
		t.Fatal("the killed run left nothing on the node; the test proves nothing")
	}
	srv = startServe(t, args...)
	srv.line(regexp.MustCompile(`run `+regexp.QuoteMeta(id3)+` was interrupted`), 30*time.Second)
	// Log out and in again (the account, too, outlived the kill).
	b.submit("logout", `form.me button`)
	b.login("ops", "correct-horse-battery")
	b.open("/runs/"+id3, "footer")
	if got := b.text("#run-state"); got != "interrupted" {
		t.Errorf("the killed run is %q, want interrupted", got)
	}
	b.shoot("run-interrupted")
	srv.line(regexp.MustCompile(`cleaned up after an interrupted run.*runs=\[`+regexp.QuoteMeta(id3)+`\]`), 2*time.Minute)
	eventually(t, 30*time.Second, f.cleanMsg)
	srv.stop()
}

func fingerprintOf(der []byte) string {
	sum := sha256.Sum256(der)
	var parts []string
	for _, c := range sum {
		parts = append(parts, fmt.Sprintf("%02X", c))
	}
	return strings.Join(parts, ":")
}

// TestCLIRunsRecorded: a deploy of the command line is in the store that
// reports read: --report writes its reports at the end, `fleetup report`
// and `fleetup logs` find it afterwards, and HP SUM's /report is an
// analysis report that changes nothing.
func TestCLIRunsRecorded(t *testing.T) {
	f := newFixture(t, lab.Options{Nodes: 1})
	n := f.lab.Nodes[0]
	dir := t.TempDir()
	testbaseline.Script(t, dir, "org.fleetup.test.rec", "1.0", "#!/bin/sh\nmkdir -p /opt/rec && echo 1.0 > /opt/rec/v\n", "cat /opt/rec/v 2>/dev/null", "linux")
	reports := t.TempDir()
	r := start(t, f.stateDir, append([]string{"deploy", "--baseline", dir, "--target", target("root", n),
		"--report", "deploy", "--report", "firmware", "--report-format", "html", "--report-format", "csv", "--report-dir", reports}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, r.dump())
	}
	runID := ""
	r.mu.Lock()
	for _, e := range r.events {
		if e["type"] == "run" {
			runID = str(e, "run_id")
		}
	}
	r.mu.Unlock()
	if runID == "" {
		t.Fatalf("no run line\n%s", r.dump())
	}
	for _, name := range []string{"deploy.html", "deploy.csv", "firmware.html", "firmware.csv"} {
		p := filepath.Join(reports, "fleetup-"+runID+"-"+name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("report %s: %v", name, err)
			continue
		}
		if strings.HasSuffix(name, "deploy.csv") && !strings.Contains(string(b), "org.fleetup.test.rec") {
			t.Errorf("%s lacks the component:\n%s", name, b)
		}
	}
	fleetup := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "fleetup"), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("fleetup %v: %v\n%s", args, err, out)
		}
		return out
	}
	var rep struct {
		Header struct {
			RunID string `json:"run_id"`
		} `json:"header"`
		Nodes []struct {
			State string `json:"state"`
		} `json:"nodes"`
	}
	out := fleetup("report", "latest", "--kind", "deploy", "--format", "json", "--state-dir", f.stateDir)
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Nodes) != 1 || rep.Nodes[0].State != "complete" {
		t.Errorf("fleetup report latest: %v\n%s", err, out)
	}
	archive := filepath.Join(t.TempDir(), "logs.tar.gz")
	fleetup("logs", runID, "--output", archive, "--state-dir", f.stateDir)
	list, err := exec.Command("tar", "-tzf", archive).CombinedOutput()
	if err != nil || !strings.Contains(string(list), "events.log") || !strings.Contains(string(list), "nodes/") {
		t.Errorf("logs archive: %v\n%s", err, list)
	}

	// HP SUM's /report: the analysis, written as a report; nothing installed.
	if _, err := n.Exec(context.Background(), "rm", "-rf", "/opt/rec"); err != nil {
		t.Fatal(err)
	}
	reports2 := t.TempDir()
	r = start(t, f.stateDir, append([]string{"deploy", "/report", "/logdir", reports2, "--baseline", dir, "--target", target("root", n)}, f.authArgs()...)...)
	if code := r.wait(2 * time.Minute); code != 0 {
		t.Fatalf("/report: exit %d\n%s", code, r.dump())
	}
	if m, _ := filepath.Glob(filepath.Join(reports2, "fleetup-*-deploy.html")); len(m) != 1 {
		t.Errorf("/report wrote %v into /logdir", m)
	}
	if out, err := n.Exec(context.Background(), "ls", "/opt/rec"); err == nil {
		t.Errorf("/report installed something: %s", out)
	}
	f.assertClean(t)
}

package web

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// TestBrowser drives Debian's chromium through the UI as an operator
// would: the setup link, a login, a node, a baseline, an inventory, a
// review, a deploy followed live and cancelled, its report. It takes a
// full-page screenshot of every page at a laptop's and a phone's width
// into $FLEETUP_ARTIFACTS and checks that no page is wider than a phone.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("FLEETUP_NO_SKIP") == "1" {
			t.Fatalf("%s is missing (FLEETUP_NO_SKIP=1): apt-get install chromium", chromiumPath)
		}
		t.Skipf("%s is missing: apt-get install chromium", chromiumPath)
	}
	artifacts := os.Getenv("FLEETUP_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", artifacts)

	e := newEnv(t, 400*time.Millisecond)
	base := e.ts.URL

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1366, 900),
	)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	defer cancelCtx()
	if err := chromedp.Do(ctx); err != nil { // starts the browser, with no timeout
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, 50*time.Second)
	defer cancelTimeout()

	// Confirmations (data-confirm) are accepted.
	dialogs := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true})
		}
	}()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(js string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	// waitFor polls js until it is true; a page that reloads meanwhile
	// (the run page does when its run ends) is polled again.
	waitFor := func(what, js string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			if err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
				t.Fatalf("waiting for %s: %v\npage: %s", what, err, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// submit clicks a button and waits for the page it leads to.
	submit := func(what, sel string) {
		t.Helper()
		if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	laptop := chromedp.EmulateViewport(1366, 900)
	phone := chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile)
	// shoot screenshots the current page at both widths, and checks that
	// it does not overflow the phone's width.
	shoot := func(name string) {
		t.Helper()
		for _, v := range []struct {
			name string
			vp   chromedp.Action[chromedp.Void]
		}{{"1366", laptop}, {"375", phone}} {
			do("viewport", v.vp, chromedp.Sleep(100*time.Millisecond))
			if v.name == "375" && eval(`document.documentElement.scrollWidth > window.innerWidth + 1`) {
				w, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
				t.Errorf("%s is %d px wide on a 375 px phone", name, w)
			}
			buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatalf("screenshot %s: %v", name, err)
			}
			if err := os.WriteFile(filepath.Join(artifacts, name+"-"+v.name+".png"), buf, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		do("viewport", laptop)
	}
	visit := func(name, path string) {
		t.Helper()
		do("open "+path, laptop, chromedp.Navigate(base+path), chromedp.WaitReady(chromedp.CSS("footer")))
		shoot(name)
	}

	// The login page before anyone exists, then the setup link.
	visit("login", "/login")
	if !strings.Contains(text("main"), "setup link") {
		t.Errorf("the login page does not point at the setup link")
	}
	visit("setup", "/setup?token="+e.setup)
	do("fill setup",
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "root"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct-horse-battery"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password2"]`), "correct-horse-battery"),
	)
	submit("setup", `form[action="/setup"] button`)
	if got := text("h1"); got != "Dashboard" {
		t.Fatalf("after setup: %q", got)
	}
	// Log out, and in again.
	submit("logout", `form.me button`)
	do("fill login",
		chromedp.WaitReady(chromedp.CSS(`input[name="name"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "root"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "correct-horse-battery"),
	)
	submit("login", `form[action="/login"] button`)
	if got := text("h1"); got != "Dashboard" {
		t.Fatalf("after login: %q", got)
	}

	// A node: first a bad address, shown next to the field, then a good one.
	do("open nodes", chromedp.Navigate(base+"/nodes"), chromedp.WaitReady(chromedp.ID("node-form")))
	do("fill node",
		chromedp.SendKeys(chromedp.CSS(`#node-form input[name="name"]`), "web1"),
		chromedp.SendKeys(chromedp.CSS(`#node-form textarea[name="targets"]`), "root@198.18.1.2\nbmc://admin@bad host"),
	)
	submit("add bad node", `#node-form button[type="submit"]`)
	if got := text("#targets-error"); !strings.Contains(got, "bad host") {
		t.Errorf("parse error next to the field: %q", got)
	}
	shoot("nodes-error")
	do("fix node",
		chromedp.SetValue(chromedp.CSS(`#node-form textarea[name="targets"]`), "root@198.18.1.2\nbmc://admin@198.18.2.2"),
		chromedp.SetValue(chromedp.CSS(`#node-form select[name="credential"]`), "new"),
		chromedp.SendKeys(chromedp.CSS(`#node-form input[name="user"]`), "root"),
		chromedp.SendKeys(chromedp.CSS(`#node-form input[name="password"]`), "node-secret-1"),
		chromedp.SendKeys(chromedp.CSS(`#node-form input[name="tags"]`), "lab web"),
	)
	submit("add node", `#node-form button[type="submit"]`)
	if got := text("main"); !strings.Contains(got, "Node added.") || !strings.Contains(got, "web1") {
		t.Fatalf("after adding the node: %s", got)
	}
	// An import by paste.
	do("fill import", chromedp.SendKeys(chromedp.CSS(`textarea[name="content"]`),
		"root@198.18.1.3 bmc://admin@198.18.2.3\nadmin@[fd42:5e:0:3::2]\n"),
		chromedp.SendKeys(chromedp.CSS(`form[action="/nodes/import#import"] input[name="tags"]`), "lab"))
	submit("import", `form[action="/nodes/import#import"] button`)
	if got := text("main"); !strings.Contains(got, "2 nodes added") {
		t.Errorf("after the import: %s", got)
	}
	visit("nodes", "/nodes")
	visit("credentials", "/credentials")

	// A baseline.
	dir, err := filepath.Abs("../examples/baseline")
	if err != nil {
		t.Fatal(err)
	}
	do("open baselines", chromedp.Navigate(base+"/baselines"),
		chromedp.WaitReady(chromedp.CSS(`input[name="dir"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="dir"]`), dir),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "example"))
	submit("add baseline", `form[action="/baselines"] button`)
	if got := text("main"); !strings.Contains(got, "dev.fleetup.example.hello") {
		t.Fatalf("baseline page: %s", got)
	}
	shoot("baseline")
	visit("baselines", "/baselines")

	// An inventory of every node tagged lab.
	do("open inventory", chromedp.Navigate(base+"/inventory"), chromedp.WaitReady(chromedp.CSS(`select[name="tag"]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="tag"]`), "lab"))
	submit("start inventory", `form[action="/inventory"] button`)
	waitFor("the inventory's end", `document.querySelector("[data-report]") !== null`, 15*time.Second)
	visit("inventory", "/inventory")
	if !strings.Contains(text("main"), "Debian GNU/Linux 12") {
		t.Errorf("inventory page lacks the inventory")
	}

	// A review.
	do("open review", chromedp.Navigate(base+"/review"), chromedp.WaitReady(chromedp.CSS(`select[name="baseline"]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="baseline"]`), "1"),
		chromedp.Click(chromedp.CSS(`input[name="node"][value="1"]`)))
	shoot("review")
	submit("start review", `form[action="/review"] button`)
	waitFor("the review's end", `document.querySelector("[data-report]") !== null`, 15*time.Second)
	if got := text("#nodes"); !strings.Contains(got, "install") {
		t.Errorf("review run page lacks the actions: %s", got)
	}
	shoot("review-run")

	// A deploy: the form, the confirm step, the run live, cancel, report.
	do("open deploy", chromedp.Navigate(base+"/deploy"), chromedp.WaitReady(chromedp.ID("deploy-form")),
		chromedp.SetValue(chromedp.CSS(`select[name="baseline"]`), "1"),
		chromedp.Click(chromedp.CSS(`input[name="node"][value="1"]`)),
		chromedp.Click(chromedp.CSS(`input[name="node"][value="2"]`)),
		chromedp.SetValue(chromedp.CSS(`input[name="parallel"]`), "4"),
		chromedp.Click(chromedp.CSS(`input[name="reboot"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="health_command"]`), "systemctl is-system-running"),
	)
	shoot("deploy")
	submit("deploy: next", "#deploy-next")
	if got := text("main"); !strings.Contains(got, "Confirm the deploy") || !strings.Contains(got, "web1") {
		t.Fatalf("confirm step: %s", got)
	}
	shoot("deploy-confirm")
	submit("deploy: confirm", "#confirm-deploy")
	if got := text("#run-state"); got != "running" {
		t.Fatalf("run state %q, want running", got)
	}
	// A mark that a reload would wipe: the states change without one.
	do("mark", chromedp.Evaluate[chromedp.Void](`window.fleetupNoReload = true`))
	waitFor("a node in deploy", `[...document.querySelectorAll('[data-field="state"]')].some(s => s.textContent === "deploy")`, 10*time.Second)
	waitFor("a download's progress", `document.querySelector('[data-field="progress"] progress') !== null`, 10*time.Second)
	if !eval(`window.fleetupNoReload === true`) {
		t.Errorf("the run page reloaded to show the live states")
	}
	shoot("run-live")
	submit("cancel", "#cancel")
	waitFor("the cancelled state", `document.getElementById("run-state").textContent === "cancelled" && document.querySelector('[data-report="deploy-html"]') !== null`, 15*time.Second)
	shoot("run-cancelled")
	runURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	submit("open the report", `[data-report="deploy-html"]`)
	if got := text("body"); !strings.Contains(strings.ToLower(got), "deploy") {
		t.Errorf("report: %s", got)
	}
	shoot("report")

	// Tokens: the secret shown once.
	do("open tokens", chromedp.Navigate(base+"/tokens"), chromedp.WaitReady(chromedp.CSS(`form[action="/tokens"] input[name="name"]`)),
		chromedp.SendKeys(chromedp.CSS(`form[action="/tokens"] input[name="name"]`), "nightly"))
	submit("create token", `form[action="/tokens"] button`)
	if got := text("#new-token"); !strings.HasPrefix(got, "fut_") {
		t.Errorf("token secret %q", got)
	}
	shoot("tokens")

	for _, p := range []struct{ name, path string }{
		{"dashboard", "/"},
		{"runs", "/runs"},
		{"run", strings.TrimPrefix(runURL, base)},
		{"audit", "/audit"},
		{"accounts", "/accounts"},
	} {
		visit(p.name, p.path)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the browser test ran out of time")
	}
	files, _ := filepath.Glob(filepath.Join(artifacts, "*.png"))
	t.Logf("%d screenshots", len(files))
}

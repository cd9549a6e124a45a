package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
)

// winFixture is a lab fixture some of whose nodes run the Windows
// stand-in (impacket SMB and svcctl on Wine's service manager), reached
// as windows:// nodes with the lab's password.
type winFixture struct {
	*fixture
	win map[int]*lab.WindowsNode
}

func newWinFixture(t *testing.T, opts lab.Options, windows map[int]lab.WindowsOptions) *winFixture {
	t.Helper()
	if os.Getenv("FLEETUP_NO_SKIP") != "1" {
		for _, tool := range lab.WindowsTools {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is missing", tool)
			}
		}
	}
	f := &winFixture{fixture: newLabFixture(t, opts), win: map[int]*lab.WindowsNode{}}
	for i, o := range windows {
		o.Logf = t.Logf
		w, err := f.lab.Nodes[i].StartWindows(o)
		if err != nil {
			t.Fatalf("%s: start the Windows stand-in: %v", f.lab.Nodes[i].Name, err)
		}
		t.Cleanup(func() { w.Close() })
		f.win[i] = w
	}
	// What the stand-ins run is not the run's.
	ctx := context.Background()
	for i, n := range f.lab.Nodes {
		s, err := n.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.before[i] = s
	}
	return f
}

func winTarget(n *lab.Node) string { return "windows://" + lab.UserPassword + "@" + n.Addr() }

// winArgs are the flags a run against the stand-ins uses: they speak
// SMB 2.0.2 only.
func (f *winFixture) winArgs() []string {
	return append(f.authArgs(), "--smb-min-dialect", "2.0.2")
}

// leftovers says what of run (any run when "") is still on the Windows
// node: its directory under ADMIN$\Temp, its service, its firewall rule,
// an engine process.
func leftovers(t *testing.T, w *lab.WindowsNode, run string) string {
	t.Helper()
	var out []string
	entries, err := os.ReadDir(filepath.Join(w.AdminShare(), "Temp"))
	if err != nil {
		return err.Error()
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "fleetup-"+run) {
			out = append(out, "directory Temp\\"+e.Name())
		}
	}
	svcs, err := w.Services(context.Background())
	if err != nil {
		return err.Error()
	}
	for _, s := range svcs {
		if strings.HasPrefix(strings.ToLower(s), "fleetup-") {
			out = append(out, "service "+s)
		}
	}
	rules, err := w.FirewallRules()
	if err != nil {
		return err.Error()
	}
	for _, r := range rules {
		if strings.HasPrefix(r, "fleetup:") {
			out = append(out, "firewall rule "+r)
		}
	}
	ps, err := w.Processes()
	if err != nil {
		return err.Error()
	}
	for _, p := range ps {
		if strings.Contains(strings.ToLower(p.Cmdline), "fleetup-engine") || strings.Contains(strings.ToLower(p.Cmdline), "winsetup") {
			out = append(out, fmt.Sprintf("process %d %s", p.PID, p.Cmdline))
		}
	}
	return strings.Join(out, "; ")
}

// winComponent writes an exe component (testdata/winsetup) named name at
// version into dir, with extra installer arguments.
func winComponent(t *testing.T, dir, id, name, version string, extra ...string) {
	t.Helper()
	exe := filepath.Join(dir, name+".exe")
	cmd := exec.Command("go", "build", "-o", exe, "./testdata/winsetup")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build winsetup: %v\n%s", err, out)
	}
	args := append([]string{"/S", "/name", name, "/version", version}, extra...)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	manifest := fmt.Sprintf(`kind = "exe"
id = %q
name = %q
version = %q
file = %q
args = [%s]
exit_codes = { 0 = "ok", 3010 = "reboot" }
version_command = 'HKLM\SOFTWARE\fleetup-test\%s\Version'
`, id, name, version, name+".exe", strings.Join(quoted, ", "), name)
	if err := os.WriteFile(filepath.Join(dir, name+".component.toml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
}

// winScript writes a cmd script component into dir.
func winScript(t *testing.T, dir, id, version string) {
	t.Helper()
	body := "@echo off\r\nmkdir C:\\fleetup-test\\script 2>nul\r\necho %FLEETUP_COMPONENT_VERSION%> C:\\fleetup-test\\script\\version\r\n"
	if err := os.WriteFile(filepath.Join(dir, "hello.cmd"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf(`id = %q
version = %q
script = "hello.cmd"
interpreter = "cmd"
version_command = 'type C:\fleetup-test\script\version'
targets = ["windows"]
`, id, version)
	if err := os.WriteFile(filepath.Join(dir, "hello.component.toml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
}

// installedFile reads C:\fleetup-test\<dir>\<file> of a stand-in.
func installedFile(w *lab.WindowsNode, dir, file string) string {
	b, err := os.ReadFile(filepath.Join(w.Prefix(), "drive_c", "fleetup-test", dir, file))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// TestWindowsDeploy deploys, in one run, to three Windows stand-ins (one
// reached over IPv6 only, one whose way back to the manager is blocked)
// and one Linux node, then looks at every node: the components ran, and
// nothing of the run is left (ADMIN$, the service list, the firewall
// rules, processes).
func TestWindowsDeploy(t *testing.T) {
	f := newWinFixture(t, lab.Options{Nodes: 4, IPv6Only: []int{1}}, map[int]lab.WindowsOptions{0: {}, 1: {}, 2: {}})
	n := f.lab.Nodes
	blockReturnPath(t, n[2])
	dir := t.TempDir()
	winComponent(t, dir, "dev.fleetup.test.winapp", "winapp", "2.1.0")
	winScript(t, dir, "dev.fleetup.test.winscript", "1.5")
	testbaseline.Script(t, dir, "dev.fleetup.test.linux", "1.0", "#!/bin/sh\nmkdir -p /opt/lin && echo 1.0 > /opt/lin/v\n", "cat /opt/lin/v 2>/dev/null", "linux")
	args := []string{"deploy", "--baseline", dir, "--parallel", "4",
		"--target", winTarget(n[0]), "--target", winTarget(n[1]), "--target", winTarget(n[2]), "--target", target("root", n[3])}
	r := start(t, f.stateDir, append(args, f.winArgs()...)...)
	if code := r.wait(6 * time.Minute); code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, r.dump())
	}
	res := r.resultsN(4)
	for i := 0; i < 3; i++ {
		nr := resultFor(t, r, res, n[i].Addr())
		if s := str(nr, "state"); s != "complete" {
			t.Errorf("windows node %d: %s (%s)", i, s, str(nr, "error"))
		}
		cs := components(nr)
		if c := cs["dev.fleetup.test.winapp"]; str(c, "phase") != "installed" || str(c, "after") != "2.1.0" {
			t.Errorf("windows node %d: winapp %v", i, c)
		}
		if c := cs["dev.fleetup.test.winscript"]; str(c, "phase") != "installed" || str(c, "after") != "1.5" {
			t.Errorf("windows node %d: winscript %v", i, c)
		}
		if c := cs["dev.fleetup.test.linux"]; str(c, "action") != "not-applicable" {
			t.Errorf("windows node %d: the Linux script is %v", i, c)
		}
		w := f.win[i]
		if got := installedFile(w, "winapp", "version"); got != "2.1.0" {
			t.Errorf("windows node %d: winapp wrote %q", i, got)
		}
		if got := installedFile(w, "script", "version"); got != "1.5" {
			t.Errorf("windows node %d: the script wrote %q", i, got)
		}
		if out, err := w.Wine(context.Background(), "reg.exe", "query", `HKLM\SOFTWARE\fleetup-test\winapp`, "/v", "Version"); err != nil || !strings.Contains(string(out), "2.1.0") {
			t.Errorf("windows node %d: registry %q %v", i, out, err)
		}
		eventually(t, 30*time.Second, func() string { return leftovers(t, w, "") })
	}
	// Samba's net rpc service list (a real client) sees no service of the
	// run on any of them.
	auth := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(auth, []byte("username = "+lab.UserPassword+"\npassword = "+f.lab.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		out, err := exec.Command("net", "-s", "/dev/null", "rpc", "service", "list", "-A", auth, "-I", strings.Trim(n[i].Addr(), "[]")).CombinedOutput()
		// A list that lists nothing would prove nothing: Wine's own
		// services are on it.
		if err != nil || strings.Contains(strings.ToLower(string(out)), "fleetup-") || strings.Count(string(out), "\n") < 2 {
			t.Errorf("windows node %d: net rpc service list: %v\n%s", i, err, out)
		}
	}
	if !anyMessage(r, n[2].Addr(), "SMB") {
		t.Errorf("the node with the blocked return path: the run did not say it pushed the payloads over SMB\n%s", eventTrail(r, n[2].Addr()))
	}
	lin := resultFor(t, r, res, n[3].Addr())
	if str(lin, "state") != "complete" || str(components(lin)["dev.fleetup.test.winapp"], "action") != "not-applicable" {
		t.Errorf("linux node: %v", lin)
	}
	f.assertCleanLinux(t, 3)
}

// assertCleanLinux is assertClean for the lab's Linux nodes only (the
// stand-ins' own processes come and go with Wine).
func (f *winFixture) assertCleanLinux(t *testing.T, nodes ...int) {
	t.Helper()
	ctx := context.Background()
	for _, i := range nodes {
		eventually(t, 10*time.Second, func() string {
			s, err := f.lab.Nodes[i].Snapshot(ctx)
			if err != nil {
				return err.Error()
			}
			return s.Diff(f.before[i])
		})
	}
}

// TestWindowsCancelAndKill: a cancel in mid-install lets the install
// finish, skips the rest and takes everything back; a killed manager's
// leftovers are removed by `fleetup cleanup`.
func TestWindowsCancelAndKill(t *testing.T) {
	f := newWinFixture(t, lab.Options{Nodes: 1}, map[int]lab.WindowsOptions{0: {}})
	n, w := f.lab.Nodes[0], f.win[0]
	dir := t.TempDir()
	winComponent(t, dir, "a-slow", "aslow", "1.0", "/sleep", "10")
	winComponent(t, dir, "b-next", "bnext", "1.0")
	args := append([]string{"deploy", "--baseline", dir, "--target", winTarget(n)}, f.winArgs()...)
	r := start(t, f.stateDir, args...)
	eventually(t, 3*time.Minute, func() string {
		if _, err := os.Stat(filepath.Join(w.Prefix(), "drive_c", "fleetup-test", "aslow", "started")); err != nil {
			return "the slow install has not started"
		}
		return ""
	})
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(3 * time.Minute); code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, r.dump())
	}
	for _, nr := range r.resultsN(1) {
		cs := components(nr)
		if str(nr, "state") != "cancelled" || str(cs["a-slow"], "phase") != "installed" || str(cs["b-next"], "phase") != "skipped" {
			t.Errorf("after the cancel: %s %v", str(nr, "state"), cs)
		}
	}
	if got := installedFile(w, "bnext", "version"); !strings.HasPrefix(got, "(") {
		t.Errorf("b-next ran after the cancel: %q\n%s", got, eventTrail(r, n.Addr()))
	}
	eventually(t, 30*time.Second, func() string { return leftovers(t, w, "") })

	// The manager killed in mid-install; then fleetup cleanup.
	os.RemoveAll(filepath.Join(w.Prefix(), "drive_c", "fleetup-test", "aslow"))
	if out, err := w.Wine(context.Background(), "reg.exe", "delete", `HKLM\SOFTWARE\fleetup-test\aslow`, "/f"); err != nil {
		t.Fatalf("forget the slow install: %v\n%s", err, out)
	}
	r = start(t, f.stateDir, args...)
	eventually(t, 3*time.Minute, func() string {
		if _, err := os.Stat(filepath.Join(w.Prefix(), "drive_c", "fleetup-test", "aslow", "started")); err != nil {
			return "the slow install has not started"
		}
		return ""
	})
	// The engine first, so that it cannot clean up after itself (its
	// firewall rule stays); then the manager.
	ps, err := w.Processes()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, p := range ps {
		if strings.Contains(strings.ToLower(p.Cmdline), "fleetup-engine") {
			if syscall.Kill(p.PID, syscall.SIGKILL) == nil {
				killed++
			}
		}
	}
	if killed == 0 {
		t.Fatalf("no engine process to kill among %v", ps)
	}
	_ = r.cmd.Process.Kill()
	r.wait(time.Minute)
	if rules, _ := w.FirewallRules(); !slices.ContainsFunc(rules, func(r string) bool { return strings.HasPrefix(r, "fleetup:") }) {
		t.Fatalf("the killed engine left no firewall rule (%v): the test proves nothing of their removal", rules)
	}
	if leftovers(t, w, "") == "" {
		t.Fatal("the killed run left nothing on the node; the test proves nothing")
	}
	c := start(t, f.stateDir, append([]string{"cleanup", "--target", winTarget(n)}, f.winArgs()...)...)
	if code := c.wait(3 * time.Minute); code != 0 {
		t.Fatalf("cleanup: exit %d\n%s", code, c.dump())
	}
	eventually(t, time.Minute, func() string { return leftovers(t, w, "") })
	c.mu.Lock()
	said := fmt.Sprint(c.events)
	c.mu.Unlock()
	for _, want := range []string{"service fleetup-", "fleetup:", `Temp\fleetup-`} {
		if !strings.Contains(said, want) {
			t.Errorf("the clean-up report does not name %q:\n%s", want, said)
		}
	}
}

// TestWindowsFailures: a wrong password, a node without ADMIN$ and a
// refused service creation each fail their node with a clear error naming
// the cause, and leave nothing behind.
func TestWindowsFailures(t *testing.T) {
	f := newWinFixture(t, lab.Options{Nodes: 3}, map[int]lab.WindowsOptions{
		0: {Password: "not the password given"},
		1: {NoAdminShare: true},
		2: {RefuseServices: true},
	})
	n := f.lab.Nodes
	dir := t.TempDir()
	winComponent(t, dir, "dev.fleetup.test.winapp", "winapp", "2.1.0")
	args := []string{"deploy", "--baseline", dir}
	for i := range n {
		args = append(args, "--target", winTarget(n[i]))
	}
	r := start(t, f.stateDir, append(args, f.winArgs()...)...)
	if code := r.wait(3 * time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, r.dump())
	}
	res := r.resultsN(3)
	for i, want := range []string{"password", "ADMIN$", "service manager refused"} {
		nr := resultFor(t, r, res, n[i].Addr())
		if str(nr, "state") != "failed" || !strings.Contains(str(nr, "error"), want) {
			t.Errorf("node %d: %s: %q, want failed saying %q", i, str(nr, "state"), str(nr, "error"), want)
		}
		if i > 0 {
			if left := leftovers(t, f.win[i], ""); left != "" {
				t.Errorf("node %d: left %s", i, left)
			}
		}
	}
}

// TestWindowsPreflight: a windows:// node's hops are checked from the
// manager (445 and the engine port), with the netsh command that opens a
// filtered one, and nothing is run on the node.
func TestWindowsPreflight(t *testing.T) {
	f := newWinFixture(t, lab.Options{Nodes: 1}, map[int]lab.WindowsOptions{0: {}})
	n := f.lab.Nodes[0]
	// The engine port filtered on the way to the node.
	if out, err := n.Shell(context.Background(), "nft -f - <<'EOF'\ntable inet fulab-in {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    tcp dport 62286 drop\n  }\n}\nEOF"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := start(t, f.stateDir, append([]string{"preflight", "--target", winTarget(n), "--hop-timeout", "2s"}, f.winArgs()...)...)
	if code := r.wait(time.Minute); code != 3 {
		t.Fatalf("exit %d, want 3 (the engine port is filtered)\n%s", code, r.dump())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var hops []any
	for _, e := range r.events {
		if e["type"] == "preflight" {
			hops, _ = e["hops"].([]any)
		}
	}
	got := map[float64]map[string]any{}
	for _, h := range hops {
		hm := h.(map[string]any)
		if hm["from"] == "manager" {
			got[hm["port"].(float64)] = hm
		}
	}
	if str(got[445], "status") != "open" {
		t.Errorf("445: %v", got[445])
	}
	if h := got[62286]; str(h, "status") != "filtered" || !strings.Contains(str(h, "fix"), "netsh advfirewall firewall add rule") || !strings.Contains(str(h, "fix"), "localport=62286") {
		t.Errorf("engine port: %v", h)
	}
}

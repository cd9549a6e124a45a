package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/wire"
)

// TestMain lets the test binary be the engine too: the service tests copy
// it into a run's directory as fleetup-engine.exe and register it with
// the service manager, which starts it as "service --dir DIR".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "service" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// winRun is one run's engine directory and service for a test, removed
// when the test ends.
type winRun struct {
	id, dir, name string
	ca            *pki.CA
}

func newWinRun(t *testing.T, cfg wire.Config) *winRun {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	id := time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
	ca, err := pki.NewCA(id)
	if err != nil {
		t.Fatal(err)
	}
	r := &winRun{id: id, dir: filepath.Join(os.TempDir(), WinDirName(id)), name: ServiceName(id), ca: ca}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("sc.exe", "stop", r.name).Run()
		_ = exec.Command("sc.exe", "delete", r.name).Run()
		waitGone(r.name, 10*time.Second)
		if _, err := removeTree(r.dir); err != nil {
			t.Logf("clean up %s: %v", r.dir, err)
		}
	})
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, self, filepath.Join(r.dir, WinExeFile))
	cfg.RunID, cfg.CAPEM = id, ca.CertPEM()
	if cfg.Node == "" {
		cfg.Node = "winnode"
	}
	cfgJSON, _ := json.Marshal(cfg)
	if err := writeFileAtomic(r.dir, WinConfigFile, cfgJSON); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(r.dir, WinExeFile)
	sc(t, "create", r.name, "binPath=", `"`+exe+`" service --dir "`+r.dir+`"`, "type=", "own", "start=", "demand", "DisplayName=", ServiceDisplayName(id))
	return r
}

func sc(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("sc.exe", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o700); err != nil {
		t.Fatal(err)
	}
}

// waitFile waits for dir/name and returns its bytes.
func waitFile(t *testing.T, dir, name string, wait time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s (log: %s)", name, wait, readLog(dir))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readLog(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, WinLogFile))
	return string(b)
}

// serviceState is the service's state, or an error (it does not exist).
func serviceState(name string) (svc.State, error) {
	m, err := mgr.Connect()
	if err != nil {
		return 0, err
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return 0, err
	}
	return st.State, nil
}

func waitState(t *testing.T, name string, want svc.State, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		st, err := serviceState(name)
		if err == nil && st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s: state %d (%v) after %s, want %d", name, st, err, wait, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitGone waits until the service manager no longer knows name.
func waitGone(name string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if _, err := serviceState(name); err != nil {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// handshake plays the manager's part: sign engine.csr, write engine.crt,
// wait for ready.json, and return it with a client for the engine's API.
func (r *winRun) handshake(t *testing.T) (*wire.Ready, *wire.Client) {
	t.Helper()
	csr := waitFile(t, r.dir, WinCSRFile, 30*time.Second)
	crt, err := r.ca.SignCSR(csr, "winnode", []string{"127.0.0.1"})
	if err != nil {
		t.Fatalf("sign the engine's request: %v", err)
	}
	if err := writeFileAtomic(r.dir, WinCertFile, crt); err != nil {
		t.Fatal(err)
	}
	var ready wire.Ready
	if err := json.Unmarshal(waitFile(t, r.dir, WinReadyFile, 30*time.Second), &ready); err != nil {
		t.Fatal(err)
	}
	if ready.Error != "" {
		t.Fatalf("ready.json: %s (log: %s)", ready.Error, readLog(r.dir))
	}
	leaf, err := r.ca.Issue(pki.ManagerName, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := wire.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(ready.Port)), pki.ClientTLS(r.ca.Pool(), leaf.Cert, pki.EngineName), nil)
	t.Cleanup(c.Close)
	return &ready, c
}

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func TestServiceLifeCycleStop(t *testing.T) {
	port := freePort(t)
	r := newWinRun(t, wire.Config{Port: port, OpenFirewall: true, ManagerAddr: "127.0.0.1", IdleTimeout: wire.Duration(5 * time.Minute)})
	sc(t, "start", r.name)
	waitState(t, r.name, svc.Running, 20*time.Second)
	ready, c := r.handshake(t)
	if ready.Port != port || ready.Dir != r.dir || ready.PID == 0 {
		t.Errorf("ready = %+v, want port %d, dir %s and a pid", ready, port, r.dir)
	}
	if len(ready.Firewall) != 1 || !strings.Contains(ready.Firewall[0], "fleetup:"+r.id) {
		t.Errorf("ready.Firewall = %q, want the rule fleetup:%s", ready.Firewall, r.id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inv, err := c.Inventory(ctx)
	if err != nil {
		t.Fatalf("inventory over TLS: %v (log: %s)", err, readLog(r.dir))
	}
	if inv.OS != "windows" || inv.OSName == "" || inv.Kernel == "" {
		t.Errorf("inventory OS %q, name %q, build %q: want windows and a name and build", inv.OS, inv.OSName, inv.Kernel)
	}

	// A client without the manager's name is refused.
	other, err := r.ca.Issue("node2", nil)
	if err != nil {
		t.Fatal(err)
	}
	oc := wire.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(ready.Port)), pki.ClientTLS(r.ca.Pool(), other.Cert, pki.EngineName), nil)
	defer oc.Close()
	if err := oc.Ping(ctx); err == nil {
		t.Error("a client certificate not named fleetup-manager was let in")
	}

	sc(t, "stop", r.name)
	waitState(t, r.name, svc.Stopped, 60*time.Second)
	var rep wire.CleanupReport
	if err := json.Unmarshal(waitFile(t, r.dir, WinCleanupFile, 10*time.Second), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Firewall) != 1 || len(rep.Errors) != 0 || len(rep.Files) == 0 {
		t.Errorf("clean-up report %+v: want the firewall rule, files and no errors", rep)
	}
	if got, want := entries(t, r.dir), []string{WinCleanupFile, WinExeFile}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after the stop the directory holds %q, want %q", got, want)
	}
}

// TestServiceShutdownAPI installs a script whose payload the manager
// pushed into payloads\ (no depot), then shuts the engine down through
// the API.
func TestServiceShutdownAPI(t *testing.T) {
	r := newWinRun(t, wire.Config{Port: freePort(t), IdleTimeout: wire.Duration(5 * time.Minute)})
	marker := filepath.Join(os.TempDir(), "fleetup-marker-"+r.id+".txt")
	t.Cleanup(func() { os.Remove(marker) })
	payload := []byte("@echo off\r\necho %FLEETUP_COMPONENT_VERSION%> \"" + marker + "\"\r\n")
	sum := sha256.Sum256(payload)
	comp := fleetup.Component{ID: "dev.example.hello", Name: "hello", Version: "1.2", Kind: fleetup.KindScript, File: "hello.cmd",
		Size: int64(len(payload)), SHA256: hex.EncodeToString(sum[:]), Targets: []string{"windows"}, Interpreter: "cmd",
		VersionCommand: `type "` + marker + `"`}
	if err := os.MkdirAll(filepath.Join(r.dir, WinPushedDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, WinPushedDir, comp.SHA256), payload, 0o600); err != nil {
		t.Fatal(err)
	}
	sc(t, "start", r.name)
	ready, c := r.handshake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	probes, err := c.Probe(ctx, []fleetup.Component{comp})
	if err != nil || !probes[0].Applicable || probes[0].Installed != "" {
		t.Fatalf("probe before: %+v, %v", probes, err)
	}
	res, err := c.Install(ctx, wire.InstallRequest{Items: []wire.InstallItem{{Component: comp, Action: fleetup.ActionUpdate}}}, func(fleetup.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Phase != fleetup.PhaseInstalled || res[0].After != "1.2" {
		t.Fatalf("install: %+v (log: %s)", res, readLog(r.dir))
	}
	rep := shutdown(t, ctx, r, ready.Port)
	if len(rep.Errors) != 0 || len(rep.Files) == 0 {
		t.Errorf("clean-up report %+v: want files and no errors", rep)
	}
	waitState(t, r.name, svc.Stopped, 30*time.Second)
	if got := entries(t, r.dir); strings.Join(got, " ") != WinExeFile {
		t.Errorf("after the shutdown the directory holds %q, want only %s", got, WinExeFile)
	}
}

// shutdown calls POST /v1/shutdown as the manager does.
func shutdown(t *testing.T, ctx context.Context, r *winRun, port int) *wire.CleanupReport {
	t.Helper()
	leaf, err := r.ca.Issue(pki.ManagerName, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(r.ca.Pool(), leaf.Cert, pki.EngineName)}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("https://127.0.0.1:%d/v1/shutdown", port), nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("shutdown: %s: %s", resp.Status, b)
	}
	var rep wire.CleanupReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("shutdown answered %q: %v", b, err)
	}
	return &rep
}

func TestServiceIdleRemovesItself(t *testing.T) {
	r := newWinRun(t, wire.Config{Port: freePort(t), IdleTimeout: wire.Duration(2 * time.Second)})
	sc(t, "start", r.name)
	r.handshake(t)
	if !waitGone(r.name, 60*time.Second) {
		t.Fatalf("service %s still exists a minute after its idle timeout (log: %s)", r.name, readLog(r.dir))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := os.Stat(r.dir)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			es, _ := os.ReadDir(r.dir)
			t.Fatalf("%s still there a minute after the engine removed itself (%d entries)", r.dir, len(es))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestServiceNoCertificate(t *testing.T) {
	r := newWinRun(t, wire.Config{Port: freePort(t)})
	sc(t, "start", r.name)
	csr := waitFile(t, r.dir, WinCSRFile, 30*time.Second)
	// A certificate of another CA is refused at once.
	other, err := pki.NewCA(r.id)
	if err != nil {
		t.Fatal(err)
	}
	crt, err := other.SignCSR(csr, "winnode", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(r.dir, WinCertFile, crt); err != nil {
		t.Fatal(err)
	}
	var ready wire.Ready
	if err := json.Unmarshal(waitFile(t, r.dir, WinReadyFile, 30*time.Second), &ready); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ready.Error, "not the run's CA's") {
		t.Errorf("ready.Error = %q, want the refusal of another CA's certificate", ready.Error)
	}
	waitState(t, r.name, svc.Stopped, 30*time.Second)
	if got := entries(t, r.dir); strings.Join(got, " ") != WinExeFile+" "+WinReadyFile {
		t.Errorf("after the failed start the directory holds %q, want the exe and ready.json", got)
	}
}

func TestServiceOutsideServiceManager(t *testing.T) {
	var stderr strings.Builder
	if code := Main([]string{"service", "--dir", tempDir(t)}, nil, io.Discard, &stderr); code != 1 {
		t.Errorf("service outside the service manager: exit %d, want 1 (%s)", code, stderr.String())
	}
	if code := Main([]string{"service"}, nil, io.Discard, io.Discard); code != 2 {
		t.Errorf("service without --dir: exit %d, want 2", code)
	}
}

func TestWaitCert(t *testing.T) {
	ca, err := pki.NewCA("20261202-061500-ab12cd")
	if err != nil {
		t.Fatal(err)
	}
	key, csr, err := newKeyAndCSR("winnode")
	if err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	path := filepath.Join(dir, WinCertFile)
	ctx := context.Background()
	if _, err := waitCert(ctx, path, key, ca.Pool(), 10*time.Millisecond, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not sign") {
		t.Errorf("no certificate: %v, want a time-out naming the request", err)
	}
	// Half a file (from a writer that does not rename) is read again;
	// the whole one is taken.
	crt, err := ca.SignCSR(csr, "winnode", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, crt[:len(crt)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	renamed := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		renamed <- os.WriteFile(path, crt, 0o600)
	}()
	cert, err := waitCert(ctx, path, key, ca.Pool(), 10*time.Millisecond, 5*time.Second)
	if rerr := <-renamed; rerr != nil {
		t.Fatalf("write %s: %v", WinCertFile, rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf.Subject.CommonName != "winnode" {
		t.Errorf("certificate for %q", cert.Leaf.Subject.CommonName)
	}
	// A certificate for another key is refused at once.
	other, _, _ := newKeyAndCSR("winnode")
	if _, err := waitCert(ctx, path, other, ca.Pool(), 10*time.Millisecond, 5*time.Second); err == nil || !strings.Contains(err.Error(), "not for the engine's key") {
		t.Errorf("another key's certificate: %v", err)
	}
}

func TestRemoveTree(t *testing.T) {
	root := filepath.Join(tempDir(t), "fleetup-x")
	for _, p := range []string{`a\b\c.txt`, `a\d.txt`, `e.txt`, `fleetup-engine.exe`} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ro := filepath.Join(root, "a", "readonly.txt")
	if err := os.WriteFile(ro, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	removed, err := removeTree(root, filepath.Join(root, WinExeFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 6 { // 4 files, 2 directories
		t.Errorf("removed %q, want 6 entries", removed)
	}
	if got := entries(t, root); strings.Join(got, " ") != WinExeFile {
		t.Errorf("left %q, want only the exe", got)
	}
	if _, err := removeTree(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root still there: %v", err)
	}
}

// tempDir is t.TempDir, removed with removeTree: testing's own clean-up
// uses os.RemoveAll, which fails under Wine.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fleetup-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := removeTree(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// TestJobEndsInstalls puts the test itself in the engine's job, as the
// service does, and checks that the clean-up ends what was started.
func TestJobEndsInstalls(t *testing.T) {
	if _, err := installJob(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ping.exe", "-n", "60", "127.0.0.1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	killed, err := killMarked("", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("pid %d (ping.exe)", cmd.Process.Pid)
	if len(killed) != 1 || !strings.EqualFold(killed[0], want) {
		t.Errorf("killed %q, want %q", killed, want)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ping still runs after the clean-up")
	}
}

func TestNetshArgs(t *testing.T) {
	n := firewall.NewNetsh(nil)
	src := netip.MustParseAddr("fd42:5e:0:3::1")
	got := strings.Join(n.AddArgs(firewall.Rule{Tag: "fleetup:20261202-061500-ab12cd", Port: 62286, Source: src}), " ")
	if want := "advfirewall firewall add rule name=fleetup:20261202-061500-ab12cd dir=in action=allow protocol=TCP localport=62286 remoteip=fd42:5e:0:3::1"; got != want {
		t.Errorf("add:\n got %s\nwant %s", got, want)
	}
	got = strings.Join(n.DeleteArgs("fleetup:20261202-061500-ab12cd"), " ")
	if want := "advfirewall firewall delete rule name=fleetup:20261202-061500-ab12cd"; got != want {
		t.Errorf("delete:\n got %s\nwant %s", got, want)
	}
	if err := n.Allow(context.Background(), firewall.Rule{Tag: "fleetup:x", Port: 1, Source: netip.IPv4Unspecified()}); err == nil {
		t.Error("a rule for every source was added without AnySource")
	}
}

func TestRemoveDirLater(t *testing.T) {
	dir := filepath.Join(tempDir(t), "fleetup-x y")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", WinExeFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer func(w []int) { dirRemovalWaits = w }(dirRemovalWaits)
	dirRemovalWaits = []int{1, 1}
	if _, err := removeDirLater(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there 20s later", dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

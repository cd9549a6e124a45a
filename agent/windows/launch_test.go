package windows

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport/smb"
	"github.com/fleetup/fleetup/wire"
)

const runID = "20261202-061500-ab12cd"

// fakeFiles is ADMIN$ in memory. fail, when set, may fail an operation.
type fakeFiles struct {
	mu    sync.Mutex
	files map[string][]byte // path → content; directories hold nil
	fail  func(op, path string) error
	// locked: RemoveAll of a path below this fails as a file in use.
	locked string
}

func newFakeFiles() *fakeFiles { return &fakeFiles{files: map[string][]byte{}} }

func (f *fakeFiles) check(op, p string) error {
	if f.fail != nil {
		return f.fail(op, p)
	}
	return nil
}

func (f *fakeFiles) MkdirAll(_ context.Context, dir string) error {
	if err := f.check("mkdir", dir); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := strings.Split(dir, `\`)
	for i := range parts {
		p := strings.Join(parts[:i+1], `\`)
		if _, ok := f.files[p]; !ok {
			f.files[p] = nil
		}
	}
	return nil
}

func (f *fakeFiles) WriteFile(_ context.Context, name string, data []byte) error {
	if err := f.check("write", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[parent(name)]; !ok {
		return fmt.Errorf("write %s: %w", name, os.ErrNotExist)
	}
	f.files[name] = append([]byte{}, data...)
	return nil
}

func (f *fakeFiles) WriteFileFrom(ctx context.Context, name string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return f.WriteFile(ctx, name, b)
}

func (f *fakeFiles) ReadFile(_ context.Context, name string, max int64) ([]byte, error) {
	if err := f.check("read", name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[name]
	if !ok || b == nil {
		return nil, fmt.Errorf("read %s: %w", name, os.ErrNotExist)
	}
	if int64(len(b)) > max {
		return nil, smb.ErrTooLarge
	}
	return append([]byte{}, b...), nil
}

func (f *fakeFiles) Exists(_ context.Context, name string) (bool, error) {
	if err := f.check("exists", name); err != nil {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.files[name]
	return ok, nil
}

func (f *fakeFiles) ReadDir(_ context.Context, dir string) ([]os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []os.FileInfo
	for p, b := range f.files {
		if parent(p) == dir {
			out = append(out, fakeInfo{name: p[len(dir)+1:], dir: b == nil})
		}
	}
	return out, nil
}

func (f *fakeFiles) RemoveAll(_ context.Context, path string, _ time.Duration) error {
	if err := f.check("remove", path); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked != "" && strings.HasPrefix(f.locked, path) {
		return fmt.Errorf("remove %s: %w", f.locked, smb.ErrLocked)
	}
	for p := range f.files {
		if p == path || strings.HasPrefix(p, path+`\`) {
			delete(f.files, p)
		}
	}
	return nil
}

func (f *fakeFiles) has(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.files[name]
	return ok
}

func (f *fakeFiles) get(name string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[name]
}

func (f *fakeFiles) put(name string, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[name] = b
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '\\')
	if i < 0 {
		return ""
	}
	return p[:i]
}

type fakeInfo struct {
	name string
	dir  bool
}

func (i fakeInfo) Name() string       { return i.name }
func (i fakeInfo) Size() int64        { return 0 }
func (i fakeInfo) Mode() fs.FileMode  { return 0 }
func (i fakeInfo) ModTime() time.Time { return time.Time{} }
func (i fakeInfo) IsDir() bool        { return i.dir }
func (i fakeInfo) Sys() any           { return nil }

// fakeServices is the service manager; start runs when a service starts
// (the fake engine), stop when it is stopped.
type fakeServices struct {
	mu       sync.Mutex
	services map[string]uint32 // name → state
	configs  map[string]smb.ServiceConfig
	calls    []string
	fail     map[string]error // op → error
	start    func(name string)
	stop     func(name string)
	closed   bool
}

func newFakeServices() *fakeServices {
	return &fakeServices{services: map[string]uint32{}, configs: map[string]smb.ServiceConfig{}, fail: map[string]error{}}
}

func (f *fakeServices) op(op, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+name)
	return f.fail[op]
}

func (f *fakeServices) CreateService(_ context.Context, cfg smb.ServiceConfig) error {
	if err := f.op("create", cfg.Name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.services[cfg.Name]; ok {
		return &smb.SCMError{Op: "create the service " + cfg.Name, Code: 1073}
	}
	f.services[cfg.Name] = smb.StateStopped
	f.configs[cfg.Name] = cfg
	return nil
}

func (f *fakeServices) StartService(_ context.Context, name string) error {
	if err := f.op("start", name); err != nil {
		return err
	}
	f.mu.Lock()
	if _, ok := f.services[name]; !ok {
		f.mu.Unlock()
		return &smb.SCMError{Op: "open the service " + name, Code: 1060}
	}
	f.services[name] = smb.StateRunning
	start := f.start
	f.mu.Unlock()
	if start != nil {
		go start(name)
	}
	return nil
}

func (f *fakeServices) QueryServiceStatus(_ context.Context, name string) (uint32, error) {
	if err := f.op("query", name); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.services[name]
	if !ok {
		return 0, &smb.SCMError{Op: "open the service " + name, Code: 1060}
	}
	return st, nil
}

func (f *fakeServices) StopService(_ context.Context, name string) (uint32, error) {
	if err := f.op("stop", name); err != nil {
		return 0, err
	}
	f.mu.Lock()
	st, ok := f.services[name]
	if !ok {
		f.mu.Unlock()
		return 0, &smb.SCMError{Op: "open the service " + name, Code: 1060}
	}
	stop := f.stop
	f.services[name] = smb.StateStopped
	f.mu.Unlock()
	if stop != nil && st == smb.StateRunning {
		stop(name)
	}
	return smb.StateStopped, nil
}

func (f *fakeServices) DeleteService(_ context.Context, name string) error {
	if err := f.op("delete", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.services[name]; !ok {
		return &smb.SCMError{Op: "open the service " + name, Code: 1060}
	}
	delete(f.services, name)
	return nil
}

func (f *fakeServices) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeServices) exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.services[name]
	return ok
}

// fakeEngine plays the engine's side of the directory's protocol and
// serves the shutdown (and a little of the API) over mutual TLS.
type fakeEngine struct {
	t      *testing.T
	files  *fakeFiles
	ca     *pki.CA
	cn     string // the CN its request names
	dial   *wire.DialResult
	failAt string // "csr": never writes one; "ready": writes ready.json with an error

	mu        sync.Mutex
	ln        net.Listener
	shutdowns int
	installs  []wire.InstallRequest
	pushed    map[string][]byte // what the payloads dir held at install
}

func (e *fakeEngine) run(string) {
	dir := ShareDir(runID)
	if e.failAt == "csr" {
		return
	}
	if e.failAt == "ready-early" {
		b, _ := json.Marshal(wire.Ready{Error: "config.json: bad"})
		e.files.put(dir+`\`+ReadyFile, b)
		return
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: e.cn}}, key)
	e.files.put(dir+`\`+CSRFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	var crt []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if crt = e.files.get(dir + `\` + CertFile); crt != nil {
			break
		}
	}
	if crt == nil {
		return
	}
	if e.failAt == "ready" {
		b, _ := json.Marshal(wire.Ready{Error: "listen: port 62286 taken"})
		e.files.put(dir+`\`+ReadyFile, b)
		return
	}
	block, _ := pem.Decode(crt)
	cert := tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}
	cfg := pki.RequirePeer(pki.ServerTLS(e.ca.Pool(), cert), pki.ManagerName)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		e.t.Error(err)
		return
	}
	e.mu.Lock()
	e.ln = ln
	e.mu.Unlock()
	go http.Serve(ln, http.HandlerFunc(e.serve))
	b, _ := json.Marshal(Ready{Ready: wire.Ready{Port: ln.Addr().(*net.TCPAddr).Port, PID: 4242, Dir: NodeDir(runID), Firewall: []string{"fleetup:" + runID}}, Dial: e.dial})
	e.files.put(dir+`\`+ReadyFile+".tmp", b)
	e.files.put(dir+`\`+ReadyFile, b)
}

func (e *fakeEngine) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/ping":
		w.Write([]byte("{}"))
	case "/v1/install":
		var req wire.InstallRequest
		json.NewDecoder(r.Body).Decode(&req)
		e.mu.Lock()
		e.installs = append(e.installs, req)
		e.pushed = map[string][]byte{}
		for _, it := range req.Items {
			e.pushed[it.Component.SHA256] = e.files.get(ShareDir(runID) + `\payloads\` + it.Component.SHA256)
		}
		e.mu.Unlock()
		var res []fleetup.ComponentResult
		for _, it := range req.Items {
			res = append(res, fleetup.ComponentResult{ComponentID: it.Component.ID})
		}
		json.NewEncoder(w).Encode(wire.InstallLine{Results: res, Done: true})
	case "/v1/shutdown":
		e.mu.Lock()
		e.shutdowns++
		e.mu.Unlock()
		// The engine removes its files but its exe, and its rule.
		dir := ShareDir(runID)
		for _, n := range []string{ConfigFile, CSRFile, CertFile, ReadyFile, ReadyFile + ".tmp"} {
			e.files.mu.Lock()
			delete(e.files.files, dir+`\`+n)
			e.files.mu.Unlock()
		}
		json.NewEncoder(w).Encode(wire.CleanupReport{Firewall: []string{"fleetup:" + runID}, Files: []string{NodeDir(runID) + `\` + ConfigFile}})
	default:
		http.NotFound(w, r)
	}
}

func (e *fakeEngine) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ln != nil {
		e.ln.Close()
	}
}

type fixture struct {
	files    *fakeFiles
	svc      *fakeServices
	engine   *fakeEngine
	ca       *pki.CA
	mgr      *pki.Leaf
	l        *Launcher
	placed   []string
	removed  int
	released int
	notices  []string
	mu       sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ca, err := pki.NewCA(runID)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ca.Issue(pki.ManagerName, nil)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{files: newFakeFiles(), svc: newFakeServices(), ca: ca, mgr: mgr}
	fx.engine = &fakeEngine{t: t, files: fx.files, ca: ca, cn: "win1"}
	t.Cleanup(fx.engine.close)
	fx.svc.start = fx.engine.run
	fx.svc.stop = func(string) { fx.engine.close() }
	fx.l = &Launcher{
		Files:        fx.files,
		Services:     func(context.Context) (Services, error) { return fx.svc, nil },
		Host:         "127.0.0.1",
		ManagerAddr:  "198.18.3.1",
		Manager:      mgr,
		Release:      func() error { fx.mu.Lock(); fx.released++; fx.mu.Unlock(); return nil },
		StartTimeout: 3 * time.Second,
		CSRTimeout:   2 * time.Second,
		Poll:         10 * time.Millisecond,
	}
	return fx
}

func (fx *fixture) spec(t *testing.T) agent.Spec {
	exe := filepath.Join(t.TempDir(), "fleetup-engine-windows-amd64.exe")
	if err := os.WriteFile(exe, []byte("MZ fake engine"), 0o600); err != nil {
		t.Fatal(err)
	}
	return agent.Spec{
		RunID:     runID,
		Node:      "win1",
		Engine:    func(goarch string) (string, error) { return exe, nil },
		CA:        fx.ca,
		Config:    wire.Config{Port: wire.DefaultPort, IdleTimeout: wire.Duration(time.Minute)},
		DepotPort: 63002,
		Placed: func(dir string, pid, port int) error {
			fx.mu.Lock()
			defer fx.mu.Unlock()
			fx.placed = append(fx.placed, fmt.Sprintf("%s %d %d", dir, pid, port))
			return nil
		},
		Removed: func() error { fx.mu.Lock(); fx.removed++; fx.mu.Unlock(); return nil },
		Notice:  func(m string) { fx.mu.Lock(); fx.notices = append(fx.notices, m); fx.mu.Unlock() },
	}
}

// nothingLeft checks the node holds nothing of the run.
func (fx *fixture) nothingLeft(t *testing.T) {
	t.Helper()
	if fx.files.has(ShareDir(runID)) {
		t.Errorf("%s left on the node", NodeDir(runID))
	}
	if fx.svc.exists(ServiceName(runID)) {
		t.Errorf("service %s left on the node", ServiceName(runID))
	}
}

func TestNames(t *testing.T) {
	if got := ServiceName(runID); got != "fleetup-20261202-061500-ab12cd" {
		t.Errorf("ServiceName = %q", got)
	}
	if got := ServiceName("Cleanup_X.1"); got != "fleetup-cleanup-x-1" {
		t.Errorf("ServiceName = %q", got)
	}
	want := `"C:\Windows\Temp\fleetup-` + runID + `\fleetup-engine.exe" service --dir "C:\Windows\Temp\fleetup-` + runID + `"`
	if got := BinaryPath(runID); got != want {
		t.Errorf("BinaryPath = %s, want %s", got, want)
	}
}

func TestLaunchAndShutdown(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	sess, err := fx.l.Launch(ctx, fx.spec(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := ShareDir(runID)
	if got := fx.files.get(dir + `\` + ExeFile); string(got) != "MZ fake engine" {
		t.Fatalf("exe on the node: %q", got)
	}
	var cfg wire.Config
	if err := json.Unmarshal(fx.files.get(dir+`\`+ConfigFile), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.KeyPEM) != 0 || len(cfg.CertPEM) != 0 || !bytes.Equal(cfg.CAPEM, fx.ca.CertPEM()) || cfg.RunID != runID || cfg.Node != "win1" ||
		cfg.ManagerAddr != "198.18.3.1" || !cfg.OpenFirewall || cfg.DepotURL != "https://198.18.3.1:63002" {
		t.Fatalf("config.json: %+v", cfg)
	}
	sc := fx.svc.configs[ServiceName(runID)]
	if sc.DisplayName != "fleetup engine (run "+runID+")" || sc.BinaryPath != BinaryPath(runID) {
		t.Fatalf("service config %+v", sc)
	}
	crt := fx.files.get(dir + `\` + CertFile)
	block, _ := pem.Decode(crt)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.Subject.CommonName != "win1" || len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "127.0.0.1" {
		t.Fatalf("engine.crt: %v %+v", err, cert)
	}
	if ep := sess.Endpoint(); ep.Addr != net.JoinHostPort("127.0.0.1", fmt.Sprint(sess.Ready().Port)) || ep.Via != nil {
		t.Fatalf("endpoint %+v", ep)
	}
	wantPlaced := []string{NodeDir(runID) + " 0 0", fmt.Sprintf("%s 4242 %d", NodeDir(runID), sess.Ready().Port)}
	if strings.Join(fx.placed, "|") != strings.Join(wantPlaced, "|") {
		t.Fatalf("placed %q, want %q", fx.placed, wantPlaced)
	}
	rep, err := sess.Shutdown(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fx.nothingLeft(t)
	if fx.engine.shutdowns != 1 {
		t.Fatalf("the engine API's shutdown was called %d times", fx.engine.shutdowns)
	}
	if got := agent.Describe(rep); !strings.Contains(got, "service "+ServiceName(runID)) || !strings.Contains(got, "firewall rules fleetup:"+runID) ||
		!strings.Contains(got, NodeDir(runID)) || !strings.Contains(got, "SMB session") {
		t.Fatalf("report %s", got)
	}
	if !fx.svc.closed || fx.released != 1 || fx.removed != 0 {
		t.Fatalf("closed %v released %d removed %d", fx.svc.closed, fx.released, fx.removed)
	}
	// Idempotent.
	if _, err := sess.Shutdown(ctx); err != nil || fx.released != 1 {
		t.Fatalf("second Shutdown: %v, released %d", err, fx.released)
	}
}

// Every failure of the launch takes back what was placed.
func TestLaunchFailuresTakeBack(t *testing.T) {
	refused := &smb.SCMError{Op: "create the service " + ServiceName(runID), Code: 5}
	tests := []struct {
		name    string
		setup   func(fx *fixture)
		errHas  string
		service bool // whether a service was created (and must be deleted)
	}{
		{name: "service creation refused", setup: func(fx *fixture) { fx.svc.fail["create"] = refused },
			errHas: "the service manager refused to create the service fleetup-" + runID + ": access denied (5)"},
		{name: "service manager unreachable", setup: func(fx *fixture) {
			fx.l.Services = func(context.Context) (Services, error) {
				return nil, &smb.SCMError{Op: "open for creating services", Code: 5}
			}
		}, errHas: "the service manager refused to open for creating services: access denied (5)"},
		{name: "start refused", setup: func(fx *fixture) { fx.svc.fail["start"] = &smb.SCMError{Op: "start the service x", Code: 1053} },
			errHas: "did not respond to the start", service: true},
		{name: "no certificate request", setup: func(fx *fixture) { fx.engine.failAt = "csr" },
			errHas: "did not write its certificate request (engine.csr) within 2s", service: true},
		{name: "engine failed early", setup: func(fx *fixture) { fx.engine.failAt = "ready-early" },
			errHas: "engine: config.json: bad", service: true},
		{name: "request for another node", setup: func(fx *fixture) { fx.engine.cn = "win2" },
			errHas: `it names "win2", not "win1"`, service: true},
		{name: "engine failed to listen", setup: func(fx *fixture) { fx.engine.failAt = "ready" },
			errHas: "engine: listen: port 62286 taken", service: true},
		{name: "exe copy fails", setup: func(fx *fixture) {
			fx.files.fail = func(op, p string) error {
				if op == "write" && strings.HasSuffix(p, ExeFile) {
					return smb.ErrServerGone
				}
				return nil
			}
		}, errHas: "copy the engine: " + smb.ErrServerGone.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			tt.setup(fx)
			_, err := fx.l.Launch(context.Background(), fx.spec(t))
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("Launch: %v, want an error with %q", err, tt.errHas)
			}
			if !strings.Contains(err.Error(), "win1") {
				t.Errorf("error %q does not name the node", err)
			}
			fx.nothingLeft(t)
			if fx.removed != 1 || fx.released != 1 {
				t.Fatalf("removed %d released %d, want 1 and 1", fx.removed, fx.released)
			}
			deleted := false
			for _, c := range fx.svc.calls {
				if c == "delete "+ServiceName(runID) {
					deleted = true
				}
			}
			if deleted != tt.service {
				t.Fatalf("service deleted %v, want %v (calls %q)", deleted, tt.service, fx.svc.calls)
			}
		})
	}
}

// A take-back that cannot remove everything says what is left and does
// not tell the journal the node is clean.
func TestLaunchTakeBackFails(t *testing.T) {
	fx := newFixture(t)
	fx.svc.fail["create"] = &smb.SCMError{Op: "create the service " + ServiceName(runID), Code: 5}
	fx.files.locked = ShareDir(runID) + `\` + ExeFile
	_, err := fx.l.Launch(context.Background(), fx.spec(t))
	if err == nil || !strings.Contains(err.Error(), "access denied (5)") || !strings.Contains(err.Error(), "remove "+NodeDir(runID)) || !errors.Is(err, smb.ErrLocked) {
		t.Fatalf("Launch: %v", err)
	}
	if fx.removed != 0 {
		t.Fatal("the journal was told the node is clean")
	}
	t.Log(err)
}

// A service that cannot be deleted is said.
func TestShutdownServiceLeft(t *testing.T) {
	fx := newFixture(t)
	sess, err := fx.l.Launch(context.Background(), fx.spec(t))
	if err != nil {
		t.Fatal(err)
	}
	fx.svc.fail["delete"] = &smb.SCMError{Op: "delete the service " + ServiceName(runID), Code: 5}
	_, err = sess.Shutdown(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is stopped but left") || !strings.Contains(err.Error(), "clean-up on win1") {
		t.Fatalf("Shutdown: %v", err)
	}
}

// When the engine's API is gone, the stop and cleanup.json still clean up.
func TestShutdownWithoutEngineAPI(t *testing.T) {
	fx := newFixture(t)
	sess, err := fx.l.Launch(context.Background(), fx.spec(t))
	if err != nil {
		t.Fatal(err)
	}
	fx.engine.close()
	fx.svc.stop = func(string) {
		b, _ := json.Marshal(wire.CleanupReport{Firewall: []string{"fleetup:" + runID}})
		fx.files.put(ShareDir(runID)+`\`+CleanupFile, b)
	}
	rep, err := sess.Shutdown(context.Background())
	if err == nil || !strings.Contains(err.Error(), "the engine did not report its clean-up") {
		t.Fatalf("Shutdown: %v", err)
	}
	fx.nothingLeft(t)
	if len(rep.Firewall) != 1 {
		t.Fatalf("cleanup.json not read: %+v", rep)
	}
}

// A node that cannot reach the depot gets its payloads over SMB, said.
func TestPushPayloads(t *testing.T) {
	fx := newFixture(t)
	fx.engine.dial = &wire.DialResult{Addr: "198.18.3.1:63002", Status: "filtered", Error: "i/o timeout"}
	payload := filepath.Join(t.TempDir(), "p.msi")
	if err := os.WriteFile(payload, []byte("msi bytes"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	spec := fx.spec(t)
	r, err := newRemote(context.Background(), "win1", fx.l, RemoteOptions{
		RunID: runID, Node: "win1", Engine: spec.Engine, CA: fx.ca, Manager: fx.mgr, DepotPort: 63002,
		IdleTimeout: 4 * time.Second, Placed: spec.Placed, Removed: spec.Removed, Notice: spec.Notice,
	})
	if err != nil {
		t.Fatal(err)
	}
	req := wire.InstallRequest{Items: []wire.InstallItem{{Component: fleetup.Component{ID: "c1", SHA256: sum, Path: payload, Size: 9}}}}
	if _, err := r.Install(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if got := string(fx.engine.pushed[sum]); got != "msi bytes" {
		t.Fatalf("payload on the node at install: %q", got)
	}
	var said bool
	for _, n := range fx.notices {
		if strings.Contains(n, "pushing payloads over SMB: the node cannot reach the manager") {
			said = true
		}
	}
	if !said {
		t.Fatalf("notices %q", fx.notices)
	}
	rep, err := r.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fx.nothingLeft(t)
	names := append([]string{}, rep.Files...)
	sort.Strings(names)
	t.Log(agent.Describe(rep))
}

func TestSweep(t *testing.T) {
	files, svc := newFakeFiles(), newFakeServices()
	ctx := context.Background()
	dead, live := "20261201-010101-aaaaaa", "20261201-020202-bbbbbb"
	for _, run := range []string{dead, live} {
		files.MkdirAll(ctx, ShareDir(run))
		files.WriteFile(ctx, ShareDir(run)+`\`+ExeFile, []byte("x"))
	}
	svc.services[ServiceName(live)] = smb.StateRunning
	svc.stop = func(string) {
		b, _ := json.Marshal(wire.CleanupReport{Firewall: []string{"fleetup:" + live}})
		files.put(ShareDir(live)+`\`+CleanupFile, b)
	}
	files.MkdirAll(ctx, `Temp\other`)
	rep, err := Sweep(ctx, files, svc, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if files.has(ShareDir(dead)) || files.has(ShareDir(live)) || svc.exists(ServiceName(live)) || !files.has(`Temp\other`) {
		t.Fatalf("after the sweep: %v %v", files.files, svc.services)
	}
	got := agent.Describe(rep)
	if !strings.Contains(got, "service "+ServiceName(live)) || !strings.Contains(got, "firewall rules fleetup:"+live) ||
		!strings.Contains(got, `netsh advfirewall firewall delete rule name="fleetup:`+dead+`"`) {
		t.Fatalf("report %s", got)
	}
}

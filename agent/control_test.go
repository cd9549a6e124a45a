package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/wire"
)

// fakeEngine is an engine's TLS API on loopback that can be frozen (it
// accepts, then never answers: a firewall that began to drop the port).
type fakeEngine struct {
	ln     net.Listener
	frozen atomic.Bool
	hold   chan struct{}
}

func startFakeEngine(t *testing.T, ca *pki.CA, node string) *fakeEngine {
	t.Helper()
	leaf, err := ca.Issue(node, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", pki.ServerTLS(ca.Pool(), leaf.Cert))
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEngine{ln: ln, hold: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if e.frozen.Load() {
			<-e.hold
			return
		}
		if r.URL.Path == "/v1/inventory" {
			json.NewEncoder(w).Encode(fleetup.Inventory{Hostname: node, OS: "debian", Kernel: "6", Arch: "x86_64"})
		}
	})
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	t.Cleanup(func() { close(e.hold); srv.Close() })
	return e
}

// fakeSession is a Session whose engine is a fakeEngine.
type fakeSession struct {
	addr      string
	mu        sync.Mutex
	shutdowns int
	abandoned bool
	// shutdownErr is what Shutdown answers (the session is gone too).
	shutdownErr error
}

func (s *fakeSession) Endpoint() Endpoint { return Endpoint{Addr: s.addr} }
func (s *fakeSession) Ready() *wire.Ready { return &wire.Ready{} }
func (s *fakeSession) Shutdown(ctx context.Context) (*wire.CleanupReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutdowns++
	return &wire.CleanupReport{Files: []string{"/tmp/x"}}, s.shutdownErr
}
func (s *fakeSession) Abandon() { s.mu.Lock(); s.abandoned = true; s.mu.Unlock() }

func control(t *testing.T, idle time.Duration) (*Remote, *fakeEngine, *fakeSession) {
	t.Helper()
	ca, err := pki.NewCA(fakeRun)
	if err != nil {
		t.Fatal(err)
	}
	mgr, _ := ca.Issue(pki.ManagerName, nil)
	e := startFakeEngine(t, ca, "n1")
	sess := &fakeSession{addr: e.ln.Addr().String()}
	r, err := Control(context.Background(), "n1", sess, ca, mgr, idle, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, e, sess
}

// A node whose engine stops answering is declared lost by the heartbeat
// within about the idle timeout: the call in flight fails then, not at the
// caller's deadline, and names the loss.
func TestControlLostNode(t *testing.T) {
	r, e, sess := control(t, 800*time.Millisecond)
	if _, err := r.Inventory(context.Background()); err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	e.frozen.Store(true)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.Inventory(ctx)
	if err == nil || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("Inventory on a frozen engine: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the loss took %s to be noticed", d)
	}
	// Close tries the session's own way first; when that fails too, it
	// abandons the session and says clean-up was not confirmed.
	sess.shutdownErr = errors.New("ssh: connection lost")
	if _, err := r.Close(context.Background()); err == nil || !strings.Contains(err.Error(), "not confirmed") {
		t.Errorf("Close of a lost node: %v", err)
	}
	if sess.shutdowns != 1 || !sess.abandoned {
		t.Errorf("shutdowns %d, abandoned %v; want 1, true", sess.shutdowns, sess.abandoned)
	}
	if _, err := r.Inventory(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Inventory after Close: %v", err)
	}
}

// An engine whose port went silent but whose session works is shut down
// through the session: its clean-up is confirmed.
func TestControlLostEngineSessionAlive(t *testing.T) {
	r, e, sess := control(t, 800*time.Millisecond)
	e.frozen.Store(true)
	for r.Lost() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	rep, err := r.Close(context.Background())
	if err != nil || rep == nil || len(rep.Files) != 1 {
		t.Fatalf("Close: %v %+v", err, rep)
	}
	if sess.abandoned {
		t.Error("a session that still worked was abandoned")
	}
}

//go:build linux

package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/agent/agenttest"
	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/lab"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport"
	sshtr "github.com/fleetup/fleetup/transport/ssh"
)

// labHarness is the remote agent over SSH to a lab node (real sshd, its
// own network and firewall), as user (root, or a sudo user with the lab's
// password).
type labHarness struct {
	lab  *lab.Lab
	node *lab.Node
	user string

	mu   sync.Mutex
	runs []string
}

const labIdle = 3 * time.Second

func newLab(t *testing.T) *lab.Lab {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "sshd", "nft")
	return lab.New(t, lab.Options{Nodes: 1})
}

func (h *labHarness) open(t *testing.T, comps []*fleetup.Component) agent.Agent {
	t.Helper()
	a, err := h.openErr(t, comps)
	if err != nil {
		t.Fatalf("NewRemote as %s: %v", h.user, err)
	}
	return a
}

// openErr is open that returns NewRemote's error.
func (h *labHarness) openErr(t *testing.T, comps []*fleetup.Component) (agent.Agent, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := fmt.Sprintf("20260101-000000-%06x", time.Now().UnixNano()&0xffffff)
	h.mu.Lock()
	h.runs = append(h.runs, run)
	h.mu.Unlock()
	ca, err := pki.NewCA(run)
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ca.Issue(pki.ManagerName, nil)
	if err != nil {
		t.Fatal(err)
	}
	dp, err := depot.New(depot.Options{TLS: pki.ServerTLS(ca.Pool(), mgr.Cert)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range comps {
		if err := dp.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := dp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close(context.Background()) })
	pw := func() ([]byte, error) { return []byte(h.lab.Password()), nil }
	conn, err := sshtr.Dial(ctx, h.node.Addr(), sshtr.Options{
		User: h.user, Signers: []gossh.Signer{h.lab.Signer()}, Password: pw,
		KnownHostsFile: h.lab.KnownHostsFile(), KeepAlive: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := agent.RemoteOptions{
		RunID: run, Node: h.node.Name, CA: ca, Manager: mgr, DepotPort: dp.HTTPSPort(),
		Engine:      func(string) (string, error) { return engineBin, nil },
		IdleTimeout: labIdle,
	}
	if h.user != "root" {
		opts.Password = pw
	}
	a, err := agent.NewRemote(ctx, h.node.Name, conn, opts)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// leftovers lists what of the harness's runs is on the node: directories,
// processes (by the run id in their command line or environment) and
// firewall rules.
func (h *labHarness) leftovers(t *testing.T) []string {
	t.Helper()
	h.mu.Lock()
	runs := append([]string(nil), h.runs...)
	h.mu.Unlock()
	var left []string
	for _, run := range runs {
		script := fmt.Sprintf(`for d in /tmp /var/tmp /dev/shm /root /home/*; do ls -d "$d"/fleetup-%[1]s.* 2>/dev/null; done
nft list ruleset 2>/dev/null | grep -F 'fleetup:%[1]s'
true`, run)
		out, err := h.node.Shell(context.Background(), script)
		if err != nil {
			t.Fatalf("look at the node: %v: %s", err, out)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				left = append(left, l)
			}
		}
		// The lab's nodes share the PID namespace with the test: their
		// processes are read here.
		left = append(left, processesOf(run)...)
	}
	return left
}

// processesOf lists the processes whose command line names run's
// directory or whose environment carries its marker.
func processesOf(run string) []string {
	var out []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		cmd, _ := os.ReadFile(p + "/cmdline")
		env, _ := os.ReadFile(p + "/environ")
		if strings.Contains(string(cmd), "fleetup-"+run) || strings.Contains("\x00"+string(env)+"\x00", "\x00FLEETUP_RUN="+run+"\x00") {
			out = append(out, fmt.Sprintf("process %s: %s", filepath.Base(p), strings.ReplaceAll(string(cmd), "\x00", " ")))
		}
	}
	return out
}

func (h *labHarness) harness(t *testing.T) agenttest.Harness {
	markers := filepath.Join(h.lab.Dir, "markers-"+h.user)
	if err := os.MkdirAll(markers, 0o755); err != nil {
		t.Fatal(err)
	}
	return agenttest.Harness{
		Open:        h.open,
		MarkerDir:   markers,
		Leftovers:   h.leftovers,
		IdleTimeout: labIdle,
		KillEngine: func(t *testing.T) {
			h.mu.Lock()
			run := h.runs[len(h.runs)-1]
			h.mu.Unlock()
			killed := 0
			pids, _ := filepath.Glob("/proc/[0-9]*")
			for _, p := range pids {
				cmd, _ := os.ReadFile(p + "/cmdline")
				if strings.Contains(string(cmd), "fleetup-"+run) && strings.Contains(string(cmd), "serve") && !strings.Contains(string(cmd), "/bin/sh") {
					pid, _ := strconv.Atoi(filepath.Base(p))
					if syscall.Kill(pid, syscall.SIGKILL) == nil {
						killed++
					}
				}
			}
			if killed == 0 {
				t.Fatal("no engine process of the run found to kill")
			}
		},
		Cut: func(t *testing.T) func() {
			if err := h.node.LinkDown(); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := h.node.LinkUp(); err != nil {
					t.Error(err)
				}
			}
		},
	}
}

// The remote agent passes the conformance suite over SSH, as root and as a
// sudo user (whose engine runs from a root-owned copy).
func TestRemoteConformance(t *testing.T) {
	l := newLab(t)
	for _, user := range []string{"root", lab.UserSudo} {
		t.Run(user, func(t *testing.T) {
			h := &labHarness{lab: l, node: l.Nodes[0], user: user}
			agenttest.Run(t, h.harness(t))
		})
	}
}

// The remote agent's health command runs over the node's SSH connection
// as the login user (not root, for the sudo user), in the C locale, with
// nothing on its standard input and no password in its environment; a
// non-zero exit is an ExitError with its status, and a command still
// running when its context ends is killed.
func TestRemoteHealth(t *testing.T) {
	l := newLab(t)
	for _, user := range []string{"root", lab.UserSudo} {
		t.Run(user, func(t *testing.T) {
			h := &labHarness{lab: l, node: l.Nodes[0], user: user}
			a := h.open(t, nil)
			hc, ok := a.(agent.HealthChecker)
			if !ok {
				t.Fatalf("%T is no HealthChecker", a)
			}
			ctx := context.Background()
			out, err := hc.Health(ctx, `id -un; echo "LC_ALL=$LC_ALL"; cat; echo to-stderr >&2`)
			if want := user + "\nLC_ALL=C\nto-stderr"; err != nil || out != want {
				t.Errorf("Health = %q, %v; want %q", out, err, want)
			}
			if env, _ := hc.Health(ctx, "env"); strings.Contains(env, l.Password()) {
				t.Error("the health command's environment holds the password")
			}
			out, err = hc.Health(ctx, "echo bad; exit 3")
			var ee *transport.ExitError
			if !errors.As(err, &ee) || ee.ExitCode != 3 || out != "bad" {
				t.Errorf("Health = %q, %v; want \"bad\" and exit status 3", out, err)
			}
			tctx, cancel := context.WithTimeout(ctx, time.Second)
			start := time.Now()
			_, err = hc.Health(tctx, "sleep 3017")
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 15*time.Second {
				t.Errorf("Health past its deadline: %v after %s", err, time.Since(start))
			}
			if left := sleeping("3017"); len(left) > 0 {
				t.Errorf("the timed-out health command still runs: %v", left)
			}
			if _, err := a.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := hc.Health(ctx, "true"); !errors.Is(err, agent.ErrClosed) {
				t.Errorf("Health after Close: %v, want ErrClosed", err)
			}
			if left := h.leftovers(t); len(left) > 0 {
				t.Errorf("left on the node: %v", left)
			}
		})
	}
}

// sleeping lists the processes running "sleep arg" (the lab's nodes share
// the test's PID namespace).
func sleeping(arg string) []string {
	var out []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		if cmd, _ := os.ReadFile(p + "/cmdline"); string(cmd) == "sleep\x00"+arg+"\x00" {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}

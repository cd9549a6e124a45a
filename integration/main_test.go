// Package integration runs the fleetup and fleetup-engine binaries, built
// once per test binary, against nodes of the lab (network namespaces with
// real sshd, iptables/nftables and fwupd), and checks each node afterwards
// for what was flashed and installed and for anything left behind.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/lab"
)

var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "fleetup-integration-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		for _, b := range []struct{ out, pkg, goos string }{
			{"fleetup", "../cmd/fleetup", ""},
			{"fleetup-engine", "../cmd/fleetup-engine", ""},
			{"fleetup-engine-windows-amd64.exe", "../cmd/fleetup-engine", "windows"}, // for windows:// nodes
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b.goos != "" {
				cmd.Env = append(cmd.Env, "GOOS="+b.goos, "GOARCH=amd64")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.pkg, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// run is one fleetup invocation in progress.
type run struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	events []map[string]any
	stderr bytes.Buffer
	seen   chan map[string]any
	done   chan struct{}
	code   int
}

// start runs fleetup with args and --json, in a state dir of the test's.
func start(t *testing.T, stateDir string, args ...string) *run {
	t.Helper()
	return startWithStdin(t, stateDir, "", args...)
}

// startWithStdin is start with stdin for fleetup.
func startWithStdin(t *testing.T, stateDir, stdin string, args ...string) *run {
	t.Helper()
	return startIn(t, stateDir, nil, stdin, args...)
}

// startIn is startWithStdin with fleetup run under the command prefix
// (e.g. "ip netns exec NS", to run the manager on a lab node).
func startIn(t *testing.T, stateDir string, prefix []string, stdin string, args ...string) *run {
	t.Helper()
	args = append(args, "--json", "--state-dir", stateDir)
	argv := append(append(append([]string(nil), prefix...), filepath.Join(binDir, "fleetup")), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "FLEETUP_PASSWORD=")
	cmd.Stdin = strings.NewReader(stdin)
	r := &run{t: t, cmd: cmd, seen: make(chan map[string]any, 4096), done: make(chan struct{})}
	cmd.Stderr = &r.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("fleetup %s", strings.Join(args, " "))
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("fleetup printed a line that is not JSON: %q", sc.Text())
				continue
			}
			r.mu.Lock()
			r.events = append(r.events, m)
			r.mu.Unlock()
			select {
			case r.seen <- m:
			default:
			}
		}
		err := cmd.Wait()
		r.code = 0
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				r.code = 128 + int(ws.Signal())
			}
		}
		close(r.seen)
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for fleetup to exit and returns its exit code.
func (r *run) wait(timeout time.Duration) int {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		<-r.done
		r.t.Fatalf("fleetup did not finish within %s; stderr:\n%s", timeout, r.stderr.String())
	}
	return r.code
}

// waitFor returns the first event (from now on) that match accepts.
func (r *run) waitFor(timeout time.Duration, match func(map[string]any) bool) map[string]any {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-r.seen:
			if !ok {
				r.t.Fatalf("fleetup exited before the awaited event; stderr:\n%s", r.stderr.String())
			}
			if match(m) {
				return m
			}
		case <-deadline:
			r.t.Fatalf("awaited event did not come within %s", timeout)
		}
	}
}

// resultsN is results, failing the test at once unless there are exactly
// n of them: a loop over results must not pass because there are none.
func (r *run) resultsN(n int) map[string]map[string]any {
	r.t.Helper()
	res := r.results()
	if len(res) != n {
		r.t.Fatalf("%d result lines, want %d (one per node)\n%s", len(res), n, r.dump())
	}
	return res
}

// results are the per-node result lines.
func (r *run) results() map[string]map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[string]any{}
	for _, e := range r.events {
		if e["type"] == "result" {
			out[e["node"].(string)] = e
		}
	}
	return out
}

func (r *run) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.events {
		j, _ := json.Marshal(e)
		if len(j) > 3000 { // an inventory's packages say nothing here
			j = append(j[:3000:3000], "…"...)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	b.WriteString("stderr:\n")
	b.WriteString(r.stderr.String())
	return b.String()
}

// components maps component id → its result on a node.
func components(res map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	cs, _ := res["components"].([]any)
	for _, c := range cs {
		m := c.(map[string]any)
		out[m["component_id"].(string)] = m
	}
	return out
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// fixture is a lab with snapshots of every node taken before the run.
type fixture struct {
	lab      *lab.Lab
	before   []lab.Snapshot
	stateDir string
	pwFile   string
}

func newFixture(t *testing.T, opts lab.Options) *fixture {
	t.Helper()
	// Every node gets its own dpkg database: a deb installed on a node
	// must not land in the host's.
	opts.Dpkg = true
	return newLabFixture(t, opts)
}

// newLabFixture is newFixture with opts as given: without opts.Dpkg the
// nodes share the host's dpkg database (for runs that install no deb).
func newLabFixture(t *testing.T, opts lab.Options) *fixture {
	t.Helper()
	l := lab.New(t, opts)
	f := &fixture{lab: l, stateDir: t.TempDir()}
	f.pwFile = filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(f.pwFile, []byte(l.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range l.Nodes {
		s, err := n.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.before = append(f.before, s)
	}
	return f
}

// authArgs are the flags every run against the lab uses.
func (f *fixture) authArgs() []string {
	return []string{"--identity", f.lab.KeyFile(), "--known-hosts", f.lab.KnownHostsFile(), "--password-file", f.pwFile,
		"--fwupd-plugins", "test", "--no-agent"}
}

func target(user string, n *lab.Node) string { return user + "@" + n.Addr() }

// assertClean checks every node holds nothing fleetup made: no file, no
// process, no listener, no firewall rule that was not there before.
//
// sshd ends a closed connection's session process a moment after fleetup
// has exited, so a node gets up to 5 seconds to be clean; what is left
// after that is fleetup's.
func (f *fixture) assertClean(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for i, n := range f.lab.Nodes {
		for {
			s, err := n.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d := s.Diff(f.before[i])
			if d == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s is not as it was before the run:\n%s", n.Name, d)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// eventually retries check until it returns "" or timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still after %s: %s", timeout, msg)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (f *fixture) cleanMsg() string {
	ctx := context.Background()
	var b strings.Builder
	for i, n := range f.lab.Nodes {
		s, err := n.Snapshot(ctx)
		if err != nil {
			return err.Error()
		}
		if d := s.Diff(f.before[i]); d != "" {
			fmt.Fprintf(&b, "%s:\n%s\n", n.Name, d)
		}
	}
	return b.String()
}

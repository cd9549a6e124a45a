package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// fakeConn is a transport.Conn whose node is a function: Start hands the
// session's pipes to node, which plays the node's side (a scout, sudo, an
// engine, or something hostile). No root, no shell, no network.
type fakeConn struct {
	user string
	node func(cmd string, stdin io.Reader, stdout, stderr io.WriteCloser)
	// hang makes Start block until Close (a login that never runs the
	// command).
	hang     bool
	hangOnce sync.Once
	closedCh chan struct{}

	mu      sync.Mutex
	files   map[string][]byte
	ran     []string
	closed  bool
	running sync.WaitGroup
}

func (c *fakeConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	c.mu.Lock()
	c.ran = append(c.ran, cmd)
	c.mu.Unlock()
	return nil
}

func (c *fakeConn) closedChan() chan struct{} {
	c.hangOnce.Do(func() { c.closedCh = make(chan struct{}) })
	return c.closedCh
}

func (c *fakeConn) Start(ctx context.Context, cmd string) (transport.Process, error) {
	if c.hang {
		<-c.closedChan()
		return nil, errors.New("fake: connection closed")
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	p := &fakeProc{stdin: inW, stdout: outR, stderr: errR, done: make(chan struct{})}
	c.running.Add(1)
	go func() {
		defer c.running.Done()
		defer close(p.done)
		c.node(cmd, inR, outW, errW)
		outW.Close()
		errW.Close()
		inR.Close()
	}()
	p.closeFn = func() { inR.CloseWithError(io.EOF); outR.Close(); errR.Close() }
	return p, nil
}

func (c *fakeConn) WriteFile(ctx context.Context, path string, mode fs.FileMode, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = map[string][]byte{}
	}
	c.files[path] = b
	return nil
}

func (c *fakeConn) DialNode(ctx context.Context, addr string) (net.Conn, error) {
	return nil, errors.New("fake: no dial")
}
func (c *fakeConn) ListenNode(ctx context.Context, addr string) (net.Listener, error) {
	return nil, errors.New("fake: no listen")
}
func (c *fakeConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("198.18.9.1"), Port: 40000}
}
func (c *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("198.18.9.2"), Port: 22}
}
func (c *fakeConn) User() string { return c.user }
func (c *fakeConn) Close() error {
	c.mu.Lock()
	if !c.closed {
		close(c.closedChan())
	}
	c.closed = true
	c.mu.Unlock()
	return nil
}

type fakeProc struct {
	stdin   io.WriteCloser
	stdout  io.Reader
	stderr  io.Reader
	done    chan struct{}
	once    sync.Once
	closeFn func()
}

func (p *fakeProc) Stdin() io.WriteCloser { return p.stdin }
func (p *fakeProc) Stdout() io.Reader     { return p.stdout }
func (p *fakeProc) Stderr() io.Reader     { return p.stderr }
func (p *fakeProc) Wait() error           { <-p.done; return nil }
func (p *fakeProc) Close() error          { p.once.Do(p.closeFn); return nil }

const fakeRun = "20260101-000000-abcdef"

var fakeDir = "/tmp/" + wire.DirPrefix + fakeRun + ".Ab12Cd"

func fakeSpec(t *testing.T) Spec {
	t.Helper()
	ca, err := pki.NewCA(fakeRun)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "engine")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return Spec{RunID: fakeRun, Node: "n1", CA: ca, DepotPort: 63002,
		Engine: func(string) (string, error) { return bin, nil }}
}

// scout plays the scouting part of the session: it says arch and dir,
// then waits for "start" and the engine's checksum.
func scout(stdin io.Reader, stdout io.Writer) (*bufio.Reader, bool) {
	fmt.Fprintf(stdout, "arch=x86_64\ndir=%s\n", fakeDir)
	br := bufio.NewReader(stdin)
	l, err := br.ReadString('\n')
	if err != nil || l != "start\n" {
		return br, false
	}
	if _, err := br.ReadString('\n'); err != nil {
		return br, false
	}
	return br, true
}

func launchFake(t *testing.T, c *fakeConn, pw func() ([]byte, error)) (Session, error) {
	t.Helper()
	l := &POSIX{Conn: c, Password: pw, StartTimeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.Launch(ctx, fakeSpec(t))
}

// The crash of issue 7: a node whose session ends while it is being
// scouted (link down, sshd killed) fails that node and nothing else.
func TestLaunchSessionEndsDuringScouting(t *testing.T) {
	for _, tc := range []struct {
		name string
		node func(cmd string, stdin io.Reader, stdout, stderr io.WriteCloser)
		want string
	}{
		{"before a word", func(string, io.Reader, io.WriteCloser, io.WriteCloser) {}, "the session ended"},
		{"after arch", func(_ string, _ io.Reader, stdout, _ io.WriteCloser) { fmt.Fprintln(stdout, "arch=x86_64") }, "ended before the scout finished"},
		{"no directory", func(_ string, _ io.Reader, stdout, _ io.WriteCloser) {
			fmt.Fprint(stdout, "arch=x86_64\nskip=/tmp: mounted noexec\nnodir\n")
		}, "no directory on the node where a program may be run (/tmp: mounted noexec)"},
		{"after the copy", func(_ string, stdin io.Reader, stdout, stderr io.WriteCloser) {
			fmt.Fprintln(stderr, "Connection reset by peer")
			scout(stdin, stdout)
		}, "exited before it started"},
		{"stderr floods", func(_ string, stdin io.Reader, stdout, stderr io.WriteCloser) {
			go func() {
				b := bytes.Repeat([]byte("x"), 1<<20)
				for i := 0; i < 8; i++ {
					if _, err := stderr.Write(b); err != nil {
						return
					}
				}
			}()
			scout(stdin, stdout)
		}, "exited before it started"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeConn{user: "root", node: tc.node}
			_, err := launchFake(t, c, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Launch: %v, want an error containing %q", err, tc.want)
			}
			c.running.Wait()
			if !c.closed {
				t.Error("the connection was not closed after the failed launch")
			}
		})
	}
}

// A sudo that asks for a password when none was given fails at once,
// recognised by fleetup's own prompt marker (not sudo's English text); a
// second prompt means the password was refused.
func TestLaunchSudoPrompts(t *testing.T) {
	prompting := func(times int) func(string, io.Reader, io.WriteCloser, io.WriteCloser) {
		return func(cmd string, stdin io.Reader, stdout, stderr io.WriteCloser) {
			br, ok := scout(stdin, stdout)
			if !ok {
				return
			}
			for i := 0; i < times; i++ {
				io.WriteString(stderr, sessionPrompt(cmd))
				if _, err := br.ReadString('\n'); err != nil {
					return
				}
			}
			time.Sleep(5 * time.Second) // no engine: the launcher must not wait for it
		}
	}
	t.Run("no password", func(t *testing.T) {
		c := &fakeConn{user: "op", node: prompting(1)}
		start := time.Now()
		_, err := launchFake(t, c, nil)
		if !errors.Is(err, ErrSudoPassword) {
			t.Fatalf("Launch: %v, want ErrSudoPassword", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %s: the prompt was not answered at once", d)
		}
	})
	t.Run("rejected", func(t *testing.T) {
		c := &fakeConn{user: "op", node: prompting(2)}
		_, err := launchFake(t, c, func() ([]byte, error) { return []byte("wrong"), nil })
		if !errors.Is(err, ErrSudoRejected) {
			t.Fatalf("Launch: %v, want ErrSudoRejected", err)
		}
	})
	t.Run("sudo runs the root script", func(t *testing.T) {
		var got string
		c := &fakeConn{user: "op", node: func(cmd string, stdin io.Reader, stdout, stderr io.WriteCloser) {
			got = cmd
			scout(stdin, stdout)
		}}
		launchFake(t, c, nil)
		c.running.Wait()
		if !strings.Contains(got, `exec "$SUDO" -S -p `+wire.SudoPrompt) || !strings.Contains(got, "SUDO=/usr/bin/sudo") || !strings.Contains(got, "sha256sum") || !strings.Contains(got, `"$found" "$sum"`) {
			t.Errorf("the engine command does not run the checking root script through sudo:\n%s", got)
		}
	})
}

// A program of the login user that prints fleetup's marker (a fake sudo
// on the login's PATH, say) does not get the password: each session
// prompts with a random marker of its own.
func TestLaunchSudoPromptIsPerSession(t *testing.T) {
	var asked atomic.Bool
	c := &fakeConn{user: "op", node: func(cmd string, stdin io.Reader, stdout, stderr io.WriteCloser) {
		br, ok := scout(stdin, stdout)
		if !ok {
			return
		}
		io.WriteString(stderr, wire.SudoPrompt)
		go func() {
			if _, err := br.ReadString('\n'); err == nil {
				asked.Store(true)
			}
		}()
		time.Sleep(3 * time.Second)
	}}
	_, err := launchFake(t, c, func() ([]byte, error) { return []byte("secret"), nil })
	if err == nil {
		t.Fatal("Launch succeeded")
	}
	c.running.Wait()
	if asked.Load() {
		t.Error("the password went to a prompt that was not the session's own")
	}
	a, b := (&posixSession{}).prompt(), (&posixSession{}).prompt()
	if a == b || !strings.HasPrefix(a, wire.SudoPrompt) {
		t.Errorf("prompts %q and %q", a, b)
	}
}

// sessionPrompt is the prompt the engine command tells sudo to show.
func sessionPrompt(cmd string) string {
	i := strings.Index(cmd, wire.SudoPrompt)
	if i < 0 {
		return "no prompt in the command"
	}
	j := strings.IndexByte(cmd[i+len(wire.SudoPrompt):], ':')
	return cmd[i : i+len(wire.SudoPrompt)+j+1]
}

// An engine whose checksum differs on the node (swapped by a local user)
// is named as such: ErrEngineChanged, never run.
func TestLaunchEngineChanged(t *testing.T) {
	c := &fakeConn{user: "op", node: func(cmd string, stdin io.Reader, stdout, stderr io.WriteCloser) {
		scout(stdin, stdout)
		fmt.Fprintln(stderr, ErrorMarker+"engine-checksum: sha256 0000 on the node, 1111 copied")
	}}
	_, err := launchFake(t, c, nil)
	if !errors.Is(err, ErrEngineChanged) {
		t.Fatalf("Launch: %v, want ErrEngineChanged", err)
	}
	// The checksum the node checks is the binary's.
	c.mu.Lock()
	body := c.files[fakeDir+"/"+wire.BinaryName]
	c.mu.Unlock()
	if string(body) != "#!/bin/sh\n" {
		t.Errorf("engine copied as %q", body)
	}
}

// A node that reports a directory that is not the run's own (to make the
// manager remove or run something else) is refused before anything is
// copied.
func TestLaunchRefusesForeignDirectory(t *testing.T) {
	for _, dir := range []string{"/etc", "/tmp/fleetup-20260101-000000-ffffff.Ab12Cd", "/tmp/../etc/fleetup-" + fakeRun + ".Ab12Cd", "relative/fleetup-" + fakeRun + ".Ab12Cd", "/tmp/fleetup-" + fakeRun + ".Ab12Cd'; rm -rf /"} {
		t.Run(dir, func(t *testing.T) {
			c := &fakeConn{user: "root", node: func(_ string, stdin io.Reader, stdout, _ io.WriteCloser) {
				fmt.Fprintf(stdout, "arch=x86_64\ndir=%s\n", dir)
				io.Copy(io.Discard, stdin)
			}}
			_, err := launchFake(t, c, nil)
			if err == nil || !strings.Contains(err.Error(), "run's directory") {
				t.Fatalf("Launch: %v", err)
			}
			c.running.Wait()
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.files) > 0 {
				t.Errorf("copied %v to a directory the node made up", c.files)
			}
			for _, cmd := range c.ran {
				if strings.Contains(cmd, "rm ") {
					t.Errorf("ran %q on a directory the node made up", cmd)
				}
			}
		})
	}
}

// A node that never answers its configuration is bounded by the start
// timeout, and a cancel ends the wait at once.
func TestLaunchBoundedWaits(t *testing.T) {
	hang := func(cmd string, stdin io.Reader, stdout, stderr io.WriteCloser) {
		br, ok := scout(stdin, stdout)
		if !ok {
			return
		}
		fmt.Fprintln(stdout, wire.Hello)
		fmt.Fprintln(stdout, `{"dial":{"addr":"x","status":"open"}}`)
		io.Copy(io.Discard, br) // reads the config, never answers
	}
	t.Run("timeout", func(t *testing.T) {
		c := &fakeConn{user: "root", node: hang}
		start := time.Now()
		_, err := launchFake(t, c, nil)
		if err == nil || !strings.Contains(err.Error(), "did not answer") {
			t.Fatalf("Launch: %v", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		c := &fakeConn{user: "root", node: hang}
		l := &POSIX{Conn: c, StartTimeout: time.Hour}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel)
		start := time.Now()
		_, err := l.Launch(ctx, fakeSpec(t))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Launch: %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("a cancel took %s to end the launch", d)
		}
	})
}

// Every engine of a run has a certificate from the same CA: the manager
// accepts for a node only the certificate issued for that node.
func TestEngineTLSBoundToNode(t *testing.T) {
	ca, err := pki.NewCA(fakeRun)
	if err != nil {
		t.Fatal(err)
	}
	mgr, _ := ca.Issue(pki.ManagerName, nil)
	other, _ := ca.Issue("root@198.18.2.2:22", []string{"198.18.2.2"})
	mine, _ := ca.Issue("root@198.18.1.2:22", []string{"198.18.1.2"})
	for _, tc := range []struct {
		leaf *pki.Leaf
		ok   bool
	}{{mine, true}, {other, false}} {
		ln, err := tlsListen(pki.ServerTLS(ca.Pool(), tc.leaf.Cert))
		if err != nil {
			t.Fatal(err)
		}
		c := wire.NewClient(ln.Addr().String(), EngineTLS(ca, mgr, "root@198.18.1.2:22"), nil)
		err = c.Ping(context.Background())
		c.Close()
		ln.Close()
		if tc.ok && err != nil {
			t.Errorf("the node's own engine refused: %v", err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "root@198.18.2.2:22")) {
			t.Errorf("another node's engine accepted (or not named): %v", err)
		}
	}
}

// tlsListen serves /v1/ping over TLS with cfg on a loopback port.
func tlsListen(cfg *tls.Config) (net.Listener, error) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	return ln, nil
}

// A login that never runs the command (a login script that blocks, or
// floods the output nobody reads yet) fails the node within the start
// timeout, and a cancel ends the wait at once.
func TestLaunchLoginHangs(t *testing.T) {
	c := &fakeConn{user: "root", hang: true}
	start := time.Now()
	_, err := launchFake(t, c, nil)
	if err == nil || !strings.Contains(err.Error(), "login did not start the command") {
		t.Fatalf("Launch: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
	c = &fakeConn{user: "root", hang: true}
	l := &POSIX{Conn: c, StartTimeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	if _, err := l.Launch(ctx, fakeSpec(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Launch: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a cancel took %s", d)
	}
}

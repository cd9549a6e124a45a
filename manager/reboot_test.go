package manager

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/transport"
	sshtr "github.com/fleetup/fleetup/transport/ssh"
)

// rebootConn is a fake connection to a node that reboots: Run answers the
// boot id and records the root commands; the reboot command makes the node
// answer with a new boot id from then on (or never again: down).
type rebootConn struct {
	transport.Conn // nil: the methods the reboot does not use panic
	node           *fakeBootNode
	user           string
}

type fakeBootNode struct {
	mu        sync.Mutex
	boot      string
	cmds      []string
	stdins    []string // what sudo read at its prompt
	leaked    []string // what was on standard input before any prompt
	refuse    bool     // sudo refuses the password
	banner    bool     // the login's scripts print a line that changes each session
	greetings int
	lag       int // dials after the reboot command that the old boot still answers
	noReturn  bool
	down      bool
	newKey    bool // after the reboot the node presents another host key
}

func (c *rebootConn) User() string { return c.user }
func (c *rebootConn) Close() error { return nil }
func (c *rebootConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	n := c.node
	n.mu.Lock()
	defer n.mu.Unlock()
	if cmd == bootIDCommand {
		if n.banner {
			// The login's .bashrc greets every session, with the time.
			n.greetings++
			fmt.Fprintf(stdout, "Welcome! Session %d at %s\n", n.greetings, time.Now().Format(time.RFC3339Nano))
		}
		io.WriteString(stdout, n.boot+"\n")
		return nil
	}
	n.cmds = append(n.cmds, cmd)
	if stdin != nil {
		// Nothing prompted for it: whatever is there is read by the
		// login's own scripts, before sudo.
		b, _ := io.ReadAll(stdin)
		n.leaked = append(n.leaked, string(b))
	}
	if strings.Contains(cmd, "fleetup-reboot reboot ") {
		n.down = true
		return errors.New("ssh: connection lost") // the node went down under it
	}
	return nil
}

var promptRE = regexp.MustCompile(`-S -p '?(FLEETUP-SUDO-PROMPT:[0-9a-f]+:)'? -- `)

// Start is a command run through sudo with a password: a login script
// reads standard input for a moment first (what it gets is leaked), then
// sudo prompts with the command's marker and reads a line.
func (c *rebootConn) Start(ctx context.Context, cmd string) (transport.Process, error) {
	n := c.node
	m := promptRE.FindStringSubmatch(cmd)
	if m == nil {
		return nil, fmt.Errorf("fake: Start of %q: not a sudo with a prompt", cmd)
	}
	n.mu.Lock()
	n.cmds = append(n.cmds, cmd)
	n.mu.Unlock()
	inR, inW := io.Pipe()
	errR, errW := io.Pipe()
	fp := &fakeProc{stdin: inW, stderr: errR, done: make(chan error, 1)}
	lines := make(chan string)
	go func() {
		br := bufio.NewReader(inR)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				lines <- l
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	go func() {
		defer errW.Close()
		select {
		case l := <-lines:
			n.mu.Lock()
			n.leaked = append(n.leaked, l)
			n.mu.Unlock()
		case <-time.After(50 * time.Millisecond):
		}
		for try := 0; ; try++ {
			io.WriteString(errW, m[1])
			l, ok := <-lines
			if !ok {
				fp.done <- &transport.ExitError{Cmd: cmd, ExitCode: 1, Stderr: "sudo: no password was provided"}
				return
			}
			n.mu.Lock()
			n.stdins = append(n.stdins, l)
			refuse := n.refuse
			n.mu.Unlock()
			if refuse {
				io.WriteString(errW, "Sorry, try again.\n")
				continue
			}
			break
		}
		if strings.Contains(cmd, "fleetup-reboot reboot ") {
			n.mu.Lock()
			n.down = true
			n.mu.Unlock()
			fp.done <- errors.New("ssh: connection lost")
			return
		}
		fp.done <- nil
	}()
	return fp, nil
}

type fakeProc struct {
	stdin  *io.PipeWriter
	stderr *io.PipeReader
	done   chan error
}

func (p *fakeProc) Stdin() io.WriteCloser { return p.stdin }
func (p *fakeProc) Stdout() io.Reader     { return strings.NewReader("") }
func (p *fakeProc) Stderr() io.Reader     { return p.stderr }
func (p *fakeProc) Wait() error           { return <-p.done }
func (p *fakeProc) Close() error          { p.stdin.Close(); return nil }

func (n *fakeBootNode) dial(user string) func(ctx context.Context) (transport.Conn, error) {
	return func(ctx context.Context) (transport.Conn, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.down && n.lag > 0 {
			n.lag-- // still shutting down: the old boot answers
			return &rebootConn{node: n, user: user}, nil
		}
		if n.down {
			if n.noReturn {
				return nil, errors.New("connect: connection refused")
			}
			n.down = false
			n.boot = "boot-2"
			if n.newKey {
				return nil, &sshtr.HostKeyError{Host: "n:22", Known: true, Fingerprint: "SHA256:other"}
			}
		}
		return &rebootConn{node: n, user: user}, nil
	}
}

func TestPOSIXReboot(t *testing.T) {
	tests := []struct {
		name    string
		user    string
		sudoPW  bool
		setup   func(*fakeBootNode)
		timeout time.Duration
		wantErr string
		// wantCmd is in every root command.
		wantCmd string
	}{
		{name: "root", user: "root", wantCmd: "exec /bin/sh -c"},
		{name: "sudo with a password", user: "admin", sudoPW: true, wantCmd: `"$SUDO" -S -p FLEETUP-SUDO-PROMPT:`},
		{name: "sudo refuses the password", user: "admin", sudoPW: true, setup: func(n *fakeBootNode) { n.refuse = true },
			wantErr: "no password was provided"},
		{name: "sudo without a password", user: "admin", wantCmd: `"$SUDO" -n -- /bin/sh -c`},
		{name: "a login banner before the boot id", user: "root", setup: func(n *fakeBootNode) { n.banner, n.lag = true, 1 }, wantCmd: "exec /bin/sh -c"},
		{name: "not back in time", user: "root", setup: func(n *fakeBootNode) { n.noReturn = true }, timeout: 1500 * time.Millisecond,
			wantErr: "did not come back"},
		{name: "another host key after the reboot", user: "root", setup: func(n *fakeBootNode) { n.newKey = true }, wantErr: "HOST KEY CHANGED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &fakeBootNode{boot: "boot-1"}
			if tt.setup != nil {
				tt.setup(n)
			}
			p := &POSIXNode{Dial: n.dial(tt.user)}
			if tt.sudoPW {
				p.SudoPassword = func() ([]byte, error) { return []byte("s3cret"), nil }
			}
			if tt.timeout == 0 {
				tt.timeout = 10 * time.Second
			}
			var notices []string
			res, err := p.Reboot(context.Background(), "n", &Env{RunID: "20261202-000000-abcdef"}, orchestrator.RebootRequest{
				Delay: 10 * time.Millisecond, Message: "it's time", Timeout: tt.timeout,
				Notice: func(m string) { notices = append(notices, m) },
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Reboot: %v, want an error with %q", err, tt.wantErr)
				}
				if tt.wantErr == "did not come back" && !errors.Is(err, orchestrator.ErrNotBack) {
					t.Errorf("%v is not ErrNotBack", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Back || res.BootIDBefore != "boot-1" || res.BootIDAfter != "boot-2" {
				t.Errorf("result %+v", res)
			}
			if len(n.cmds) != 2 || !strings.Contains(n.cmds[0], "fleetup-reboot warn ") || !strings.Contains(n.cmds[1], "fleetup-reboot reboot ") {
				t.Fatalf("root commands %q, want warn then reboot", n.cmds)
			}
			for _, c := range n.cmds {
				if !strings.Contains(c, tt.wantCmd) {
					t.Errorf("command %q, want %q in it", c, tt.wantCmd)
				}
			}
			if !strings.Contains(n.cmds[0], `this node reboots in 0s: it'\''s time`) {
				t.Errorf("warning command %q: no message", n.cmds[0])
			}
			if tt.sudoPW && (len(n.stdins) != 2 || n.stdins[0] != "s3cret\n" || n.stdins[1] != "s3cret\n") {
				t.Errorf("sudo read %q at its prompts, want the password at each", n.stdins)
			}
			if !tt.sudoPW && len(n.stdins) != 0 {
				t.Errorf("standard input %q given without a sudo password", n.stdins)
			}
			if len(n.leaked) != 0 {
				t.Errorf("standard input %q was there before sudo prompted: the login's scripts could read it", n.leaked)
			}
		})
	}
}

// TestPOSIXRebootCancelledInDelay: a cancel during the delay returns at
// once and the reboot is never asked.
func TestPOSIXRebootCancelledInDelay(t *testing.T) {
	n := &fakeBootNode{boot: "boot-1"}
	p := &POSIXNode{Dial: n.dial("root")}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Reboot(ctx, "n", &Env{RunID: "r"}, orchestrator.RebootRequest{Delay: time.Minute, Timeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reboot: %v, want the context's error", err)
	}
	for _, c := range n.cmds {
		if strings.Contains(c, "fleetup-reboot reboot ") {
			t.Errorf("reboot asked after a cancel: %q", c)
		}
	}
}

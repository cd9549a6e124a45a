//go:build unix

// Package local implements transport.Conn for the machine the manager runs
// on, without SSH. Commands run through /bin/sh -c in their own process
// group, which is killed whole when the command's context ends; files are
// written with the os package; DialNode and ListenNode use the local network
// stack directly.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/transport"
)

// Conn is the local machine as a transport.Conn. The zero value is not
// usable; call New.
type Conn struct {
	user string
}

var (
	_ transport.Conn        = (*Conn)(nil)
	_ transport.PathChecker = (*Conn)(nil)
)

// New returns a Conn for the local machine, running commands as the current
// user.
func New() (*Conn, error) {
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("local transport: current user: %w", err)
	}
	return &Conn{user: u.Username}, nil
}

// waitDelay bounds how long Run waits for output pipes held open by
// processes that escaped the killed process group.
const waitDelay = 5 * time.Second

// command prepares cmd to run through /bin/sh. Its environment is
// proc.Environ's: the manager's own without the password and SSH agent
// variables (and any other proc.Secret marked), in the C locale.
func (c *Conn) command(ctx context.Context, cmd string) *exec.Cmd {
	ec := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	ec.Env = proc.Environ()
	ec.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	ec.Cancel = func() error { return syscall.Kill(-ec.Process.Pid, syscall.SIGKILL) }
	ec.WaitDelay = waitDelay
	return ec
}

// Run implements transport.Conn.
func (c *Conn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	ec := c.command(ctx, cmd)
	ec.Stdin = stdin
	ec.Stdout = stdout
	tail := &transport.TailWriter{}
	if stderr != nil {
		ec.Stderr = io.MultiWriter(stderr, tail)
	} else {
		ec.Stderr = tail
	}
	return exitError(ctx, cmd, ec.Run(), tail.String())
}

// exitError maps the result of an exec.Cmd to the transport's errors.
func exitError(ctx context.Context, cmd string, err error, stderr string) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("local command: %w", ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		return &transport.ExitError{Cmd: cmd, ExitCode: code, Stderr: stderr}
	}
	return fmt.Errorf("local command: %w", err)
}

// Start implements transport.Conn. The process is killed (with its process
// group) when ctx ends. Process.Close closes the manager's ends of the
// process's standard streams, so the process sees EOF on its stdin and a
// broken pipe on output; it does not kill it.
func (c *Conn) Start(ctx context.Context, cmd string) (transport.Process, error) {
	ec := c.command(ctx, cmd)
	ec.WaitDelay = 0 // the pipes are *os.File: no copying goroutines to wait for
	var (
		parent []*os.File // our ends: stdin writer, stdout reader, stderr reader
		child  []*os.File
	)
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	for i := 0; i < 3; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(parent)
			closeAll(child)
			return nil, fmt.Errorf("local command: pipe: %w", err)
		}
		if i == 0 {
			parent, child = append(parent, w), append(child, r)
		} else {
			parent, child = append(parent, r), append(child, w)
		}
	}
	ec.Stdin, ec.Stdout, ec.Stderr = child[0], child[1], child[2]
	if err := ec.Start(); err != nil {
		closeAll(parent)
		closeAll(child)
		return nil, fmt.Errorf("local command: %w", err)
	}
	closeAll(child)
	return &process{ctx: ctx, cmd: cmd, ec: ec, stdin: parent[0], stdout: parent[1], stderr: parent[2]}, nil
}

type process struct {
	ctx                   context.Context
	cmd                   string
	ec                    *exec.Cmd
	stdin, stdout, stderr *os.File
	closeOnce             sync.Once
}

var _ transport.Process = (*process)(nil)

func (p *process) Stdin() io.WriteCloser { return p.stdin }
func (p *process) Stdout() io.Reader     { return p.stdout }
func (p *process) Stderr() io.Reader     { return p.stderr }

func (p *process) Wait() error {
	return exitError(p.ctx, p.cmd, p.ec.Wait(), "")
}

func (p *process) Close() error {
	p.closeOnce.Do(func() {
		p.stdin.Close()
		p.stdout.Close()
		p.stderr.Close()
	})
	return nil
}

// WriteFile implements transport.Conn. It writes to a new temporary file
// (created exclusively, so a planted symlink cannot redirect it) in path's
// directory, sets mode, and renames it over path, so readers never see a
// partial file.
func (c *Conn) WriteFile(ctx context.Context, path string, mode fs.FileMode, r io.Reader) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".fleetup-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode.Perm()); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// DialNode implements transport.Conn.
func (c *Conn) DialNode(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// ListenNode implements transport.Conn.
func (c *Conn) ListenNode(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// Exists implements transport.PathChecker.
func (c *Conn) Exists(ctx context.Context, path string) (bool, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// LocalAddr is nil: there is no network path to the local machine.
func (c *Conn) LocalAddr() net.Addr { return nil }

// RemoteAddr is nil.
func (c *Conn) RemoteAddr() net.Addr { return nil }

// User is the user the manager runs as.
func (c *Conn) User() string { return c.user }

// Close does nothing: a local Conn holds no resources.
func (c *Conn) Close() error { return nil }

// String names the connection in messages.
func (c *Conn) String() string {
	return "local (" + c.user + ", pid " + strconv.Itoa(os.Getpid()) + ")"
}

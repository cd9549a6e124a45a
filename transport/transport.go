// Package transport defines how the manager reaches a node, in parts that
// each kind of node has or has not:
//
//   - Link: an open connection to one node, with the addresses on either
//     end and the user it acts as. Every transport is one.
//   - FileWriter: placing files on the node (SFTP on Linux; SMB's ADMIN$
//     share for the Windows transport to come).
//   - Shell: running POSIX shell command lines on the node.
//   - Forwarder: opening connections from the node's side (SSH's
//     forwarding), for the engine's way back to the manager.
//
// Conn is all four: a POSIX node (Linux over SSH in package ssh, the
// machine the manager runs on in package local), which is what the POSIX
// launcher of package agent needs. A Windows node's transport will be a
// Link and a FileWriter with a service manager, no Shell; a BMC has no
// transport of this package at all (Redfish over HTTPS). Every Conn passes
// the shared suite in transporttest.
package transport

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"sync"
)

// Link is an open connection to one node. All methods are safe for
// concurrent use. Close releases everything the Link holds on the node
// side (sessions, forwards); it does not remove files it wrote.
type Link interface {
	// LocalAddr is the manager's address on the path to the node (the
	// address the node sees connections come from); nil for local.
	LocalAddr() net.Addr
	// RemoteAddr is the node's address; nil for local.
	RemoteAddr() net.Addr
	// User is the user the link acts as on the node.
	User() string
	Close() error
}

// FileWriter places files on a node.
type FileWriter interface {
	// WriteFile creates or truncates path on the node with mode and the
	// contents of r.
	WriteFile(ctx context.Context, path string, mode fs.FileMode, r io.Reader) error
}

// Shell runs POSIX shell command lines on a node.
type Shell interface {
	// Run runs the shell command line cmd on the node (through /bin/sh -c),
	// with stdin (may be nil) and writers for its output (may be nil). A
	// command that ran and exited non-zero returns an *ExitError.
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
	// Start starts the shell command line cmd and returns at once. The
	// process ends when its stdin is closed by the caller only if it chooses
	// to; Process.Close ends the session (on SSH, the remote side sees its
	// stdin close and its output pipes break).
	Start(ctx context.Context, cmd string) (Process, error)
}

// Forwarder opens connections from a node's side.
type Forwarder interface {
	// DialNode opens a TCP connection from the node's side to addr
	// (host:port as the node resolves it, e.g. "127.0.0.1:62286").
	DialNode(ctx context.Context, addr string) (net.Conn, error)
	// ListenNode listens on addr on the node's side (e.g. "127.0.0.1:0");
	// connections accepted there reach the returned listener on the manager.
	ListenNode(ctx context.Context, addr string) (net.Listener, error)
}

// Conn is an open connection to a POSIX node: a Link that writes files,
// runs shell commands and forwards connections.
type Conn interface {
	Link
	FileWriter
	Shell
	Forwarder
}

// PathChecker is a Conn that can tell whether a path exists on the node
// without running a command there (SSH: over its SFTP session). Callers
// find it by type assertion and fall back to a command without it.
type PathChecker interface {
	// Exists reports whether path exists on the node (a symlink counts,
	// whatever it points to).
	Exists(ctx context.Context, path string) (bool, error)
}

// Process is a command started with Conn.Start.
type Process interface {
	Stdin() io.WriteCloser
	Stdout() io.Reader
	Stderr() io.Reader
	// Wait waits for the command to exit.
	Wait() error
	// Close ends the command's session; it is safe to call more than once
	// and after Wait.
	Close() error
}

// ExitError is a command that ran on a node and exited non-zero.
type ExitError struct {
	Cmd      string
	ExitCode int
	Stderr   string // the tail of standard error, when it was captured
}

func (e *ExitError) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("remote command exited with status %d", e.ExitCode) + ": " + e.Stderr
	}
	return fmt.Sprintf("remote command exited with status %d", e.ExitCode)
}

// ShellQuote quotes s for a POSIX shell command line.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ':' || r == ',' || r == '@') {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, `'\''`...)
		} else {
			out = append(out, s[i])
		}
	}
	return string(append(out, '\''))
}

// StderrTail is how much of a failed command's standard error an ExitError
// keeps.
const StderrTail = 2048

// TailWriter keeps the last StderrTail bytes written to it; transports use
// it to put the end of a failed command's stderr into its ExitError.
type TailWriter struct {
	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer.
func (w *TailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > 2*StderrTail {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-StderrTail:]...)
	}
	return len(p), nil
}

// String returns the tail, trimmed of surrounding white space.
func (w *TailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.buf
	if len(b) > StderrTail {
		b = b[len(b)-StderrTail:]
	}
	return strings.TrimSpace(string(b))
}

package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/fleetup/fleetup/proc"
)

// stream runs name with args as r runs every command (proc.Runner.Command)
// plus env, with stdin empty, and sends standard output and error, in the
// order written, to w as they are produced.
//
// It returns nil on exit status 0, an *exitStatus for another exit, and an
// error wrapping ctx.Err() when ctx ended the command. A process that
// escapes the group and keeps the output open delays the return by the
// runner's WaitDelay, no more; the command's own exit status still counts.
func stream(ctx context.Context, r *proc.Runner, w io.Writer, env []string, name string, args ...string) error {
	if r == nil {
		r = &proc.Runner{}
	}
	cmd := r.Command(ctx, env, name, args...)
	cmd.Stdin = nil
	cmd.Stdout = w
	cmd.Stderr = w // the same writer: one pipe, output in order
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil {
		// The tool has exited, but something it started (fwupdtool's
		// gpg-agent, say) still holds the output open. That process
		// carries the marker, for the engine to stop; the tool's own
		// exit status is the result.
		fmt.Fprintf(w, "\n(fleetup: %s exited; a process it started still holds its output open)\n", name)
		if cmd.ProcessState.Success() {
			return nil
		}
		return &exitStatus{code: cmd.ProcessState.ExitCode()}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &exitStatus{code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode returns the exit status in err, or -1 when err is not one.
func exitCode(err error) int {
	var es *exitStatus
	if errors.As(err, &es) {
		return es.code
	}
	var pe *proc.ExitError
	if errors.As(err, &pe) {
		return pe.ExitCode
	}
	return -1
}

// outputLog keeps the tail of what is written to it and copies everything
// to log, when set. Write never fails: a failing log must not fail an
// install.
type outputLog struct {
	mu  sync.Mutex
	log io.Writer
	buf []byte
}

func newOutputLog(log io.Writer) *outputLog { return &outputLog{log: log} }

func (o *outputLog) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log != nil {
		_, _ = o.log.Write(p)
	}
	o.buf = append(o.buf, p...)
	if len(o.buf) > 2*OutputTail {
		o.buf = append(o.buf[:0], o.buf[len(o.buf)-OutputTail:]...)
	}
	return len(p), nil
}

// Tail returns at most OutputTail bytes from the end of the output,
// starting on a character boundary.
func (o *outputLog) Tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return tailOf(o.buf, OutputTail)
}

func tailOf(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	return string(b)
}

// lastLines returns the last n non-empty lines of s that keep(line)
// accepts, joined by "; ", trimmed.
func lastLines(s string, n int, keep func(string) bool) string {
	var out []string
	lines := strings.Split(strings.ReplaceAll(s, "\r", "\n"), "\n")
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || (keep != nil && !keep(l)) {
			continue
		}
		out = append([]string{l}, out...)
	}
	msg := strings.Join(out, "; ")
	if len(msg) > 1000 {
		msg = "..." + tailOf([]byte(msg), 1000)
	}
	return msg
}

package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/transport"
	sshtr "github.com/fleetup/fleetup/transport/ssh"
)

// A Rebooter is an Opener whose nodes fleetup can reboot (--reboot). The
// run has closed on the node before Reboot is called; Reboot returns once
// the node answers again with a new boot id (or fails: not back within
// req.Timeout, cancelled, the reboot refused). Openers without it (a BMC)
// leave their nodes as they are.
type Rebooter interface {
	Reboot(ctx context.Context, name string, run *Env, req orchestrator.RebootRequest) (*orchestrator.RebootResult, error)
}

var _ Rebooter = (*POSIXNode)(nil)

// bootIDCommand prints a Linux node's boot id, which changes with every
// boot.
const bootIDCommand = "cat /proc/sys/kernel/random/boot_id"

// rebootScript runs as root (directly, or through sudo) with the action
// ("warn" or "reboot") and the message. warn shows the message to the
// node's logged-in users (wall); reboot asks the init system for a reboot
// now, with the message: shutdown -r now, else systemctl reboot, else
// reboot, whichever the node has. Its standard input is closed first: what
// sudo did not read (its password, when it did not ask) is never used.
const rebootScript = `set -u
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
act=$1 msg=$2
exec </dev/null
case $act in
warn)
  if command -v wall >/dev/null 2>&1; then printf '%s\n' "$msg" | wall; else echo "FLEETUP-ERROR no-wall: the node has no wall to warn its users with" >&2; fi ;;
reboot)
  if command -v shutdown >/dev/null 2>&1; then exec shutdown -r now "$msg"
  elif command -v systemctl >/dev/null 2>&1; then exec systemctl reboot
  else exec reboot; fi ;;
esac
`

// Reboot implements Rebooter for a Linux node, over a connection of its
// own (Dial), as root like the engine (sudo with SudoPassword for a login
// that is not root): it reads the boot id, warns the logged-in users with
// wall ("the node reboots in N s: MESSAGE"), waits the delay on the
// manager (a cancel then leaves the node as it is, nothing scheduled on
// it), asks for the reboot with shutdown -r now, and then dials until the
// node answers with the same host key (the known hosts check of Dial) and
// a new boot id, up to req.Timeout. A node that presents another host
// key fails at once.
func (p *POSIXNode) Reboot(ctx context.Context, name string, run *Env, req orchestrator.RebootRequest) (*orchestrator.RebootResult, error) {
	notice := req.Notice
	if notice == nil {
		notice = func(string) {}
	}
	conn, err := p.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect before the reboot: %w", err)
	}
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	before, err := readBootID(ctx, conn)
	if err != nil {
		return nil, err
	}
	res := &orchestrator.RebootResult{BootIDBefore: before}
	warning := fmt.Sprintf("fleetup run %s: this node reboots in %s", run.RunID, req.Delay.Round(time.Second))
	if req.Message != "" {
		warning += ": " + req.Message
	}
	if err := p.asRoot(ctx, conn, "warn", warning); err != nil {
		return res, fmt.Errorf("warn the node's users: %w", err)
	}
	notice(fmt.Sprintf("users warned (%q); rebooting in %s", warning, req.Delay.Round(time.Second)))
	t := time.NewTimer(req.Delay)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return res, ctx.Err()
	}
	msg := "fleetup run " + run.RunID + ": rebooting now"
	if req.Message != "" {
		msg += ": " + req.Message
	}
	start := time.Now()
	var asked error // the reboot command's error, when the session ended without an exit status
	if err := p.asRoot(ctx, conn, "reboot", msg); err != nil {
		if !lostByReboot(err) {
			return res, fmt.Errorf("ask for the reboot: %w", err)
		}
		asked = err
	}
	conn.Close()
	conn = nil
	notice(fmt.Sprintf("reboot asked (boot id %s); waiting up to %s for the node to come back", before, req.Timeout))
	deadline := start.Add(req.Timeout)
	var last error
	for {
		actx, cancel := context.WithDeadline(ctx, minTime(deadline, time.Now().Add(30*time.Second)))
		c, err := p.Dial(actx)
		if err == nil {
			var id string
			id, err = readBootID(actx, c)
			c.Close()
			if err == nil && id != before {
				cancel()
				res.BootIDAfter, res.Back, res.Duration = id, true, time.Since(start)
				return res, nil
			}
			if err == nil {
				err = fmt.Errorf("the node still answers with boot id %s", id)
			}
		}
		cancel()
		var hk *sshtr.HostKeyError
		if errors.As(err, &hk) {
			return res, fmt.Errorf("after the reboot: %w", err)
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		last = err
		if !time.Now().Add(time.Second).Before(deadline) {
			if asked != nil && strings.Contains(fmt.Sprint(last), "still answers with boot id") {
				// The node never went down: the reboot command may not
				// have run at all.
				return res, fmt.Errorf("%w: the node never went down within %s: the reboot may not have been asked (the reboot command's session ended with: %v)", orchestrator.ErrNotBack, req.Timeout, asked)
			}
			return res, fmt.Errorf("%w: not back within %s (last: %v)", orchestrator.ErrNotBack, req.Timeout, last)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// readBootID reads the node's boot id as the login user: the last line
// the command printed, so that what the login's own scripts print before
// it (a banner with the time, say) is not taken for a new boot id.
func readBootID(ctx context.Context, conn transport.Conn) (string, error) {
	var out, errOut transport.TailWriter
	if err := conn.Run(ctx, bootIDCommand, nil, &out, &errOut); err != nil {
		return "", fmt.Errorf("read the boot id: %w", err)
	}
	id := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(id, '\n'); i >= 0 {
		id = strings.TrimSpace(id[i+1:])
	}
	if id == "" {
		return "", errors.New("read the boot id: the node printed none")
	}
	return id, nil
}

// asRoot runs rebootScript with act and msg as root: directly for a root
// login, else through sudo (sudo -n, which never asks, when there is no
// SudoPassword). With a password, sudo prompts with a marker made for this
// command (random, as the engine's sudo does), and the password is written
// to its standard input only once that prompt is on standard error: a
// program the login's own scripts start before sudo (or a sudo that does
// not ask) never gets it. A second prompt (the password refused) closes
// standard input, so sudo fails at once instead of waiting.
func (p *POSIXNode) asRoot(ctx context.Context, conn transport.Conn, act, msg string) error {
	cmd := "/bin/sh -c " + transport.ShellQuote(rebootScript) + " fleetup-reboot " + transport.ShellQuote(act) + " " + transport.ShellQuote(msg)
	var errOut transport.TailWriter
	if conn.User() == "root" {
		return withStderr(conn.Run(ctx, "exec "+cmd, nil, nil, &errOut), &errOut)
	}
	sudo := `if [ -x /usr/bin/sudo ]; then SUDO=/usr/bin/sudo; else SUDO=/bin/sudo; fi; exec "$SUDO" `
	if p.SudoPassword == nil {
		return withStderr(conn.Run(ctx, sudo+"-n -- "+cmd, nil, nil, &errOut), &errOut)
	}
	pw, err := p.SudoPassword()
	if err != nil {
		return fmt.Errorf("sudo password: %w", err)
	}
	answer := append(append([]byte(nil), pw...), '\n')
	clear(pw)
	defer clear(answer)
	prompt := agent.NewSudoPrompt()
	proc, err := conn.Start(ctx, sudo+"-S -p "+transport.ShellQuote(prompt)+" -- "+cmd)
	if err != nil {
		return err
	}
	defer proc.Close()
	go func() { _, _ = io.Copy(io.Discard, proc.Stdout()) }()
	prompts := make(chan struct{}, 4)
	copied := make(chan struct{})
	go func() {
		agent.WatchPrompts(proc.Stderr(), &errOut, prompt, prompts)
		close(copied)
	}()
	waited := make(chan error, 1)
	go func() { waited <- proc.Wait() }()
	stdin := proc.Stdin()
	answered := false
	for {
		select {
		case <-prompts:
			if answered {
				_ = stdin.Close() // refused: sudo reads EOF and fails
				continue
			}
			answered = true
			if _, err := stdin.Write(answer); err != nil {
				_ = stdin.Close()
			}
		case err := <-waited:
			select {
			case <-copied:
			case <-time.After(5 * time.Second):
			}
			return withStderr(err, &errOut)
		case <-ctx.Done():
			_ = proc.Close()
			select {
			case err := <-waited:
				if err != nil {
					return err
				}
			case <-time.After(10 * time.Second):
			}
			return ctx.Err()
		}
	}
}

// withStderr adds the end of the command's standard error to err, unless
// err says it already.
func withStderr(err error, errOut *transport.TailWriter) error {
	if err == nil {
		return nil
	}
	if s := strings.TrimSpace(errOut.String()); s != "" && !strings.Contains(err.Error(), s) {
		return fmt.Errorf("%w: %s", err, s)
	}
	return err
}

// lostByReboot reports whether err is the connection ending because the
// node went down under the reboot command (no exit status came back).
func lostByReboot(err error) bool {
	var ee *transport.ExitError
	if errors.As(err, &ee) {
		return false
	}
	return true
}

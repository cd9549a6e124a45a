// Package proc runs the commands a node's work needs (installers, inventory
// tools, firewall tools) and makes sure none of them, nor anything they
// start, outlives the run.
//
// Every process started through a Runner carries the environment variable
// MarkerVar set to the run's id. Daemons that an install starts (fwupdtool's
// gpg-agent, say) inherit it even after they detach from the process group,
// so KillMarked finds and stops them by reading /proc/*/environ.
//
// Every child gets a cleaned environment (Environ): the variables marked
// secret (the password variables, the SSH agent's socket, and any name
// given to Secret) are left out, and the locale is C (LC_ALL=C, LANG=C, no
// LANGUAGE), because callers parse what the tools print and decide on exit
// codes and machine formats, never on translated messages.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MarkerVar is the environment variable that tags every process a run starts.
const MarkerVar = "FLEETUP_RUN"

// Runner runs commands on the local machine (the node, when used by the
// engine). The zero value runs commands with the current environment as
// Environ cleans it, and no marker.
type Runner struct {
	// Marker is the run id put in MarkerVar; empty for none.
	Marker string
	// Env is added to the inherited environment (after the C locale, so
	// an entry here may choose another one). Secret variables are dropped
	// from it too.
	Env []string
	// Prefix, when set, is prepended to every command line; tests use it
	// to run inside a network namespace ("ip", "netns", "exec", "ns1").
	Prefix []string
	// WaitDelay bounds how long Run waits for output pipes after the
	// process exits or is killed; 5s when zero.
	WaitDelay time.Duration
}

// Result is the outcome of a command that ran.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// ExitError is returned when a command ran and exited non-zero.
type ExitError struct {
	Cmd      string
	ExitCode int
	Stderr   string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 2000 {
		msg = msg[len(msg)-2000:]
	}
	if msg == "" {
		return fmt.Sprintf("%s: exit status %d", e.Cmd, e.ExitCode)
	}
	return fmt.Sprintf("%s: exit status %d: %s", e.Cmd, e.ExitCode, msg)
}

// Run runs name with args, feeding stdin (may be nil), and returns its
// output. A non-zero exit yields the Result and an *ExitError. The command
// runs in its own process group, killed whole when ctx ends.
func (r *Runner) Run(ctx context.Context, stdin io.Reader, name string, args ...string) (*Result, error) {
	cmd := r.Command(ctx, nil, name, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The command succeeded; something it started (a daemon) still
		// holds its output open. That process carries the marker and is
		// stopped at clean-up.
		err = nil
	}
	res := &Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			res.ExitCode = ee.ExitCode()
			return res, &ExitError{Cmd: name, ExitCode: res.ExitCode, Stderr: stderr.String()}
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("%s: %w", name, ctx.Err())
		}
		return res, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}

// Command prepares name with args the way every command of the runner
// runs: r's prefix, the environment of Environ plus r.Env and env (secret
// variables left out of all three), the marker, its own process group
// killed whole when ctx ends, and the runner's WaitDelay. The caller sets
// the standard streams and runs it.
func (r *Runner) Command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	argv := append(append([]string{}, r.Prefix...), name)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(r.environ(), dropSecrets(env)...)
	ownGroup(cmd)
	cmd.WaitDelay = r.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	return cmd
}

// Output is Run without stdin, returning standard output only.
func (r *Runner) Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	res, err := r.Run(ctx, nil, name, args...)
	if res == nil {
		return nil, err
	}
	return res.Stdout, err
}

func (r *Runner) environ() []string {
	env := Environ(r.Env...)
	if r.Marker != "" {
		env = append(env, MarkerVar+"="+r.Marker)
	}
	return env
}

// alwaysSecret are the variables no child ever gets, whatever Secret was
// told: the manager's password (DefaultEnv of package secret) and the SSH
// agent, which would let a child log in wherever the user can.
var alwaysSecret = []string{"FLEETUP_PASSWORD", "SSH_AUTH_SOCK", "SSH_AGENT_PID"}

var (
	secretMu    sync.RWMutex
	secretNames = map[string]bool{}
)

// Secret marks the environment variables names as secret for the rest of
// the process's life: no command started through this package (nor through
// Environ) gets them, whether inherited or given in Env. The manager marks
// the variable its --password-env names. Safe for concurrent use.
func Secret(names ...string) {
	secretMu.Lock()
	defer secretMu.Unlock()
	for _, n := range names {
		if n != "" {
			secretNames[normName(n)] = true
		}
	}
}

// IsSecret reports whether the environment variable name is kept from
// children.
func IsSecret(name string) bool {
	n := normName(name)
	for _, s := range alwaysSecret {
		if n == normName(s) {
			return true
		}
	}
	secretMu.RLock()
	defer secretMu.RUnlock()
	return secretNames[n]
}

// normName is how the system compares variable names: exactly on Unix,
// ignoring case on Windows.
func normName(n string) string {
	if runtime.GOOS == "windows" {
		return strings.ToUpper(n)
	}
	return n
}

// localeVars are replaced by the C locale in every child's environment.
var localeVars = []string{"LC_ALL", "LANG", "LANGUAGE"}

// Environ is the environment for a child process: this process's own,
// without the secret variables (IsSecret) and the locale variables, then
// LC_ALL=C and LANG=C, then extra (secret variables dropped from it too;
// an extra LC_ALL or LANG overrides the C locale, later entries winning as
// in exec.Cmd). Every command of a Runner gets it; so do the commands of
// the local transport.
func Environ(extra ...string) []string {
	inherited := os.Environ()
	env := make([]string, 0, len(inherited)+2+len(extra))
	for _, kv := range inherited {
		name := envName(kv)
		if IsSecret(name) || isLocaleVar(name) {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "LANG=C")
	return append(env, dropSecrets(extra)...)
}

// dropSecrets returns env without its secret variables.
func dropSecrets(env []string) []string {
	var out []string
	for _, kv := range env {
		if !IsSecret(envName(kv)) {
			out = append(out, kv)
		}
	}
	return out
}

func envName(kv string) string {
	// On Windows, variables such as "=C:" start with '='.
	if i := strings.IndexByte(kv[min(1, len(kv)):], '='); i >= 0 {
		return kv[:i+min(1, len(kv))]
	}
	return kv
}

func isLocaleVar(name string) bool {
	n := normName(name)
	for _, v := range localeVars {
		if n == normName(v) {
			return true
		}
	}
	return false
}

// Getenv is the value key has in the environment of r's commands (the
// inherited environment overridden by r.Env), or "".
func (r *Runner) Getenv(key string) string {
	env := r.environ()
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// LookPath reports whether the named program exists on PATH (or, with a
// Prefix, is assumed present: the prefix's own namespace shares the file
// system).
func LookPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// Marked returns the PIDs of processes whose environment has MarkerVar set
// to marker, or, when marker ends in "*", any value starting with the rest.
// Only processes in the caller's mount namespace count: a process in
// another one (a container on the node, or another node of the test lab,
// which shares the PID namespace) is never ours to stop. The calling
// process is never included.
func Marked(marker string) ([]int, error) {
	prefix := MarkerVar + "=" + strings.TrimSuffix(marker, "*")
	exact := !strings.HasSuffix(marker, "*")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	myNS, _ := os.Readlink("/proc/self/ns/mnt")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "mnt")); err != nil || ns != myNS {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, kv := range bytes.Split(data, []byte{0}) {
			s := string(kv)
			if (exact && s == prefix) || (!exact && strings.HasPrefix(s, prefix)) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}

// KillMarked sends SIGTERM to every process Marked(marker) finds, waits up
// to grace for them to go, then SIGKILLs the rest. It returns the PIDs it
// signalled.
func KillMarked(marker string, grace time.Duration) ([]int, error) {
	pids, err := Marked(marker)
	if err != nil || len(pids) == 0 {
		return nil, err
	}
	for _, pid := range pids {
		_ = terminate(pid)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		left, _ := Marked(marker)
		if len(left) == 0 {
			return pids, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	left, _ := Marked(marker)
	for _, pid := range left {
		_ = kill(pid)
	}
	return pids, nil
}

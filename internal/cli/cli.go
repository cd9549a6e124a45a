// Package cli is fleetup's command line: one file per subcommand, each
// parsing its flags into an options struct and calling into the packages
// that do the work. Errors become exit codes in one place, here.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes, documented in the README.
const (
	ExitOK        = 0   // every node ended well (complete, or reboot needed)
	ExitInternal  = 1   // the manager itself failed (e.g. its web server could not start)
	ExitUsage     = 2   // bad usage or bad input: flags, targets, nodes file, baseline
	ExitNodes     = 3   // one or more nodes failed, or their clean-up was not confirmed
	ExitCancelled = 130 // cancelled by SIGINT, SIGTERM or SIGHUP
)

// usageError is bad usage or input; it maps to ExitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// nodesError says how many nodes did not end well; it maps to ExitNodes.
// what replaces "did not end well" where a command means something else.
type nodesError struct {
	failed, total int
	what          string
}

func (e *nodesError) Error() string {
	what := e.what
	if what == "" {
		what = "did not end well"
	}
	return fmt.Sprintf("%d of %d node(s) %s", e.failed, e.total, what)
}

var errCancelled = errors.New("cancelled")

// Env is what a command may touch of the outside world.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

func commands() []command {
	return []command{
		{"deploy", "bring nodes up to a baseline", runDeploy},
		{"inventory", "report what nodes are and have", runInventory},
		{"baseline", "check and list a baseline directory (baseline check DIR)", runBaseline},
		{"preflight", "check every port a deploy needs, in both directions, per node", runPreflight},
		{"cleanup", "remove what an interrupted run left on nodes (--local: in this machine's firewall)", runCleanup},
		{"config", "show the effective port settings and where each came from", runConfig},
		{"ports", "list the ports each kind of node needs open", runPorts},
		{"firewall", "firewall rules for nodes (firewall esxi: the ESXi outbound rule)", runFirewall},
		{"serve", "run the manager as a service: the web UI and API over HTTPS, runs recorded for reports", runServe},
		{"report", "write a recorded run's report: deploy, inventory, firmware or failed-dependencies, as HTML, JSON or CSV", runReport},
		{"logs", "gather everything recorded of a run into one .tar.gz (HP SUM's log gathering)", runLogs},
		{"version", "print fleetup's version", runVersion},
	}
}

// Version is fleetup's version, set at link time.
var Version = "dev"

// Run runs fleetup with args and returns the exit code. SIGINT and SIGTERM
// cancel the run; clean-up on the nodes still happens.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return ExitOK
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == args[0] {
			cmd = &c
			break
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "fleetup: unknown command %q\n", args[0])
		usage(stderr)
		return ExitUsage
	}
	// SIGHUP (the terminal or SSH session of the user went away) cancels
	// like SIGINT and SIGTERM, so that clean-up still runs. A reader of
	// the output that went away (fleetup ... | head) must not kill the
	// manager mid-run either: writes then fail with EPIPE instead.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	// HP SUM's spellings (/target, /dryrun, /port 80, ...) work with
	// every command.
	cmdArgs, err := translateHPSUM(args[1:])
	if err == nil {
		err = cmd.run(ctx, env, cmdArgs)
	}
	return exitCode(err, stderr)
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintf(stderr, "fleetup: %v\n", err)
	var ue *usageError
	var ne *nodesError
	switch {
	case errors.Is(err, errCancelled):
		return ExitCancelled
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &ne):
		return ExitNodes
	}
	return ExitInternal
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: fleetup COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n`fleetup COMMAND -h` lists a command's flags.")
	fmt.Fprintln(w, hpsumHelp())
}

func runVersion(ctx context.Context, env *Env, args []string) error {
	fmt.Fprintln(env.Stdout, "fleetup", Version)
	return nil
}

// newFlags returns a flag set whose errors are usage errors.
func newFlags(name string, env *Env) *flag.FlagSet {
	fs := flag.NewFlagSet("fleetup "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err}
	}
	return nil
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

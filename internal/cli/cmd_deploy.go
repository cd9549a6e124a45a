package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/store"
)

type deployOptions struct {
	nodeOptions
	Baseline  string
	DryRun    bool
	Downgrade bool
	Rewrite   bool
	// OnFailedDependency is --on-failed-dependency (HP SUM's
	// /on_failed_dependency): omit-host, omit-component or force.
	OnFailedDependency string
	// Waves: --canary, --max-failures, --health-command, --health-timeout.
	Canary        int
	maxFailures   *orchestrator.FailureLimit
	HealthCommand string
	HealthTimeout time.Duration
	// Reboots (cmd_deploy_reboot.go): --reboot, --reboot-always,
	// --reboot-delay, --reboot-message, --reboot-timeout.
	Reboot        bool
	RebootAlways  bool
	RebootDelay   time.Duration
	RebootMessage string
	RebootTimeout time.Duration
	// Resume is --resume RUN (cmd_deploy_resume.go).
	Resume string
	// ports is the port configuration: flags, environment, --config file.
	ports *config.Config
	// setFlags are the flags given on the command line, which input file
	// options do not override.
	setFlags map[string]bool
	// inventory is true for `fleetup inventory`.
	inventory bool
	// reports are --report, --report-dir and --report-format
	// (cmd_report.go): report files written from the run's record.
	reports reportFlags
}

func runDeploy(ctx context.Context, env *Env, args []string) error {
	var opts deployOptions
	fs := newFlags("deploy", env)
	opts.register(fs)
	fs.StringVar(&opts.Baseline, "baseline", "", "the baseline directory (required)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "analysis only: say what would be done, change nothing")
	fs.BoolVar(&opts.Downgrade, "downgrade", false, "install components older than what is installed")
	fs.BoolVar(&opts.Rewrite, "rewrite", false, "reinstall components whose version is already installed")
	fs.StringVar(&opts.OnFailedDependency, "on-failed-dependency", string(orchestrator.OmitHost), "when a component's requires are not met: omit-host (install nothing on that node), omit-component (skip it and what requires it), force")
	fs.IntVar(&opts.Canary, "canary", 0, "work on the first N nodes first; the rest only if they all end well")
	fs.Func("max-failures", "N or P%: start no new node once more than this many nodes failed (the rest end skipped)", func(s string) error {
		l, err := orchestrator.ParseFailureLimit(s)
		if err != nil {
			return err
		}
		opts.maxFailures = &l
		return nil
	})
	fs.StringVar(&opts.HealthCommand, "health-command", "", "a shell command run on each node after its update, as the login user; a failure fails the node")
	fs.DurationVar(&opts.HealthTimeout, "health-timeout", 5*time.Minute, "bound on the health command")
	opts.registerReboot(fs) // cmd_deploy_reboot.go
	opts.registerResume(fs) // cmd_deploy_resume.go
	opts.reports.register(fs)
	pf := registerPortFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (targets go after --target)", fs.Arg(0))
	}
	if opts.Canary < 0 {
		return usagef("--canary %d: must be 0 (off) or a number of nodes", opts.Canary)
	}
	if opts.HealthTimeout <= 0 {
		return usagef("--health-timeout %v: must be positive", opts.HealthTimeout)
	}
	if err := opts.validateReboot(); err != nil {
		return err
	}
	var err error
	if opts.ports, err = pf.load(env, fs); err != nil {
		return err
	}
	opts.setFlags = visited(fs)
	return deploy(ctx, env, &opts)
}

func runInventory(ctx context.Context, env *Env, args []string) error {
	var opts deployOptions
	opts.inventory = true
	fs := newFlags("inventory", env)
	opts.register(fs)
	fs.StringVar(&opts.Baseline, "baseline", "", "also analyse this baseline against each node")
	opts.reports.register(fs)
	pf := registerPortFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if opts.ports, err = pf.load(env, fs); err != nil {
		return err
	}
	opts.setFlags = visited(fs)
	return deploy(ctx, env, &opts)
}

// visited returns the names of the flags set on the command line.
func visited(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

func newRunID() string { return manager.NewRunID() }

// deploy runs a deploy or an inventory. A cancel (SIGINT, SIGTERM, SIGHUP)
// at any point, start-up included, ends it with errCancelled once what was
// started is undone.
func deploy(ctx context.Context, env *Env, opts *deployOptions) error {
	err := deployRun(ctx, env, opts)
	if err != nil && ctx.Err() != nil && !errors.Is(err, errCancelled) {
		return fmt.Errorf("%w: %v", errCancelled, err)
	}
	return err
}

func deployRun(ctx context.Context, env *Env, opts *deployOptions) error {
	opts.applyPorts(opts.ports)
	rec, err := opts.loadResume() // cmd_deploy_resume.go: nil without --resume
	if err != nil {
		return err
	}
	ts, err := opts.runTargets(env, rec)
	if err != nil {
		return err
	}
	if err := applyInputOptions(env, opts); err != nil {
		return err
	}
	if opts.Baseline == "" && !opts.inventory {
		return usagef("--baseline DIR is required (or SOURCEPATH= in the --inputfile)")
	}
	policy := orchestrator.OmitHost // inventory has no such flag
	if opts.OnFailedDependency != "" {
		if policy, err = orchestrator.ParseDependencyPolicy(opts.OnFailedDependency); err != nil {
			return usagef("--on-failed-dependency: %w", err)
		}
	}
	var comps []*fleetup.Component
	if opts.Baseline != "" {
		b, err := loadBaseline(opts.Baseline)
		if err != nil {
			return err
		}
		if err := baselineProblems(b); err != nil {
			return err
		}
		comps = b.Components
	}
	if err := opts.checkResume(rec, comps); err != nil { // cmd_deploy_resume.go
		return err
	}
	signers, err := opts.signers()
	if err != nil {
		return err
	}
	runID := manager.NewRunID()
	out := newReporter(env.Stdout, opts.JSON, withProgress(stdoutTerminal))
	defer out.endProgress() // a run that returns an error leaves the terminal clean too
	out.runStart(runID, len(ts))
	kind := store.RunDeploy
	switch {
	case opts.inventory:
		kind = store.RunInventory
	case opts.DryRun:
		kind = store.RunReview
	}
	record := startRecord(ctx, out, opts.StateDir, runID, kind, baselineDir(opts.Baseline), ts, opts.history(ts, comps))
	res, err := manager.Run(ctx, manager.Options{
		RunID:              runID,
		Components:         comps,
		Nodes:              opts.nodes(ctx, ts, opts.password(ctx, env), signers),
		Ports:              opts.ports,
		StateDir:           opts.StateDir,
		InventoryOnly:      opts.inventory && opts.Baseline == "",
		DryRun:             opts.DryRun || opts.inventory,
		Downgrade:          opts.Downgrade,
		Rewrite:            opts.Rewrite,
		Parallel:           opts.Parallel,
		OnFailedDependency: policy,
		Canary:             opts.Canary,
		MaxFailures:        opts.maxFailures,
		HealthCommand:      opts.HealthCommand,
		HealthTimeout:      opts.HealthTimeout,
		Reboot:             opts.rebootOptions(),
		FwupdPlugins:       opts.plugins(),
		Emit:               func(ev fleetup.Event) { out.event(ev); record.emit(ev) },
		NodeEnded:          record.nodeEnded,
		Started:            out.listening,
		History:            opts.history(ts, comps), // cmd_deploy_resume.go
		Resume:             rec,
	})
	if err != nil {
		record.emit(fleetup.Event{Time: time.Now(), Message: "the run did not start: " + err.Error()})
		record.end(ctx.Err() != nil, nil)
		var ce *manager.ConfigError
		if errors.As(err, &ce) {
			return &usageError{ce.Err}
		}
		return err
	}
	results := res.Nodes
	record.end(ctx.Err() != nil, results)
	out.results = results
	out.summary(results, opts.inventory)
	paths, rerr := opts.reports.write(context.WithoutCancel(ctx), env, opts.StateDir, runID)
	for _, p := range paths {
		out.notice("", "report: "+p)
	}
	if rerr != nil {
		out.notice("", "report: "+rerr.Error())
	}
	if res.Journal != nil {
		out.notice("", "journal: "+res.Journal.Error()+"; `fleetup cleanup --target NODE` removes what the run left")
	}
	if res.History != nil {
		out.notice("", "run history: "+res.History.Error()+"; a --resume of this run knows less of it")
	}
	failed := 0
	cancelled := false
	for _, r := range results {
		switch {
		case r.State == fleetup.StateCancelled:
			cancelled = true
		case r.State == fleetup.StateFailed || r.State == fleetup.StateSkipped || r.CleanupError != "":
			failed++
		}
	}
	if cancelled || ctx.Err() != nil {
		return errCancelled
	}
	if failed > 0 {
		return &nodesError{failed: failed, total: len(results)}
	}
	if res.Journal != nil {
		return fmt.Errorf("the journal could not record the run's end: %w", res.Journal)
	}
	return nil
}

// listening tells the user where the manager listens: a "manager" JSON
// line, or a line of text.
func (r *reporter) listening(l manager.Listening) {
	if r.json {
		r.line(struct {
			Type string `json:"type"`
			manager.Listening
		}{"manager", l})
		return
	}
	r.notice("", "the manager listens on "+l.String())
}

// reporter prints what happens: JSON lines, or short human lines and a
// summary table; with withProgress on a terminal, a live line per node
// (progress.go) in place of the human lines, ended before the summary.
type reporter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	// live is the live display, nil without one. w is then live, so that
	// whatever else is printed ends the display first (progress.Write).
	live    *progress
	results []orchestrator.NodeResult
}

// reporterOption changes a reporter as newReporter makes it (withProgress,
// progress.go).
type reporterOption func(*reporter)

func newReporter(w io.Writer, asJSON bool, opts ...reporterOption) *reporter {
	r := &reporter{w: w, json: asJSON}
	for _, o := range opts {
		o(r)
	}
	return r
}

// endProgress ends the live display, if any, leaving its lines frozen on
// the terminal; what is printed next comes below them. It may be called
// more than once.
func (r *reporter) endProgress() {
	if r.live != nil {
		r.live.end()
	}
}

func (r *reporter) line(v any) {
	b, _ := json.Marshal(v)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Write(append(b, '\n'))
}

func (r *reporter) runStart(id string, n int) {
	if r.json {
		r.line(map[string]any{"type": "run", "run_id": id, "nodes": n, "time": time.Now()})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	target := fmt.Sprintf("%d node(s)", n)
	if n == 0 {
		target = "the local node"
	}
	fmt.Fprintf(r.w, "fleetup run %s on %s\n", id, target)
}

func (r *reporter) notice(node, msg string) {
	r.event(fleetup.Event{Time: time.Now(), Node: node, Message: msg})
}

func (r *reporter) event(ev fleetup.Event) {
	if r.json {
		r.line(struct {
			Type string `json:"type"`
			fleetup.Event
		}{"event", ev})
		return
	}
	if r.live != nil && r.live.event(ev) {
		return
	}
	s, ok := plainLine(ev)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	io.WriteString(r.w, s)
}

// plainLine is ev as a line of text, newline included, or false for an
// event that makes none (no phase and no message).
func plainLine(ev fleetup.Event) (string, bool) {
	if ev.Phase == "" && ev.Message == "" {
		return "", false
	}
	node := ev.Node
	if node == "" {
		node = "manager"
	}
	what := string(ev.State)
	if ev.Component != "" {
		what = ev.Component
		if ev.Phase != "" {
			what += " " + string(ev.Phase)
		}
	}
	return fmt.Sprintf("%s  %-24s %s: %s\n", ev.Time.Format("15:04:05"), node, what, ev.Message), true
}

package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/runstate"
)

type deployOptions struct {
	nodeOptions
	Baseline  string
	DryRun    bool
	Downgrade bool
	Rewrite   bool
	// ports is the port configuration: flags, environment, --config file.
	ports *config.Config
	// setFlags are the flags given on the command line, which input file
	// options do not override.
	setFlags map[string]bool
	// inventory is true for `fleetup inventory`.
	inventory bool
}

func runDeploy(ctx context.Context, env *Env, args []string) error {
	var opts deployOptions
	fs := newFlags("deploy", env)
	opts.register(fs)
	fs.StringVar(&opts.Baseline, "baseline", "", "the baseline directory (required)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "analysis only: say what would be done, change nothing")
	fs.BoolVar(&opts.Downgrade, "downgrade", false, "install components older than what is installed")
	fs.BoolVar(&opts.Rewrite, "rewrite", false, "reinstall components whose version is already installed")
	pf := registerPortFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (targets go after --target)", fs.Arg(0))
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

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

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
	ts, err := opts.targets(env)
	if err != nil {
		return err
	}
	if err := applyInputOptions(env, opts); err != nil {
		return err
	}
	if opts.Baseline == "" && !opts.inventory {
		return usagef("--baseline DIR is required (or SOURCEPATH= in the --inputfile)")
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
	signers, err := opts.signers()
	if err != nil {
		return err
	}
	stateDir := opts.StateDir
	if stateDir == "" {
		stateDir = runstate.DefaultDir()
	}
	runID := newRunID()
	out := newReporter(env.Stdout, opts.JSON)
	out.runStart(runID, len(ts))

	// The journal comes first: a state directory that cannot be created
	// or written stops the run before anything starts or any node is
	// touched. What the journal fails to record later is reported and
	// makes the run fail.
	var jr *runstate.Journal
	var rj *runJournal
	if len(ts) > 0 {
		var run *runstate.Run
		if jr, err = runstate.Open(stateDir); err == nil {
			run, err = jr.Begin(runID)
		}
		if err != nil {
			return usagef("--state-dir: %w", err)
		}
		rj = &runJournal{run: run}
		defer func() { // early returns: the run ends with nothing placed
			if err := rj.finish(nil); err != nil {
				out.notice("", "journal: "+err.Error())
			}
		}()
		if _, err := jr.Pending(); err != nil {
			out.notice("", "journal: "+err.Error()+": what the runs in those files left on nodes is not swept")
		}
	}

	// The manager's side: its web server for remote nodes, FTP for
	// switches, and its own firewall. Each is undone when the run ends,
	// also when it was cancelled.
	srv := &managerServers{runID: runID, stateDir: stateDir, ports: opts.ports, out: out}
	defer srv.close(ctx)
	var ca *pki.CA
	var mgr *pki.Leaf
	if len(ts) > 0 {
		if ca, err = pki.NewCA(runID); err != nil {
			return err
		}
		if mgr, err = ca.Issue(pki.ManagerName, nil); err != nil {
			return err
		}
		if err := srv.startDepot(ctx, pki.ServerTLS(ca.Pool(), mgr.Cert), comps); err != nil {
			return err
		}
	}
	// A dry run serves nothing: switches have nothing to fetch.
	if opts.ports.FTPEnabled() && !opts.inventory && !opts.DryRun {
		if err := srv.startFTP(ctx, comps); err != nil {
			return err
		}
	}
	if opts.ports.OpenFirewall.Value {
		if err := srv.openFirewall(ctx); err != nil {
			return err
		}
	}
	srv.announce()

	var nodes []orchestrator.Node
	if len(ts) == 0 {
		nodes = []orchestrator.Node{{Name: "localhost", Open: func(ctx context.Context) (agent.Agent, error) {
			return openLocal(runID, opts.plugins())
		}}}
	} else {
		setup := &remoteSetup{
			opts: &opts.nodeOptions, runID: runID, ca: ca, manager: mgr, depotPort: srv.depot.HTTPSPort(),
			password: opts.password(ctx, env), signers: signers, run: rj.run, jr: jr,
			notice: out.notice,
		}
		nodes = setup.nodes(ts)
	}

	stopNotice := context.AfterFunc(ctx, func() {
		out.notice("", "cancelled: nodes finish the component they are installing, skip the rest, and clean up")
	})
	defer stopNotice()
	results := orchestrator.Run(ctx, orchestrator.Options{
		Components:    comps,
		Nodes:         nodes,
		InventoryOnly: opts.inventory && opts.Baseline == "",
		DryRun:        opts.DryRun || opts.inventory,
		Downgrade:     opts.Downgrade,
		Rewrite:       opts.Rewrite,
		Parallel:      opts.Parallel,
		Emit:          out.event,
	})
	out.results = results
	out.summary(results, opts.inventory)
	jerr := rj.finish(results)
	if jerr != nil {
		out.notice("", "journal: "+jerr.Error()+"; `fleetup cleanup --target NODE --run "+runID+"` removes what the run left")
	}
	failed := 0
	cancelled := false
	for _, r := range results {
		switch {
		case r.State == fleetup.StateCancelled:
			cancelled = true
		case r.State == fleetup.StateFailed || r.CleanupError != "":
			failed++
		}
	}
	if cancelled || ctx.Err() != nil {
		return errCancelled
	}
	if failed > 0 {
		return &nodesError{failed: failed, total: len(results)}
	}
	if jerr != nil {
		return fmt.Errorf("journal %s could not record the run's end: %w", stateDir, jerr)
	}
	return nil
}

// runJournal ends a run's journal once, with each node's clean-up.
type runJournal struct {
	run  *runstate.Run
	done bool
}

// finish records, for every node that had an engine, whether its clean-up
// was confirmed (cleaned: the node leaves the journal) or not
// (cleanup-failed: it stays for `fleetup cleanup`), then ends the run. A
// node never reached keeps whatever was recorded (placed, when anything
// was). It does nothing on a nil runJournal (no remote nodes) or after
// the first call. Every error is returned, joined.
func (j *runJournal) finish(results []orchestrator.NodeResult) error {
	if j == nil || j.done {
		return nil
	}
	j.done = true
	var errs []error
	for _, r := range results {
		var state string
		switch {
		case r.CleanupError != "":
			state = runstate.StateCleanupFailed
		case r.Cleanup != nil:
			state = runstate.StateCleaned
		default:
			continue
		}
		if err := j.run.SetState(r.Node, state); err != nil {
			errs = append(errs, fmt.Errorf("node %s (%s): %w", r.Node, state, err))
		}
	}
	if err := j.run.End(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reporter prints what happens: JSON lines, or short human lines and a
// summary table.
type reporter struct {
	mu      sync.Mutex
	w       io.Writer
	json    bool
	results []orchestrator.NodeResult
}

func newReporter(w io.Writer, asJSON bool) *reporter { return &reporter{w: w, json: asJSON} }

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
	if ev.Phase == "" && ev.Message == "" {
		return
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
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, "%s  %-24s %s: %s\n", ev.Time.Format("15:04:05"), node, what, ev.Message)
}

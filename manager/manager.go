// Package manager assembles a run on the manager's side: the run's
// certificates, the crash journal, the web server nodes pull from (depot),
// FTP for switches, the manager's own firewall (--open-firewall), an opener
// per node kind, and the orchestrator that drives the nodes. Everything it
// starts is undone when the run ends, also when it was cancelled. Both the
// command line (`fleetup deploy`, `fleetup inventory`) and the service to
// come (`fleetup serve`) run through Run; package cli only parses flags and
// prints.
package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/runstate"
)

// Options configure a run.
type Options struct {
	// RunID names the run (made by NewRunID when empty).
	RunID      string
	Components []*fleetup.Component
	// Nodes are the nodes to work on; none means the local node.
	Nodes []Node
	// Ports are the manager's port settings (http, https, FTP, firewall).
	Ports *config.Config
	// Host, when set, holds the http and https ports for a manager that
	// outlives its runs (`fleetup serve`): the run's web server attaches
	// to it instead of binding Ports' http and https ports itself.
	Host *depot.Host
	// StateDir holds the crash journal and the FTP credentials
	// (runstate.DefaultDir() when empty).
	StateDir string
	// InventoryOnly stops after inventory; DryRun after analysis.
	InventoryOnly bool
	DryRun        bool
	Downgrade     bool
	Rewrite       bool
	// Parallel bounds the nodes worked on at once.
	Parallel int
	// OnFailedDependency says what a component whose requires are not
	// met does to its node (orchestrator.OmitHost when empty).
	OnFailedDependency orchestrator.DependencyPolicy
	// Canary, MaxFailures, HealthCommand and HealthTimeout shape a
	// deploy's waves (see orchestrator.Options).
	Canary        int
	MaxFailures   *orchestrator.FailureLimit
	HealthCommand string
	HealthTimeout time.Duration
	// Reboot says whether and how nodes are rebooted after their deploy
	// (orchestrator.RebootOptions); nodes whose opener is a Rebooter
	// are, the others (BMCs) are left as they are.
	Reboot orchestrator.RebootOptions
	// FwupdPlugins are the fwupd plugins the local node loads (remote
	// nodes get theirs from their opener).
	FwupdPlugins []string
	// Emit receives every event: the nodes' and the manager's own notices
	// (Node ""). It is called from many goroutines at once.
	Emit func(fleetup.Event)
	// Started is called once the manager's servers listen, before any
	// node is reached.
	Started func(Listening)
	// NodeEnded, when set, is called with each node's result as the node
	// ends (its clean-up included), from the node's goroutine.
	NodeEnded func(orchestrator.NodeResult)

	// History, when set, are the options of a deploy as the run history
	// records them (resume.go): the run and each node's outcome are
	// recorded in the state directory. Nil: not recorded (an inventory).
	History *runstate.RunOptions
	// Resume, when set, is the record of the run this one resumes
	// (LoadResume): the nodes it ended complete or reboot-needed are not
	// worked on again, and their results are its own, with FromRun.
	Resume *runstate.RunRecord
}

// Node is one node of a run and how to reach it.
type Node struct {
	// Name is the node as the user named it.
	Name string
	// Server groups the addresses of one server (see
	// orchestrator.Node.Server): they are worked on in the order of
	// Options.Nodes, which should put the BMC first (HP SUM's order of
	// associated nodes). An opener that implements CancelGrace() gives
	// its node that long to finish after a cancel.
	Server string
	Opener Opener
	// RebootPending is set by a resume for a node whose earlier run
	// installed what needs a reboot and did not finish the reboot.
	RebootPending string
}

// An Opener reaches one kind of node and returns its agent (for a Linux
// node: SSH, the engine placed and started).
type Opener interface {
	Open(ctx context.Context, name string, run *Env) (agent.Agent, error)
}

// Env is what an opener gets from the run.
type Env struct {
	RunID string
	// CA is the run's certificate authority; Manager the manager's
	// identity as a client of the engines.
	CA      *pki.CA
	Manager *pki.Leaf
	// DepotPort is the manager's HTTPS port nodes pull from.
	DepotPort int
	depot     *depot.Depot
	journal   *runstate.Journal
	run       *runstate.Run
	emit      func(fleetup.Event)
}

// Placed returns the callback that journals what a node has placed.
func (e *Env) Placed(node string) func(dir string, pid, port int) error {
	return func(dir string, pid, port int) error {
		return e.run.Record(runstate.NodeRecord{Node: node, State: runstate.StatePlaced, EngineDir: dir, EnginePID: pid, EnginePort: port, FirewallTag: "fleetup:" + e.RunID})
	}
}

// Removed returns the callback that tells the journal a node whose start
// failed has nothing of the run left on it.
func (e *Env) Removed(node string) func() error {
	return func() error { return e.run.SetState(node, runstate.StateCleaned) }
}

// SweepRuns are the earlier runs the journal says left something on node.
// An unreadable journal file only means less to sweep; Run reported it
// when the run began.
func (e *Env) SweepRuns(node string) []string {
	recs, _ := e.journal.ForNode(node)
	var out []string
	for _, r := range recs {
		if r.RunID != e.RunID {
			out = append(out, r.RunID)
		}
	}
	return out
}

// Notice tells the user something about node.
func (e *Env) Notice(node, msg string) {
	e.emit(fleetup.Event{Time: time.Now(), Node: node, Message: msg})
}

// Result is the outcome of a run.
type Result struct {
	RunID string
	Nodes []orchestrator.NodeResult
	// Journal says what the journal could not record at the run's end
	// (the run then needs `fleetup cleanup`); nil when all went in.
	Journal error
	// History says what the run history could not record (a resume of
	// the run then knows less); nil when all went in.
	History error
}

// ConfigError is a run that did not start because of its settings (a port
// the user chose is taken, the state directory cannot be written,
// --open-firewall without root); no node was touched.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configErrorf(format string, args ...any) error {
	return &ConfigError{fmt.Errorf(format, args...)}
}

// Run works on every node of opts and returns when each has ended, its
// clean-up included. An error means the run did not start (a
// *ConfigError for its settings): nothing was left anywhere.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.RunID == "" {
		opts.RunID = NewRunID()
	}
	if opts.Ports == nil {
		return nil, errors.New("manager: no port configuration")
	}
	stateDir := opts.StateDir
	if stateDir == "" {
		stateDir = runstate.DefaultDir()
	}
	emit := func(ev fleetup.Event) {
		if opts.Emit != nil {
			opts.Emit(ev)
		}
	}
	notice := func(msg string) { emit(fleetup.Event{Time: time.Now(), Message: msg}) }
	env := &Env{RunID: opts.RunID, emit: emit}

	// The journal comes first: a state directory that cannot be created
	// or written stops the run before anything starts or any node is
	// touched. What the journal fails to record later is reported and
	// makes the run fail.
	var rj *runJournal
	if len(opts.Nodes) > 0 {
		jr, err := runstate.Open(stateDir)
		var run *runstate.Run
		if err == nil {
			run, err = jr.Begin(opts.RunID)
		}
		if err != nil {
			return nil, configErrorf("--state-dir: %w", err)
		}
		env.journal, env.run = jr, run
		rj = &runJournal{run: run}
		defer func() { // early returns: the run ends with nothing placed
			if err := rj.finish(nil); err != nil {
				notice("journal: " + err.Error())
			}
		}()
		if _, err := jr.Pending(); err != nil {
			notice("journal: " + err.Error() + ": what the runs in those files left on nodes is not swept")
		}
	}

	// The manager's side: its web server for remote nodes, FTP for
	// switches, and its own firewall. Each is undone when the run ends,
	// also when it was cancelled.
	srv := &servers{runID: opts.RunID, stateDir: stateDir, ports: opts.Ports, host: opts.Host, notice: notice}
	defer srv.close(ctx)
	if len(opts.Nodes) > 0 {
		ca, err := pki.NewCA(opts.RunID)
		if err != nil {
			return nil, err
		}
		mgr, err := ca.Issue(pki.ManagerName, nil)
		if err != nil {
			return nil, err
		}
		if err := srv.startDepot(ctx, pki.ServerTLS(ca.Pool(), mgr.Cert), opts.Components); err != nil {
			return nil, err
		}
		env.CA, env.Manager, env.DepotPort, env.depot = ca, mgr, srv.depot.HTTPSPort(), srv.depot
	}
	// A dry run serves nothing: switches have nothing to fetch.
	if opts.Ports.FTPEnabled() && !opts.InventoryOnly && !opts.DryRun {
		if err := srv.startFTP(ctx, opts.Components); err != nil {
			return nil, err
		}
	}
	if opts.Ports.OpenFirewall.Value {
		if err := srv.openFirewall(ctx); err != nil {
			return nil, err
		}
	}
	if l := srv.listeningInfo(); l.Any() && opts.Started != nil {
		opts.Started(l)
	}

	// The run history and a resume's untouched nodes (resume.go).
	all := opts.Nodes
	var kept []orchestrator.NodeResult
	opts.Nodes, kept = planResume(opts.Resume, all, emit)
	hist, err := beginHistory(stateDir, opts, all, kept, rj)
	if err != nil {
		return nil, configErrorf("--state-dir: %w", err)
	}
	if len(all) > 0 && len(opts.Nodes) == 0 { // a resume with nothing left to do
		return &Result{RunID: opts.RunID, Nodes: hist.results(nil), Journal: rj.finish(nil), History: hist.end()}, nil
	}

	var nodes []orchestrator.Node
	if len(opts.Nodes) == 0 {
		nodes = []orchestrator.Node{{Name: "localhost", Open: func(ctx context.Context) (agent.Agent, error) {
			return openLocal(opts.RunID, opts.FwupdPlugins)
		}}}
	}
	for _, n := range opts.Nodes {
		var grace time.Duration
		if g, ok := n.Opener.(interface{ CancelGrace() time.Duration }); ok {
			grace = g.CancelGrace()
		}
		node := orchestrator.Node{Name: n.Name, Server: n.Server, CancelGrace: grace, RebootPending: n.RebootPending, Open: func(ctx context.Context) (agent.Agent, error) {
			a, err := n.Opener.Open(ctx, n.Name, env)
			if err != nil {
				return nil, err // never a typed nil as an Agent
			}
			return a, nil
		}}
		if r, ok := n.Opener.(Rebooter); ok { // reboot.go
			node.Reboot = func(ctx context.Context, req orchestrator.RebootRequest) (*orchestrator.RebootResult, error) {
				return r.Reboot(ctx, n.Name, env, req)
			}
		}
		nodes = append(nodes, node)
	}
	stopNotice := context.AfterFunc(ctx, func() {
		notice("cancelled: nodes finish the component they are installing, skip the rest, and clean up")
	})
	defer stopNotice()
	results := orchestrator.Run(ctx, orchestrator.Options{
		Components:         opts.Components,
		Nodes:              nodes,
		InventoryOnly:      opts.InventoryOnly,
		DryRun:             opts.DryRun,
		Downgrade:          opts.Downgrade,
		Rewrite:            opts.Rewrite,
		Parallel:           opts.Parallel,
		Emit:               emit,
		OnFailedDependency: opts.OnFailedDependency,
		Canary:             opts.Canary,
		MaxFailures:        opts.MaxFailures,
		HealthCommand:      opts.HealthCommand,
		HealthTimeout:      opts.HealthTimeout,
		Reboot:             opts.Reboot,
		Ended: func(r orchestrator.NodeResult) {
			hist.ended(r)
			if opts.NodeEnded != nil {
				opts.NodeEnded(r)
			}
		},
	})
	return &Result{RunID: opts.RunID, Nodes: hist.results(results), Journal: rj.finish(results), History: hist.end()}, nil
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
		if err := j.nodeEnded(r); err != nil {
			errs = append(errs, err)
		}
	}
	if err := j.run.End(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// nodeEnded records whether the clean-up of a node that had an engine
// was confirmed, as soon as the node ended (orchestrator.Options.Ended),
// so that a manager killed later leaves it recorded; finish records it
// again at the run's end. Nothing on a nil runJournal.
func (j *runJournal) nodeEnded(r orchestrator.NodeResult) error {
	if j == nil {
		return nil
	}
	var state string
	switch {
	case r.CleanupError != "":
		state = runstate.StateCleanupFailed
	case r.Cleanup != nil:
		state = runstate.StateCleaned
	default:
		return nil
	}
	if err := j.run.SetState(r.Node, state); err != nil {
		return fmt.Errorf("node %s (%s): %w", r.Node, state, err)
	}
	return nil
}

// NewRunID makes a run id: the UTC time and six random hex digits
// ("20261201-235959-a1b2c3"), the shape every engine and sweep checks.
func NewRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

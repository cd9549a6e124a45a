// Package orchestrator drives a run across nodes: for each node, in
// parallel up to a bound, scouting (reach the node, place the engine),
// inventory, analysis (what each component needs), deploy, a health
// command when the run has one, and clean-up, which runs whatever happened
// before, also after a cancel. A deploy can start with a canary wave and
// stop starting nodes after too many failures (waves.go). Node states and
// component phases are reported as events as they happen.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/version"
	"github.com/fleetup/fleetup/wire"
)

// Node is one node of a run: its name and how to reach it.
type Node struct {
	Name string
	// Server groups the addresses of one server (its BMC and its host):
	// the nodes of a server are worked on one after the other, in the
	// order of Options.Nodes, as one of the Parallel, and once one of
	// them failed the later ones are skipped (in a deploy; an inventory
	// or a dry run goes on). Empty: a node of its own.
	Server string
	// Open reaches the node and returns its agent (for a remote node: SSH,
	// engine placed and started).
	Open func(ctx context.Context) (agent.Agent, error)
	// CancelGrace overrides Options.CancelGrace for this node: a BMC's
	// flash and reset, which nothing can interrupt, take longer than an
	// OS installer.
	CancelGrace time.Duration
	// Reboot reboots the node and returns once it answers again with a
	// new boot id, or fails (reboot.go); the run has closed on the node
	// before. Nil: the node cannot be rebooted by fleetup (a BMC).
	Reboot func(ctx context.Context, req RebootRequest) (*RebootResult, error)
	// RebootPending says why the node still needs a reboot an earlier run
	// did not finish (a resumed run's node whose reboot was cancelled or
	// did not come back): with reboots on, it is rebooted even when this
	// run installs nothing on it.
	RebootPending string
}

// Options configure a run.
type Options struct {
	Components []*fleetup.Component
	Nodes      []Node
	// InventoryOnly stops after inventory; DryRun after analysis.
	InventoryOnly bool
	DryRun        bool
	Downgrade     bool
	Rewrite       bool
	// Parallel bounds how many nodes are worked on at once (8 when 0).
	Parallel int
	// Emit receives every event; it is called from many goroutines at once.
	Emit func(fleetup.Event)
	// Ended, when set, is called once for every node as it ends, with
	// its result, before the event of its end state is emitted: a record
	// of outcomes (the run history) holds a node before anyone was told
	// that it ended. It is called from many goroutines at once.
	Ended func(NodeResult)
	// CleanupTimeout bounds each node's clean-up (3 minutes when 0): the
	// engine may first have to finish the component it is installing.
	CleanupTimeout time.Duration
	// CancelGrace bounds how long, after a cancel, a node may take to
	// finish the component it is installing (2 minutes when 0).
	CancelGrace time.Duration
	// OnFailedDependency says what a node does with a component whose
	// requires are not met there (deps.go); OmitHost when empty.
	OnFailedDependency DependencyPolicy

	// Canary, when > 0, makes a deploy start with a canary wave: the
	// first Canary nodes of Nodes (a server's addresses count as nodes
	// and are never split across waves, so the wave may hold a few
	// more). The other nodes start once every canary node ended complete
	// or reboot-needed; otherwise they end skipped, saying which canary
	// node did not and how.
	Canary int
	// MaxFailures, when set, stops a deploy from starting nodes once more
	// nodes failed than it allows: the nodes in progress finish (and
	// clean up), the ones not started end skipped. A failed node is one
	// that ended failed, or whose clean-up was not confirmed (the command
	// line's exit status counts it so); a skipped or cancelled node is
	// not. Nil: no limit.
	MaxFailures *FailureLimit
	// HealthCommand, when set, runs on every node whose deploy installed
	// at least one component and failed none (agent.HealthChecker), before
	// its clean-up; a non-zero exit fails the node in state "health". A
	// node that cannot run commands (a BMC) is not checked, and an event
	// says so.
	HealthCommand string
	// HealthTimeout bounds the health command on each node (5 minutes
	// when 0); one still running then is killed and fails its node.
	HealthTimeout time.Duration
	// Reboot says whether nodes are rebooted after their deploy
	// (reboot.go).
	Reboot RebootOptions
}

// NodeResult is the outcome of one node.
type NodeResult struct {
	Node string `json:"node"`
	// Server is the Node's Server.
	Server string `json:"server,omitempty"`
	// Canary is true for the nodes of a deploy's canary wave
	// (Options.Canary).
	Canary bool              `json:"canary,omitempty"`
	State  fleetup.NodeState `json:"state"`
	Error  string            `json:"error,omitempty"`
	// FailedIn is the phase (scouting, inventory, analysis, deploy,
	// health or cleanup) in which a failed or cancelled node ended.
	FailedIn fleetup.NodeState `json:"failed_in,omitempty"`
	// Health is the outcome of Options.HealthCommand; nil when it was
	// not to run on the node.
	Health *HealthResult `json:"health,omitempty"`
	// Reboot is what the node's reboot did; nil when it was not
	// rebooted.
	Reboot     *RebootResult             `json:"reboot,omitempty"`
	Inventory  *fleetup.Inventory        `json:"inventory,omitempty"`
	Components []fleetup.ComponentResult `json:"components,omitempty"`
	Cleanup    *wire.CleanupReport       `json:"cleanup,omitempty"`
	// CleanupError says what could not be confirmed removed.
	CleanupError string        `json:"cleanup_error,omitempty"`
	Duration     time.Duration `json:"duration_ns"`
	// FailedDependencies are the requirements of components that were not
	// met on the node, with what the run did about each (deps.go).
	FailedDependencies []FailedDependency `json:"failed_dependencies,omitempty"`
	// FromRun is set on a node a resumed run did not work on again: the
	// earlier run whose outcome this is (the manager fills it in; Run
	// never does).
	FromRun string `json:"from_run,omitempty"`
}

// Run works on every node and returns one result per node, in the order of
// opts.Nodes. It returns when every node has ended, cleaned up included.
// Nodes start in the order of opts.Nodes, up to opts.Parallel at once, a
// server's addresses one after the other as one of them; opts.Canary and
// opts.MaxFailures may hold some back (waves.go).
func Run(ctx context.Context, opts Options) []NodeResult {
	results := make([]NodeResult, len(opts.Nodes))
	// A server's addresses make one group, worked on in order.
	var groups [][]int
	byServer := map[string]int{}
	for i, n := range opts.Nodes {
		results[i] = NodeResult{Node: n.Name, Server: n.Server, State: fleetup.StatePending}
		if n.Server == "" {
			groups = append(groups, []int{i})
			continue
		}
		g, ok := byServer[n.Server]
		if !ok {
			g = len(groups)
			byServer[n.Server] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	newScheduler(opts, results).run(ctx, groups)
	return results
}

func emit(opts Options, ev fleetup.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if opts.Emit != nil {
		opts.Emit(ev)
	}
}

// safeRunNode is runNode that turns a panic while working on the node
// (a bug, or a node that got the better of a parser) into that node's
// failure: the other nodes go on, and the agent is still closed.
func safeRunNode(ctx context.Context, opts Options, n Node) (res NodeResult) {
	var ag agent.Agent
	var phase fleetup.NodeState
	start := time.Now()
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		res = NodeResult{Node: n.Name, State: phase}
		err := fmt.Errorf("internal error on this node (a bug in fleetup; the other nodes go on): %v\n%s", p, debug.Stack())
		res = finishSafely(ctx, opts, n, res, ag, err)
		res.Duration = time.Since(start)
	}()
	return runNode(ctx, opts, n, &ag, &phase)
}

// finishSafely is finish that survives a panic in the agent's Close.
func finishSafely(ctx context.Context, opts Options, n Node, res NodeResult, ag agent.Agent, err error) (out NodeResult) {
	defer func() {
		if p := recover(); p != nil {
			res.CleanupError = fmt.Sprintf("clean-up not confirmed: internal error: %v", p)
			out = finish(ctx, opts, n, res, nil, err)
		}
	}()
	return finish(ctx, opts, n, res, ag, err)
}

func runNode(ctx context.Context, opts Options, n Node, agp *agent.Agent, phase *fleetup.NodeState) (res NodeResult) {
	start := time.Now()
	res = NodeResult{Node: n.Name}
	state := func(s fleetup.NodeState, msg string) {
		res.State = s
		*phase = s
		emit(opts, fleetup.Event{Node: n.Name, State: s, Message: msg})
	}
	defer func() { res.Duration = time.Since(start) }()

	state(fleetup.StateScouting, "")
	ag, err := n.Open(ctx)
	if err != nil {
		// An Open that fails has cleaned up after itself; what it returns
		// besides the error (a typed nil, say) is not an agent.
		return finish(ctx, opts, n, res, nil, err)
	}
	*agp = ag
	state(fleetup.StateInventory, "")
	inv, err := ag.Inventory(ctx)
	if err != nil {
		return finish(ctx, opts, n, res, ag, err)
	}
	if inv == nil {
		return finish(ctx, opts, n, res, ag, errors.New("the node answered no inventory"))
	}
	res.Inventory = inv
	if opts.InventoryOnly {
		return finish(ctx, opts, n, res, ag, nil)
	}

	state(fleetup.StateAnalysis, "")
	comps := make([]fleetup.Component, len(opts.Components))
	for i, c := range opts.Components {
		comps[i] = *c
	}
	probes, err := ag.Probe(ctx, comps)
	if err != nil {
		return finish(ctx, opts, n, res, ag, err)
	}
	if len(probes) != len(comps) {
		return finish(ctx, opts, n, res, ag, fmt.Errorf("the node answered %d probes for %d components", len(probes), len(comps)))
	}
	var items []wire.InstallItem
	for i := range comps {
		if probes[i].ComponentID != comps[i].ID {
			return finish(ctx, opts, n, res, ag, fmt.Errorf("the node answered probe %d for %q, not %q", i, probes[i].ComponentID, comps[i].ID))
		}
		act, reason, derr := Decide(&comps[i], probes[i], opts.Downgrade, opts.Rewrite)
		cr := fleetup.ComponentResult{
			ComponentID: comps[i].ID, Version: comps[i].Version, Installed: probes[i].Installed, Action: act, Reason: reason,
		}
		if derr != nil {
			// Analysis that cannot decide fails the component: it is
			// neither installed nor called not applicable.
			cr.Phase, cr.Error = fleetup.PhaseFailed, "analysis: "+derr.Error()
			res.Components = append(res.Components, cr)
			emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateAnalysis, Component: comps[i].ID, Phase: fleetup.PhaseFailed, Message: cr.Error})
			continue
		}
		res.Components = append(res.Components, cr)
		emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateAnalysis, Component: comps[i].ID, Message: string(act) + describeReason(reason)})
		if act.Installs() {
			items = append(items, wire.InstallItem{Component: comps[i], Action: act, Installed: probes[i].Installed})
		}
	}
	// Dependencies (deps.go): the order of the installs, and what a
	// requirement that is not met on this node does to them.
	deps, err := planDependencies(opts, n, comps, probes, inv, items, &res)
	if err != nil {
		return finish(ctx, opts, n, res, ag, err)
	}
	items = deps.items
	// End of dependencies.
	if opts.DryRun || len(items) == 0 {
		err := deps.settle(ctx, &res, nil)
		if err == nil && !opts.DryRun && wantsReboot(ctx, opts, n, res.Components) {
			emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateReboot, Message: n.RebootPending + ": rebooting it now"})
			ag, err = rebootNode(ctx, opts, n, agp, &res, state) // reboot.go
		}
		return finish(ctx, opts, n, res, ag, err)
	}
	if ctx.Err() != nil {
		return finish(ctx, opts, n, res, ag, nil)
	}

	state(fleetup.StateDeploy, fmt.Sprintf("%d component(s) to install", len(items)))
	results, runErr := deps.install(ctx, opts, n, ag) // install, in dependency order (deps.go)
	byID := map[string]fleetup.ComponentResult{}
	for _, r := range results {
		byID[r.ComponentID] = r
	}
	for i, c := range res.Components {
		if r, ok := byID[c.ComponentID]; ok {
			r.Reason = c.Reason
			res.Components[i] = r
		}
	}
	runErr = deps.settle(ctx, &res, runErr) // what the deploy did to dependencies (deps.go)
	if runErr == nil && wantsReboot(ctx, opts, n, res.Components) {
		ag, runErr = rebootNode(ctx, opts, n, agp, &res, state) // reboot.go
	}
	if runErr == nil && wantsHealth(ctx, opts, res.Components) {
		runErr = checkHealth(ctx, opts, ag, &res, state)
	}
	return finish(ctx, opts, n, res, ag, runErr)
}

// install runs the install so that a cancel of ctx lets the node finish the
// component it is on (bounded by CancelGrace) and still report.
func install(ctx context.Context, opts Options, n Node, ag agent.Agent, items []wire.InstallItem) ([]fleetup.ComponentResult, error) {
	grace := opts.CancelGrace
	if n.CancelGrace > 0 {
		grace = n.CancelGrace
	}
	if grace == 0 {
		grace = 2 * time.Minute
	}
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		cctx, ccancel := context.WithTimeout(ictx, 10*time.Second)
		_ = ag.Cancel(cctx)
		ccancel()
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ictx.Done():
		}
	})
	defer stop()
	return ag.Install(ictx, wire.InstallRequest{Items: items, Downgrade: opts.Downgrade, Rewrite: opts.Rewrite}, func(ev fleetup.Event) {
		ev.Node = ag.Name()
		ev.State = fleetup.StateDeploy
		emit(opts, ev)
	})
}

// finish cleans up the node and sets its end state.
func finish(ctx context.Context, opts Options, n Node, res NodeResult, ag agent.Agent, err error) NodeResult {
	phase := res.State
	if err != nil {
		err = inPhase(phase, err)
	}
	if ag != nil {
		res.State = fleetup.StateCleanup
		emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateCleanup})
		timeout := opts.CleanupTimeout
		if timeout == 0 {
			timeout = 3 * time.Minute
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		rep, cerr := ag.Close(cctx)
		cancel()
		if res.Cleanup != nil && rep != nil {
			// The engine closed before a reboot (reboot.go) removed
			// things too: the node's report holds both.
			all := *res.Cleanup
			all.Merge(rep)
			res.Cleanup = &all
		} else if rep != nil || res.Cleanup == nil {
			res.Cleanup = rep
		}
		if cerr != nil {
			res.CleanupError = cerr.Error()
		}
		if rep != nil && !rep.Empty() {
			emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateCleanup, Message: "removed " + agent.Describe(rep)})
		}
	}
	failed, skipped := 0, 0
	reboot := false
	for _, c := range res.Components {
		switch {
		case c.Phase == fleetup.PhaseFailed:
			failed++
		case c.Phase == fleetup.PhaseSkipped && ctx.Err() == nil:
			// Nobody cancelled the run: the node stopped on its own
			// (its engine lost the manager's session, say).
			skipped++
		}
		reboot = reboot || c.RebootNeeded
	}
	switch {
	case err != nil:
		res.FailedIn = phase
		res.Error = err.Error()
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			res.State = fleetup.StateCancelled
		} else {
			res.State = fleetup.StateFailed
		}
	case failed > 0 || skipped > 0:
		res.State = fleetup.StateFailed
		res.FailedIn = phase
		var parts []string
		if failed > 0 {
			parts = append(parts, fmt.Sprintf("%d component(s) failed", failed))
		}
		if skipped > 0 {
			parts = append(parts, fmt.Sprintf("%d component(s) not installed: the node stopped before it got to them, and the run was not cancelled", skipped))
		}
		res.Error = strings.Join(parts, "; ")
	case ctx.Err() != nil:
		res.State = fleetup.StateCancelled
		res.FailedIn = phase
		res.Error = "cancelled"
	case res.CleanupError != "":
		// Everything was done, but what the run put on the node may
		// still be there.
		res.State = fleetup.StateFailed
		res.FailedIn = fleetup.StateCleanup
		res.Error = res.CleanupError
		if !strings.HasPrefix(res.Error, "clean-up") {
			res.Error = "clean-up: " + res.Error
		}
	case reboot && (res.Reboot == nil || !res.Reboot.Back):
		res.State = fleetup.StateRebootNeeded
	default:
		res.State = fleetup.StateComplete
	}
	msg := res.Error
	if res.CleanupError != "" && !strings.Contains(msg, res.CleanupError) {
		if msg != "" {
			msg += "; "
		}
		msg += res.CleanupError
	}
	ended(opts, n, res)
	emit(opts, fleetup.Event{Node: n.Name, State: res.State, Message: msg})
	return res
}

// ended hands the end of node n to Options.Ended.
func ended(opts Options, n Node, res NodeResult) {
	if opts.Ended != nil {
		res.Server = n.Server
		opts.Ended(res)
	}
}

// inPhase names the phase in err, unless err names it already.
func inPhase(phase fleetup.NodeState, err error) error {
	word := map[fleetup.NodeState]string{
		fleetup.StateScouting: "scout", fleetup.StateInventory: "inventory",
		fleetup.StateAnalysis: "analysis", fleetup.StateDeploy: "deploy", fleetup.StateReboot: "reboot", fleetup.StateHealth: "health",
		fleetup.StateCleanup: "clean-up",
	}[phase]
	if word == "" || strings.HasPrefix(err.Error(), word) {
		return err
	}
	return fmt.Errorf("%s: %w", phase, err)
}

func describeReason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// Decide is analysis for one component on one node. An error (versions
// that cannot be compared) is the component's failure, never a decision.
func Decide(c *fleetup.Component, p fleetup.Probe, downgrade, rewrite bool) (fleetup.Action, string, error) {
	if !p.Applicable {
		return fleetup.ActionNotApplicable, p.Reason, nil
	}
	if p.Installed == "" {
		return fleetup.ActionUpdate, "not installed", nil
	}
	cmp, err := version.Compare(c.VersionFormat, c.Version, p.Installed)
	if err != nil {
		return "", "", fmt.Errorf("cannot compare the installed version %q with %q (%s): %w", p.Installed, c.Version, c.VersionFormat, err)
	}
	switch {
	case cmp > 0:
		return fleetup.ActionUpdate, p.Installed + " → " + c.Version, nil
	case cmp == 0 && rewrite:
		return fleetup.ActionRewrite, p.Installed + " installed; rewriting", nil
	case cmp == 0:
		return fleetup.ActionUpToDate, p.Installed + " installed", nil
	case downgrade:
		return fleetup.ActionDowngrade, p.Installed + " → " + c.Version, nil
	default:
		return fleetup.ActionNeedDowngrade, p.Installed + " installed is newer; use --downgrade", nil
	}
}

package orchestrator

// Reboots (--reboot, HP SUM's /r): after a node's deploy, when a component
// it installed needs a reboot (or always, with --reboot-always), the run
// closes on the node (its engine and everything it placed are removed:
// agent.Close), the node is rebooted through Node.Reboot, which returns
// once the node answers again with a new boot id, and then the node is
// opened again (a fresh engine), inventoried, and each installed
// component's version is read back: one that is not the version installed
// (a firmware staged that did not activate) fails, named. The health
// command runs after the reboot, and the node's clean-up (finish) closes
// the second engine: nothing of the run is left on the node.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/version"
)

// RebootOptions say whether and how nodes are rebooted after their deploy.
type RebootOptions struct {
	// Enabled reboots a node after its deploy when a component it
	// installed needs a reboot (--reboot, HP SUM's /r).
	Enabled bool
	// Always reboots a node after every deploy that installed something
	// and failed nothing, needed or not (--reboot-always).
	Always bool
	// Delay is how long the node's logged-in users are warned before the
	// reboot (60s when 0, HP SUM's Linux default).
	Delay time.Duration
	// Message is shown to the node's logged-in users with the warning.
	Message string
	// Timeout bounds the wait for the node to come back (15 minutes
	// when 0); a node not back by then fails in state reboot.
	Timeout time.Duration
}

// DefaultRebootDelay is HP SUM's /reboot_delay default on Linux;
// MinRebootDelay and MaxRebootDelay its bounds.
const (
	DefaultRebootDelay   = 60 * time.Second
	MinRebootDelay       = 15 * time.Second
	MaxRebootDelay       = 3600 * time.Second
	DefaultRebootTimeout = 15 * time.Minute
)

// rebootSlack is what rebootNode allows a node's Reboot beyond its delay
// and timeout (the connection before, the warning) before it gives up on
// it; tests shorten it.
var rebootSlack = 2 * time.Minute

// RebootRequest is what a node's Reboot is asked to do.
type RebootRequest struct {
	// Delay between the warning to logged-in users and the reboot.
	Delay   time.Duration
	Message string
	// Timeout bounds the wait for the node to come back, from the
	// moment the reboot is asked.
	Timeout time.Duration
	// Notice reports a step (warned, rebooting, back).
	Notice func(msg string)
}

// RebootResult is what a node's reboot did.
type RebootResult struct {
	// BootIDBefore and BootIDAfter are the node's boot ids
	// (/proc/sys/kernel/random/boot_id on Linux) before and after.
	BootIDBefore string `json:"boot_id_before,omitempty"`
	BootIDAfter  string `json:"boot_id_after,omitempty"`
	// Back is true once the node answered with a new boot id.
	Back bool `json:"back"`
	// Duration is from the reboot asked to the node back.
	Duration time.Duration `json:"duration_ns,omitempty"`
}

// ErrNotBack is a node that did not answer with a new boot id within the
// reboot timeout.
var ErrNotBack = errors.New("the node did not come back from its reboot in time")

// wantsReboot reports whether a node whose deploy gave comps is to be
// rebooted: --reboot and a component installed that needs it, or
// --reboot-always; never when a component failed or the run is cancelled.
func wantsReboot(ctx context.Context, opts Options, n Node, comps []fleetup.ComponentResult) bool {
	if !opts.Reboot.Enabled && !opts.Reboot.Always || ctx.Err() != nil {
		return false
	}
	installed, needed := false, false
	for _, c := range comps {
		if c.Phase == fleetup.PhaseFailed || c.Phase == fleetup.PhaseSkipped {
			return false
		}
		if c.Phase == fleetup.PhaseInstalled {
			installed = true
			needed = needed || c.RebootNeeded
		}
	}
	if n.RebootPending != "" && opts.Reboot.Enabled {
		return true // an earlier run's reboot that did not finish
	}
	return installed && (needed || opts.Reboot.Always)
}

// rebootNode closes the node's agent (*agp), reboots the node, opens it
// again and confirms the installed components' versions. It returns the
// agent finish is to close (nil when there is none: the first was closed
// and the node not opened again), and keeps *agp the agent still open, for
// safeRunNode's clean-up after a panic.
// A node without Reboot (a BMC, whose reset is its own reboot; the local
// node, the manager's own machine) is left as it is, and an event says so.
func rebootNode(ctx context.Context, opts Options, n Node, agp *agent.Agent, res *NodeResult, state func(fleetup.NodeState, string)) (agent.Agent, error) {
	ag := *agp
	if n.Reboot == nil {
		emit(opts, fleetup.Event{Node: n.Name, State: res.State, Message: "not rebooted: fleetup does not reboot this kind of node (a BMC, whose reset after a flash of its own firmware is its reboot, or the manager's own machine)"})
		return ag, nil
	}
	ro := opts.Reboot
	if ro.Delay <= 0 {
		ro.Delay = DefaultRebootDelay
	}
	if ro.Timeout <= 0 {
		ro.Timeout = DefaultRebootTimeout
	}
	state(fleetup.StateReboot, "closing the run on the node before its reboot")
	timeout := opts.CleanupTimeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	rep, cerr := ag.Close(cctx)
	cancel()
	*agp = nil
	res.Cleanup = rep
	if rep != nil && !rep.Empty() {
		emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateReboot, Message: "removed " + agent.Describe(rep)})
	}
	if cerr != nil {
		res.CleanupError = cerr.Error()
		return nil, fmt.Errorf("reboot: not rebooted: the run's clean-up before it was not confirmed: %w", cerr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The whole reboot (warning, delay, reboot, the wait for the node) is
	// bounded here too, whatever Node.Reboot does with req.Timeout: a
	// node whose commands hang (a stuck wall, a session that never ends)
	// fails in state reboot instead of holding the run.
	bound := ro.Delay + ro.Timeout + rebootSlack
	rctx, rcancel := context.WithTimeout(ctx, bound)
	rr, err := n.Reboot(rctx, RebootRequest{
		Delay: ro.Delay, Message: ro.Message, Timeout: ro.Timeout,
		Notice: func(msg string) { emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateReboot, Message: msg}) },
	})
	expired := rctx.Err() != nil && ctx.Err() == nil
	rcancel()
	res.Reboot = rr
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return nil, err
		}
		if expired && !errors.Is(err, ErrNotBack) {
			return nil, fmt.Errorf("reboot: %w: the reboot did not end within %s (delay %s, timeout %s; last: %v)", ErrNotBack, bound, ro.Delay, ro.Timeout, err)
		}
		return nil, fmt.Errorf("reboot: %w", err)
	}
	if rr == nil || !rr.Back {
		return nil, fmt.Errorf("reboot: %w", ErrNotBack)
	}
	state(fleetup.StateReboot, fmt.Sprintf("back after %s (boot id %s, was %s): confirming the installed versions", rr.Duration.Round(time.Second), rr.BootIDAfter, rr.BootIDBefore))
	ag2, err := n.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("reboot: open the node again: %w", err)
	}
	*agp = ag2
	if err := confirmVersions(ctx, opts, n, ag2, res); err != nil {
		return ag2, fmt.Errorf("reboot: %w", err)
	}
	return ag2, nil
}

// confirmVersions inventories the node again and probes the components
// installed before the reboot: each must now report the version installed.
// One that does not fails ("staged but not active after the reboot").
func confirmVersions(ctx context.Context, opts Options, n Node, ag agent.Agent, res *NodeResult) error {
	inv, err := ag.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("inventory after the reboot: %w", err)
	}
	if inv != nil {
		res.Inventory = inv
	}
	byID := map[string]*fleetup.Component{}
	for _, c := range opts.Components {
		byID[c.ID] = c
	}
	var comps []fleetup.Component
	var idx []int
	for i, c := range res.Components {
		if c.Phase != fleetup.PhaseInstalled {
			continue
		}
		if bc := byID[c.ComponentID]; bc != nil {
			comps = append(comps, *bc)
			idx = append(idx, i)
		}
	}
	if len(comps) == 0 {
		return nil
	}
	probes, err := ag.Probe(ctx, comps)
	if err != nil {
		return fmt.Errorf("probe after the reboot: %w", err)
	}
	if len(probes) != len(comps) {
		return fmt.Errorf("the node answered %d probes for %d components after the reboot", len(probes), len(comps))
	}
	for k, c := range comps {
		if probes[k].ComponentID != c.ID {
			return fmt.Errorf("the node answered probe %d for %q, not %q, after the reboot", k, probes[k].ComponentID, c.ID)
		}
	}
	for k, c := range comps {
		cr := &res.Components[idx[k]]
		got := probes[k].Installed
		cr.After = got
		same := got == c.Version
		if !same && got != "" {
			cmp, err := version.Compare(c.VersionFormat, c.Version, got)
			same = err == nil && cmp == 0
		}
		if same {
			emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateReboot, Component: c.ID, Phase: fleetup.PhaseInstalled, Message: "version " + got + " confirmed after the reboot"})
			continue
		}
		reports := got
		if reports == "" {
			reports = "nothing installed"
		}
		cr.Phase = fleetup.PhaseFailed
		cr.Error = "staged but not active after the reboot: the node reports " + reports + ", not " + c.Version
		emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateReboot, Component: c.ID, Phase: fleetup.PhaseFailed, Message: cr.Error})
	}
	return nil
}

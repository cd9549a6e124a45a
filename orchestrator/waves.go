package orchestrator

// Rollouts a fleet can live with: a deploy may start with a canary wave
// (Options.Canary), stop starting nodes once too many failed
// (Options.MaxFailures), and check each updated node with a command of the
// operator's (Options.HealthCommand), whose failure counts for both.
//
// Scheduling: nodes start in the order of Options.Nodes, a server's
// addresses (a group) one after the other as one of the Parallel. The
// canary wave is the first groups holding at least Canary nodes; the
// second wave, every other group, starts once the first has ended, and
// only if each canary node ended complete or reboot-needed. Before each
// node starts, the failures so far are held against MaxFailures. Both
// shape a deploy only: an inventory or a dry run changes nothing on a
// node and so works on every node in a single wave, as it goes on after a
// server's BMC failed.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/transport"
)

// FailureLimit is how many of a run's nodes may fail before no new node
// starts (Options.MaxFailures): N nodes, or, when Percent is above 0, that
// percentage of all the run's nodes, rounded down (10% of 25 nodes allows
// 2; 10% of 9 allows none, so the first failure stops the run). The run
// stops starting nodes once more nodes failed than that.
type FailureLimit struct {
	N       int
	Percent float64
}

// ParseFailureLimit parses a failure limit as the command line gives it: a
// number of nodes ("3") or a percentage of the run's nodes ("10%",
// "12.5%"), from 0 to 100. "0" (or "0%") stops at the first failure.
func ParseFailureLimit(s string) (FailureLimit, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		switch {
		case strings.HasPrefix(p, "-"):
			return FailureLimit{}, fmt.Errorf("%q: a percentage of failed nodes cannot be negative", s)
		case !isDecimal(p, true) || err != nil:
			return FailureLimit{}, fmt.Errorf("%q is not a percentage of the run's nodes (like 10%%)", s)
		case f > 100:
			return FailureLimit{}, fmt.Errorf("%q is more than all of the run's nodes (100%%)", s)
		}
		return FailureLimit{Percent: f}, nil
	}
	switch {
	case strings.HasPrefix(s, "-"):
		return FailureLimit{}, fmt.Errorf("%q: a number of failed nodes cannot be negative", s)
	case !isDecimal(s, false):
		return FailureLimit{}, fmt.Errorf("%q is neither a number of nodes (like 3) nor a percentage of the run's nodes (like 10%%)", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return FailureLimit{}, fmt.Errorf("%q is more nodes than a run can have", s)
	}
	return FailureLimit{N: n}, nil
}

// isDecimal reports whether s is digits, with at most one '.' between
// digits when frac: no sign, exponent, space or underscore.
func isDecimal(s string, frac bool) bool {
	digits, dot := 0, -1
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.' && frac && dot < 0:
			dot = i
		default:
			return false
		}
	}
	return digits > 0 && dot != 0 && dot != len(s)-1
}

// String is the limit as ParseFailureLimit reads it.
func (l FailureLimit) String() string {
	if l.Percent > 0 {
		return strconv.FormatFloat(l.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(l.N)
}

// Allowed is how many of total nodes may fail.
func (l FailureLimit) Allowed(total int) int {
	if l.Percent <= 0 {
		return l.N
	}
	// The small addition keeps 29% of 100 from being 28.999…
	return int(math.Floor(l.Percent*float64(total)/100 + 1e-9))
}

// describe is the limit for messages: "3", or "10% (2 of 25 nodes)".
func (l FailureLimit) describe(total int) string {
	if l.Percent <= 0 {
		return l.String()
	}
	return fmt.Sprintf("%s (%d of %d nodes)", l, l.Allowed(total), total)
}

// scheduler starts a run's node groups, in waves and within the failure
// limit, and records each node's end in results.
type scheduler struct {
	opts    Options
	results []NodeResult
	par     int
	// deploy is false for an inventory or a dry run, which Canary and
	// MaxFailures leave alone.
	deploy bool

	mu sync.Mutex
	// pending counts the nodes not yet started, skipped or cancelled.
	pending int
	// failed counts the nodes that ended failed (countsAsFailed).
	failed int
	// stop, once set, is why no further node starts (MaxFailures).
	stop string
}

func newScheduler(opts Options, results []NodeResult) *scheduler {
	par := opts.Parallel
	if par <= 0 {
		par = 8
	}
	return &scheduler{
		opts: opts, results: results, par: par,
		deploy:  !opts.InventoryOnly && !opts.DryRun,
		pending: len(results),
	}
}

// run works on groups (indices into opts.Nodes) and returns when every
// node has ended: the canary wave first, when there is one, then the rest.
func (s *scheduler) run(ctx context.Context, groups [][]int) {
	canary, rest := groups, [][]int(nil)
	if s.deploy && s.opts.Canary > 0 {
		canary, rest = splitCanary(groups, s.opts.Canary)
		s.startCanary(canary, rest)
	}
	s.wave(ctx, canary)
	if len(rest) == 0 {
		return
	}
	// A cancel during the canary wave ends the rest as cancelled: the
	// wave below starts none of them.
	if ctx.Err() == nil {
		if bad := s.firstUnsound(canary); bad != nil {
			why := fmt.Sprintf("canary node %s %s", bad.Node, describeEnd(bad))
			s.notice(fmt.Sprintf("wave 1 (canary): %s; the other %s are not started: the run stops after its canary wave", why, nodes(count(rest))))
			s.skipAll(rest, "not started: "+why+"; the run stops after its canary wave")
			return
		}
		s.notice(fmt.Sprintf("wave 1 (canary): every one of its %s ended complete or reboot-needed; wave 2: the other %s", nodes(count(canary)), nodes(count(rest))))
	}
	s.wave(ctx, rest)
}

// startCanary marks the canary nodes and says what the waves are.
func (s *scheduler) startCanary(canary, rest [][]int) {
	var names []string
	for _, g := range canary {
		for _, i := range g {
			s.results[i].Canary = true
			names = append(names, s.opts.Nodes[i].Name)
		}
	}
	if len(names) > 10 {
		names = append(names[:10], fmt.Sprintf("and %d more", len(names)-10))
	}
	msg := fmt.Sprintf("wave 1 (canary): %s: %s", nodes(count(canary)), strings.Join(names, ", "))
	if len(rest) == 0 {
		msg += fmt.Sprintf("; --canary %d covers the whole run", s.opts.Canary)
	} else {
		msg += fmt.Sprintf("; the other %s start once each of these ended complete or reboot-needed", nodes(count(rest)))
	}
	s.notice(msg)
}

// splitCanary returns the first groups holding at least n nodes, and the
// others. A group is never split.
func splitCanary(groups [][]int, n int) (canary, rest [][]int) {
	got := 0
	for k, g := range groups {
		if got >= n {
			return groups[:k], groups[k:]
		}
		got += len(g)
	}
	return groups, nil
}

// firstUnsound returns the first node of groups, in order, that did not
// end complete or reboot-needed (a failed one before any other, since a
// skipped or cancelled node is the consequence of another's end), or nil.
func (s *scheduler) firstUnsound(groups [][]int) *NodeResult {
	var other *NodeResult
	for _, g := range groups {
		for _, i := range g {
			r := &s.results[i]
			switch {
			case r.State == fleetup.StateComplete || r.State == fleetup.StateRebootNeeded:
			case countsAsFailed(r):
				return r
			case other == nil:
				other = r
			}
		}
	}
	return other
}

// wave starts groups in order, each once one of the Parallel slots is
// free, and returns when all of them have ended. After a cancel, the
// groups not started end cancelled at once.
func (s *scheduler) wave(ctx context.Context, groups [][]int) {
	sem := make(chan struct{}, s.par)
	var wg sync.WaitGroup
	for _, g := range groups {
		slot := false
		select {
		case sem <- struct{}{}:
			slot = true
		case <-ctx.Done():
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if slot {
				defer func() { <-sem }()
			}
			s.group(ctx, g)
		}()
	}
	wg.Wait()
}

// group works on the addresses of one server in order (or on a node of
// its own). Once one of them did not succeed, the later ones are skipped
// in a deploy; once the run stopped starting nodes, they are skipped too.
func (s *scheduler) group(ctx context.Context, g []int) {
	var failed *NodeResult
	for _, i := range g {
		n := s.opts.Nodes[i]
		r := &s.results[i]
		stop := s.claim()
		switch {
		case ctx.Err() != nil:
			r.State = fleetup.StateCancelled
			r.Error = "cancelled before the node was reached"
		case failed != nil && s.deploy:
			r.State = fleetup.StateSkipped
			r.Error = fmt.Sprintf("not worked on: %s, worked on first as an address of the same server, ended %s", failed.Node, failed.State)
			if failed.Error != "" {
				r.Error += ": " + failed.Error
			}
		case stop != "":
			r.State = fleetup.StateSkipped
			r.Error = stop
		default:
			canary := r.Canary
			*r = safeRunNode(ctx, s.opts, n)
			r.Server, r.Canary = n.Server, canary
			s.ended(r)
			if st := r.State; st == fleetup.StateFailed || st == fleetup.StateCancelled || st == fleetup.StateSkipped {
				failed = r
			}
			continue
		}
		ended(s.opts, n, *r)
		emit(s.opts, fleetup.Event{Node: n.Name, State: r.State, Message: r.Error})
	}
}

// skipAll ends every node of groups skipped, saying why.
func (s *scheduler) skipAll(groups [][]int, why string) {
	for _, g := range groups {
		for _, i := range g {
			s.claim()
			s.results[i].State = fleetup.StateSkipped
			s.results[i].Error = why
			ended(s.opts, s.opts.Nodes[i], s.results[i])
			emit(s.opts, fleetup.Event{Node: s.opts.Nodes[i].Name, State: fleetup.StateSkipped, Message: why})
		}
	}
}

// claim takes a node out of the pending ones and returns why it may not
// start, or "".
func (s *scheduler) claim() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	return s.stop
}

// ended counts a node that was worked on against MaxFailures, and stops
// the run from starting nodes once more failed than it allows.
func (s *scheduler) ended(r *NodeResult) {
	if !s.deploy || !countsAsFailed(r) {
		return
	}
	s.mu.Lock()
	s.failed++
	var msg string
	if l := s.opts.MaxFailures; l != nil && s.stop == "" && s.failed > l.Allowed(len(s.results)) {
		why := fmt.Sprintf("%s failed, more than --max-failures %s", nodes(s.failed), l.describe(len(s.results)))
		s.stop = "not started: " + why
		if s.pending > 0 {
			msg = fmt.Sprintf("%s: no new node starts; the nodes in progress finish, the %s not started yet end skipped", why, nodes(s.pending))
		}
	}
	s.mu.Unlock()
	if msg != "" {
		s.notice(msg)
	}
}

// notice is an event of the run (Node empty), not of one node.
func (s *scheduler) notice(msg string) {
	emit(s.opts, fleetup.Event{Message: msg})
}

// countsAsFailed reports whether r counts as a failed node, as the command
// line's exit status counts it: it ended failed, or its clean-up was not
// confirmed. A skipped node, or a cancelled one, does not.
func countsAsFailed(r *NodeResult) bool {
	return r.State == fleetup.StateFailed || r.CleanupError != "" && r.State != fleetup.StateCancelled
}

// describeEnd says how a node that did not succeed ended: "failed in
// deploy: 1 component(s) failed", "was skipped: ...".
func describeEnd(r *NodeResult) string {
	msg := strings.TrimPrefix(r.Error, string(r.FailedIn)+": ")
	if r.FailedIn == fleetup.StateCleanup {
		msg = strings.TrimPrefix(msg, "clean-up: ")
	}
	var how string
	switch {
	case r.State == fleetup.StateFailed && r.FailedIn != "":
		how = "failed in " + string(r.FailedIn)
	case r.State == fleetup.StateSkipped:
		how = "was skipped"
	default:
		how = "ended " + string(r.State)
	}
	if msg == "" {
		return how
	}
	return how + ": " + msg
}

func count(groups [][]int) int {
	n := 0
	for _, g := range groups {
		n += len(g)
	}
	return n
}

// nodes is "1 node" or "n nodes".
func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return strconv.Itoa(n) + " nodes"
}

// HealthResult is the outcome of the health command on one node.
type HealthResult struct {
	// Passed is true when the command exited 0.
	Passed bool `json:"passed"`
	// NotRun says why the command was not run (the node cannot run
	// commands: a BMC); the node is not failed for it.
	NotRun string `json:"not_run,omitempty"`
	// ExitCode is the command's exit status; -1 when it did not exit
	// (killed at its timeout, connection lost).
	ExitCode int `json:"exit_code"`
	// Output is the end of the command's standard output and error.
	Output string `json:"output,omitempty"`
}

// healthLines is how many of the last lines of the health command's
// output a failure's error quotes.
const healthLines = 5

// wantsHealth reports whether the health command is to run on a node
// whose deploy gave comps: the run has one, the deploy installed at least
// one component and failed none (a node that failed in deploy has failed
// already), and nobody cancelled the run.
func wantsHealth(ctx context.Context, opts Options, comps []fleetup.ComponentResult) bool {
	if opts.HealthCommand == "" || opts.InventoryOnly || opts.DryRun || ctx.Err() != nil {
		return false
	}
	installed := false
	for _, c := range comps {
		switch c.Phase {
		case fleetup.PhaseInstalled:
			installed = true
		case fleetup.PhaseFailed, fleetup.PhaseSkipped:
			return false
		}
	}
	return installed
}

// checkHealth runs opts.HealthCommand on the node of ag, in state
// "health", records the outcome in res.Health and returns the node's
// failure: a non-zero exit, a timeout, or a node that could not be asked.
// A node whose agent runs no commands is not failed; an event says so.
func checkHealth(ctx context.Context, opts Options, ag agent.Agent, res *NodeResult, state func(fleetup.NodeState, string)) error {
	hc, ok := ag.(agent.HealthChecker)
	if !ok {
		return healthNotRun(res, state, nil)
	}
	timeout := opts.HealthTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	state(fleetup.StateHealth, fmt.Sprintf("running the health command (at most %s)", timeout))
	hctx, cancel := context.WithTimeout(ctx, timeout)
	out, err := hc.Health(hctx, opts.HealthCommand)
	expired := hctx.Err() != nil && ctx.Err() == nil
	cancel()
	if errors.Is(err, errors.ErrUnsupported) {
		return healthNotRun(res, state, err)
	}
	h := &HealthResult{Passed: err == nil, ExitCode: -1, Output: out}
	res.Health = h
	var ee *transport.ExitError
	switch {
	case err == nil:
		h.ExitCode = 0
		emit(opts, fleetup.Event{Node: res.Node, State: fleetup.StateHealth, Message: "passed"})
		return nil
	case errors.As(err, &ee):
		h.ExitCode = ee.ExitCode
		err = fmt.Errorf("the health command exited with status %d%s", ee.ExitCode, lastLines(out))
	case ctx.Err() != nil:
		// The run was cancelled: the node ends cancelled, not failed.
		err = fmt.Errorf("the health command was stopped: %w", err)
	case expired:
		err = fmt.Errorf("the health command did not finish within %s and was stopped%s", timeout, lastLines(out))
	default:
		err = fmt.Errorf("the health command could not run: %w", err)
	}
	emit(opts, fleetup.Event{Node: res.Node, State: fleetup.StateHealth, Message: "failed: " + err.Error()})
	return err
}

// healthNotRun records that the node cannot run the health command (why,
// when its agent said so) and says it in an event; the node goes on.
func healthNotRun(res *NodeResult, state func(fleetup.NodeState, string), why error) error {
	msg := "the health command is not run: this node cannot run commands"
	switch {
	case res.Inventory != nil && res.Inventory.BMC != nil:
		msg = "the health command is not run: a BMC node cannot run commands"
	case why != nil:
		msg += " (" + why.Error() + ")"
	}
	res.Health = &HealthResult{NotRun: msg, ExitCode: -1}
	state(fleetup.StateHealth, msg)
	return nil
}

// lastLines is "; its last lines: a | b" for the end of output, or "".
func lastLines(output string) string {
	var lines []string
	for _, l := range strings.Split(output, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "; it printed nothing"
	}
	if len(lines) > healthLines {
		lines = lines[len(lines)-healthLines:]
	}
	return "; its last lines: " + strings.Join(lines, " | ")
}

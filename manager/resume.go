package manager

// The run history and resumes (`fleetup deploy --resume RUN`). Every
// deploy run on remote nodes is recorded in the state directory's run
// history (runstate.History): its options (Options.History), then each
// node's outcome as it ends, before the event of its end is emitted, so
// that a manager killed at any moment leaves every node that ended
// recorded. A resume (Options.Resume, the earlier run's record) is a new
// run, with a run id of its own and "resumes" naming the earlier one: the
// nodes the earlier run ended complete or reboot-needed are not worked on
// again (an event says so for each, and its result is the earlier one,
// FromRun naming the run), the others are worked on with the same
// options. The new run's record takes the untouched nodes' outcomes over,
// so each record holds the whole rollout and a resume of a resume needs no
// other record.

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/runstate"
)

// LoadResume returns the record of run id (or runstate.Latest) from the
// run history in stateDir (runstate.DefaultDir() when empty), for a
// resume. It refuses a run the history does not hold, one whose manager
// still runs it (the journal's liveness rule, runstate.Owner), and a dry
// run, which changed nothing.
func LoadResume(stateDir, id string) (*runstate.RunRecord, error) {
	if stateDir == "" {
		stateDir = runstate.DefaultDir()
	}
	h, err := runstate.OpenHistory(stateDir)
	if err != nil {
		return nil, err
	}
	rec, err := h.Load(id)
	if err != nil {
		return nil, err
	}
	if l := rec.Liveness(); l.Alive {
		return nil, fmt.Errorf("run %s is still running (%s): wait for it to end, or cancel it, before resuming it", rec.RunID, l.Reason)
	}
	if rec.Options.DryRun {
		return nil, fmt.Errorf("run %s was a dry run: it changed nothing, so there is nothing to resume (deploy without --dry-run)", rec.RunID)
	}
	if err := resumedBy(h, rec.RunID); err != nil {
		return nil, err
	}
	return rec, nil
}

// resumedBy refuses a resume of run id while another run that resumes it
// still runs: both would work on the same nodes, two engines installing on
// each at once. (A resume of id that ended does not refuse it: its nodes
// are probed again, and those it completed found up to date.) A record
// that cannot be read is passed over.
func resumedBy(h *runstate.History, id string) error {
	recs, _ := h.List()
	for _, r := range recs {
		if r.Resumes != id {
			continue
		}
		if l := r.Liveness(); l.Alive {
			return fmt.Errorf("run %s is being resumed by run %s, which is still running (%s): wait for it to end, or cancel it, then resume %s", id, r.RunID, l.Reason, r.RunID)
		}
	}
	return nil
}

// ComponentRefs are the components as the run history identifies them.
func ComponentRefs(comps []*fleetup.Component) []runstate.ComponentRef {
	out := make([]runstate.ComponentRef, 0, len(comps))
	for _, c := range comps {
		out = append(out, runstate.ComponentRef{ID: c.ID, Version: c.Version, File: c.File, SHA256: c.SHA256})
	}
	return out
}

// BaselineChanged returns nil when comps are the components rec's run
// had (the same ids, each with the same payload), or an error naming
// every component that is new, gone or changed.
func BaselineChanged(rec *runstate.RunRecord, comps []*fleetup.Component) error {
	then := map[string]runstate.ComponentRef{}
	for _, c := range rec.Options.Components {
		then[c.ID] = c
	}
	var errs []error
	now := map[string]bool{}
	for _, c := range ComponentRefs(comps) {
		now[c.ID] = true
		old, ok := then[c.ID]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("component %s (%s) is new", c.ID, c.File))
		case old.SHA256 != c.SHA256:
			errs = append(errs, fmt.Errorf("component %s changed: %s %s (sha256 %.12s…), was %s %s (sha256 %.12s…)", c.ID, c.File, c.Version, c.SHA256, old.File, old.Version, old.SHA256))
		}
	}
	var gone []string
	for id := range then {
		if !now[id] {
			gone = append(gone, id)
		}
	}
	sort.Strings(gone)
	for _, id := range gone {
		errs = append(errs, fmt.Errorf("component %s (%s) is gone", id, then[id].File))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("baseline %s changed since run %s, so the resumed run would not do what it did: %w", rec.Options.Baseline, rec.RunID, errors.Join(errs...))
}

// planResume splits nodes for a resume of rec: those to work on, and the
// results of those the earlier run ended complete or reboot-needed. It
// says, for every node, what the earlier run did. Without rec every node
// is worked on.
func planResume(rec *runstate.RunRecord, nodes []Node, emit func(fleetup.Event)) (work []Node, kept []orchestrator.NodeResult) {
	if rec == nil {
		return nodes, nil
	}
	now := time.Now()
	for _, n := range nodes {
		o, ended := rec.Outcome(n.Name)
		from := rec.RunID
		if o.FromRun != "" {
			from = o.FromRun
		}
		when := o.Time.Local().Format(time.RFC3339)
		switch {
		case ended && o.Done():
			kept = append(kept, keptResult(n, o, from))
			emit(fleetup.Event{Time: now, Node: n.Name, State: fleetup.NodeState(o.State),
				Message: fmt.Sprintf("%s in run %s at %s: not touched again", o.State, from, when)})
			continue
		case ended:
			how := o.State
			if o.FailedIn != "" {
				how += " in " + o.FailedIn
			}
			why := ""
			if o.Error != "" {
				why = " (" + o.Error + ")"
			}
			emit(fleetup.Event{Time: now, Node: n.Name, Message: fmt.Sprintf("%s in run %s at %s%s: worked on again", how, from, when, why)})
			if p := rebootPending(o, from); p != "" {
				n.RebootPending = p
				emit(fleetup.Event{Time: now, Node: n.Name, Message: p + ": it is rebooted if this run reboots nodes (--reboot)"})
			}
		default:
			emit(fleetup.Event{Time: now, Node: n.Name, Message: fmt.Sprintf("had not ended when run %s stopped: worked on again", rec.RunID)})
		}
		work = append(work, n)
	}
	emit(fleetup.Event{Time: now, Message: fmt.Sprintf("resuming run %s (begun %s): %d of its %d node(s) ended complete or reboot-needed and are not touched again; %d to work on",
		rec.RunID, rec.Started.Local().Format(time.RFC3339), len(kept), len(nodes), len(work))})
	return work, kept
}

// rebootPending says why a node the earlier run did not end well still
// needs a reboot: it installed components that need one (and the node's
// reboot, if any, did not finish); "" when none.
func rebootPending(o runstate.NodeOutcome, from string) string {
	var ids []string
	for _, c := range o.Components {
		if c.RebootNeeded && c.Phase == string(fleetup.PhaseInstalled) {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 || o.FailedIn == string(fleetup.StateHealth) {
		return "" // nothing to reboot for, or the health check came after the reboot
	}
	return fmt.Sprintf("run %s installed %s, which need(s) a reboot, and the node was not rebooted", from, strings.Join(ids, ", "))
}

// keptResult is the result, in a resumed run, of a node an earlier run
// ended.
func keptResult(n Node, o runstate.NodeOutcome, from string) orchestrator.NodeResult {
	r := orchestrator.NodeResult{
		Node: n.Name, Server: n.Server, State: fleetup.NodeState(o.State),
		FailedIn: fleetup.NodeState(o.FailedIn), Error: o.Error, FromRun: from,
	}
	for _, c := range o.Components {
		r.Components = append(r.Components, fleetup.ComponentResult{
			ComponentID: c.ID, Version: c.Version, Action: fleetup.Action(c.Action), Phase: fleetup.Phase(c.Phase),
			Installed: c.Installed, After: c.After, RebootNeeded: c.RebootNeeded, Error: c.Error,
		})
	}
	return r
}

// outcome is how the run history records r.
func outcome(r orchestrator.NodeResult) runstate.NodeOutcome {
	o := runstate.NodeOutcome{Node: r.Node, State: string(r.State), FailedIn: string(r.FailedIn), Error: r.Error, FromRun: r.FromRun}
	for _, c := range r.Components {
		o.Components = append(o.Components, runstate.ComponentOutcome{
			ID: c.ComponentID, Version: c.Version, Action: string(c.Action), Phase: string(c.Phase),
			Installed: c.Installed, After: c.After, RebootNeeded: c.RebootNeeded, Error: c.Error,
		})
	}
	return o
}

// runHistory is a run's record in the run history, and what it takes to
// end each node: its record there and its clean-up in the journal.
type runHistory struct {
	run     *runstate.HistoryRun // nil: the run is not recorded
	journal *runJournal
	all     []Node
	kept    []orchestrator.NodeResult

	mu   sync.Mutex
	errs []error
}

// beginHistory records the start of the run in the history of stateDir
// when opts asks for it (Options.History, remote nodes), with the
// outcomes kept from the run it resumes.
func beginHistory(stateDir string, opts Options, all []Node, kept []orchestrator.NodeResult, rj *runJournal) (*runHistory, error) {
	rh := &runHistory{journal: rj, all: all, kept: kept}
	if opts.History == nil || len(all) == 0 {
		return rh, nil
	}
	h, err := runstate.OpenHistory(stateDir)
	if err != nil {
		return nil, err
	}
	rec := runstate.RunRecord{RunID: opts.RunID, Options: *opts.History}
	rec.Options.Baseline = filepath.Clean(rec.Options.Baseline)
	if opts.Resume != nil {
		rec.Resumes = opts.Resume.RunID
	}
	for _, r := range kept {
		o := outcome(r)
		if prev, ok := opts.Resume.Outcome(r.Node); ok {
			o.Time = prev.Time
		}
		rec.Nodes = append(rec.Nodes, o)
	}
	if rh.run, err = h.Begin(rec); err != nil {
		return nil, err
	}
	return rh, nil
}

// ended records the end of a node (orchestrator.Options.Ended): its
// clean-up in the journal, its outcome in the history.
func (rh *runHistory) ended(r orchestrator.NodeResult) {
	// What the journal refuses now, finish records again at the run's
	// end, and reports.
	_ = rh.journal.nodeEnded(r)
	if rh.run == nil {
		return
	}
	if err := rh.run.NodeEnded(outcome(r)); err != nil {
		rh.mu.Lock()
		rh.errs = append(rh.errs, fmt.Errorf("node %s: %w", r.Node, err))
		rh.mu.Unlock()
	}
}

// results are the results of every node of the run, in the order of the
// run's nodes: those worked on (results, in the order of the nodes worked
// on) and those kept from the run resumed.
func (rh *runHistory) results(results []orchestrator.NodeResult) []orchestrator.NodeResult {
	if len(rh.kept) == 0 {
		return results
	}
	by := map[string]orchestrator.NodeResult{}
	for _, r := range append(append([]orchestrator.NodeResult(nil), rh.kept...), results...) {
		by[r.Node] = r
	}
	out := make([]orchestrator.NodeResult, 0, len(rh.all))
	for _, n := range rh.all {
		if r, ok := by[n.Name]; ok {
			out = append(out, r)
		}
	}
	return out
}

// end records the end of the run and returns every error of the
// history's, joined: what it failed to record cannot be resumed from.
func (rh *runHistory) end() error {
	if rh == nil {
		return nil
	}
	rh.mu.Lock()
	defer rh.mu.Unlock()
	if rh.run != nil {
		if err := rh.run.End(); err != nil {
			rh.errs = append(rh.errs, err)
		}
	}
	return errors.Join(rh.errs...)
}

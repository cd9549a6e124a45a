package orchestrator

// Component dependencies, per node: between analysis and deploy, runNode
// asks planDependencies for the order of the installs and for what to do
// with a requirement that is not met; the deploy goes through
// depPlan.install, and depPlan.settle writes what the deploy added to the
// node's result.
//
// A requirement "X >= 2.0" of a component C that this run installs on a
// node is met when
//   - the run installs X on the node at a matching version: C then waits
//     for that install, and needs it to succeed. This holds even when the
//     version already on the node matches: a failed install leaves X in a
//     state nobody checked.
//   - else X, on this node, is installed at a matching version already:
//     the probe's Installed when X is in the baseline, compared in X's
//     version format; when X is not in the baseline, a package of the
//     node's inventory named X (compared as its package manager does).
// Anything else is a failed dependency, handled by the run's
// DependencyPolicy. Requirements are checked on each node by itself: a
// host's requirement on its BMC's firmware is not met by the BMC node.
//
// The deploy: components come after what they require, otherwise in the
// baseline's order (a stable topological order). With nothing that waits
// for another install, or under Force, that is one Install request, as
// without dependencies. Otherwise the ordered list is cut into successive
// Install requests so that no component is in the same request as an
// install it waits for; before each request the manager looks at the
// results of the earlier ones, and a component whose dependency did not
// install is left out of it (omitted, with the reason). Each request goes
// through install, so a cancel lets the node finish the component it is
// on (bounded by the cancel grace) and skips the rest of that request; no
// later request is sent after a cancel, and its components are skipped as
// "cancelled before it started", as the agent would have.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/version"
	"github.com/fleetup/fleetup/wire"
)

// DependencyPolicy says what a run does with a component whose
// requirement is not met on a node: HP SUM's /on_failed_dependency.
type DependencyPolicy string

// The dependency policies. The empty policy is OmitHost.
const (
	// OmitHost installs nothing on the node: it fails in analysis, its
	// error naming every failed dependency (HP SUM's Omit_Host, the
	// default). A dependency that fails during the deploy omits what
	// requires it only: what was installed stays.
	OmitHost DependencyPolicy = "omit-host"
	// OmitComponent leaves out the component, and what requires it,
	// transitively (HP SUM's Omit_Component): its result is skipped,
	// with a reason "omitted: requires ...". The rest is installed, and
	// the node ends failed, naming what was omitted.
	OmitComponent DependencyPolicy = "omit-component"
	// Force installs the component anyway (HP SUM's Force); its result's
	// reason says which dependency was forced.
	Force DependencyPolicy = "force"
)

// ParseDependencyPolicy reads a policy as fleetup spells it ("omit-host",
// "omit-component", "force") or as HP SUM does ("Omit_Host",
// "OmitComponent", "Force"), in any case.
func ParseDependencyPolicy(s string) (DependencyPolicy, error) {
	switch strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(strings.TrimSpace(s))) {
	case "omithost":
		return OmitHost, nil
	case "omitcomponent":
		return OmitComponent, nil
	case "force":
		return Force, nil
	}
	return "", fmt.Errorf("on-failed-dependency %q is not one of omit-host, omit-component, force", s)
}

// FailedDependency is a requirement of a component that was not met on a
// node, and what the run did about it.
type FailedDependency struct {
	// Component is the id of the component that has the requirement.
	Component   string              `json:"component"`
	Requirement fleetup.Requirement `json:"requirement"`
	// Why completes "which ...": "is installed at 1.0 on this node",
	// "failed to install: ...".
	Why string `json:"why"`
	// Action is the policy that was applied: OmitHost (nothing installed
	// on the node), OmitComponent (the component, and what requires it,
	// not installed), Force (installed anyway). A dependency that fails
	// during the deploy is OmitComponent under OmitHost too.
	Action DependencyPolicy `json:"action"`
}

// String is "b requires a >= 2.0, which is installed at 1.0 on this node".
func (f FailedDependency) String() string {
	return f.Component + " requires " + f.Requirement.String() + ", which " + f.Why
}

// need is a requirement that an install of this run meets.
type need struct {
	req fleetup.Requirement
	on  string // the id of the component installed first
}

// depPlan is what planDependencies decided for one node's deploy.
type depPlan struct {
	policy DependencyPolicy
	// items are the components to install, in order.
	items []wire.InstallItem
	// needs are, by component id, the requirements this run's installs
	// meet.
	needs map[string][]need
	// omitted are the components left out for a failed dependency.
	omitted map[string]bool
	// failed are the failed dependencies, analysis and deploy.
	failed []FailedDependency
	// notes are, by component id, what the deploy adds to a component's
	// reason; settle writes them.
	notes map[string]string
}

// resolve is the policy a run applies: OmitHost for the empty one.
func (p DependencyPolicy) resolve() (DependencyPolicy, error) {
	switch p {
	case "":
		return OmitHost, nil
	case OmitHost, OmitComponent, Force:
		return p, nil
	}
	return "", fmt.Errorf("on-failed-dependency %q is not one of omit-host, omit-component, force", p)
}

// planDependencies orders items (the components analysis decided to
// install, in the baseline's order) and checks their requirements on the
// node, applying the run's policy to those not met: it records them in
// res (FailedDependencies, the components' reasons and, for omitted
// ones, their skipped phase) and returns the plan of the deploy. Under
// OmitHost a failed dependency is an error, the node's failure in
// analysis. comps and probes are the baseline and its probes on the node,
// index by index. Without any requirement, the plan is items as they are.
func planDependencies(opts Options, n Node, comps []fleetup.Component, probes []fleetup.Probe, inv *fleetup.Inventory, items []wire.InstallItem, res *NodeResult) (*depPlan, error) {
	policy, err := opts.OnFailedDependency.resolve()
	if err != nil {
		return nil, err
	}
	p := &depPlan{policy: policy, items: items,
		needs: map[string][]need{}, omitted: map[string]bool{}, notes: map[string]string{}}
	requires := false
	for _, it := range items {
		requires = requires || len(it.Component.Requires) > 0
	}
	if !requires {
		return p, nil
	}

	ordered, cyclic := order(items)
	installing := map[string]*fleetup.Component{}
	for i := range ordered {
		c := &ordered[i].Component
		if _, dup := installing[c.ID]; !dup {
			installing[c.ID] = c
		}
	}
	inBaseline := map[string]int{}
	for i := range comps {
		if _, dup := inBaseline[comps[i].ID]; !dup {
			inBaseline[comps[i].ID] = i
		}
	}
	result := map[string]*fleetup.ComponentResult{}
	for i := range res.Components {
		result[res.Components[i].ComponentID] = &res.Components[i]
	}

	// why says why r of c is not met on this node ("" when it is); on is
	// the component this run installs first to meet it.
	why := func(c *fleetup.Component, r fleetup.Requirement) (reason, on string) {
		if t, ok := installing[r.ID]; ok {
			match, err := satisfies(r, t.VersionFormat, t.Version)
			switch {
			case cyclic[c.ID] && cyclic[t.ID]:
				return "is caught in a requires cycle with it", ""
			case err != nil:
				return fmt.Sprintf("this run installs at %s, which does not compare with %s (%s): %v", t.Version, r.Version, t.VersionFormat, err), ""
			case !match:
				return "this run installs at " + t.Version, ""
			case p.omitted[t.ID]:
				return "is omitted: a dependency of its own failed", ""
			}
			return "", t.ID
		}
		if i, ok := inBaseline[r.ID]; ok {
			return installedWhy(r, &comps[i], probes[i], result[r.ID]), ""
		}
		return packageWhy(r, inv), ""
	}

	var hostFailures []string
	for _, it := range ordered {
		c := &it.Component
		var whys []string
		for _, r := range c.Requires {
			reason, on := why(c, r)
			if reason == "" {
				if on != "" {
					p.needs[c.ID] = append(p.needs[c.ID], need{req: r, on: on})
				}
				continue
			}
			fd := FailedDependency{Component: c.ID, Requirement: r, Why: reason, Action: policy}
			p.failed = append(p.failed, fd)
			whys = append(whys, "requires "+r.String()+", which "+reason)
			hostFailures = append(hostFailures, fd.String())
		}
		if len(whys) == 0 {
			continue
		}
		cr := result[c.ID]
		var msg string
		switch policy {
		case OmitHost:
			msg = "host omitted: " + strings.Join(whys, "; ")
			if cr != nil {
				cr.Reason = msg
			}
		case OmitComponent:
			p.omitted[c.ID] = true
			msg = "omitted: " + strings.Join(whys, "; ")
			if cr != nil {
				cr.Phase, cr.Reason = fleetup.PhaseSkipped, msg
			}
		case Force:
			msg = "dependency forced: " + strings.Join(whys, "; ")
			if cr != nil {
				cr.Reason = joinReason(cr.Reason, msg)
			}
		}
		ev := fleetup.Event{Node: n.Name, State: fleetup.StateAnalysis, Component: c.ID, Message: msg}
		if policy == OmitComponent {
			ev.Phase = fleetup.PhaseSkipped
		}
		emit(opts, ev)
	}
	res.FailedDependencies = append([]FailedDependency(nil), p.failed...)
	if policy == OmitHost && len(hostFailures) > 0 {
		return nil, fmt.Errorf("failed dependencies, so nothing is installed on this node (on-failed-dependency omit-host): %s", strings.Join(hostFailures, "; "))
	}
	p.items = nil
	for _, it := range ordered {
		if !p.omitted[it.Component.ID] {
			p.items = append(p.items, it)
		}
	}
	return p, nil
}

// installedWhy says why r is not met by c as the node has it (c is in the
// baseline and this run does not install it), or "" when it is met. cr is
// c's result on the node, for a hint about its action; nil when unknown.
func installedWhy(r fleetup.Requirement, c *fleetup.Component, pr fleetup.Probe, cr *fleetup.ComponentResult) string {
	if pr.Installed == "" {
		if !pr.Applicable && pr.Reason != "" {
			return "is not installed on this node (not applicable: " + pr.Reason + ")"
		}
		return "is not installed on this node"
	}
	ok, err := satisfies(r, c.VersionFormat, pr.Installed)
	switch {
	case err != nil:
		return fmt.Sprintf("is installed at %s on this node, which does not compare with %s (%s): %v", pr.Installed, r.Version, c.VersionFormat, err)
	case ok:
		return ""
	}
	why := "is installed at " + pr.Installed + " on this node"
	if cr != nil && cr.Action == fleetup.ActionNeedDowngrade {
		if ok, _ := satisfies(r, c.VersionFormat, c.Version); ok {
			why += "; the baseline's " + c.Version + " needs --downgrade"
		}
	}
	return why
}

// packageWhy says why r, on an id the baseline does not have, is not met
// by the node's packages, or "" when a package of that name is installed
// at a matching version.
func packageWhy(r fleetup.Requirement, inv *fleetup.Inventory) string {
	var found []string
	if inv != nil {
		for _, pkg := range inv.Packages {
			if pkg.Name != r.ID {
				continue
			}
			if ok, err := satisfies(r, pkg.Manager, pkg.Version); ok && err == nil {
				return ""
			}
			found = append(found, pkg.Version+" ("+pkg.Manager+" package)")
		}
	}
	if len(found) == 0 {
		return "is not in the baseline, and no package of that name is installed on this node"
	}
	return "is not in the baseline, and is installed at " + strings.Join(found, ", ") + " on this node"
}

// satisfies reports whether version v (in format) meets r.
func satisfies(r fleetup.Requirement, format, v string) (bool, error) {
	if r.Op == "" {
		return true, nil
	}
	c, err := version.Compare(format, v, r.Version)
	if err != nil {
		return false, err
	}
	switch r.Op {
	case ">=":
		return c >= 0, nil
	case ">":
		return c > 0, nil
	case "=":
		return c == 0, nil
	case "<=":
		return c <= 0, nil
	case "<":
		return c < 0, nil
	}
	return false, fmt.Errorf("operator %q is not one of >=, >, =, <=, <", r.Op)
}

// order returns items so that each comes after the items it requires,
// otherwise in their order (a stable topological sort). Items caught in a
// requires cycle (in one, or waiting for one), which a loaded baseline
// never has, come last in their order; cyclic holds their ids.
func order(items []wire.InstallItem) (sorted []wire.InstallItem, cyclic map[string]bool) {
	index := map[string]int{}
	for i, it := range items {
		if _, dup := index[it.Component.ID]; !dup {
			index[it.Component.ID] = i
		}
	}
	waits := make([]int, len(items))      // how many items i still waits for
	waitedBy := make([][]int, len(items)) // the items waiting for i
	for i, it := range items {
		seen := map[int]bool{}
		for _, r := range it.Component.Requires {
			j, ok := index[r.ID]
			if !ok || seen[j] {
				continue
			}
			seen[j] = true
			waits[i]++
			waitedBy[j] = append(waitedBy[j], i)
		}
	}
	placed := make([]bool, len(items))
	for {
		next := -1
		for i := range items {
			if !placed[i] && waits[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		placed[next] = true
		sorted = append(sorted, items[next])
		for _, w := range waitedBy[next] {
			waits[w]--
		}
	}
	cyclic = map[string]bool{}
	for i, it := range items {
		if !placed[i] {
			cyclic[it.Component.ID] = true
			sorted = append(sorted, it)
		}
	}
	return sorted, cyclic
}

// install deploys the plan's items through install (the function), in
// one request when nothing waits for another install of this run or the
// policy is Force, else in successive requests (see the top of this
// file). It returns a result per item it got to: one per item, unless the
// agent failed (the error).
func (p *depPlan) install(ctx context.Context, opts Options, n Node, ag agent.Agent) ([]fleetup.ComponentResult, error) {
	waiting := false
	for _, it := range p.items {
		waiting = waiting || len(p.needs[it.Component.ID]) > 0
	}
	if !waiting {
		return install(ctx, opts, n, ag, p.items)
	}
	if p.policy == Force {
		results, err := install(ctx, opts, n, ag, p.items)
		done := map[string]fleetup.ComponentResult{}
		for _, r := range results {
			done[r.ComponentID] = r
		}
		for _, it := range p.items {
			id := it.Component.ID
			if r, ok := done[id]; !ok || r.Phase == fleetup.PhaseSkipped {
				continue // not installed itself: nothing was forced
			}
			if whys := p.unmet(id, done, Force); len(whys) > 0 {
				p.notes[id] = "dependency forced: " + strings.Join(whys, "; ")
			}
		}
		return results, err
	}

	done := map[string]fleetup.ComponentResult{}
	var out []fleetup.ComponentResult
	skip := func(it wire.InstallItem, reason string) fleetup.ComponentResult {
		r := fleetup.ComponentResult{ComponentID: it.Component.ID, Version: it.Component.Version,
			Installed: it.Installed, Action: it.Action, Phase: fleetup.PhaseSkipped, Reason: reason}
		emit(opts, fleetup.Event{Node: n.Name, State: fleetup.StateDeploy, Component: it.Component.ID, Phase: fleetup.PhaseSkipped, Message: reason})
		done[r.ComponentID] = r
		out = append(out, r)
		return r
	}
	rest := p.items
	for len(rest) > 0 {
		if ctx.Err() != nil {
			for _, it := range rest {
				skip(it, "cancelled before it started")
			}
			return out, nil
		}
		// The next request: the items up to the first that waits for
		// one of them, less those whose dependency did not install.
		var batch []wire.InstallItem
		inBatch := map[string]bool{}
		k := 0
		for ; k < len(rest); k++ {
			it := rest[k]
			id := it.Component.ID
			if p.waitsOn(id, inBatch) {
				break
			}
			if whys := p.unmet(id, done, OmitComponent); len(whys) > 0 {
				p.omitted[id] = true
				p.notes[id] = "omitted: " + strings.Join(whys, "; ")
				skip(it, p.notes[id])
				continue
			}
			batch = append(batch, it)
			inBatch[id] = true
		}
		rest = rest[k:]
		if len(batch) == 0 {
			continue
		}
		results, err := install(ctx, opts, n, ag, batch)
		for _, r := range results {
			done[r.ComponentID] = r
		}
		out = append(out, results...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// waitsOn reports whether component id waits for an install in set.
func (p *depPlan) waitsOn(id string, set map[string]bool) bool {
	for _, nd := range p.needs[id] {
		if set[nd.on] {
			return true
		}
	}
	return false
}

// unmet records, with action, the needs of component id whose install in
// done did not succeed, and returns each as "requires X, which ...".
func (p *depPlan) unmet(id string, done map[string]fleetup.ComponentResult, action DependencyPolicy) []string {
	var whys []string
	for _, nd := range p.needs[id] {
		r, ok := done[nd.on]
		var why string
		switch {
		case !ok:
			why = "was not installed: the node gave no result for it"
		case r.Phase == fleetup.PhaseInstalled:
			continue
		case r.Phase == fleetup.PhaseFailed && r.Error != "":
			why = "failed to install: " + r.Error
		case r.Phase == fleetup.PhaseFailed:
			why = "failed to install"
		case p.omitted[nd.on]:
			why = "is omitted: a dependency of its own failed"
		case r.Reason != "":
			why = "was not installed: " + r.Reason
		default:
			why = "was not installed (" + string(r.Phase) + ")"
		}
		p.failed = append(p.failed, FailedDependency{Component: id, Requirement: nd.req, Why: why, Action: action})
		whys = append(whys, "requires "+nd.req.String()+", which "+why)
	}
	return whys
}

// settle writes into res what the deploy added (failed dependencies, the
// reasons of omitted and forced components), after runNode merged the
// install's results, and returns the error the node ends with: runErr,
// or, when components were omitted for a failed dependency (and the run
// went on, uncancelled), an error that says so with the node's other
// failures, which finish would otherwise count without naming the
// omitted ones.
func (p *depPlan) settle(ctx context.Context, res *NodeResult, runErr error) error {
	if p == nil {
		return runErr
	}
	if len(p.failed) > 0 {
		res.FailedDependencies = append([]FailedDependency(nil), p.failed...)
	}
	for i := range res.Components {
		c := &res.Components[i]
		note, ok := p.notes[c.ComponentID]
		switch {
		case !ok:
		case p.omitted[c.ComponentID]:
			c.Phase, c.Reason = fleetup.PhaseSkipped, note
		default:
			c.Reason = joinReason(c.Reason, note)
		}
	}
	if runErr != nil || ctx.Err() != nil || len(p.omitted) == 0 {
		return runErr
	}
	failed, stopped := 0, 0
	var omitted []string
	for _, c := range res.Components {
		switch {
		case c.Phase == fleetup.PhaseFailed:
			failed++
		case c.Phase == fleetup.PhaseSkipped && p.omitted[c.ComponentID]:
			omitted = append(omitted, c.ComponentID)
		case c.Phase == fleetup.PhaseSkipped:
			stopped++
		}
	}
	var parts []string
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d component(s) failed", failed))
	}
	var fds []string
	for _, fd := range p.failed {
		if fd.Action != Force {
			fds = append(fds, fd.String())
		}
	}
	parts = append(parts, fmt.Sprintf("%d component(s) omitted for failed dependencies (%s): %s",
		len(omitted), strings.Join(omitted, ", "), strings.Join(fds, "; ")))
	if stopped > 0 {
		parts = append(parts, fmt.Sprintf("%d component(s) not installed: the node stopped before it got to them, and the run was not cancelled", stopped))
	}
	return errors.New(strings.Join(parts, "; "))
}

// joinReason appends note to a component's reason.
func joinReason(reason, note string) string {
	if reason == "" {
		return note
	}
	return reason + "; " + note
}

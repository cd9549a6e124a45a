package orchestrator

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/wire"
)

// depAgent is a node for the dependency tests: it records each Install
// request, fails the components it is told to, and honours Cancel like
// the engine (the component being installed finishes, the rest of the
// request is skipped, and so is every later request).
type depAgent struct {
	installed map[string]string // component id -> version on the node
	packages  []fleetup.Package
	fail      map[string]string // component id -> install error
	perItem   time.Duration
	// onInstall is called as each component starts installing.
	onInstall func(id string)
	// hang is a component whose install never ends: Install returns only
	// when its context ends.
	hang string

	mu        sync.Mutex
	cancelled bool
	requests  [][]string // the ids of each Install request
	events    []fleetup.Event
}

var _ agent.Agent = (*depAgent)(nil)

func (a *depAgent) Name() string { return "n" }
func (a *depAgent) Inventory(ctx context.Context) (*fleetup.Inventory, error) {
	return &fleetup.Inventory{Hostname: "n", Packages: a.packages}, nil
}
func (a *depAgent) Probe(ctx context.Context, comps []fleetup.Component) ([]fleetup.Probe, error) {
	out := make([]fleetup.Probe, len(comps))
	for i, c := range comps {
		out[i] = fleetup.Probe{ComponentID: c.ID, Applicable: true, Installed: a.installed[c.ID]}
	}
	return out, nil
}
func (a *depAgent) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) ([]fleetup.ComponentResult, error) {
	var ids []string
	for _, it := range req.Items {
		ids = append(ids, it.Component.ID)
	}
	a.mu.Lock()
	a.requests = append(a.requests, ids)
	a.mu.Unlock()
	var res []fleetup.ComponentResult
	for _, it := range req.Items {
		c := it.Component
		r := fleetup.ComponentResult{ComponentID: c.ID, Version: c.Version, Action: it.Action, Installed: it.Installed}
		a.mu.Lock()
		cancelled := a.cancelled
		a.mu.Unlock()
		if cancelled {
			r.Phase, r.Reason = fleetup.PhaseSkipped, "cancelled before it started"
			res = append(res, r)
			continue
		}
		emit(fleetup.Event{Component: c.ID, Phase: fleetup.PhaseInstall})
		if a.onInstall != nil {
			a.onInstall(c.ID)
		}
		if c.ID == a.hang {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		time.Sleep(a.perItem)
		if msg, ok := a.fail[c.ID]; ok {
			r.Phase, r.Error = fleetup.PhaseFailed, msg
		} else {
			r.Phase, r.After = fleetup.PhaseInstalled, c.Version
		}
		res = append(res, r)
	}
	return res, nil
}
func (a *depAgent) Cancel(ctx context.Context) error {
	a.mu.Lock()
	a.cancelled = true
	a.mu.Unlock()
	return nil
}
func (a *depAgent) Close(ctx context.Context) (*wire.CleanupReport, error) {
	return &wire.CleanupReport{}, nil
}

// comp is a dpkg-versioned component with requires.
func comp(id, version string, requires ...fleetup.Requirement) *fleetup.Component {
	return &fleetup.Component{ID: id, Version: version, VersionFormat: "dpkg", Requires: requires}
}

func req(id, op, version string) fleetup.Requirement {
	return fleetup.Requirement{ID: id, Op: op, Version: version}
}

// run deploys comps to a, with the policy, and returns the node's result.
func run(t *testing.T, ctx context.Context, a *depAgent, policy DependencyPolicy, comps []*fleetup.Component, opts ...func(*Options)) NodeResult {
	t.Helper()
	o := Options{
		Components:         comps,
		Nodes:              []Node{{Name: "n", Open: func(context.Context) (agent.Agent, error) { return a, nil }}},
		OnFailedDependency: policy,
		Emit: func(ev fleetup.Event) {
			a.mu.Lock()
			a.events = append(a.events, ev)
			a.mu.Unlock()
		},
	}
	for _, f := range opts {
		f(&o)
	}
	return Run(ctx, o)[0]
}

// phases is each component's phase, by id.
func phases(r NodeResult) map[string]fleetup.Phase {
	out := map[string]fleetup.Phase{}
	for _, c := range r.Components {
		out[c.ComponentID] = c.Phase
	}
	return out
}

func component(t *testing.T, r NodeResult, id string) fleetup.ComponentResult {
	t.Helper()
	for _, c := range r.Components {
		if c.ComponentID == id {
			return c
		}
	}
	t.Fatalf("no result for %s in %+v", id, r.Components)
	return fleetup.ComponentResult{}
}

// Installs come after what they require, otherwise in the baseline's
// order, cut into successive requests where one waits for another; under
// force, in one request. Without requires: one request, the baseline's
// order, as before.
func TestDependencyOrder(t *testing.T) {
	baseline := func() []*fleetup.Component {
		return []*fleetup.Component{
			comp("x", "1.0"),
			comp("c", "1.0", req("b", "", "")),
			comp("b", "1.0", req("a", ">=", "1.0")),
			comp("a", "1.0"),
			comp("d", "1.0"),
		}
	}
	tests := []struct {
		name   string
		policy DependencyPolicy
		comps  []*fleetup.Component
		want   [][]string
	}{
		{"omit-host", "", baseline(), [][]string{{"x", "a"}, {"b"}, {"c", "d"}}},
		{"omit-component", OmitComponent, baseline(), [][]string{{"x", "a"}, {"b"}, {"c", "d"}}},
		{"force", Force, baseline(), [][]string{{"x", "a", "b", "c", "d"}}},
		{"no requires", "", []*fleetup.Component{comp("x", "1.0"), comp("c", "1.0"), comp("b", "1.0")}, [][]string{{"x", "c", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &depAgent{}
			r := run(t, context.Background(), a, tt.policy, tt.comps)
			if r.State != fleetup.StateComplete || r.FailedDependencies != nil {
				t.Errorf("state %s (%s), failed dependencies %+v", r.State, r.Error, r.FailedDependencies)
			}
			if diff := cmp.Diff(tt.want, a.requests); diff != "" {
				t.Errorf("install requests (-want +got):\n%s", diff)
			}
			// The node's components stay in the baseline's order.
			for i, c := range r.Components {
				if c.ComponentID != tt.comps[i].ID || c.Phase != fleetup.PhaseInstalled {
					t.Errorf("component %d: %+v", i, c)
				}
			}
		})
	}
}

// A requirement met on the node as it is: by the installed version of a
// component of the baseline (not installed again), by a package of an id
// the baseline does not have, or by any version for a bare id.
func TestDependencySatisfiedOnTheNode(t *testing.T) {
	a := &depAgent{
		installed: map[string]string{"base": "2.1", "any": "0.1"},
		packages:  []fleetup.Package{{Name: "curl", Version: "7.88.1-10+deb12u5", Manager: "dpkg"}},
	}
	comps := []*fleetup.Component{
		comp("app", "1.0", req("base", ">=", "2.0"), req("curl", ">=", "7.68"), req("any", "", ""), req("base", "<", "3")),
		comp("base", "2.1"),
		comp("any", "0.1"),
	}
	r := run(t, context.Background(), a, "", comps)
	if r.State != fleetup.StateComplete || r.FailedDependencies != nil {
		t.Fatalf("state %s (%s), failed dependencies %+v", r.State, r.Error, r.FailedDependencies)
	}
	if diff := cmp.Diff([][]string{{"app"}}, a.requests); diff != "" {
		t.Errorf("install requests (-want +got):\n%s", diff)
	}
}

// A requirement met by this run: the dependency is installed first, in an
// earlier request, at the version the requirement asks for, even when the
// node has a matching version already.
func TestDependencySatisfiedByThisRun(t *testing.T) {
	a := &depAgent{installed: map[string]string{"base": "1.0", "lib": "2.5"}}
	comps := []*fleetup.Component{
		comp("app", "1.0", req("base", ">=", "2.0"), req("lib", ">=", "2.0")),
		comp("base", "2.0"),
		comp("lib", "3.0"),
	}
	r := run(t, context.Background(), a, "", comps)
	if r.State != fleetup.StateComplete || r.FailedDependencies != nil {
		t.Fatalf("state %s (%s), failed dependencies %+v", r.State, r.Error, r.FailedDependencies)
	}
	if diff := cmp.Diff([][]string{{"base", "lib"}, {"app"}}, a.requests); diff != "" {
		t.Errorf("install requests (-want +got):\n%s", diff)
	}
}

// Requirements not met at analysis, under each policy: omit-host installs
// nothing and fails the node in analysis naming each; omit-component
// leaves out the component and what requires it, and installs the rest;
// force installs everything and says so.
func TestDependencyUnmet(t *testing.T) {
	baseline := func() []*fleetup.Component {
		return []*fleetup.Component{
			comp("app", "1.0", req("base", ">=", "2.0")),
			comp("base", "1.0"),                       // up to date at 1.0
			comp("plugin", "1.0", req("app", "", "")), // met by this run's app, if app goes
			comp("tool", "1.0", req("curl", ">=", "8"), req("newer", "<", "3.0")),
			comp("newer", "3.0"), // this run installs 3.0
			comp("other", "1.0"),
		}
	}
	node := func() *depAgent {
		return &depAgent{installed: map[string]string{"base": "1.0", "newer": "2.0"},
			packages: []fleetup.Package{{Name: "curl", Version: "7.88.1-10", Manager: "dpkg"}}}
	}
	appWhy := "is installed at 1.0 on this node"
	curlWhy := "is not in the baseline, and is installed at 7.88.1-10 (dpkg package) on this node"
	newerWhy := "this run installs at 3.0"

	t.Run("omit-host", func(t *testing.T) {
		a := node()
		r := run(t, context.Background(), a, OmitHost, baseline())
		if r.State != fleetup.StateFailed || r.FailedIn != fleetup.StateAnalysis {
			t.Fatalf("state %s in %s (%s), want failed in analysis", r.State, r.FailedIn, r.Error)
		}
		for _, s := range []string{"analysis: ", "omit-host", "app requires base >= 2.0, which " + appWhy, "tool requires curl >= 8, which " + curlWhy, "tool requires newer < 3.0, which " + newerWhy} {
			if !strings.Contains(r.Error, s) {
				t.Errorf("error %q lacks %q", r.Error, s)
			}
		}
		if len(a.requests) != 0 {
			t.Errorf("installed %v under omit-host", a.requests)
		}
		want := []FailedDependency{
			{Component: "app", Requirement: req("base", ">=", "2.0"), Why: appWhy, Action: OmitHost},
			{Component: "tool", Requirement: req("curl", ">=", "8"), Why: curlWhy, Action: OmitHost},
			{Component: "tool", Requirement: req("newer", "<", "3.0"), Why: newerWhy, Action: OmitHost},
		}
		if diff := cmp.Diff(want, r.FailedDependencies); diff != "" {
			t.Errorf("failed dependencies (-want +got):\n%s", diff)
		}
		if c := component(t, r, "app"); c.Phase != "" || !strings.HasPrefix(c.Reason, "host omitted: requires base >= 2.0") {
			t.Errorf("app: %+v", c)
		}
	})

	t.Run("omit-component", func(t *testing.T) {
		a := node()
		r := run(t, context.Background(), a, OmitComponent, baseline())
		if diff := cmp.Diff([][]string{{"newer", "other"}}, a.requests); diff != "" {
			t.Errorf("install requests (-want +got):\n%s", diff)
		}
		want := map[string]fleetup.Phase{"app": "skipped", "base": "", "plugin": "skipped", "tool": "skipped", "newer": "installed", "other": "installed"}
		if diff := cmp.Diff(want, phases(r)); diff != "" {
			t.Errorf("phases (-want +got):\n%s", diff)
		}
		reasons := map[string]string{
			"app":    "omitted: requires base >= 2.0, which " + appWhy,
			"plugin": "omitted: requires app, which is omitted: a dependency of its own failed",
			"tool":   "omitted: requires curl >= 8, which " + curlWhy + "; requires newer < 3.0, which " + newerWhy,
		}
		for id, reason := range reasons {
			if c := component(t, r, id); c.Reason != reason {
				t.Errorf("%s: reason %q, want %q", id, c.Reason, reason)
			}
		}
		if len(r.FailedDependencies) != 4 {
			t.Errorf("failed dependencies %+v, want 4", r.FailedDependencies)
		}
		for _, fd := range r.FailedDependencies {
			if fd.Action != OmitComponent {
				t.Errorf("%+v: action %s", fd, fd.Action)
			}
		}
		if r.State != fleetup.StateFailed || r.FailedIn != fleetup.StateDeploy ||
			!strings.Contains(r.Error, "3 component(s) omitted for failed dependencies (app, plugin, tool)") ||
			strings.Contains(r.Error, "the node stopped") {
			t.Errorf("state %s in %s: %q", r.State, r.FailedIn, r.Error)
		}
		// The omission is said as it happens, in analysis.
		said := false
		for _, ev := range a.events {
			said = said || ev.Component == "app" && ev.State == fleetup.StateAnalysis && ev.Phase == fleetup.PhaseSkipped && strings.HasPrefix(ev.Message, "omitted: ")
		}
		if !said {
			t.Errorf("no analysis event omitting app: %+v", a.events)
		}
	})

	t.Run("force", func(t *testing.T) {
		a := node()
		r := run(t, context.Background(), a, Force, baseline())
		if r.State != fleetup.StateComplete {
			t.Errorf("state %s (%s), want complete", r.State, r.Error)
		}
		if diff := cmp.Diff([][]string{{"app", "plugin", "newer", "tool", "other"}}, a.requests); diff != "" {
			t.Errorf("install requests (-want +got):\n%s", diff)
		}
		if c := component(t, r, "app"); c.Phase != fleetup.PhaseInstalled || c.Reason != "not installed; dependency forced: requires base >= 2.0, which "+appWhy {
			t.Errorf("app: %+v", c)
		}
		if len(r.FailedDependencies) != 3 {
			t.Errorf("failed dependencies %+v, want 3", r.FailedDependencies)
		}
		for _, fd := range r.FailedDependencies {
			if fd.Action != Force {
				t.Errorf("%+v: action %s", fd, fd.Action)
			}
		}
	})

	t.Run("dry run", func(t *testing.T) {
		a := node()
		r := run(t, context.Background(), a, OmitComponent, baseline(), func(o *Options) { o.DryRun = true })
		if len(a.requests) != 0 || len(r.FailedDependencies) != 4 || phases(r)["app"] != fleetup.PhaseSkipped {
			t.Errorf("dry run: requests %v, %+v", a.requests, r)
		}
		if r.State != fleetup.StateFailed || r.FailedIn != fleetup.StateAnalysis || !strings.Contains(r.Error, "omitted") {
			t.Errorf("dry run: state %s in %s: %q", r.State, r.FailedIn, r.Error)
		}
	})
}

// The version read from the node says why, down to a downgrade that
// would have met the requirement.
func TestDependencyWhy(t *testing.T) {
	a := &depAgent{installed: map[string]string{"base": "3.0"}}
	comps := []*fleetup.Component{
		comp("app", "1.0", req("base", "=", "2.0"), req("absent", "", ""), req("bad", ">=", "x:1")),
		comp("base", "2.0"),
		comp("bad", "1.0"),
	}
	a.installed["bad"] = "1.0"
	r := run(t, context.Background(), a, OmitComponent, comps)
	want := []string{
		"is installed at 3.0 on this node; the baseline's 2.0 needs --downgrade",
		"is not in the baseline, and no package of that name is installed on this node",
		`is installed at 1.0 on this node, which does not compare with x:1 (dpkg)`,
	}
	if len(r.FailedDependencies) != len(want) {
		t.Fatalf("failed dependencies %+v", r.FailedDependencies)
	}
	for i, w := range want {
		if !strings.HasPrefix(r.FailedDependencies[i].Why, w) {
			t.Errorf("why %q, want %q", r.FailedDependencies[i].Why, w)
		}
	}
}

// A dependency whose install fails: what requires it (and, transitively,
// what requires that) is not installed under omit-host and
// omit-component, and installed anyway under force.
func TestDependencyInstallFails(t *testing.T) {
	baseline := func() []*fleetup.Component {
		return []*fleetup.Component{
			comp("base", "2.0"),
			comp("app", "1.0", req("base", ">=", "2.0")),
			comp("plugin", "1.0", req("app", "", "")),
			comp("other", "1.0"),
		}
	}
	for _, policy := range []DependencyPolicy{OmitHost, OmitComponent} {
		t.Run(string(policy), func(t *testing.T) {
			a := &depAgent{fail: map[string]string{"base": "flash failed"}}
			r := run(t, context.Background(), a, policy, baseline())
			if diff := cmp.Diff([][]string{{"base"}, {"other"}}, a.requests); diff != "" {
				t.Errorf("install requests (-want +got):\n%s", diff)
			}
			want := map[string]fleetup.Phase{"base": "failed", "app": "skipped", "plugin": "skipped", "other": "installed"}
			if diff := cmp.Diff(want, phases(r)); diff != "" {
				t.Errorf("phases (-want +got):\n%s", diff)
			}
			if c := component(t, r, "app"); c.Reason != "omitted: requires base >= 2.0, which failed to install: flash failed" {
				t.Errorf("app: reason %q", c.Reason)
			}
			if c := component(t, r, "plugin"); c.Reason != "omitted: requires app, which is omitted: a dependency of its own failed" {
				t.Errorf("plugin: reason %q", c.Reason)
			}
			wantFD := []FailedDependency{
				{Component: "app", Requirement: req("base", ">=", "2.0"), Why: "failed to install: flash failed", Action: OmitComponent},
				{Component: "plugin", Requirement: req("app", "", ""), Why: "is omitted: a dependency of its own failed", Action: OmitComponent},
			}
			if diff := cmp.Diff(wantFD, r.FailedDependencies); diff != "" {
				t.Errorf("failed dependencies (-want +got):\n%s", diff)
			}
			if r.State != fleetup.StateFailed || r.FailedIn != fleetup.StateDeploy ||
				!strings.HasPrefix(r.Error, "deploy: 1 component(s) failed; 2 component(s) omitted for failed dependencies (app, plugin): app requires base >= 2.0, which failed to install: flash failed") {
				t.Errorf("state %s in %s: %q", r.State, r.FailedIn, r.Error)
			}
		})
	}
	t.Run("force", func(t *testing.T) {
		a := &depAgent{fail: map[string]string{"base": "flash failed"}}
		r := run(t, context.Background(), a, Force, baseline())
		if diff := cmp.Diff([][]string{{"base", "app", "plugin", "other"}}, a.requests); diff != "" {
			t.Errorf("install requests (-want +got):\n%s", diff)
		}
		want := map[string]fleetup.Phase{"base": "failed", "app": "installed", "plugin": "installed", "other": "installed"}
		if diff := cmp.Diff(want, phases(r)); diff != "" {
			t.Errorf("phases (-want +got):\n%s", diff)
		}
		if c := component(t, r, "app"); c.Reason != "not installed; dependency forced: requires base >= 2.0, which failed to install: flash failed" {
			t.Errorf("app: reason %q", c.Reason)
		}
		wantFD := []FailedDependency{{Component: "app", Requirement: req("base", ">=", "2.0"), Why: "failed to install: flash failed", Action: Force}}
		if diff := cmp.Diff(wantFD, r.FailedDependencies); diff != "" {
			t.Errorf("failed dependencies (-want +got):\n%s", diff)
		}
		if r.State != fleetup.StateFailed || r.FailedIn != fleetup.StateDeploy || r.Error != "1 component(s) failed" {
			t.Errorf("state %s: %q", r.State, r.Error)
		}
	})
}

// A cancel lets the component being installed finish and skips the rest,
// that request's and every later one's, which is never sent.
func TestDependencyCancel(t *testing.T) {
	for _, at := range []string{"base", "app"} {
		t.Run("during "+at, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a := &depAgent{perItem: 100 * time.Millisecond, onInstall: func(id string) {
				if id == at {
					cancel()
				}
			}}
			r := run(t, ctx, a, OmitComponent, []*fleetup.Component{
				comp("base", "2.0"),
				comp("app", "1.0", req("base", ">=", "2.0")),
				comp("other", "1.0"),
				comp("plugin", "1.0", req("app", "", "")),
			})
			if r.State != fleetup.StateCancelled || r.Error != "cancelled" {
				t.Errorf("state %s: %q, want cancelled", r.State, r.Error)
			}
			want := map[string]fleetup.Phase{"base": "installed", "app": "skipped", "other": "skipped", "plugin": "skipped"}
			wantReq := [][]string{{"base"}}
			if at == "app" {
				want = map[string]fleetup.Phase{"base": "installed", "app": "installed", "other": "skipped", "plugin": "skipped"}
				wantReq = [][]string{{"base"}, {"app", "other"}}
			}
			if diff := cmp.Diff(want, phases(r)); diff != "" {
				t.Errorf("phases (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantReq, a.requests); diff != "" {
				t.Errorf("install requests (-want +got):\n%s", diff)
			}
			if r.FailedDependencies != nil {
				t.Errorf("a cancel made failed dependencies: %+v", r.FailedDependencies)
			}
		})
	}
}

// The cancel grace bounds the request in progress, and no later request
// is sent once it ran out.
func TestDependencyCancelGrace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &depAgent{hang: "base", onInstall: func(string) { cancel() }}
	start := time.Now()
	r := run(t, ctx, a, OmitComponent, []*fleetup.Component{
		comp("base", "2.0"),
		comp("app", "1.0", req("base", ">=", "2.0")),
	}, func(o *Options) { o.CancelGrace = 50 * time.Millisecond })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the run took %s after a cancel with a grace of 50ms", d)
	}
	if r.State != fleetup.StateCancelled {
		t.Errorf("state %s (%s), want cancelled", r.State, r.Error)
	}
	if diff := cmp.Diff([][]string{{"base"}}, a.requests); diff != "" {
		t.Errorf("install requests (-want +got):\n%s", diff)
	}
}

// Components caught in a requires cycle (which Load refuses, but Options
// may hold) are failed dependencies, never an endless wait.
func TestDependencyCycle(t *testing.T) {
	a := &depAgent{}
	r := run(t, context.Background(), a, OmitComponent, []*fleetup.Component{
		comp("p", "1.0", req("q", "", "")),
		comp("q", "1.0", req("p", "", "")),
		comp("self", "1.0", req("self", "", "")),
		comp("other", "1.0"),
	})
	want := map[string]fleetup.Phase{"p": "skipped", "q": "skipped", "self": "skipped", "other": "installed"}
	if diff := cmp.Diff(want, phases(r)); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if c := component(t, r, "self"); c.Reason != "omitted: requires self, which is caught in a requires cycle with it" {
		t.Errorf("self: %q", c.Reason)
	}
}

func TestParseDependencyPolicy(t *testing.T) {
	for in, want := range map[string]DependencyPolicy{
		"omit-host": OmitHost, "Omit_Host": OmitHost, "OMITHOST": OmitHost,
		"omit-component": OmitComponent, "Omit_Component": OmitComponent, "OmitComponent": OmitComponent,
		"force": Force, "Force": Force,
	} {
		if got, err := ParseDependencyPolicy(in); err != nil || got != want {
			t.Errorf("ParseDependencyPolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "omit", "skip"} {
		if _, err := ParseDependencyPolicy(in); err == nil || !strings.Contains(err.Error(), "omit-host, omit-component, force") {
			t.Errorf("ParseDependencyPolicy(%q): %v", in, err)
		}
	}
	// A policy that is none of them fails the node, before any install.
	a := &depAgent{}
	r := run(t, context.Background(), a, "skip", []*fleetup.Component{comp("a", "1.0")})
	if r.State != fleetup.StateFailed || r.FailedIn != fleetup.StateAnalysis || len(a.requests) != 0 {
		t.Errorf("state %s in %s (%s), requests %v", r.State, r.FailedIn, r.Error, a.requests)
	}
}

// The JSON names the failed-dependency report reads.
func TestFailedDependencyJSON(t *testing.T) {
	b, err := json.Marshal(NodeResult{Node: "n", FailedDependencies: []FailedDependency{
		{Component: "app", Requirement: req("base", ">=", "2.0"), Why: "failed to install", Action: OmitComponent},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := `"failed_dependencies":[{"component":"app","requirement":{"id":"base","op":"\u003e=","version":"2.0"},"why":"failed to install","action":"omit-component"}]`
	if !strings.Contains(string(b), want) {
		t.Errorf("JSON %s lacks %s", b, want)
	}
	if b, _ := json.Marshal(NodeResult{Node: "n"}); strings.Contains(string(b), "failed_dependencies") {
		t.Errorf("JSON of a node without failed dependencies: %s", b)
	}
}

package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/baseline"
	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/store"
	"github.com/fleetup/fleetup/target"
	"github.com/fleetup/fleetup/wire"
)

// RunRequest is a run that `fleetup serve` starts for a user of the web UI
// or the API: stored nodes, a stored baseline and the options of `fleetup
// deploy`. Service.Start carries it out.
type RunRequest struct {
	// Kind is store.RunDeploy, store.RunInventory or store.RunReview (a
	// dry run: analysis only, nothing installed).
	Kind string `json:"kind"`
	// BaselineID is the stored baseline of a deploy or a review.
	BaselineID int64 `json:"baseline_id,omitempty"`
	// NodeIDs are stored nodes; Tag adds every node with that tag.
	NodeIDs []int64 `json:"node_ids,omitempty"`
	Tag     string  `json:"tag,omitempty"`

	Downgrade          bool          `json:"downgrade,omitempty"`
	Rewrite            bool          `json:"rewrite,omitempty"`
	Parallel           int           `json:"parallel,omitempty"`             // 0: the default (8)
	OnFailedDependency string        `json:"on_failed_dependency,omitempty"` // "", "omit-host", "omit-component", "force"
	Canary             int           `json:"canary,omitempty"`
	MaxFailures        string        `json:"max_failures,omitempty"` // "3", "10%"; "": no limit
	HealthCommand      string        `json:"health_command,omitempty"`
	HealthTimeout      time.Duration `json:"health_timeout_ns,omitempty"`
	Reboot             bool          `json:"reboot,omitempty"`
	RebootAlways       bool          `json:"reboot_always,omitempty"`
	RebootDelay        time.Duration `json:"reboot_delay_ns,omitempty"`
	RebootMessage      string        `json:"reboot_message,omitempty"`

	// Account is who asked (recorded with the run); Source is
	// store.SourceUI or store.SourceAPI.
	Account string `json:"-"`
	Source  string `json:"-"`
}

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Store *store.DB
	// Host holds the manager's ports; runs attach their depots to it.
	Host  *depot.Host
	Ports *config.Config
	// StateDir holds the journal and the run history.
	StateDir string
	// Reach is the template of how runs reach nodes: the host-key and
	// certificate policy, the SSH keys, the engine's settings. Its
	// secret functions are replaced per node by the node's stored
	// credentials.
	Reach Reach
	// FwupdPlugins are passed to every run (tests).
	FwupdPlugins []string
	// Log receives what the service does outside any run.
	Log *slog.Logger
}

// Service runs the runs of `fleetup serve`: each started from stored
// nodes and a stored baseline, recorded in the store, followed by
// watchers, cancellable, and all cancelled (with their clean-up) by
// Shutdown.
type Service struct {
	opts ServiceOptions
	log  *slog.Logger

	mu       sync.Mutex
	runs     map[string]*serviceRun
	watchers map[string]map[chan struct{}]struct{}
	closed   bool
	wg       sync.WaitGroup
}

type serviceRun struct {
	cancel context.CancelFunc
}

// ErrNotRunning is Cancel's error for a run that is not running here.
var ErrNotRunning = errors.New("run is not running")

// NewService returns a Service.
func NewService(opts ServiceOptions) (*Service, error) {
	if opts.Store == nil || opts.Ports == nil {
		return nil, errors.New("manager: service needs a store and a port configuration")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{opts: opts, log: log, runs: map[string]*serviceRun{}, watchers: map[string]map[chan struct{}]struct{}{}}, nil
}

// RequestError is a RunRequest that cannot be run: a bad field, a node
// or a baseline that does not exist, a baseline with problems.
type RequestError struct{ Err error }

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

func requestErrorf(format string, args ...any) error {
	return &RequestError{fmt.Errorf(format, args...)}
}

// Start checks req, records the run and starts it; it returns the run's
// id once recorded. The run goes on until it ends, is cancelled, or the
// service shuts down.
func (s *Service) Start(ctx context.Context, req RunRequest) (string, error) {
	db := s.opts.Store
	s.mu.Lock()
	host := s.opts.Host
	s.mu.Unlock()
	opts := Options{Ports: s.opts.Ports, Host: host, StateDir: s.opts.StateDir, FwupdPlugins: s.opts.FwupdPlugins}
	switch req.Kind {
	case store.RunDeploy:
	case store.RunReview:
		opts.DryRun = true
	case store.RunInventory:
		opts.DryRun = true
	default:
		return "", requestErrorf("kind %q: must be %s, %s or %s", req.Kind, store.RunDeploy, store.RunReview, store.RunInventory)
	}
	if req.Parallel < 0 || req.Canary < 0 || req.HealthTimeout < 0 || req.RebootDelay < 0 {
		return "", requestErrorf("parallel, canary, health timeout and reboot delay must not be negative")
	}
	opts.Parallel = req.Parallel
	if opts.Parallel == 0 {
		opts.Parallel = 8
	}
	var err error
	opts.OnFailedDependency = orchestrator.OmitHost
	if req.OnFailedDependency != "" {
		if opts.OnFailedDependency, err = orchestrator.ParseDependencyPolicy(req.OnFailedDependency); err != nil {
			return "", requestErrorf("on_failed_dependency: %w", err)
		}
	}
	if req.MaxFailures != "" {
		l, err := orchestrator.ParseFailureLimit(req.MaxFailures)
		if err != nil {
			return "", requestErrorf("max_failures: %w", err)
		}
		opts.MaxFailures = &l
	}
	if req.Kind == store.RunDeploy {
		opts.Downgrade, opts.Rewrite = req.Downgrade, req.Rewrite
		opts.Canary, opts.HealthCommand, opts.HealthTimeout = req.Canary, req.HealthCommand, req.HealthTimeout
		opts.Reboot = orchestrator.RebootOptions{Enabled: req.Reboot, Always: req.RebootAlways, Delay: req.RebootDelay, Message: req.RebootMessage}
		if d := opts.Reboot.Delay; d != 0 && (d < orchestrator.MinRebootDelay || d > orchestrator.MaxRebootDelay) {
			return "", requestErrorf("reboot_delay %v: must be between %v and %v", d, orchestrator.MinRebootDelay, orchestrator.MaxRebootDelay)
		}
	}

	// The baseline, checked again now: it is a directory, which may
	// have changed since it was registered.
	var baseDir string
	if req.Kind != store.RunInventory || req.BaselineID != 0 {
		if req.BaselineID == 0 {
			return "", requestErrorf("baseline_id: a %s needs a baseline", req.Kind)
		}
		b, err := db.Baseline(ctx, req.BaselineID)
		if err != nil {
			return "", &RequestError{fmt.Errorf("baseline_id %d: %w", req.BaselineID, err)}
		}
		loaded, err := baseline.Load(b.Dir)
		if err != nil {
			return "", requestErrorf("baseline %s: %w", b.Name, err)
		}
		if len(loaded.Problems) > 0 {
			return "", requestErrorf("baseline %s has %d problem(s), the first: %s", b.Name, len(loaded.Problems), loaded.Problems[0])
		}
		opts.Components, baseDir = loaded.Components, loaded.Dir
	} else {
		opts.InventoryOnly = true
	}

	nodes, ts, err := s.nodes(ctx, req)
	if err != nil {
		return "", err
	}
	opts.Nodes = nodes
	opts.RunID = NewRunID()
	if req.Kind == store.RunDeploy {
		opts.History = s.history(opts, baseDir, ts)
	}
	raw, _ := json.Marshal(req)
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	self := runstate.Self()
	source := req.Source
	if source == "" {
		source = store.SourceUI
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", errors.New("the manager is shutting down")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.runs[opts.RunID] = &serviceRun{cancel: cancel}
	s.wg.Add(1)
	s.mu.Unlock()
	runID := opts.RunID
	rec, err := NewRecorder(ctx, db, store.Run{
		ID: runID, Kind: req.Kind, Source: source, Account: req.Account, Baseline: baseDir,
		Targets: names, Started: time.Now(), State: store.RunRunning, Options: raw,
		PID: self.PID, ProcStart: self.Start,
	}, func() { s.signal(runID) })
	if err != nil {
		s.finish(runID)
		cancel()
		return "", err
	}
	opts.Emit = rec.Emit
	opts.NodeEnded = rec.NodeEnded
	go func() {
		defer s.finish(runID)
		defer cancel()
		res, err := Run(runCtx, opts)
		state := store.RunEnded
		if runCtx.Err() != nil {
			state = store.RunCancelled
		}
		var results []orchestrator.NodeResult
		if err != nil {
			rec.Emit(fleetup.Event{Time: time.Now(), Message: "the run did not start: " + err.Error()})
		} else {
			results = res.Nodes
			if res.Journal != nil {
				rec.Emit(fleetup.Event{Time: time.Now(), Message: "journal: " + res.Journal.Error() + "; `fleetup cleanup --target NODE` removes what the run left"})
			}
		}
		if err := rec.End(state, results); err != nil {
			s.log.Error("run record", "run", runID, "err", err)
		}
	}()
	return runID, nil
}

// history is a deploy's record in the run history (for --resume).
func (s *Service) history(opts Options, baseDir string, ts []target.Target) *runstate.RunOptions {
	ro := &runstate.RunOptions{
		Baseline:           baseDir,
		Components:         ComponentRefs(opts.Components),
		Downgrade:          opts.Downgrade,
		Rewrite:            opts.Rewrite,
		OnFailedDependency: string(opts.OnFailedDependency),
		Canary:             opts.Canary,
		HealthCommand:      opts.HealthCommand,
		HealthTimeout:      opts.HealthTimeout,
		Parallel:           opts.Parallel,
		FwupdPlugins:       opts.FwupdPlugins,
	}
	if opts.MaxFailures != nil {
		ro.MaxFailures = opts.MaxFailures.String()
	}
	for _, t := range ServerOrder(ts) {
		ro.Targets = append(ro.Targets, runstate.RunTarget{Target: t.String(), Server: t.Server})
	}
	if r := opts.Reboot; r.Enabled || r.Always {
		ro.Reboot = &runstate.RebootRecord{Enabled: r.Enabled, Always: r.Always, Delay: r.Delay, Message: r.Message}
	}
	return ro
}

// nodes resolves req's stored nodes into the run's nodes, each with its
// stored credentials.
func (s *Service) nodes(ctx context.Context, req RunRequest) ([]Node, []target.Target, error) {
	db := s.opts.Store
	var picked []store.Node
	seen := map[int64]bool{}
	for _, id := range req.NodeIDs {
		n, err := db.Node(ctx, id)
		if err != nil {
			return nil, nil, &RequestError{fmt.Errorf("node_ids: node %d: %w", id, err)}
		}
		if !seen[n.ID] {
			seen[n.ID] = true
			picked = append(picked, *n)
		}
	}
	if req.Tag != "" {
		tagged, err := db.Nodes(ctx, req.Tag)
		if err != nil {
			return nil, nil, &RequestError{fmt.Errorf("tag %q: %w", req.Tag, err)}
		}
		if len(tagged) == 0 {
			return nil, nil, requestErrorf("tag %q: no node has it", req.Tag)
		}
		for _, n := range tagged {
			if !seen[n.ID] {
				seen[n.ID] = true
				picked = append(picked, n)
			}
		}
	}
	if len(picked) == 0 {
		return nil, nil, requestErrorf("no nodes: pick at least one node or a tag")
	}
	var ts []target.Target
	cred := map[string]Secret{}    // by target: SSH and sudo
	bmcCred := map[string]Secret{} // by target: a BMC's
	for _, n := range picked {
		// The stored node is the server, one address or several: the
		// results name it.
		server := n.Name
		for _, spec := range n.Targets {
			t, err := target.Parse(spec)
			if err != nil {
				return nil, nil, requestErrorf("node %s: %w", n.Name, err)
			}
			t.Server = server
			if t.Port == 0 {
				t.Port = t.Kind.DefaultPort()
			}
			credID := n.CredentialID
			if t.Kind == target.KindBMC && n.BMCCredentialID != 0 {
				credID = n.BMCCredentialID
			}
			var secret Secret
			if credID != 0 {
				user, pw, err := db.CredentialSecret(ctx, credID)
				if err != nil {
					return nil, nil, requestErrorf("node %s: credential %d: %w", n.Name, credID, err)
				}
				if t.User == "" {
					t.User = user
				}
				secret = func() ([]byte, error) { return append([]byte(nil), pw...), nil }
			}
			if t.User == "" {
				if t.Kind == target.KindBMC || t.Kind == target.KindWindows {
					return nil, nil, requestErrorf("node %s: %s names no user and has no credential", n.Name, spec)
				}
				t.User = "root"
			}
			if t.Kind == target.KindWindows && secret == nil {
				return nil, nil, requestErrorf("node %s: Windows node %s has no credential (SMB needs a password)", n.Name, spec)
			}
			if t.Kind == target.KindBMC {
				if secret == nil {
					return nil, nil, requestErrorf("node %s: BMC %s has no credential", n.Name, spec)
				}
				bmcCred[t.String()] = secret
			} else {
				cred[t.String()] = secret
			}
			ts = append(ts, t)
		}
	}
	reach := s.opts.Reach
	reach.Password = func(t target.Target) Secret { return cred[t.String()] }
	reach.SudoPassword = func(t target.Target) Secret {
		if t.User == "root" {
			return nil
		}
		return cred[t.String()]
	}
	reach.BMCPassword = func(t target.Target) Secret { return bmcCred[t.String()] }
	if reach.FwupdPlugins == nil {
		reach.FwupdPlugins = s.opts.FwupdPlugins
	}
	return reach.Nodes(ts), ts, nil
}

func (s *Service) finish(runID string) {
	s.mu.Lock()
	delete(s.runs, runID)
	s.mu.Unlock()
	s.signal(runID)
	s.wg.Done()
}

// Cancel cancels a running run: its nodes finish the component they are
// installing, skip the rest and clean up.
func (s *Service) Cancel(runID string) error {
	s.mu.Lock()
	r := s.runs[runID]
	s.mu.Unlock()
	if r == nil {
		return fmt.Errorf("run %s: %w", runID, ErrNotRunning)
	}
	r.cancel()
	return nil
}

// Running are the ids of the runs going on.
func (s *Service) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.runs))
	for id := range s.runs {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Watch returns a channel that receives (coalesced, never blocking the
// run) whenever events of runID were recorded or the run ended; stop ends
// the watch.
func (s *Service) Watch(runID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.watchers[runID] == nil {
		s.watchers[runID] = map[chan struct{}]struct{}{}
	}
	s.watchers[runID][ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(s.watchers[runID], ch)
			if len(s.watchers[runID]) == 0 {
				delete(s.watchers, runID)
			}
		})
	}
}

func (s *Service) signal(runID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.watchers[runID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// CheckBaseline checks a baseline directory as `fleetup baseline check`
// does.
func (s *Service) CheckBaseline(ctx context.Context, dir string) ([]store.ComponentSummary, []store.Problem, error) {
	b, err := baseline.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	return BaselineSummary(b)
}

// BaselineSummary is what the store keeps of a checked baseline.
func BaselineSummary(b *baseline.Baseline) ([]store.ComponentSummary, []store.Problem, error) {
	comps := []store.ComponentSummary{}
	for _, c := range b.Components {
		cs := store.ComponentSummary{ID: c.ID, Name: c.Name, Version: c.Version, Kind: string(c.Kind), File: filepath.Base(c.Path), Size: c.Size, SHA256: c.SHA256, Targets: c.Targets}
		for _, r := range c.Requires {
			cs.Requires = append(cs.Requires, strings.TrimSpace(r.ID+" "+r.Op+" "+r.Version))
		}
		comps = append(comps, cs)
	}
	problems := []store.Problem{}
	for _, p := range b.Problems {
		problems = append(problems, store.Problem{File: p.File, Reason: p.Reason})
	}
	return comps, problems, nil
}

// Shutdown cancels every run and waits until each has ended, its clean-up
// included, or ctx ends.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for _, r := range s.runs {
		r.cancel()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("runs still ending: %v: %w", s.Running(), ctx.Err())
	}
}

// SetHost sets the ports' holder before the first run (the web UI the
// host serves needs the service first).
func (s *Service) SetHost(h *depot.Host) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Host = h
}

// Recover deals with what a manager killed in mid-run left: the store's
// runs it was running become interrupted, and the nodes the journal says
// those runs (or any other dead run) left something on are cleaned up, in
// the background, with their stored credentials. It returns the ids of
// the interrupted runs.
func (s *Service) Recover(ctx context.Context) ([]string, error) {
	runs, err := s.opts.Store.MarkInterrupted(ctx, func(pid int, start uint64) bool {
		return runstate.Owner{PID: pid, Start: start}.Check().Alive
	})
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
		_ = s.opts.Store.AddEvents(ctx, r.ID, []fleetup.Event{{Time: time.Now(), Message: "interrupted: the manager running this run was stopped or died; what it left on nodes is cleaned up at the next start"}})
	}
	jr, jerr := runstate.Open(s.opts.StateDir)
	if jerr != nil {
		return ids, errors.Join(err, jerr)
	}
	pending, perr := jr.Pending()
	err = errors.Join(err, perr)
	leftOn := map[string][]string{} // runs by node
	for _, p := range pending {
		if p.Alive {
			continue
		}
		for _, n := range p.Nodes {
			if n.State != runstate.StateCleaned {
				leftOn[n.Node] = append(leftOn[n.Node], p.RunID)
			}
		}
	}
	if len(leftOn) == 0 {
		return ids, err
	}
	s.mu.Lock()
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.sweep(ctx, jr, leftOn)
	}()
	return ids, err
}

// sweep cleans the nodes of leftOn that the store knows.
func (s *Service) sweep(ctx context.Context, jr *runstate.Journal, leftOn map[string][]string) {
	nodes, err := s.opts.Store.Nodes(ctx, "")
	if err != nil {
		s.log.Error("clean-up of interrupted runs: read nodes", "err", err)
		return
	}
	// Every stored node's addresses, resolved as a run would.
	openers := map[string]Opener{}
	for _, n := range nodes {
		mn, _, err := s.nodes(ctx, RunRequest{NodeIDs: []int64{n.ID}})
		if err != nil {
			continue
		}
		for _, m := range mn {
			openers[m.Name] = m.Opener
		}
	}
	for name, runs := range leftOn {
		o, ok := openers[name]
		if !ok {
			s.log.Warn("clean-up of an interrupted run: the node is not in the store; run fleetup cleanup --target", "node", name, "runs", runs)
			continue
		}
		opener, ok := o.(interface {
			Sweep(ctx context.Context, name string, runs []string) (*wire.CleanupReport, error)
		})
		if !ok { // a BMC: nothing is placed on it
			for _, r := range runs {
				_ = jr.MarkCleaned(r, name)
			}
			continue
		}
		rep, err := opener.Sweep(ctx, name, runs)
		if err != nil {
			s.log.Error("clean-up of an interrupted run failed", "node", name, "runs", runs, "err", err)
			continue
		}
		for _, r := range runs {
			if err := jr.MarkCleaned(r, name); err != nil && !errors.Is(err, runstate.ErrUnknownRun) {
				s.log.Error("clean-up: the journal still lists the node", "node", name, "run", r, "err", err)
			}
		}
		s.log.Info("cleaned up after an interrupted run", "node", name, "runs", runs, "removed", agent.Describe(rep))
	}
}

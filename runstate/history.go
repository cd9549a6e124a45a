package runstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// historyVersion is the version of the run record format.
const historyVersion = 1

// HistoryDir is the directory of run records under a state directory.
const HistoryDir = "runs"

// Latest, given to History.Load, names the run begun last.
const Latest = "latest"

// The end states of a NodeOutcome, as the orchestrator names them
// (fleetup.NodeState). Complete and RebootNeeded are done: a resumed run
// does not touch such a node again.
const (
	OutcomeComplete     = "complete"
	OutcomeRebootNeeded = "reboot-needed"
	OutcomeFailed       = "failed"
	OutcomeCancelled    = "cancelled"
	OutcomeSkipped      = "skipped"
)

// ErrRunNotRecorded is returned by History.Load for a run of which the
// history has no record.
var ErrRunNotRecorded = errors.New("no record of the run")

// RunRecord is what the history keeps of one deploy run: enough to repeat
// it (its options, never a password or any other secret: credentials come
// from the command line of whoever resumes it) and how each node ended.
// A node of Targets without an outcome had not ended when the record was
// last written: the manager was killed, or the run is still going.
type RunRecord struct {
	Version int    `json:"version"`
	RunID   string `json:"run_id"`
	// Resumes is the run this one resumed; its record holds the
	// outcomes that this one took over (NodeOutcome.FromRun).
	Resumes string `json:"resumes,omitempty"`
	// PID and ProcStart are the manager's (Owner), for Liveness.
	PID       int       `json:"pid"`
	ProcStart uint64    `json:"proc_start,omitempty"`
	Started   time.Time `json:"started"`
	// Ended is set when the manager finished the run, whatever its
	// outcome.
	Ended   bool          `json:"ended,omitempty"`
	EndedAt time.Time     `json:"ended_at,omitzero"`
	Options RunOptions    `json:"options"`
	Nodes   []NodeOutcome `json:"nodes"`
}

// RunOptions are the options of a run that decide what it does.
type RunOptions struct {
	// Baseline is the baseline directory, absolute, and Components what
	// it held when the run began.
	Baseline   string         `json:"baseline"`
	Components []ComponentRef `json:"components"`
	// Targets are the nodes in the run's order (a server's BMC first).
	Targets            []RunTarget `json:"targets"`
	DryRun             bool        `json:"dry_run,omitempty"`
	Downgrade          bool        `json:"downgrade,omitempty"`
	Rewrite            bool        `json:"rewrite,omitempty"`
	OnFailedDependency string      `json:"on_failed_dependency,omitempty"`
	Canary             int         `json:"canary,omitempty"`
	// MaxFailures is as --max-failures reads it ("3", "10%"); empty:
	// no limit.
	MaxFailures   string        `json:"max_failures,omitempty"`
	HealthCommand string        `json:"health_command,omitempty"`
	HealthTimeout time.Duration `json:"health_timeout_ns,omitempty"`
	Parallel      int           `json:"parallel,omitempty"`
	FwupdPlugins  []string      `json:"fwupd_plugins,omitempty"`
	Tunnel        bool          `json:"tunnel,omitempty"`
	// EnginePort is the engine's port when the user chose one; 0: the
	// default, moved when taken.
	EnginePort int `json:"engine_port,omitempty"`
	// Reboot is set when nodes are rebooted after their deploy.
	Reboot *RebootRecord `json:"reboot,omitempty"`
}

// RebootRecord are a run's reboot options (--reboot, --reboot-always).
type RebootRecord struct {
	Enabled bool          `json:"enabled,omitempty"`
	Always  bool          `json:"always,omitempty"`
	Delay   time.Duration `json:"delay_ns,omitempty"`
	Message string        `json:"message,omitempty"`
	Timeout time.Duration `json:"timeout_ns,omitempty"`
}

// ComponentRef identifies one component of a baseline by its payload.
type ComponentRef struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	File    string `json:"file"`
	SHA256  string `json:"sha256"`
}

// RunTarget is one node as the user named it, completed with its user
// and port ("root@198.18.1.2:22", "bmc://admin@[fd42::2]:443"), and the
// server it is an address of.
type RunTarget struct {
	Target string `json:"target"`
	Server string `json:"server,omitempty"`
}

// NodeOutcome is how one node ended.
type NodeOutcome struct {
	Node  string `json:"node"`
	State string `json:"state"`
	// FailedIn is the phase a failed or cancelled node ended in.
	FailedIn string `json:"failed_in,omitempty"`
	Error    string `json:"error,omitempty"`
	// Time is when the node ended.
	Time time.Time `json:"time"`
	// FromRun is set on the outcome of a node a resumed run did not touch
	// again: the run that ended it so (which may itself be a resume).
	FromRun    string             `json:"from_run,omitempty"`
	Components []ComponentOutcome `json:"components,omitempty"`
}

// ComponentOutcome is what became of one component on a node.
type ComponentOutcome struct {
	ID           string `json:"id"`
	Version      string `json:"version,omitempty"`
	Action       string `json:"action,omitempty"`
	Phase        string `json:"phase,omitempty"`
	Installed    string `json:"installed,omitempty"`
	After        string `json:"after,omitempty"`
	RebootNeeded bool   `json:"reboot_needed,omitempty"`
	Error        string `json:"error,omitempty"`
}

// Done reports whether the node needs nothing more from a resume: it
// ended complete or reboot-needed.
func (o NodeOutcome) Done() bool {
	return o.State == OutcomeComplete || o.State == OutcomeRebootNeeded
}

// Outcome returns the recorded outcome of node, if it ended.
func (rec *RunRecord) Outcome(node string) (NodeOutcome, bool) {
	for _, o := range rec.Nodes {
		if o.Node == node {
			return o, true
		}
	}
	return NodeOutcome{}, false
}

// Liveness says whether the manager of the run still runs it: never once
// the run ended, otherwise as Owner.Check decides.
func (rec *RunRecord) Liveness() Liveness {
	if rec.Ended {
		return Liveness{Reason: "the run ended at " + rec.EndedAt.Format(time.RFC3339)}
	}
	return Owner{PID: rec.PID, Start: rec.ProcStart}.Check()
}

// History is the record of the deploy runs in a state directory, one
// file runs/RUNID.json per run (mode 0600, written atomically like the
// journal's), kept after the run ended: `fleetup deploy --resume` reads
// it. Only the run's own manager writes a run's file, through the
// HistoryRun that Begin returns; a History is safe for concurrent use.
type History struct {
	dir string
	// self is the owner Begin records; tests replace it.
	self func() Owner
}

// OpenHistory opens the history in stateDir, creating its directory
// (mode 0700) when needed. Errors name the directory.
func OpenHistory(stateDir string) (*History, error) {
	dir := filepath.Join(stateDir, HistoryDir)
	if err := mkdir(dir); err != nil {
		return nil, fmt.Errorf("open run history %s: %w", dir, err)
	}
	cleanTemps(dir)
	return &History{dir: dir, self: Self}, nil
}

// Dir returns the history's directory.
func (h *History) Dir() string { return h.dir }

// HistoryRun is the record of a run this process owns.
type HistoryRun struct {
	h   *History
	mu  sync.Mutex
	rec RunRecord
}

// Begin records the start of run rec.RunID, owned by this process, with
// rec's options and the outcomes it took over (a resume's); Version, PID,
// ProcStart and Started are set here. It fails when the history already
// holds the run.
func (h *History) Begin(rec RunRecord) (*HistoryRun, error) {
	if err := ValidRunID(rec.RunID); err != nil {
		return nil, fmt.Errorf("run history: begin: %w", err)
	}
	me := h.self()
	rec.Version, rec.PID, rec.ProcStart = historyVersion, me.PID, me.Start
	rec.Started = time.Now().UTC()
	rec.Ended, rec.EndedAt = false, time.Time{}
	rec.Options.Components = append([]ComponentRef{}, rec.Options.Components...)
	rec.Options.Targets = append([]RunTarget{}, rec.Options.Targets...)
	rec.Nodes = append([]NodeOutcome{}, rec.Nodes...)
	if err := rec.check(); err != nil {
		return nil, fmt.Errorf("run history: begin: %w", err)
	}
	data, err := marshal(&rec)
	if err != nil {
		return nil, fmt.Errorf("run history: encode run %s: %w", rec.RunID, err)
	}
	if err := writeNew(h.path(rec.RunID), data); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("run history: begin run %s: already recorded in %s", rec.RunID, h.dir)
		}
		return nil, fmt.Errorf("run history: %w", err)
	}
	return &HistoryRun{h: h, rec: rec}, nil
}

// ID returns the run's id.
func (r *HistoryRun) ID() string { return r.rec.RunID }

// NodeEnded records how a node of the run ended, replacing what was
// recorded of it, and writes the record at once: a manager killed a
// moment later leaves the node recorded. A zero Time is set to now.
func (r *HistoryRun) NodeEnded(o NodeOutcome) error {
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	o.Time = o.Time.UTC()
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.rec
	next.Nodes = append([]NodeOutcome(nil), r.rec.Nodes...)
	replaced := false
	for i := range next.Nodes {
		if next.Nodes[i].Node == o.Node {
			next.Nodes[i], replaced = o, true
		}
	}
	if !replaced {
		next.Nodes = append(next.Nodes, o)
	}
	if err := r.write(&next); err != nil {
		return err
	}
	r.rec = next
	return nil
}

// End records that the manager finished the run.
func (r *HistoryRun) End() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.rec
	next.Ended, next.EndedAt = true, time.Now().UTC()
	if err := r.write(&next); err != nil {
		return err
	}
	r.rec = next
	return nil
}

func (r *HistoryRun) write(rec *RunRecord) error {
	if err := rec.check(); err != nil {
		return fmt.Errorf("run history: run %s: %w", rec.RunID, err)
	}
	data, err := marshal(rec)
	if err != nil {
		return fmt.Errorf("run history: encode run %s: %w", rec.RunID, err)
	}
	if err := writeAtomic(r.h.path(rec.RunID), data); err != nil {
		return fmt.Errorf("run history: run %s: %w", rec.RunID, err)
	}
	return nil
}

// Load returns the record of run id, or of the run begun last when id is
// Latest. A run without a record is an error wrapping ErrRunNotRecorded;
// a record that cannot be read or parsed is an error naming its file.
func (h *History) Load(id string) (*RunRecord, error) {
	if id == Latest {
		return h.latest()
	}
	if err := ValidRunID(id); err != nil {
		return nil, fmt.Errorf("run history: %w", err)
	}
	rec, err := readRecord(h.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run %s: %w in %s", id, ErrRunNotRecorded, h.dir)
	}
	if err != nil {
		return nil, err
	}
	if rec.RunID != id {
		return nil, fmt.Errorf("run history file %s: holds run %q, not %q", h.path(id), rec.RunID, id)
	}
	return rec, nil
}

// latest is the record begun last. A file that cannot be read is an
// error, naming it: it might be the latest run.
func (h *History) latest() (*RunRecord, error) {
	recs, err := h.List()
	if err != nil {
		return nil, fmt.Errorf("run history: cannot tell the latest run: %w", err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("latest run: %w in %s", ErrRunNotRecorded, h.dir)
	}
	return recs[len(recs)-1], nil
}

// List returns every record, oldest first, and an error naming every
// file that could not be read.
func (h *History) List() ([]*RunRecord, error) {
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		return nil, fmt.Errorf("run history: %w", err)
	}
	var out []*RunRecord
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") || e.IsDir() {
			continue
		}
		rec, err := readRecord(filepath.Join(h.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Started.Equal(out[b].Started) {
			return out[a].Started.Before(out[b].Started)
		}
		return out[a].RunID < out[b].RunID
	})
	return out, errors.Join(errs...)
}

func (h *History) path(id string) string { return filepath.Join(h.dir, id+".json") }

func readRecord(path string) (*RunRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("run history file %s: %w", path, err)
	}
	rec, err := ParseRunRecord(data)
	if err != nil {
		return nil, fmt.Errorf("run history file %s: %w", path, err)
	}
	return rec, nil
}

// ParseRunRecord parses and checks the content of a run record file:
// strict JSON (no unknown field, nothing after the value), the current
// version, a valid run id, a manager pid and start time, every node
// outcome of a target of the run, once, in an end state.
func ParseRunRecord(data []byte) (*RunRecord, error) {
	var rec RunRecord
	if err := decodeStrict(data, &rec); err != nil {
		return nil, err
	}
	if rec.Version != historyVersion {
		return nil, fmt.Errorf("unsupported version %d (want %d)", rec.Version, historyVersion)
	}
	if err := rec.check(); err != nil {
		return nil, err
	}
	if rec.PID <= 0 {
		return nil, fmt.Errorf("run %s: manager pid %d", rec.RunID, rec.PID)
	}
	if rec.Started.IsZero() {
		return nil, fmt.Errorf("run %s: no start time", rec.RunID)
	}
	if rec.Nodes == nil {
		rec.Nodes = []NodeOutcome{}
	}
	return &rec, nil
}

// check is what every record must satisfy, written or read.
func (rec *RunRecord) check() error {
	if err := ValidRunID(rec.RunID); err != nil {
		return err
	}
	if rec.Resumes != "" {
		if err := ValidRunID(rec.Resumes); err != nil {
			return fmt.Errorf("run %s: resumes: %w", rec.RunID, err)
		}
		if rec.Resumes == rec.RunID {
			return fmt.Errorf("run %s resumes itself", rec.RunID)
		}
	}
	if rec.Options.Baseline == "" || !isAbs(rec.Options.Baseline) {
		return fmt.Errorf("run %s: baseline %q is not an absolute directory", rec.RunID, rec.Options.Baseline)
	}
	ids := map[string]bool{}
	for i, c := range rec.Options.Components {
		if c.ID == "" || c.SHA256 == "" {
			return fmt.Errorf("run %s: component %d has no id or no sha256", rec.RunID, i+1)
		}
		if ids[c.ID] {
			return fmt.Errorf("run %s: component %s recorded twice", rec.RunID, c.ID)
		}
		ids[c.ID] = true
	}
	targets := map[string]bool{}
	for i, t := range rec.Options.Targets {
		if t.Target == "" {
			return fmt.Errorf("run %s: target %d is empty", rec.RunID, i+1)
		}
		if targets[t.Target] {
			return fmt.Errorf("run %s: target %s recorded twice", rec.RunID, t.Target)
		}
		targets[t.Target] = true
	}
	seen := map[string]bool{}
	for i, o := range rec.Nodes {
		switch {
		case o.Node == "":
			return fmt.Errorf("run %s: node outcome %d has no node", rec.RunID, i+1)
		case !targets[o.Node]:
			return fmt.Errorf("run %s: node %s is not a target of the run", rec.RunID, o.Node)
		case seen[o.Node]:
			return fmt.Errorf("run %s: node %s recorded twice", rec.RunID, o.Node)
		case !validOutcome(o.State):
			return fmt.Errorf("run %s: node %s: unknown end state %q", rec.RunID, o.Node, o.State)
		}
		if o.FromRun != "" {
			if err := ValidRunID(o.FromRun); err != nil {
				return fmt.Errorf("run %s: node %s: from run: %w", rec.RunID, o.Node, err)
			}
		}
		seen[o.Node] = true
	}
	return nil
}

// isAbs accepts absolute paths of the manager's system and, so that a
// record written on one is read on any, of the other (a record of a
// Windows manager read by tests on Linux).
func isAbs(p string) bool {
	return filepath.IsAbs(p) || strings.HasPrefix(p, "/") || len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

func validOutcome(s string) bool {
	switch s {
	case OutcomeComplete, OutcomeRebootNeeded, OutcomeFailed, OutcomeCancelled, OutcomeSkipped:
		return true
	}
	return false
}

package runstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// The node states of a NodeRecord.
const (
	StatePlaced        = "placed"         // something of the run is on the node
	StateCleaned       = "cleaned"        // everything the run put there is gone
	StateCleanupFailed = "cleanup-failed" // removing it was tried and could not be confirmed
)

// fileVersion is the version of the run file format.
const fileVersion = 1

// ErrUnknownRun is returned for a run that has no file in the journal
// (never begun, or already fully cleaned and removed).
var ErrUnknownRun = errors.New("run not in journal")

// NodeRecord is what a run left on one node.
type NodeRecord struct {
	// RunID is the run the record belongs to; set by the reading
	// functions, ignored by Record.
	RunID string `json:"-"`
	// Node is the target as the user gave it, e.g. "root@[fd42:5e:0:2::2]:22".
	Node  string `json:"node"`
	State string `json:"state"`
	// EngineDir is the directory the engine was copied to on the node.
	EngineDir string `json:"engine_dir,omitempty"`
	// EnginePID and EnginePort are the engine's process and listening port.
	EnginePID  int `json:"engine_pid,omitempty"`
	EnginePort int `json:"engine_port,omitempty"`
	// FirewallTag identifies the firewall rules opened for the run.
	FirewallTag string    `json:"firewall_tag,omitempty"`
	Time        time.Time `json:"time"`
}

// RunState is a run as the journal holds it.
type RunState struct {
	RunID   string
	File    string // the run's file
	PID     int    // the manager's pid
	Command string // the manager's program name, for people: liveness does not use it
	Started time.Time
	Ended   bool
	EndedAt time.Time
	// Alive is true while the manager that owns the run still runs
	// (Owner.Check); Liveness says why.
	Alive    bool
	Liveness string
	Nodes    []NodeRecord // sorted by node
}

// Journal is the journal in a state directory: one file RUNID.json per
// run, mode 0600, holding the manager's pid and start time, and the
// latest state of every node the run touches: "placed" once anything is
// on the node, "cleaned" once everything is gone again, "cleanup-failed"
// when its removal could not be confirmed. End marks the run finished;
// the run's file is deleted as soon as the run has ended (or its manager
// is dead) and every node is cleaned. Every other file is a run to look
// at: Pending lists them.
//
// Writers of a run serialize on the lock of the run's sibling lock file
// RUNID.lock, so that the owning manager and a concurrent `fleetup
// cleanup` (MarkCleaned) never lose each other's updates; within one
// process a mutex does the same. A Journal is safe for concurrent use.
type Journal struct {
	dir string
	mu  sync.Mutex
	// self is the owner Begin records; tests replace it.
	self func() Owner
}

// Run is a run this process owns.
type Run struct {
	j  *Journal
	id string
}

// runFile is the on-disk form of a run.
type runFile struct {
	Version   int          `json:"version"`
	RunID     string       `json:"run_id"`
	PID       int          `json:"pid"`
	ProcStart uint64       `json:"proc_start,omitempty"` // Owner.Start
	Command   string       `json:"command,omitempty"`
	Started   time.Time    `json:"started"`
	Ended     bool         `json:"ended,omitempty"`
	EndedAt   time.Time    `json:"ended_at,omitzero"`
	Nodes     []NodeRecord `json:"nodes"`
}

// Open opens the journal in dir, creating the directory (mode 0700) if
// needed. Temporary files that crashed writers left more than an hour ago
// are removed. Errors name dir.
func Open(dir string) (*Journal, error) {
	if err := mkdir(dir); err != nil {
		return nil, fmt.Errorf("open journal %s: %w", dir, err)
	}
	cleanTemps(dir)
	return &Journal{dir: dir, self: Self}, nil
}

// Dir returns the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// Begin records the start of run runID, owned by this process. It fails if
// the journal already holds runID, or the file cannot be written; the
// error then names it.
func (j *Journal) Begin(runID string) (*Run, error) {
	if err := ValidRunID(runID); err != nil {
		return nil, fmt.Errorf("journal: begin: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	lk, err := lockRun(j.dir, runID)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", j.dir, err)
	}
	defer lk.release()
	if _, err := os.Lstat(j.path(runID)); err == nil {
		return nil, fmt.Errorf("journal: begin run %s: already in journal %s", runID, j.dir)
	}
	me := j.self()
	rf := &runFile{
		Version:   fileVersion,
		RunID:     runID,
		PID:       me.PID,
		ProcStart: me.Start,
		Command:   commandName(),
		Started:   time.Now().UTC(),
		Nodes:     []NodeRecord{},
	}
	if err := j.write(rf); err != nil {
		lk.remove = true
		return nil, err
	}
	return &Run{j: j, id: runID}, nil
}

// commandName is this program's name, recorded for people reading a run
// file.
func commandName() string {
	if len(os.Args) == 0 {
		return ""
	}
	return filepath.Base(os.Args[0])
}

// ID returns the run's id.
func (r *Run) ID() string { return r.id }

// Record stores the latest state of a node of the run, replacing the
// node's earlier record. A zero Time is set to now. Records after End are
// refused.
func (r *Run) Record(e NodeRecord) error {
	if e.Node == "" {
		return fmt.Errorf("journal: run %s: record without a node", r.id)
	}
	if !validState(e.State) {
		return fmt.Errorf("journal: run %s: node %s: unknown state %q", r.id, e.Node, e.State)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	e.RunID = ""
	return r.j.update(r.id, func(rf *runFile) (bool, error) {
		if rf.Ended {
			return false, fmt.Errorf("run %s has ended", r.id)
		}
		rf.setNode(e)
		return false, nil
	})
}

// SetState changes the state of node in the run and keeps what its
// earlier record says of the engine and firewall; a node without a record
// gets one with state alone. Like Record, it is refused after End.
func (r *Run) SetState(node, state string) error {
	if node == "" {
		return fmt.Errorf("journal: run %s: record without a node", r.id)
	}
	if !validState(state) {
		return fmt.Errorf("journal: run %s: node %s: unknown state %q", r.id, node, state)
	}
	return r.j.update(r.id, func(rf *runFile) (bool, error) {
		if rf.Ended {
			return false, fmt.Errorf("run %s has ended", r.id)
		}
		e := NodeRecord{Node: node}
		if i := rf.find(node); i >= 0 {
			e = rf.Nodes[i]
		}
		e.State, e.Time = state, time.Now().UTC()
		rf.setNode(e)
		return false, nil
	})
}

// End marks the run as ended. The run's file is removed when every node is
// cleaned; otherwise it stays for cleanup.
func (r *Run) End() error {
	return r.j.update(r.id, func(rf *runFile) (bool, error) {
		if !rf.Ended {
			rf.Ended = true
			rf.EndedAt = time.Now().UTC()
		}
		return rf.allCleaned(), nil
	})
}

// MarkCleaned records that everything run runID left on node is gone. When
// then every node of the run is cleaned and the run has ended, or its
// manager is no longer alive, the run's file is removed.
func (j *Journal) MarkCleaned(runID, node string) error {
	if err := ValidRunID(runID); err != nil {
		return fmt.Errorf("journal: mark cleaned: %w", err)
	}
	return j.update(runID, func(rf *runFile) (bool, error) {
		i := rf.find(node)
		if i < 0 {
			return false, fmt.Errorf("node %s is not in run %s", node, runID)
		}
		rf.Nodes[i].State = StateCleaned
		rf.Nodes[i].Time = time.Now().UTC()
		done := rf.allCleaned() && (rf.Ended || !rf.owner().Check().Alive)
		return done, nil
	})
}

// Pending returns the runs that need looking at: runs not ended (whether
// their manager is alive or not) and ended runs with nodes not cleaned,
// oldest first. Every file that cannot be read or parsed adds an error
// naming it to the returned error; the runs that could be read are
// returned all the same.
func (j *Journal) Pending() ([]RunState, error) {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var runs []RunState
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(j.dir, name)
		if e.IsDir() {
			errs = append(errs, fmt.Errorf("journal file %s: a directory", path))
			continue
		}
		rf, err := readRun(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if want := strings.TrimSuffix(name, ".json"); rf.RunID != want {
			errs = append(errs, fmt.Errorf("journal file %s: holds run %q, not %q", path, rf.RunID, want))
			continue
		}
		if rf.Ended && rf.allCleaned() {
			continue
		}
		live := rf.owner().Check()
		rs := RunState{
			RunID:    rf.RunID,
			File:     path,
			PID:      rf.PID,
			Command:  rf.Command,
			Started:  rf.Started,
			Ended:    rf.Ended,
			EndedAt:  rf.EndedAt,
			Alive:    live.Alive,
			Liveness: live.Reason,
			Nodes:    rf.Nodes,
		}
		for i := range rs.Nodes {
			rs.Nodes[i].RunID = rf.RunID
		}
		runs = append(runs, rs)
	}
	sort.Slice(runs, func(a, b int) bool {
		if !runs[a].Started.Equal(runs[b].Started) {
			return runs[a].Started.Before(runs[b].Started)
		}
		return runs[a].RunID < runs[b].RunID
	})
	return runs, errors.Join(errs...)
}

// ForNode returns what runs whose manager is no longer alive left on node:
// their records of node that are not cleaned, oldest run first. Runs of a
// live manager are left to that manager. The error names every journal file
// that could not be read.
func (j *Journal) ForNode(node string) ([]NodeRecord, error) {
	runs, err := j.Pending()
	var out []NodeRecord
	for _, r := range runs {
		if r.Alive {
			continue
		}
		for _, n := range r.Nodes {
			if n.Node == node && n.State != StateCleaned {
				out = append(out, n)
			}
		}
	}
	return out, err
}

func (j *Journal) path(runID string) string { return filepath.Join(j.dir, runID+".json") }

// update applies fn to run runID's file under the run's lock, then writes
// the result, or removes the run when fn says it is done.
func (j *Journal) update(runID string, fn func(*runFile) (remove bool, err error)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	lk, err := lockRun(j.dir, runID)
	if err != nil {
		return fmt.Errorf("journal %s: %w", j.dir, err)
	}
	defer lk.release()
	rf, err := readRun(j.path(runID))
	if errors.Is(err, fs.ErrNotExist) {
		lk.remove = true // made by lockRun just now
		return fmt.Errorf("journal: run %s: %w", runID, ErrUnknownRun)
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if rf.RunID != runID {
		return fmt.Errorf("journal: file %s holds run %q", j.path(runID), rf.RunID)
	}
	remove, err := fn(rf)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if remove {
		if err := removeFile(j.path(runID)); err != nil {
			return fmt.Errorf("journal: remove finished run: %w", err)
		}
		lk.remove = true
		return nil
	}
	return j.write(rf)
}

// write replaces rf's file atomically.
func (j *Journal) write(rf *runFile) error {
	sort.Slice(rf.Nodes, func(a, b int) bool { return rf.Nodes[a].Node < rf.Nodes[b].Node })
	data, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return fmt.Errorf("journal: encode run %s: %w", rf.RunID, err)
	}
	data = append(data, '\n')
	if err := writeAtomic(j.path(rf.RunID), data); err != nil {
		return fmt.Errorf("journal: run %s: %w", rf.RunID, err)
	}
	return nil
}

// readRun reads and parses a run file; errors name the file.
func readRun(path string) (*runFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("journal file %s: %w", path, err)
	}
	rf, err := parseRun(data)
	if err != nil {
		return nil, fmt.Errorf("journal file %s: %w", path, err)
	}
	return rf, nil
}

// parseRun parses and checks the content of a run file.
func parseRun(data []byte) (*runFile, error) {
	var rf runFile
	if err := decodeStrict(data, &rf); err != nil {
		return nil, err
	}
	if rf.Version != fileVersion {
		return nil, fmt.Errorf("unsupported version %d (want %d)", rf.Version, fileVersion)
	}
	if err := ValidRunID(rf.RunID); err != nil {
		return nil, err
	}
	if rf.PID <= 0 {
		return nil, fmt.Errorf("run %s: manager pid %d", rf.RunID, rf.PID)
	}
	if rf.Started.IsZero() {
		return nil, fmt.Errorf("run %s: no start time", rf.RunID)
	}
	seen := map[string]bool{}
	for i, n := range rf.Nodes {
		if n.Node == "" {
			return nil, fmt.Errorf("run %s: node record %d has no node", rf.RunID, i+1)
		}
		if seen[n.Node] {
			return nil, fmt.Errorf("run %s: node %s recorded twice", rf.RunID, n.Node)
		}
		seen[n.Node] = true
		if !validState(n.State) {
			return nil, fmt.Errorf("run %s: node %s: unknown state %q", rf.RunID, n.Node, n.State)
		}
	}
	if rf.Nodes == nil {
		rf.Nodes = []NodeRecord{}
	}
	return &rf, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// anything after the value.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("corrupt: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("corrupt: data after the value")
	}
	return nil
}

func (rf *runFile) find(node string) int {
	for i, n := range rf.Nodes {
		if n.Node == node {
			return i
		}
	}
	return -1
}

func (rf *runFile) setNode(e NodeRecord) {
	if i := rf.find(e.Node); i >= 0 {
		rf.Nodes[i] = e
		return
	}
	rf.Nodes = append(rf.Nodes, e)
}

func (rf *runFile) allCleaned() bool {
	for _, n := range rf.Nodes {
		if n.State != StateCleaned {
			return false
		}
	}
	return true
}

func (rf *runFile) owner() Owner { return Owner{PID: rf.PID, Start: rf.ProcStart} }

func validState(s string) bool {
	return s == StatePlaced || s == StateCleaned || s == StateCleanupFailed
}

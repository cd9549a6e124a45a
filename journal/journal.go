// Package journal remembers, on the manager's disk, what a run has placed
// on its nodes, so that what a killed or crashed run left behind (engine
// files and processes, firewall rules) can be found and removed by
// `fleetup cleanup` or by the next run.
//
// A Journal is a directory (DefaultDir) holding one JSON file per run,
// named RUNID.json, mode 0600. A run records the manager's pid when it
// begins, then the latest state of every node it touches: "placed" once
// anything is on the node, "cleaned" once everything is gone again,
// "cleanup-failed" when removing it failed. End marks the run finished; the
// run's file is deleted as soon as the run has ended (or its manager is
// dead) and every node is cleaned. Every other file is a run to look at:
// Pending lists them, with Alive telling whether the manager that owns the
// run is still running.
//
// Every write replaces the file atomically (temporary file in the same
// directory, fsync, rename, fsync of the directory), so that a crash at any
// point leaves either the old or the new content. Writers serialize on an
// flock(2) of the run's sibling lock file RUNID.lock, so the owning manager
// and a concurrent `fleetup cleanup` (MarkCleaned) never lose each other's
// updates; within one process a mutex does the same. A file that cannot be
// parsed is reported by name, never skipped silently.
package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The node states of a NodeRecord.
const (
	StatePlaced        = "placed"         // something of the run is on the node
	StateCleaned       = "cleaned"        // everything the run put there is gone
	StateCleanupFailed = "cleanup-failed" // removing it was tried and failed
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
	Command string // the manager's program name (argv[0]'s base name)
	Started time.Time
	Ended   bool
	EndedAt time.Time
	// Alive is true while the manager that owns the run still runs: its
	// pid exists, was started when the run's manager was, and still runs
	// the same program.
	Alive bool
	Nodes []NodeRecord // sorted by node
}

// Journal is a journal directory. It is safe for concurrent use.
type Journal struct {
	dir string
	mu  sync.Mutex
	// self describes this process for Begin; alive decides RunState.Alive.
	// Tests replace them.
	self  func() procInfo
	alive func(procInfo) bool
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
	ProcStart uint64       `json:"proc_start,omitempty"` // /proc/PID/stat start time, clock ticks
	Command   string       `json:"command,omitempty"`
	Started   time.Time    `json:"started"`
	Ended     bool         `json:"ended,omitempty"`
	EndedAt   time.Time    `json:"ended_at,omitzero"`
	Nodes     []NodeRecord `json:"nodes"`
}

// DefaultDir returns where the journal lives: $FLEETUP_STATE_DIR if set,
// else /var/lib/fleetup for root, else $XDG_STATE_HOME/fleetup, else
// ~/.local/state/fleetup.
func DefaultDir() string {
	if d := os.Getenv("FLEETUP_STATE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/fleetup"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "fleetup")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "fleetup-state-"+strconv.Itoa(os.Geteuid()))
	}
	return filepath.Join(home, ".local", "state", "fleetup")
}

// Open opens the journal in dir, creating the directory (mode 0700) if
// needed. Temporary files that crashed writers left more than an hour ago
// are removed.
func Open(dir string) (*Journal, error) {
	if dir == "" {
		return nil, errors.New("open journal: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open journal: %s is not a directory", dir)
	}
	if tmps, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); err == nil {
		for _, t := range tmps {
			if fi, err := os.Stat(t); err == nil && time.Since(fi.ModTime()) > time.Hour {
				_ = os.Remove(t)
			}
		}
	}
	return &Journal{dir: dir, self: selfInfo, alive: processAlive}, nil
}

// Dir returns the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// Begin records the start of run runID, owned by this process. It fails if
// the journal already holds runID.
func (j *Journal) Begin(runID string) (*Run, error) {
	if err := validRunID(runID); err != nil {
		return nil, fmt.Errorf("journal: begin: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	unlock, err := j.lock(runID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Lstat(j.path(runID)); err == nil {
		return nil, fmt.Errorf("journal: begin run %s: already in journal %s", runID, j.dir)
	}
	me := j.self()
	rf := &runFile{
		Version:   fileVersion,
		RunID:     runID,
		PID:       me.PID,
		ProcStart: me.Start,
		Command:   me.Command,
		Started:   time.Now().UTC(),
		Nodes:     []NodeRecord{},
	}
	if err := j.write(rf); err != nil {
		return nil, err
	}
	return &Run{j: j, id: runID}, nil
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
	if err := validRunID(runID); err != nil {
		return fmt.Errorf("journal: mark cleaned: %w", err)
	}
	return j.update(runID, func(rf *runFile) (bool, error) {
		i := rf.find(node)
		if i < 0 {
			return false, fmt.Errorf("node %s is not in run %s", node, runID)
		}
		rf.Nodes[i].State = StateCleaned
		rf.Nodes[i].Time = time.Now().UTC()
		done := rf.allCleaned() && (rf.Ended || !j.alive(rf.proc()))
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
		rf, err := readRun(path)
		if errors.Is(err, os.ErrNotExist) {
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
		rs := RunState{
			RunID:   rf.RunID,
			File:    path,
			PID:     rf.PID,
			Command: rf.Command,
			Started: rf.Started,
			Ended:   rf.Ended,
			EndedAt: rf.EndedAt,
			Alive:   j.alive(rf.proc()),
			Nodes:   rf.Nodes,
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
	unlock, err := j.lock(runID)
	if err != nil {
		return err
	}
	defer unlock()
	rf, err := readRun(j.path(runID))
	if errors.Is(err, os.ErrNotExist) {
		_ = os.Remove(j.lockPath(runID)) // made by lock just now; we hold it
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
		if err := os.Remove(j.path(runID)); err != nil {
			return fmt.Errorf("journal: remove finished run: %w", err)
		}
		// Remove the lock file while holding it: a writer waiting for it
		// notices that its lock file is no longer linked and retries.
		_ = os.Remove(j.lockPath(runID))
		return syncDir(j.dir)
	}
	return j.write(rf)
}

func (j *Journal) lockPath(runID string) string { return filepath.Join(j.dir, runID+".lock") }

// lock takes the exclusive flock of runID's lock file and returns its
// release.
func (j *Journal) lock(runID string) (func(), error) {
	path := j.lockPath(runID)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("journal: lock run %s: %w", runID, err)
		}
		if err := flock(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: lock run %s: %w", runID, err)
		}
		// The holder before us may have removed the file; then our lock
		// is on an orphan and we must start over.
		var held, linked syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &linked) == nil && held.Ino == linked.Ino && held.Dev == linked.Dev {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
}

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
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

// writeAtomic replaces path with data: a temporary file in the same
// directory, written and synced, renamed over path, and the directory
// synced. On failure the temporary file is removed and path is unchanged.
func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Clean(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rf runFile
	if err := dec.Decode(&rf); err != nil {
		return nil, fmt.Errorf("corrupt: %w", err)
	}
	if dec.More() {
		return nil, errors.New("corrupt: data after the run")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("corrupt: data after the run")
	}
	if rf.Version != fileVersion {
		return nil, fmt.Errorf("unsupported version %d (want %d)", rf.Version, fileVersion)
	}
	if err := validRunID(rf.RunID); err != nil {
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

func (rf *runFile) proc() procInfo {
	return procInfo{PID: rf.PID, Start: rf.ProcStart, Command: rf.Command}
}

func validState(s string) bool {
	return s == StatePlaced || s == StateCleaned || s == StateCleanupFailed
}

// validRunID accepts ids that are safe as file names: letters, digits, '.',
// '_' and '-', starting with a letter or digit, at most 128 characters.
func validRunID(id string) error {
	if id == "" {
		return errors.New("empty run id")
	}
	if len(id) > 128 {
		return fmt.Errorf("run id %.20q... longer than 128 characters", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return fmt.Errorf("run id %q: only letters, digits, '.', '_' and '-' allowed, starting with a letter or digit", id)
		}
	}
	return nil
}

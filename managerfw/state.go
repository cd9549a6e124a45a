package managerfw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fleetup/fleetup/firewall"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

// state is a run's state file: what its manager opened, and which process
// the manager is.
type state struct {
	Version   int             `json:"version"`
	RunID     string          `json:"run_id"`
	Tag       string          `json:"tag"`
	PID       int             `json:"pid"`
	ProcStart uint64          `json:"proc_start,omitempty"` // /proc/PID/stat field 22, clock ticks
	Ports     []int           `json:"ports"`
	Firewalld []FirewalldPort `json:"firewalld,omitempty"`
	Started   time.Time       `json:"started"`

	path string
}

func newState(runID, tag string, ports []int) *state {
	pid := os.Getpid()
	start, _ := procStart(pid)
	return &state{Version: stateVersion, RunID: runID, Tag: tag, PID: pid, ProcStart: start, Ports: ports, Started: time.Now().UTC()}
}

// alive reports whether the manager that wrote s still runs: its pid
// exists and started when it did (a reused pid is another process).
func (s *state) alive() bool {
	if s.PID <= 0 {
		return false
	}
	start, err := procStart(s.PID)
	if err != nil {
		return false
	}
	return s.ProcStart == 0 || start == s.ProcStart
}

// writeState replaces path with s atomically (mode 0600, directory 0700).
func writeState(path string, s *state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// parseState parses a state file's content; name is for messages.
func parseState(data []byte, name string) (*state, error) {
	var s state
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("state file %s: %w", name, err)
	}
	switch {
	case s.Version != stateVersion:
		return nil, fmt.Errorf("state file %s: version %d, want %d", name, s.Version, stateVersion)
	case s.RunID == "" || s.Tag != Tag(s.RunID):
		return nil, fmt.Errorf("state file %s: run %q with tag %q, want tag %q", name, s.RunID, s.Tag, Tag(s.RunID))
	}
	if err := (firewall.Rule{Tag: s.Tag, Port: 1, Source: firewall.AnyIPv4, AnySource: true}).Validate(); err != nil {
		return nil, fmt.Errorf("state file %s: %w", name, err)
	}
	for _, p := range s.Firewalld {
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("state file %s: %w", name, err)
		}
	}
	return &s, nil
}

// readStates reads every state file in dir (none when dir does not
// exist). A file that cannot be read or parsed is named in the error and
// skipped; the others are returned.
func readStates(dir string) ([]*state, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state files: %w", err)
	}
	var (
		out  []*state
		errs []error
	)
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("state file: %w", err))
			continue
		}
		s, err := parseState(data, path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if want := strings.TrimSuffix(e.Name(), ".json"); s.RunID != want {
			errs = append(errs, fmt.Errorf("state file %s: holds run %q, not %q", path, s.RunID, want))
			continue
		}
		s.path = path
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// procStart returns the start time of pid, field 22 of /proc/PID/stat.
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(data, ')') // the command name may hold spaces and ')'
	if i < 0 {
		return 0, errors.New("proc stat: no ')' after the command name")
	}
	fields := strings.Fields(string(data[i+1:]))
	const idx = 22 - 3 // fields after ')' start at field 3
	if len(fields) <= idx {
		return 0, fmt.Errorf("proc stat: %d fields after the command name", len(fields))
	}
	return strconv.ParseUint(fields[idx], 10, 64)
}

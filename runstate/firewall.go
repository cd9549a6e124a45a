package runstate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// firewallVersion is the version of the firewall state file format.
const firewallVersion = 1

// FirewallState is what one run's --open-firewall opened in this
// machine's firewall, and which manager owns it. It is written before any
// rule is made, so that a manager that dies at any point leaves a file
// naming what may be open.
type FirewallState struct {
	RunID string
	// Tag is the comment the run's iptables and nftables rules carry.
	Tag   string
	Ports []int
	// Firewalld lists the firewalld ports the run added (they carry no
	// comment, so the file is the only record of them).
	Firewalld []FirewalldPort
	Started   time.Time
	// Owner is the manager; WriteFirewallState sets Self() when zero.
	Owner Owner

	// File and Liveness are set by ReadFirewallStates.
	File     string
	Liveness Liveness
}

// FirewalldPort is a TCP port added to a firewalld zone.
type FirewalldPort struct {
	Zone string `json:"zone"`
	Port int    `json:"port"`
}

// firewallFile is the on-disk form of a FirewallState.
type firewallFile struct {
	Version   int             `json:"version"`
	RunID     string          `json:"run_id"`
	Tag       string          `json:"tag"`
	PID       int             `json:"pid"`
	ProcStart uint64          `json:"proc_start,omitempty"` // Owner.Start
	Ports     []int           `json:"ports"`
	Firewalld []FirewalldPort `json:"firewalld,omitempty"`
	Started   time.Time       `json:"started"`
}

func firewallPath(dir, runID string) string { return filepath.Join(dir, runID+".json") }

// WriteFirewallState replaces the state file of s.RunID in dir (see
// FirewallDir), creating dir, atomically and under the run's lock. A
// zero s.Owner becomes Self() and a zero s.Started now; s.File is set.
func WriteFirewallState(dir string, s *FirewallState) error {
	if err := ValidRunID(s.RunID); err != nil {
		return fmt.Errorf("firewall state: %w", err)
	}
	if s.Tag == "" {
		return fmt.Errorf("firewall state of run %s: no tag", s.RunID)
	}
	if err := mkdir(dir); err != nil {
		return fmt.Errorf("firewall state directory %s: %w", dir, err)
	}
	if s.Owner == (Owner{}) {
		s.Owner = Self()
	}
	if s.Started.IsZero() {
		s.Started = time.Now()
	}
	s.Started = s.Started.UTC()
	lk, err := lockRun(dir, s.RunID)
	if err != nil {
		return fmt.Errorf("firewall state %s: %w", dir, err)
	}
	defer lk.release()
	f := firewallFile{
		Version: firewallVersion, RunID: s.RunID, Tag: s.Tag,
		PID: s.Owner.PID, ProcStart: s.Owner.Start,
		Ports: s.Ports, Firewalld: s.Firewalld, Started: s.Started,
	}
	if f.Ports == nil {
		f.Ports = []int{}
	}
	data, err := marshal(f)
	if err != nil {
		return fmt.Errorf("firewall state of run %s: %w", s.RunID, err)
	}
	path := firewallPath(dir, s.RunID)
	if err := writeAtomic(path, data); err != nil {
		return fmt.Errorf("firewall state: %w", err)
	}
	s.File = path
	return nil
}

// RemoveFirewallState removes the state file of run runID in dir and its
// lock file. A file already gone is no error.
func RemoveFirewallState(dir, runID string) error {
	if err := ValidRunID(runID); err != nil {
		return fmt.Errorf("firewall state: %w", err)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	lk, err := lockRun(dir, runID)
	if err != nil {
		return fmt.Errorf("firewall state %s: %w", dir, err)
	}
	defer lk.release()
	if err := removeFile(firewallPath(dir, runID)); err != nil {
		return fmt.Errorf("firewall state: %w", err)
	}
	lk.remove = true
	return nil
}

// ParseFirewallState parses the content of a firewall state file. It
// checks the form (version, run id, tag, pid, ports); what the tag and
// the zones must look like is for the caller, who made them.
func ParseFirewallState(data []byte) (*FirewallState, error) {
	var f firewallFile
	if err := decodeStrict(data, &f); err != nil {
		return nil, err
	}
	switch {
	case f.Version != firewallVersion:
		return nil, fmt.Errorf("unsupported version %d (want %d)", f.Version, firewallVersion)
	case f.Tag == "":
		return nil, fmt.Errorf("run %q: no tag", f.RunID)
	}
	if err := ValidRunID(f.RunID); err != nil {
		return nil, err
	}
	if f.PID <= 0 {
		return nil, fmt.Errorf("run %s: manager pid %d", f.RunID, f.PID)
	}
	for _, p := range f.Ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("run %s: port %d out of range 1-65535", f.RunID, p)
		}
	}
	for _, p := range f.Firewalld {
		if p.Zone == "" || p.Port < 1 || p.Port > 65535 {
			return nil, fmt.Errorf("run %s: firewalld port %+v", f.RunID, p)
		}
	}
	return &FirewallState{
		RunID: f.RunID, Tag: f.Tag, Ports: f.Ports, Firewalld: f.Firewalld, Started: f.Started,
		Owner: Owner{PID: f.PID, Start: f.ProcStart},
	}, nil
}

// ReadFirewallStates reads every state file in dir (none when dir does
// not exist), each with its File and Liveness. A file that cannot be read
// or parsed, or that holds another run than its name says, is named in
// the error; the others are returned. Temporary files of writers that
// crashed more than an hour ago are removed.
func ReadFirewallStates(dir string) ([]*FirewallState, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("firewall state: %w", err)
	}
	cleanTemps(dir)
	var (
		out  []*FirewallState
		errs []error
	)
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("firewall state file %s: %w", path, err))
			continue
		}
		s, err := ParseFirewallState(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("firewall state file %s: %w", path, err))
			continue
		}
		if want := strings.TrimSuffix(name, ".json"); s.RunID != want {
			errs = append(errs, fmt.Errorf("firewall state file %s: holds run %q, not %q", path, s.RunID, want))
			continue
		}
		s.File = path
		s.Liveness = s.Owner.Check()
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

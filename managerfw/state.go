package managerfw

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/runstate"
)

// The state files themselves (their form, atomic writes, the owner's pid
// and start time and the liveness rule) are package runstate's; this file
// converts and adds what only this package can check: the tag and the
// firewalld zones it made.

// newState is the state of run runID before any rule is made.
func newState(runID, tag string, ports []int) *runstate.FirewallState {
	return &runstate.FirewallState{RunID: runID, Tag: tag, Ports: ports}
}

// writeState writes s to its file in dir (atomic, 0600, directory 0700).
func writeState(dir string, s *runstate.FirewallState, fw []FirewalldPort) error {
	s.Firewalld = s.Firewalld[:0]
	for _, p := range fw {
		s.Firewalld = append(s.Firewalld, runstate.FirewalldPort{Zone: p.Zone, Port: p.Port})
	}
	return runstate.WriteFirewallState(dir, s)
}

// check refuses a state that this package would not have written: a tag
// other than Tag(run), or a firewalld port it could not have added.
func check(s *runstate.FirewallState) error {
	if s.Tag != Tag(s.RunID) {
		return fmt.Errorf("run %q with tag %q, want tag %q", s.RunID, s.Tag, Tag(s.RunID))
	}
	if err := (firewall.Rule{Tag: s.Tag, Port: 1, Source: firewall.AnyIPv4, AnySource: true}).Validate(); err != nil {
		return err
	}
	for _, p := range firewalldPorts(s) {
		if err := p.validate(); err != nil {
			return err
		}
	}
	return nil
}

// firewalldPorts returns the firewalld ports s lists.
func firewalldPorts(s *runstate.FirewallState) []FirewalldPort {
	var out []FirewalldPort
	for _, p := range s.Firewalld {
		out = append(out, FirewalldPort{Zone: p.Zone, Port: p.Port})
	}
	return out
}

// parseState parses a state file's content; name is for messages.
func parseState(data []byte, name string) (*runstate.FirewallState, error) {
	s, err := runstate.ParseFirewallState(data)
	if err == nil {
		err = check(s)
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", name, err)
	}
	return s, nil
}

// readStates reads every state file in dir (none when dir does not
// exist), each with its owner's liveness. A file that cannot be read or
// parsed, or that this package would not have written, is named in the
// error and left in place; the others are returned.
func readStates(dir string) ([]*runstate.FirewallState, error) {
	states, err := runstate.ReadFirewallStates(dir)
	errs := []error{err}
	var out []*runstate.FirewallState
	for _, s := range states {
		if err := check(s); err != nil {
			errs = append(errs, fmt.Errorf("state file %s: %w", s.File, err))
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// removeState removes run runID's state file in dir.
func removeState(dir, runID string) error {
	return runstate.RemoveFirewallState(dir, runID)
}

// unreadableRuns returns the run ids of the state files in dir that are
// not among states: those readStates could not read, parse or accept.
func unreadableRuns(dir string, states []*runstate.FirewallState) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	read := map[string]bool{}
	for _, s := range states {
		read[filepath.Base(s.File)] = true
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if id, ok := strings.CutSuffix(name, ".json"); ok && !strings.HasPrefix(name, ".") && !read[name] {
			out = append(out, id)
		}
	}
	return out
}

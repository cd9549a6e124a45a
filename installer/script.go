package installer

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetup/fleetup"
)

// Script runs script components with their interpreter.
type Script struct{ cfg Config }

var _ Installer = (*Script)(nil)

// NewScript returns the script installer built on cfg.
func NewScript(cfg Config) *Script { return &Script{cfg: cfg} }

// Kind returns fleetup.KindScript.
func (*Script) Kind() fleetup.Kind { return fleetup.KindScript }

// DefaultInterpreter runs a script whose component names none.
const DefaultInterpreter = "/bin/sh"

// Probe is applicable when c.Targets contains "linux", inv.OS or one of
// inv.OSLike. Installed is the first line, trimmed, of what
// "sh -c c.VersionCommand" prints; the component counts as not installed
// when there is no version command, when it exits non-zero, or when it
// prints nothing, and Reason says which.
func (s *Script) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	p := fleetup.Probe{ComponentID: c.ID}
	target := ""
	for _, t := range c.Targets {
		if t == "linux" || (t != "" && t == inv.OS) || slices.Contains(inv.OSLike, t) {
			target = t
			break
		}
	}
	if target == "" {
		p.Reason = fmt.Sprintf("targets %s do not include linux, %s or %s", strings.Join(c.Targets, ", "), inv.OS, strings.Join(inv.OSLike, ", "))
		if len(c.Targets) == 0 {
			p.Reason = "component names no target OS"
		}
		return p, nil
	}
	p.Applicable = true
	if strings.TrimSpace(c.VersionCommand) == "" {
		p.Reason = fmt.Sprintf("target %s matches; no version command, so not installed", target)
		return p, nil
	}
	res, err := s.cfg.runner().Run(ctx, nil, "sh", "-c", c.VersionCommand)
	if ctx.Err() != nil {
		return p, fmt.Errorf("probe %s: %w", c.ID, err)
	}
	if code := exitCode(err); code >= 0 {
		p.Reason = fmt.Sprintf("target %s matches; version command exited with status %d, so not installed", target, code)
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("probe %s: version command: %w", c.ID, err)
	}
	first, _, _ := strings.Cut(string(res.Stdout), "\n")
	p.Installed = strings.TrimSpace(first)
	if p.Installed == "" {
		p.Reason = fmt.Sprintf("target %s matches; version command printed nothing, so not installed", target)
	} else {
		p.Reason = fmt.Sprintf("target %s matches; version command printed %s", target, p.Installed)
	}
	return p, nil
}

// Install runs c.Interpreter (DefaultInterpreter when empty; split on
// spaces, so "/bin/bash -e" works) with path as its last argument and the
// environment FLEETUP_COMPONENT_ID and FLEETUP_COMPONENT_VERSION. A
// non-zero exit is an *InstallError with the last lines of the output.
// RebootNeeded is c.Reboot.
func (s *Script) Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error) {
	argv := strings.Fields(c.Interpreter)
	if len(argv) == 0 {
		argv = []string{DefaultInterpreter}
	}
	env := []string{"FLEETUP_COMPONENT_ID=" + c.ID, "FLEETUP_COMPONENT_VERSION=" + c.Version}
	out := newOutputLog(opts.Log)
	err := stream(ctx, s.cfg.runner(), out, env, argv[0], append(argv[1:], path)...)
	o := Outcome{Output: out.Tail()}
	if err != nil {
		if code := exitCode(err); code >= 0 {
			err = &InstallError{Tool: filepath.Base(argv[0]), ExitCode: code, Message: lastLines(o.Output, 5, nil)}
		}
		return o, fmt.Errorf("install %s: %w", filepath.Base(path), err)
	}
	o.RebootNeeded = c.Reboot
	return o, nil
}

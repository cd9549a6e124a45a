package firewall

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fleetup/fleetup/proc"
)

// Netsh opens and closes the Windows firewall for the engine with netsh
// advfirewall: one inbound TCP allow rule per Rule, named by the rule's
// Tag ("fleetup:<run id>"), admitting Source only, to Port only. Windows
// keeps rules by name, so Remove deletes every rule of that name. It is
// not a Backend: Windows has one firewall, always filtering, and the
// rules of a killed run are found by name from the manager.
type Netsh struct {
	r *proc.Runner
	// Program is the netsh to run ("netsh.exe" on PATH); tests replace it.
	Program string
}

// NewNetsh returns the netsh driver on r (nil: an unmarked runner).
func NewNetsh(r *proc.Runner) *Netsh {
	if r == nil {
		r = &proc.Runner{}
	}
	return &Netsh{r: r, Program: "netsh.exe"}
}

// Name returns "netsh".
func (*Netsh) Name() string { return "netsh" }

// AddArgs are netsh's arguments that add r.
func (*Netsh) AddArgs(r Rule) []string {
	remote := r.Source.Unmap().String()
	if r.AnySource {
		remote = "any"
	}
	return []string{"advfirewall", "firewall", "add", "rule", "name=" + r.Tag, "dir=in", "action=allow",
		"protocol=TCP", "localport=" + strconv.Itoa(r.Port), "remoteip=" + remote}
}

// DeleteArgs are netsh's arguments that delete the rules named tag.
func (*Netsh) DeleteArgs(tag string) []string {
	return []string{"advfirewall", "firewall", "delete", "rule", "name=" + tag}
}

// Allow adds r (validated first) as an inbound allow rule.
func (n *Netsh) Allow(ctx context.Context, r Rule) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if _, err := n.r.Run(ctx, nil, n.Program, n.AddArgs(r)...); err != nil {
		return fmt.Errorf("netsh add rule %s: %w", r.Tag, err)
	}
	return nil
}

// Remove deletes the rules named tag and describes what it removed. No
// rule of that name is not an error.
func (n *Netsh) Remove(ctx context.Context, tag string) ([]string, error) {
	if err := validTag(tag); err != nil {
		return nil, err
	}
	res, err := n.r.Run(ctx, nil, n.Program, n.DeleteArgs(tag)...)
	var ee *proc.ExitError
	if errors.As(err, &ee) && res != nil && strings.Contains(string(res.Stdout)+string(res.Stderr), "No rules match") {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netsh delete rule %s: %w", tag, err)
	}
	return []string{"netsh: rule " + tag}, nil
}

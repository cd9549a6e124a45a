package managerfw

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fleetup/fleetup/proc"
)

// Commander runs a command and returns its output; a non-zero exit is a
// *proc.ExitError. *proc.Runner is one.
type Commander interface {
	Run(ctx context.Context, stdin io.Reader, name string, args ...string) (*proc.Result, error)
}

var _ Commander = (*proc.Runner)(nil)

// FirewalldPort is a TCP port Open added to a firewalld zone.
type FirewalldPort struct {
	Zone string `json:"zone"`
	Port int    `json:"port"`
}

func (p FirewalldPort) String() string {
	return fmt.Sprintf("firewalld: zone %s port %d/tcp (runtime)", p.Zone, p.Port)
}

func (p FirewalldPort) validate() error {
	if err := validZone(p.Zone); err != nil {
		return err
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("firewalld port %d out of range 1-65535", p.Port)
	}
	return nil
}

func (p FirewalldPort) args(op string) []string {
	return []string{"--zone=" + p.Zone, "--" + op + "-port=" + strconv.Itoa(p.Port) + "/tcp"}
}

func describeAll(ps []FirewalldPort) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// validZone accepts the zone names firewalld accepts and nothing that
// firewall-cmd could read as an option.
func validZone(z string) error {
	if z == "" || len(z) > 64 || z[0] == '-' {
		return fmt.Errorf("firewalld zone %q: not a zone name", z)
	}
	for _, c := range z {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '/') {
			return fmt.Errorf("firewalld zone %q: character %q in a zone name", z, c)
		}
	}
	return nil
}

// firewalld drives a running firewalld with firewall-cmd. It changes the
// runtime configuration only: what it adds is gone after a reload or
// reboot at the latest, and it never writes firewalld's permanent files.
// Zone ports apply to IPv4 and IPv6 alike.
type firewalld struct{ c Commander }

func newFirewalld(c Commander) *firewalld { return &firewalld{c: c} }

// running reports whether firewall-cmd exists and "firewall-cmd --state"
// prints "running".
func (f *firewalld) running(ctx context.Context) bool {
	if _, real := f.c.(*proc.Runner); real && !proc.LookPath("firewall-cmd") {
		return false
	}
	res, err := f.c.Run(ctx, nil, "firewall-cmd", "--state")
	return err == nil && strings.TrimSpace(string(res.Stdout)) == "running"
}

// output runs firewall-cmd with args and returns its trimmed output.
func (f *firewalld) output(ctx context.Context, args ...string) (string, error) {
	res, err := f.c.Run(ctx, nil, "firewall-cmd", args...)
	if err != nil {
		return "", fmt.Errorf("firewall-cmd %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// zones returns the active zones (those bound to an interface or a
// source), or the default zone when none is active.
func (f *firewalld) zones(ctx context.Context) ([]string, error) {
	out, err := f.output(ctx, "--get-active-zones")
	if err != nil {
		return nil, err
	}
	zones, err := parseActiveZones(out)
	if err != nil {
		return nil, err
	}
	if len(zones) > 0 {
		return zones, nil
	}
	def, err := f.output(ctx, "--get-default-zone")
	if err != nil {
		return nil, err
	}
	if err := validZone(def); err != nil {
		return nil, fmt.Errorf("firewall-cmd --get-default-zone: %w", err)
	}
	return []string{def}, nil
}

// parseActiveZones parses "firewall-cmd --get-active-zones": a zone name
// at the start of a line (newer firewalld adds " (default)" or
// " (active)"), then indented "interfaces: ..." and "sources: ..." lines.
func parseActiveZones(out string) ([]string, error) {
	var zones []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		if err := validZone(name); err != nil {
			return nil, fmt.Errorf("firewall-cmd --get-active-zones line %d %q: %w", n, line, err)
		}
		zones = append(zones, name)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("firewall-cmd --get-active-zones: %w", err)
	}
	return zones, nil
}

// open adds each port to every zone that does not have it open yet,
// calling record for each before adding it, and returns those it added. A
// port a zone already had is left alone (and so is not closed later).
func (f *firewalld) open(ctx context.Context, ports []int, record func(FirewalldPort) error) ([]FirewalldPort, error) {
	zones, err := f.zones(ctx)
	if err != nil {
		return nil, err
	}
	var added []FirewalldPort
	for _, z := range zones {
		for _, port := range ports {
			p := FirewalldPort{Zone: z, Port: port}
			if err := p.validate(); err != nil {
				return added, err
			}
			_, err := f.output(ctx, p.args("query")...)
			var ee *proc.ExitError
			switch {
			case err == nil:
				continue // already open, not ours
			case !errors.As(err, &ee) || ee.ExitCode != 1:
				return added, err
			}
			if err := record(p); err != nil {
				return added, err
			}
			if _, err := f.output(ctx, p.args("add")...); err != nil {
				return added, err
			}
			added = append(added, p)
		}
	}
	return added, nil
}

// close removes each port from its zone and returns those removed.
func (f *firewalld) close(ctx context.Context, ports []FirewalldPort) ([]FirewalldPort, error) {
	var (
		removed []FirewalldPort
		errs    []error
	)
	for _, p := range ports {
		if err := p.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := f.output(ctx, p.args("remove")...); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

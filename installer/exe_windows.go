package installer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/inventory"
)

// ExeSpec says how to run one .exe installer: what its manifest says.
type ExeSpec struct {
	// Args are the silent arguments; ForceArgs are added when the
	// install is a downgrade or a rewrite.
	Args, ForceArgs []string
	// Codes says what each exit code means; a code not in it is a failure.
	Codes ExitCodes
	// Version reads the installed version: `HKLM\KEY\VALUE` (a registry
	// value) or a command line for cmd.exe whose first line of output is
	// the version; empty output, a missing value or a non-zero exit mean
	// not installed. Empty: the installed version cannot be read.
	Version string
}

// SmartComponentSpec is an HPE Smart Component's (cpNNNNNN.exe): silent
// with /s, /f to force over the installed version; exit 1 installed, 2
// installed and a reboot needed, 3 nothing done (the software is current
// or its hardware is absent), 0 failed (HP SUM's user guide, "Windows
// smart component return codes").
func SmartComponentSpec(version string) ExeSpec {
	return ExeSpec{
		Args:      []string{"/s"},
		ForceArgs: []string{"/f"},
		Codes: ExitCodes{
			Meaning: map[uint32]ExitMeaning{1: ExitOK, 2: ExitReboot, 3: ExitCurrent},
			Hints: map[uint32]string{
				0: "the Smart Component did not install: see its log under C:\\CPQSYSTEM\\log",
			},
		},
		Version: version,
	}
}

var smartComponent = regexp.MustCompile(`(?i)^cp\d{6}\.exe$`)

// ErrNoExeSpec is returned for an .exe component whose silent arguments
// and exit codes are not known.
var ErrNoExeSpec = errors.New("not an HPE Smart Component (cpNNNNNN.exe), and its manifest gives no args and exit_codes")

// Exe installs .exe components: any installer whose manifest gives its
// silent arguments and exit codes (c.Installer), and HPE Smart Components
// (SmartComponentSpec, by their file name).
// c.VersionCommand is how the installed version is read (ExeSpec.Version).
type Exe struct {
	cfg Config
	// Registry is where a registry version is read.
	Registry inventory.Registry
	// Spec returns how to run c; SpecFor when nil.
	Spec func(c *fleetup.Component) (ExeSpec, error)
}

var _ Installer = (*Exe)(nil)

// NewExe returns the exe installer built on cfg.
func NewExe(cfg Config) *Exe { return &Exe{cfg: cfg} }

// Kind returns fleetup.KindExe.
func (*Exe) Kind() fleetup.Kind { return fleetup.KindExe }

// SpecFor is how c runs: its manifest's args and exit codes
// (c.Installer), else a Smart Component's by its file name, else
// ErrNoExeSpec.
func SpecFor(c *fleetup.Component) (ExeSpec, error) {
	if in := c.Installer; in != nil {
		// The manifest's own: args, force_args, exit_codes.
		spec := ExeSpec{Args: in.Args, ForceArgs: in.ForceArgs, Version: c.VersionCommand, Codes: ExitCodes{Meaning: map[uint32]ExitMeaning{}}}
		for code, meaning := range in.ExitCodes {
			n, err := strconv.ParseUint(code, 10, 32)
			if err != nil {
				return ExeSpec{}, fmt.Errorf("component %s: exit code %q: %w", c.ID, code, err)
			}
			switch meaning {
			case "ok":
				spec.Codes.Meaning[uint32(n)] = ExitOK
			case "reboot":
				spec.Codes.Meaning[uint32(n)] = ExitReboot
			case "current":
				spec.Codes.Meaning[uint32(n)] = ExitCurrent
			case "failed": // as any code not listed
			default:
				return ExeSpec{}, fmt.Errorf("component %s: exit code %s means %q", c.ID, code, meaning)
			}
		}
		return spec, nil
	}
	if smartComponent.MatchString(filepath.Base(c.File)) {
		return SmartComponentSpec(c.VersionCommand), nil
	}
	return ExeSpec{}, ErrNoExeSpec
}

func (e *Exe) spec(c *fleetup.Component) (ExeSpec, error) {
	if e.Spec != nil {
		return e.Spec(c)
	}
	return SpecFor(c)
}

// Probe implements Installer: applicable on Windows when the component's
// spec is known; Installed is what its Version reads.
func (e *Exe) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	if p := notWindows(c, inv); p != nil {
		return *p, nil
	}
	p := fleetup.Probe{ComponentID: c.ID}
	spec, err := e.spec(c)
	if err != nil {
		p.Reason = err.Error()
		return p, nil
	}
	p.Applicable = true
	ref := strings.TrimSpace(spec.Version)
	switch {
	case ref == "":
		p.Reason = "no version source, so not installed"
	case isRegistryRef(ref):
		v, found, err := registryValue(e.Registry, ref)
		if err != nil {
			return p, fmt.Errorf("probe %s: %w", c.ID, err)
		}
		p.Installed = v
		if !found || v == "" {
			p.Reason = ref + " is not set, so not installed"
		} else {
			p.Reason = ref + " is " + v
		}
	default:
		out := newOutputLog(nil)
		code, err := runWin(ctx, e.cfg.runner(), out, nil, "cmd.exe", cmdLine(ref))
		if err != nil {
			return p, fmt.Errorf("probe %s: version command: %w", c.ID, err)
		}
		first, _, _ := strings.Cut(strings.TrimLeft(out.Tail(), "\r\n"), "\n")
		if code != 0 {
			p.Reason = fmt.Sprintf("version command exited with status %d, so not installed", code)
		} else if p.Installed = strings.TrimSpace(first); p.Installed == "" {
			p.Reason = "version command printed nothing, so not installed"
		} else {
			p.Reason = "version command printed " + p.Installed
		}
	}
	return p, nil
}

func isRegistryRef(s string) bool {
	_, ok := cutFold(s, `HKLM\`)
	_, ok2 := cutFold(s, `HKEY_LOCAL_MACHINE\`)
	return ok || ok2
}

// Install implements Installer: the payload with its spec's silent
// arguments (and ForceArgs for a downgrade or a rewrite).
func (e *Exe) Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error) {
	spec, err := e.spec(c)
	if err != nil {
		return Outcome{}, fmt.Errorf("install %s: %w", c.File, err)
	}
	args := append([]string{}, spec.Args...)
	if opts.Downgrade || opts.Rewrite {
		args = append(args, spec.ForceArgs...)
	}
	out := newOutputLog(opts.Log)
	env := []string{"FLEETUP_COMPONENT_ID=" + c.ID, "FLEETUP_COMPONENT_VERSION=" + c.Version}
	code, err := runWin(ctx, e.cfg.runner(), out, env, path, "", args...)
	o := Outcome{Output: out.Tail()}
	if err != nil {
		return o, fmt.Errorf("install %s: %w", c.File, err)
	}
	switch spec.Codes.of(code) {
	case ExitOK:
		o.RebootNeeded = c.Reboot
		return o, nil
	case ExitReboot:
		o.RebootNeeded = true
		return o, nil
	case ExitCurrent:
		o.Output += fmt.Sprintf("\n(fleetup: %s exited %d: nothing to install)\n", filepath.Base(c.File), code)
		return o, nil
	}
	return o, &InstallError{Tool: filepath.Base(c.File), ExitCode: int(code), Message: lastLines(o.Output, 5, nil), Hint: spec.Codes.Hints[code]}
}

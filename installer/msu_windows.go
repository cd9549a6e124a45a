package installer

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/inventory"
)

// MSU installs Windows update packages with `wusa FILE /quiet /norestart`.
//
// Probe says installed when the node's inventory lists the update's KB
// number among its hotfixes (inventory.ManagerHotfix): c.Package, or the
// "kb" number in the file name ("windows10.0-kb5005112-x64.msu"). The
// installed version is then c.Version: an update has no version of its own
// to compare.
type MSU struct {
	cfg Config
	// Program is the wusa to run.
	Program string
}

var _ Installer = (*MSU)(nil)

// NewMSU returns the msu installer built on cfg.
func NewMSU(cfg Config) *MSU { return &MSU{cfg: cfg, Program: "wusa.exe"} }

// Kind returns fleetup.KindMSU.
func (*MSU) Kind() fleetup.Kind { return fleetup.KindMSU }

// Exit codes of wusa beyond Windows Installer's.
const (
	wuAlreadyInstalled = 0x240006   // WU_S_ALREADY_INSTALLED
	wuNotApplicable    = 0x80240017 // WU_E_NOT_APPLICABLE
)

var msuCodes = ExitCodes{
	Meaning: map[uint32]ExitMeaning{0: ExitOK, 3010: ExitReboot, 1641: ExitReboot, wuAlreadyInstalled: ExitCurrent},
	Hints: map[uint32]string{
		wuNotApplicable: "the update does not apply to this computer",
		0x80070422:      "the Windows Update service is disabled",
		1618:            "another installation is in progress; try again when it has finished",
		5:               "access denied",
	},
}

var kbNumber = regexp.MustCompile(`(?i)\bkb(\d+)`)

// KB returns the update's KB number ("KB5005112"), "" when unknown.
func (*MSU) KB(c *fleetup.Component) string {
	if p := strings.TrimSpace(c.Package); p != "" {
		return strings.ToUpper(p)
	}
	if m := kbNumber.FindStringSubmatch(filepath.Base(c.File)); m != nil {
		return "KB" + m[1]
	}
	return ""
}

// Probe implements Installer.
func (m *MSU) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	if p := notWindows(c, inv); p != nil {
		return *p, nil
	}
	p := fleetup.Probe{ComponentID: c.ID, Applicable: true}
	kb := m.KB(c)
	if kb == "" {
		p.Reason = "no KB number in the component or its file name, so not installed"
		return p, nil
	}
	for _, pkg := range inv.Packages {
		if pkg.Manager == inventory.ManagerHotfix && strings.EqualFold(pkg.Name, kb) {
			p.Installed = c.Version
			p.Reason = kb + " is installed"
			return p, nil
		}
	}
	p.Reason = kb + " is not installed"
	return p, nil
}

// Args are wusa's arguments that install path.
func (*MSU) Args(path string) []string { return []string{path, "/quiet", "/norestart"} }

// Install implements Installer: exit 0 is installed, 3010 installed with
// a reboot needed, 0x240006 already installed; anything else is an
// *InstallError (wusa writes no text log: its hint says what the code
// means).
func (m *MSU) Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error) {
	out := newOutputLog(opts.Log)
	code, err := runWin(ctx, m.cfg.runner(), out, nil, m.Program, "", m.Args(path)...)
	o := Outcome{Output: out.Tail()}
	if err != nil {
		return o, fmt.Errorf("install %s: %w", c.File, err)
	}
	switch msuCodes.of(code) {
	case ExitOK:
		o.RebootNeeded = c.Reboot
		return o, nil
	case ExitReboot:
		o.RebootNeeded = true
		return o, nil
	case ExitCurrent:
		o.Output += fmt.Sprintf("\n(fleetup: wusa says %s is already installed)\n", m.KB(c))
		o.Version = c.Version
		return o, nil
	}
	hint := msuCodes.Hints[code]
	if hint == "" {
		hint = fmt.Sprintf("code %#x", code)
	}
	return o, &InstallError{Tool: "wusa", ExitCode: int(code), Message: lastLines(o.Output, 5, nil), Hint: hint}
}

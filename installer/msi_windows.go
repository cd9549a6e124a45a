package installer

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/inventory"
)

// MSI installs Windows Installer packages with
// `msiexec /i FILE /qn /norestart /l*v LOG`.
//
// Probe finds the installed version in both Uninstall views: by the
// product code when c.Package is one ("{GUID}"), else by c.Package or, when
// empty, c.Name as the DisplayName. What the baseline must carry for an
// .msi: Package = the ProductCode (or ProductName), Version = the
// ProductVersion, both from the package's Property table.
type MSI struct {
	cfg Config
	// Program is the msiexec to run; Registry where Probe reads.
	Program  string
	Registry inventory.Registry
}

var _ Installer = (*MSI)(nil)

// NewMSI returns the msi installer built on cfg.
func NewMSI(cfg Config) *MSI { return &MSI{cfg: cfg, Program: "msiexec.exe"} }

// Kind returns fleetup.KindMSI.
func (*MSI) Kind() fleetup.Kind { return fleetup.KindMSI }

// msiCodes are msiexec's exit codes (Windows Installer's error codes).
var msiCodes = ExitCodes{
	Meaning: map[uint32]ExitMeaning{0: ExitOK, 3010: ExitReboot, 1641: ExitReboot},
	Hints: map[uint32]string{
		1602: "the installation was cancelled",
		1603: "a fatal error during installation: see the log lines",
		1618: "another installation is in progress; try again when it has finished",
		1619: "the package could not be opened",
		1620: "the package is not a valid Windows Installer package",
		1625: "a system policy forbids this installation",
		1627: "a function of the installation failed (Wine's msiexec says so of a file that is no package)",
		1633: "the package is not for this processor type",
		1638: "another version of this product is already installed: uninstall it first",
		1639: "msiexec refused its command line",
	},
}

// Probe implements Installer.
func (m *MSI) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	if p := notWindows(c, inv); p != nil {
		return *p, nil
	}
	p := fleetup.Probe{ComponentID: c.ID, Applicable: true}
	product := c.Package
	if product == "" {
		product = c.Name
	}
	if product == "" {
		p.Reason = "the component names no product (code or name), so not installed"
		return p, nil
	}
	v, found, err := uninstallVersion(m.Registry, product)
	if err != nil {
		return p, fmt.Errorf("probe %s: %w", c.ID, err)
	}
	switch {
	case !found:
		p.Reason = fmt.Sprintf("product %s is not installed", product)
	case v == "":
		p.Reason = fmt.Sprintf("product %s is installed without a DisplayVersion", product)
		p.Installed = "0"
	default:
		p.Installed = v
		p.Reason = fmt.Sprintf("product %s %s is installed", product, v)
	}
	return p, nil
}

// Args are msiexec's arguments that install path, logging to log.
// Rewrite reinstalls the same version (REINSTALL=ALL REINSTALLMODE=vomus);
// Windows Installer itself refuses a downgrade unless the package allows
// it, whatever Downgrade says.
func (*MSI) Args(path, log string, opts Options) []string {
	args := []string{"/i", path, "/qn", "/norestart", "/l*v", log}
	if opts.Rewrite {
		args = append(args, "REINSTALL=ALL", "REINSTALLMODE=vomus")
	}
	return args
}

// Install implements Installer. Exit 0 is installed, 3010 and 1641 are
// installed with a reboot needed; anything else is an *InstallError with
// the error lines at the end of the verbose log (written beside the
// payload, read, then removed).
func (m *MSI) Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error) {
	log := path + ".log"
	defer os.Remove(log)
	out := newOutputLog(opts.Log)
	code, err := runWin(ctx, m.cfg.runner(), out, nil, m.Program, "", m.Args(path, log, opts)...)
	b, _ := os.ReadFile(log)
	text := decodeLog(b)
	o := Outcome{Output: tailOf([]byte(out.Tail()+text), OutputTail)}
	if err != nil {
		return o, fmt.Errorf("install %s: %w", c.File, err)
	}
	switch msiCodes.of(code) {
	case ExitOK:
		o.RebootNeeded = c.Reboot
		return o, nil
	case ExitReboot:
		o.RebootNeeded = true
		return o, nil
	}
	return o, &InstallError{Tool: "msiexec", ExitCode: int(code), Message: msiLogMessage(text), Hint: msiCodes.Hints[code]}
}

// msiLogMessage picks the lines of a verbose log that explain a failure:
// the last error lines ("Error 1722. ...", "Return value 3" and the action
// before it), else the log's last lines.
func msiLogMessage(log string) string {
	keep := func(l string) bool {
		return strings.Contains(l, "Error ") || strings.Contains(l, "error ") || strings.Contains(l, "Return value 3") || strings.Contains(l, "-- Installation failed")
	}
	if msg := lastLines(log, 5, keep); msg != "" {
		return msg
	}
	return lastLines(log, 5, nil)
}

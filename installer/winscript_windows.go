package installer

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/inventory"
)

// WinScript runs script components on Windows: the manifest's interpreter
// "powershell" (or "powershell.exe", "pwsh") runs the payload with
// `powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File
// SCRIPT`, "cmd" with `cmd.exe /d /c "SCRIPT"`; without an interpreter the
// payload's extension chooses (.ps1 PowerShell, .cmd and .bat cmd). Any
// other interpreter is split on spaces and gets the payload as its last
// argument, as on Linux.
type WinScript struct {
	cfg Config
	// PowerShell and Cmd are the programs run; tests replace them.
	PowerShell, Cmd string
}

var _ Installer = (*WinScript)(nil)

// NewWinScript returns the Windows script installer built on cfg.
func NewWinScript(cfg Config) *WinScript {
	return &WinScript{cfg: cfg, PowerShell: "powershell.exe", Cmd: "cmd.exe"}
}

// Kind returns fleetup.KindScript.
func (*WinScript) Kind() fleetup.Kind { return fleetup.KindScript }

// interpreter names how c's script runs: "powershell", "cmd", or "" for
// the interpreter's own argv.
func interpreterOf(c *fleetup.Component) string {
	switch strings.ToLower(strings.TrimSpace(c.Interpreter)) {
	case "powershell", "powershell.exe", "pwsh", "pwsh.exe":
		return "powershell"
	case "cmd", "cmd.exe":
		return "cmd"
	case "":
		switch strings.ToLower(filepath.Ext(c.File)) {
		case ".ps1":
			return "powershell"
		case ".cmd", ".bat":
			return "cmd"
		}
	}
	return ""
}

// psArgs are PowerShell's arguments before a -File or -Command.
var psArgs = []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass"}

// Probe is applicable when c.Targets contains "windows" or inv.OS.
// Installed is the first line, trimmed, of what c.VersionCommand prints,
// run by PowerShell (-Command) for a PowerShell script and by cmd.exe
// otherwise; no command, a non-zero exit or no output mean not installed.
func (s *WinScript) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	p := fleetup.Probe{ComponentID: c.ID}
	if !slices.Contains(c.Targets, inventory.WindowsOS) && (inv.OS == "" || !slices.Contains(c.Targets, inv.OS)) {
		p.Reason = fmt.Sprintf("targets %s do not include windows or %s", strings.Join(c.Targets, ", "), orUnknown(inv.OS))
		if len(c.Targets) == 0 {
			p.Reason = "component names no target OS"
		}
		return p, nil
	}
	p.Applicable = true
	vc := strings.TrimSpace(c.VersionCommand)
	if vc == "" {
		p.Reason = "no version command, so not installed"
		return p, nil
	}
	out := newOutputLog(nil)
	var code uint32
	var err error
	if interpreterOf(c) == "powershell" {
		code, err = runWin(ctx, s.cfg.runner(), out, nil, s.PowerShell, "", append(psArgs, "-Command", vc)...)
	} else {
		code, err = runWin(ctx, s.cfg.runner(), out, nil, s.Cmd, cmdLine(vc))
	}
	if err != nil {
		return p, fmt.Errorf("probe %s: version command: %w", c.ID, err)
	}
	if code != 0 {
		p.Reason = fmt.Sprintf("version command exited with status %d, so not installed", code)
		return p, nil
	}
	first, _, _ := strings.Cut(strings.TrimLeft(out.Tail(), "\r\n"), "\n")
	if p.Installed = strings.TrimSpace(first); p.Installed == "" {
		p.Reason = "version command printed nothing, so not installed"
	} else {
		p.Reason = "version command printed " + p.Installed
	}
	return p, nil
}

// Command is the program, its arguments and (for cmd.exe) its whole
// command line that run the script at path.
func (s *WinScript) Command(c *fleetup.Component, path string) (program string, args []string, line string, err error) {
	switch interpreterOf(c) {
	case "powershell":
		return s.PowerShell, append(append([]string{}, psArgs...), "-File", path), "", nil
	case "cmd":
		return s.Cmd, nil, cmdLine(`"` + path + `"`), nil
	}
	argv := strings.Fields(c.Interpreter)
	if len(argv) == 0 {
		return "", nil, "", fmt.Errorf("no interpreter for %s: name one in the manifest (powershell, cmd)", c.File)
	}
	return argv[0], append(argv[1:], path), "", nil
}

// Install runs the script with the environment FLEETUP_COMPONENT_ID and
// FLEETUP_COMPONENT_VERSION. A non-zero exit is an *InstallError with the
// last lines of the output. RebootNeeded is c.Reboot.
func (s *WinScript) Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error) {
	program, args, line, err := s.Command(c, path)
	if err != nil {
		return Outcome{}, err
	}
	env := []string{"FLEETUP_COMPONENT_ID=" + c.ID, "FLEETUP_COMPONENT_VERSION=" + c.Version}
	out := newOutputLog(opts.Log)
	code, err := runWin(ctx, s.cfg.runner(), out, env, program, line, args...)
	o := Outcome{Output: out.Tail()}
	if err != nil {
		return o, fmt.Errorf("install %s: %w", filepath.Base(path), err)
	}
	if code != 0 {
		return o, fmt.Errorf("install %s: %w", filepath.Base(path), &InstallError{Tool: strings.TrimSuffix(filepath.Base(program), ".exe"), ExitCode: int(code), Message: lastLines(o.Output, 5, nil)})
	}
	o.RebootNeeded = c.Reboot
	return o, nil
}

package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"unicode/utf16"

	"golang.org/x/sys/windows/registry"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
)

// ExitMeaning is what a Windows installer's exit code says.
type ExitMeaning int

// What exit codes mean.
const (
	ExitFailed  ExitMeaning = iota // the install failed
	ExitOK                         // installed
	ExitReboot                     // installed; a reboot finishes it
	ExitCurrent                    // nothing to do: already installed (or nothing applies)
)

// ExitCodes maps exit codes to their meaning; a code not in it is a
// failure. Hints say what a failure most likely means.
type ExitCodes struct {
	Meaning map[uint32]ExitMeaning
	Hints   map[uint32]string
}

func (e ExitCodes) of(code uint32) ExitMeaning {
	if m, ok := e.Meaning[code]; ok {
		return m
	}
	return ExitFailed
}

// runWin runs program with args through r, its output (standard output
// and error) to w, and returns its exit code as Windows has it (32 bits).
// cmdLine, when set, is the whole command line as the program gets it
// (cmd.exe's quoting is not the C runtime's that Go writes). An error is
// returned only when the program did not run to an exit (or ctx ended it).
func runWin(ctx context.Context, r *proc.Runner, w io.Writer, env []string, program, cmdLine string, args ...string) (uint32, error) {
	if r == nil {
		r = &proc.Runner{}
	}
	cmd := r.Command(ctx, env, program, args...)
	if cmdLine != "" {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.CmdLine = cmdLine
	}
	cmd.Stdin = nil
	cmd.Stdout = w
	cmd.Stderr = w
	err := cmd.Run()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("%s: %w", program, ctx.Err())
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil {
		fmt.Fprintf(w, "\n(fleetup: %s exited; a process it started still holds its output open)\n", program)
		return uint32(cmd.ProcessState.ExitCode()), nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return uint32(ee.ExitCode()), nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", program, err)
	}
	return 0, nil
}

// decodeLog returns a log file's text: UTF-16LE (Windows Installer's
// verbose logs, with or without a byte order mark) or UTF-8.
func decodeLog(b []byte) string {
	utf16le := len(b) >= 2 && b[0] == 0xff && b[1] == 0xfe
	if !utf16le && len(b) >= 4 && b[1] == 0 && b[3] == 0 {
		utf16le = true
	}
	if !utf16le {
		return strings.TrimPrefix(string(b), "\ufeff")
	}
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0xfe {
		b = b[2:]
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u))
}

// onWindows is the Probe answer for a node that is not Windows: nil when
// it is.
func notWindows(c *fleetup.Component, inv *fleetup.Inventory) *fleetup.Probe {
	if inv.OS == inventory.WindowsOS {
		return nil
	}
	return &fleetup.Probe{ComponentID: c.ID, Reason: fmt.Sprintf("a Windows component; the node runs %s", orUnknown(inv.OS))}
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown OS"
	}
	return s
}

// uninstallVersion finds the DisplayVersion of an installed program in
// both Uninstall views of reg: by its key (an MSI product code,
// "{GUID}") when product is one, else by its DisplayName (case folded).
// found is false when it is not installed.
func uninstallVersion(reg inventory.Registry, product string) (version string, found bool, err error) {
	for _, view := range []string{inventory.UninstallKey, inventory.UninstallKey32} {
		if isProductCode(product) {
			k, err := reg.Open(view + `\` + product)
			if inventory.IsNotExist(err) {
				continue
			}
			if err != nil {
				return "", false, err
			}
			v, _, _ := k.GetStringValue("DisplayVersion")
			k.Close()
			return v, true, nil
		}
		k, err := reg.Open(view)
		if inventory.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		names, err := k.ReadSubKeyNames(-1)
		k.Close()
		if err != nil {
			return "", false, err
		}
		for _, n := range names {
			sk, err := reg.Open(view + `\` + n)
			if err != nil {
				continue
			}
			dn, _, _ := sk.GetStringValue("DisplayName")
			v, _, _ := sk.GetStringValue("DisplayVersion")
			sk.Close()
			if dn != "" && strings.EqualFold(strings.TrimSpace(dn), product) {
				return v, true, nil
			}
		}
	}
	return "", false, nil
}

// isProductCode reports whether s looks like an MSI product code.
func isProductCode(s string) bool {
	return len(s) == 38 && s[0] == '{' && s[37] == '}' && strings.Count(s, "-") == 4
}

// registryValue reads `HKLM\KEY\VALUE` (or HKEY_LOCAL_MACHINE\...) from
// reg as a string (an integer in decimal). found is false when the key or
// the value does not exist.
func registryValue(reg inventory.Registry, ref string) (string, bool, error) {
	rest, ok := cutFold(ref, `HKLM\`)
	if !ok {
		rest, ok = cutFold(ref, `HKEY_LOCAL_MACHINE\`)
	}
	i := strings.LastIndex(rest, `\`)
	if !ok || i <= 0 {
		return "", false, fmt.Errorf(`registry value %q: want HKLM\KEY\VALUE`, ref)
	}
	k, err := reg.Open(rest[:i])
	if inventory.IsNotExist(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer k.Close()
	name := rest[i+1:]
	if s, _, err := k.GetStringValue(name); err == nil {
		return strings.TrimSpace(s), true, nil
	} else if !errors.Is(err, registry.ErrUnexpectedType) {
		if inventory.IsNotExist(err) {
			return "", false, nil
		}
		return "", false, err
	}
	n, _, err := k.GetIntegerValue(name)
	if err != nil {
		return "", false, err
	}
	return fmt.Sprint(n), true, nil
}

func cutFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// cmdLine is the command line that has cmd.exe run command: cmd.exe takes
// the rest of its line after /c as it is.
func cmdLine(command string) string { return `cmd.exe /d /c ` + command }

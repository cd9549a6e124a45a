package baseline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/version"
)

// Manifest describes a component that is not self-describing
// (NAME.component.toml): a script (kind "script", the default), a BMC
// firmware image flashed over Redfish (kind "bmc"), or a Windows
// installer (kinds "msi", "msu", "exe").
type Manifest struct {
	// Kind is "script" (the default), "bmc", "msi", "msu" or "exe".
	Kind          fleetup.Kind `toml:"kind"`
	ID            string       `toml:"id"`
	Name          string       `toml:"name"`
	Version       string       `toml:"version"`
	VersionFormat string       `toml:"version_format"` // default "dpkg" for scripts, "plain" for bmc
	// Script is a script's payload: a file name in the manifest's directory.
	Script string `toml:"script"`
	// File is a BMC image: a file name in the manifest's directory.
	File string `toml:"file"`
	// Interpreter runs the script; default "/bin/sh".
	Interpreter string `toml:"interpreter"`
	// VersionCommand is a shell command printing the installed version;
	// empty output means not installed.
	VersionCommand string `toml:"version_command"`
	// Targets are, for scripts, os-release IDs (ID or ID_LIKE) or "linux"
	// for any; for bmc images, FirmwareInventory member names or ids or
	// SoftwareIds, or the BMC's model ("iLO 5").
	Targets []string `toml:"targets"`
	Reboot  bool     `toml:"reboot"`
	// Requires are the manifest's requires entries as written ("ID >=
	// VERSION", or a bare "ID"); Requirements is what ParseManifest made
	// of them, in the same order.
	Requires     []string              `toml:"requires"`
	Requirements []fleetup.Requirement `toml:"-"`

	// Windows installers (kinds msi, msu, exe; the payload is File):
	// Package is an msi's ProductCode ("{GUID}") or ProductName, or an
	// msu's KB number ("KB5034441"), by which the installed version is
	// found. Args are an exe's silent arguments, ForceArgs added for a
	// downgrade or a rewrite, ExitCodes what each of its exit codes
	// means ("ok", "reboot", "current" (nothing to do), "failed"); an
	// exe's installed version is read by VersionCommand: a registry
	// value `HKLM\KEY\VALUE`, or a cmd.exe command line printing it.
	Package   string            `toml:"package"`
	Args      []string          `toml:"args"`
	ForceArgs []string          `toml:"force_args"`
	ExitCodes map[string]string `toml:"exit_codes"`
}

// windowsKind is true for the kinds of Windows installers.
func windowsKind(k fleetup.Kind) bool {
	return k == fleetup.KindMSI || k == fleetup.KindMSU || k == fleetup.KindExe
}

// ParseManifest parses and checks a component manifest, filling in
// defaults; name is the manifest's file name, for errors. Unknown keys are
// errors naming the key. Requires entries are parsed into Requirements;
// their versions are checked by Load, which knows the format of the
// component each names.
func ParseManifest(data []byte, name string) (*Manifest, error) {
	var m Manifest
	md, err := toml.Decode(string(data), &m)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("manifest %s: unknown key %q", name, keys[0])
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("manifest %s: %s", name, fmt.Sprintf(format, args...))
	}
	if m.ID == "" {
		return nil, bad("missing id")
	}
	if err := checkID(m.ID); err != nil {
		return nil, bad("%v", err)
	}
	if m.Name == "" {
		m.Name = m.ID
	}
	if m.Version == "" {
		return nil, bad("missing version")
	}
	switch m.Kind {
	case "":
		m.Kind = fleetup.KindScript
	case fleetup.KindScript, fleetup.KindBMC, fleetup.KindMSI, fleetup.KindMSU, fleetup.KindExe:
	default:
		return nil, bad("kind %q is not one of \"script\", \"bmc\", \"msi\", \"msu\", \"exe\"", m.Kind)
	}
	if m.VersionFormat == "" {
		m.VersionFormat = "dpkg"
		if m.Kind == fleetup.KindBMC || windowsKind(m.Kind) {
			m.VersionFormat = "plain"
		}
	}
	if err := version.Validate(m.VersionFormat, m.Version); err != nil {
		return nil, bad("%v", err)
	}
	for _, e := range m.Requires {
		r, err := ParseRequirement(e)
		if err != nil {
			return nil, bad("requires %q: %v", e, err)
		}
		m.Requirements = append(m.Requirements, r)
	}
	if m.Kind == fleetup.KindBMC {
		if err := checkBMC(&m, bad); err != nil {
			return nil, err
		}
		return &m, nil
	}
	if windowsKind(m.Kind) {
		if err := checkWindows(&m, bad); err != nil {
			return nil, err
		}
		return &m, nil
	}
	if m.Package != "" || len(m.Args) > 0 || len(m.ForceArgs) > 0 || len(m.ExitCodes) > 0 {
		return nil, bad("package, args, force_args and exit_codes are for Windows installers (kinds msi, msu, exe)")
	}
	if m.File != "" {
		return nil, bad("file is for kind \"bmc\"; a script names its payload with script")
	}
	if err := checkPayloadName("script", m.Script, bad); err != nil {
		return nil, err
	}
	if m.Interpreter == "" {
		m.Interpreter = "/bin/sh"
	}
	switch {
	case m.Interpreter == "powershell" || m.Interpreter == "cmd":
		// A Windows script: PowerShell (-File) or cmd.exe (/c).
		if len(m.Targets) != 1 || m.Targets[0] != "windows" {
			return nil, bad("interpreter %q runs on Windows: targets must be [\"windows\"]", m.Interpreter)
		}
	case !strings.HasPrefix(m.Interpreter, "/") || strings.ContainsAny(m.Interpreter, " \t\n"):
		return nil, bad("interpreter %q must be an absolute path without spaces, or \"powershell\" or \"cmd\" for Windows", m.Interpreter)
	}
	if strings.TrimSpace(m.VersionCommand) == "" {
		return nil, bad("missing version_command")
	}
	if len(m.Targets) == 0 {
		return nil, bad("missing targets (os-release ids such as \"debian\", or \"linux\")")
	}
	for _, t := range m.Targets {
		if !osID(t) {
			return nil, bad("target %q is not an os-release id (lowercase letters, digits, '.', '_', '-')", t)
		}
	}
	return &m, nil
}

// checkBMC checks the keys of a bmc manifest.
func checkBMC(m *Manifest, bad func(string, ...any) error) error {
	switch {
	case m.Script != "", m.Interpreter != "", m.VersionCommand != "":
		return bad("script, interpreter and version_command are for scripts; a bmc image is named by file, and its installed version is read from the BMC")
	case m.Reboot:
		return bad("reboot is for scripts; a BMC resets itself after a flash")
	}
	if err := checkPayloadName("file", m.File, bad); err != nil {
		return err
	}
	if len(m.Targets) == 0 {
		return bad("missing targets (FirmwareInventory names, ids or SoftwareIds, or the BMC's model, e.g. \"iLO 5\")")
	}
	for _, t := range m.Targets {
		if strings.TrimSpace(t) != t || t == "" || len(t) > 128 || strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return bad("target %q must be 1-128 printable characters without leading or trailing space", t)
		}
	}
	return nil
}

// checkWindows checks the keys of a Windows installer's manifest.
func checkWindows(m *Manifest, bad func(string, ...any) error) error {
	if m.Script != "" || m.Interpreter != "" {
		return bad("script and interpreter are for scripts; a %s names its payload with file", m.Kind)
	}
	if err := checkPayloadName("file", m.File, bad); err != nil {
		return err
	}
	if want := "." + string(m.Kind); !strings.EqualFold(filepath.Ext(m.File), want) {
		return bad("file %q of kind %s must end in %s", m.File, m.Kind, want)
	}
	if len(m.Targets) == 0 {
		m.Targets = []string{"windows"}
	}
	if len(m.Targets) != 1 || m.Targets[0] != "windows" {
		return bad("targets of a %s must be [\"windows\"] (the default)", m.Kind)
	}
	if strings.ContainsFunc(m.Package, func(r rune) bool { return r < 0x20 || r == 0x7f }) || len(m.Package) > 256 {
		return bad("package %q must be at most 256 printable characters", m.Package)
	}
	switch m.Kind {
	case fleetup.KindMSI, fleetup.KindMSU:
		if len(m.Args) > 0 || len(m.ForceArgs) > 0 || len(m.ExitCodes) > 0 || m.VersionCommand != "" {
			return bad("args, force_args, exit_codes and version_command are for exe installers: msiexec and wusa have their own")
		}
		if m.Package == "" {
			if m.Kind == fleetup.KindMSU {
				return bad("missing package: the update's KB number (\"KB5034441\"), by which it is found installed")
			}
			return bad("missing package: the msi's ProductCode (\"{GUID}\") or ProductName, by which it is found installed")
		}
	case fleetup.KindExe:
		if m.Package != "" {
			return bad("package is for msi and msu; an exe's installed version is read by version_command")
		}
		for _, a := range append(append([]string(nil), m.Args...), m.ForceArgs...) {
			if a == "" || strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return bad("argument %q must be non-empty printable text", a)
			}
		}
		if len(m.ExitCodes) == 0 {
			return bad("missing exit_codes: what the installer's exit codes mean, e.g. { 0 = \"ok\", 3010 = \"reboot\" }")
		}
		for code, meaning := range m.ExitCodes {
			if _, err := strconv.ParseUint(code, 10, 32); err != nil {
				return bad("exit code %q is not a number from 0 to 4294967295", code)
			}
			switch meaning {
			case "ok", "reboot", "current", "failed":
			default:
				return bad("exit code %s means %q: not one of \"ok\", \"reboot\", \"current\", \"failed\"", code, meaning)
			}
		}
	}
	return nil
}

// checkPayloadName checks a manifest's payload file name (key is "script"
// or "file").
func checkPayloadName(key, name string, bad func(string, ...any) error) error {
	switch {
	case name == "":
		return bad("missing %s", key)
	case strings.ContainsAny(name, `/\`) || name == "." || name == "..":
		return bad("%s %q must be a file name in the same directory, without path separators", key, name)
	case strings.HasPrefix(name, "."), strings.HasSuffix(name, ManifestSuffix):
		return bad("%s %q cannot be a dotfile or a manifest", key, name)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return bad("%s name %q contains control characters", key, name)
	}
	return nil
}

// payloadName is the manifest's payload file: the script or the image.
func (m *Manifest) payloadName() string {
	if m.Kind == fleetup.KindBMC || windowsKind(m.Kind) {
		return m.File
	}
	return m.Script
}

func osID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// loadManifest makes the component a manifest describes, its payload
// read from the file it names.
func loadManifest(dir, name string, m *Manifest) ([]*fleetup.Component, error) {
	what, file := "script", m.payloadName()
	switch {
	case m.Kind == fleetup.KindBMC:
		what = "image"
	case windowsKind(m.Kind):
		what = "file"
	}
	path := filepath.Join(dir, file)
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s %q does not exist", what, file)
	}
	if err != nil {
		return nil, err
	}
	if st.Mode()&os.ModeSymlink != 0 {
		if st, err = os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, file, err)
		}
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %q is not a regular file", what, file)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s %q is empty", what, file)
	}
	c := &fleetup.Component{
		ID:             m.ID,
		Name:           m.Name,
		Version:        m.Version,
		Kind:           m.Kind,
		VersionFormat:  m.VersionFormat,
		Targets:        append([]string(nil), m.Targets...),
		Reboot:         m.Reboot,
		VersionCommand: m.VersionCommand,
		Interpreter:    m.Interpreter,
		Requires:       append([]fleetup.Requirement(nil), m.Requirements...),
		Package:        m.Package,
	}
	if m.Kind == fleetup.KindExe {
		c.Installer = &fleetup.InstallerSpec{Args: m.Args, ForceArgs: m.ForceArgs, ExitCodes: map[string]string{}}
		for k, v := range m.ExitCodes {
			c.Installer.ExitCodes[k] = v
		}
	}
	if err := payload(c, path); err != nil {
		return nil, err
	}
	return []*fleetup.Component{c}, nil
}

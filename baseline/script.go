package baseline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/version"
)

// Manifest describes a component that is not self-describing
// (NAME.component.toml): a script (kind "script", the default), or a BMC
// firmware image flashed over Redfish (kind "bmc").
type Manifest struct {
	// Kind is "script" (the default) or "bmc".
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
	case fleetup.KindScript, fleetup.KindBMC:
	default:
		return nil, bad("kind %q is not one of \"script\", \"bmc\"", m.Kind)
	}
	if m.VersionFormat == "" {
		m.VersionFormat = "dpkg"
		if m.Kind == fleetup.KindBMC {
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
	if m.File != "" {
		return nil, bad("file is for kind \"bmc\"; a script names its payload with script")
	}
	if err := checkPayloadName("script", m.Script, bad); err != nil {
		return nil, err
	}
	if m.Interpreter == "" {
		m.Interpreter = "/bin/sh"
	}
	if !strings.HasPrefix(m.Interpreter, "/") || strings.ContainsAny(m.Interpreter, " \t\n") {
		return nil, bad("interpreter %q must be an absolute path without spaces", m.Interpreter)
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
	if m.Kind == fleetup.KindBMC {
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
	if m.Kind == fleetup.KindBMC {
		what = "image"
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
	}
	if err := payload(c, path); err != nil {
		return nil, err
	}
	return []*fleetup.Component{c}, nil
}

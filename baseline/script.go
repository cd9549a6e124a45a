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

// Manifest describes a script component (NAME.component.toml).
type Manifest struct {
	ID            string `toml:"id"`
	Name          string `toml:"name"`
	Version       string `toml:"version"`
	VersionFormat string `toml:"version_format"` // default "dpkg"
	// Script is the payload: a file name in the manifest's directory.
	Script string `toml:"script"`
	// Interpreter runs the script; default "/bin/sh".
	Interpreter string `toml:"interpreter"`
	// VersionCommand is a shell command printing the installed version;
	// empty output means not installed.
	VersionCommand string `toml:"version_command"`
	// Targets are os-release IDs (ID or ID_LIKE), or "linux" for any.
	Targets []string `toml:"targets"`
	Reboot  bool     `toml:"reboot"`
}

// ParseManifest parses and checks a script component manifest, filling in
// defaults; name is the manifest's file name, for errors. Unknown keys are
// errors naming the key.
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
	if m.VersionFormat == "" {
		m.VersionFormat = "dpkg"
	}
	if err := version.Validate(m.VersionFormat, m.Version); err != nil {
		return nil, bad("%v", err)
	}
	switch {
	case m.Script == "":
		return nil, bad("missing script")
	case strings.ContainsAny(m.Script, `/\`) || m.Script == "." || m.Script == "..":
		return nil, bad("script %q must be a file name in the same directory, without path separators", m.Script)
	case strings.HasPrefix(m.Script, "."), strings.HasSuffix(m.Script, ManifestSuffix):
		return nil, bad("script %q cannot be a dotfile or a manifest", m.Script)
	case strings.ContainsFunc(m.Script, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return nil, bad("script name %q contains control characters", m.Script)
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

func loadScript(dir, name string, m *Manifest) ([]*fleetup.Component, error) {
	path := filepath.Join(dir, m.Script)
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("script %q does not exist", m.Script)
	}
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("script %q is not a regular file", m.Script)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("script %q is empty", m.Script)
	}
	c := &fleetup.Component{
		ID:             m.ID,
		Name:           m.Name,
		Version:        m.Version,
		Kind:           fleetup.KindScript,
		VersionFormat:  m.VersionFormat,
		Targets:        append([]string(nil), m.Targets...),
		Reboot:         m.Reboot,
		VersionCommand: m.VersionCommand,
		Interpreter:    m.Interpreter,
	}
	if err := payload(c, path); err != nil {
		return nil, err
	}
	return []*fleetup.Component{c}, nil
}

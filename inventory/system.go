package inventory

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// DefaultOSRelease lists the os-release files, in the order os-release(5)
// says to try them.
var DefaultOSRelease = []string{"/etc/os-release", "/usr/lib/os-release"}

// System collects the OS (from os-release: ID, ID_LIKE, VERSION_ID,
// PRETTY_NAME), and the hostname, kernel release and machine architecture
// (from uname -n -r -m, run through the runner so a node's own UTS
// namespace is seen).
type System struct {
	// OSRelease lists the files tried in order; DefaultOSRelease if empty.
	OSRelease []string
}

var _ Collector = (*System)(nil)

// Name returns "system".
func (*System) Name() string { return "system" }

// Collect sets inv's OS, OSLike, OSVersion, OSName, Hostname, Kernel and
// Arch. A missing os-release leaves the OS fields as os-release(5) defaults
// them (ID "linux", NAME "Linux") and is reported as an error, as is a
// line it cannot parse (the other lines are still used).
func (s *System) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	var errs []error
	vals, err := s.readOSRelease()
	if err != nil {
		errs = append(errs, err)
	}
	inv.OS = vals["ID"]
	if inv.OS == "" {
		inv.OS = "linux"
	}
	inv.OSLike = strings.Fields(vals["ID_LIKE"])
	inv.OSVersion = vals["VERSION_ID"]
	inv.OSName = vals["PRETTY_NAME"]
	if inv.OSName == "" {
		inv.OSName = vals["NAME"]
	}
	if inv.OSName == "" {
		inv.OSName = "Linux"
	}

	out, err := uname(ctx, r)
	if err != nil {
		errs = append(errs, fmt.Errorf("uname: %w", err))
	} else if host, kernel, arch, err := parseUname(out); err != nil {
		errs = append(errs, err)
	} else {
		inv.Hostname, inv.Kernel, inv.Arch = host, kernel, arch
	}
	return errors.Join(errs...)
}

func (s *System) readOSRelease() (map[string]string, error) {
	paths := s.OSRelease
	if len(paths) == 0 {
		paths = DefaultOSRelease
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read os-release: %w", err)
		}
		vals, err := ParseOSRelease(data)
		if err != nil {
			return vals, fmt.Errorf("%s: %w", p, err)
		}
		return vals, nil
	}
	return nil, fmt.Errorf("no os-release file (tried %s)", strings.Join(paths, ", "))
}

// ParseOSRelease parses an os-release(5) file: KEY=VALUE lines, values
// optionally in single or double quotes with shell backslash escapes,
// comments and blank lines ignored. It returns every well-formed
// assignment, and an error naming the first line it could not parse.
func ParseOSRelease(data []byte) (map[string]string, error) {
	vals := map[string]string{}
	var first error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok || !validKey(key) {
			if first == nil {
				first = fmt.Errorf("line %d: %q is not KEY=VALUE", n, clip(line))
			}
			continue
		}
		v, err := unquote(raw)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("line %d: %s: %w", n, key, err)
			}
			continue
		}
		vals[key] = v
	}
	if err := sc.Err(); err != nil && first == nil {
		first = fmt.Errorf("line %d: %w", n+1, err)
	}
	return vals, first
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquote undoes os-release's shell-style quoting of one value.
func unquote(s string) (string, error) {
	var b strings.Builder
	var quote rune
	esc := false
	for _, c := range s {
		switch {
		case esc:
			b.WriteRune(c)
			esc = false
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				b.WriteRune(c)
			}
		case c == '\\':
			esc = true
		case quote == '"':
			if c == '"' {
				quote = 0
			} else {
				b.WriteRune(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == ' ' || c == '\t':
			return "", errors.New("unquoted whitespace in value")
		default:
			b.WriteRune(c)
		}
	}
	if quote != 0 {
		return "", fmt.Errorf("unterminated %c quote", quote)
	}
	if esc {
		return "", errors.New("trailing backslash")
	}
	return b.String(), nil
}

// parseUname splits the output of uname -n -r -m.
func parseUname(out []byte) (host, kernel, arch string, err error) {
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return "", "", "", fmt.Errorf("uname -n -r -m printed %q, want 3 fields", clip(string(out)))
	}
	return f[0], f[1], f[2], nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

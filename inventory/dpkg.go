package inventory

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// DpkgQueryFormat is the dpkg-query -f format whose output ParseDpkgQuery
// reads: name, version, architecture and status, tab-separated.
const DpkgQueryFormat = `${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n`

// Dpkg collects the packages dpkg has installed (status "installed";
// half-installed, config-files and the like are left out).
type Dpkg struct {
	// AdminDir is passed as dpkg-query --admindir when set (tests).
	AdminDir string
}

var _ Collector = (*Dpkg)(nil)

// Name returns "dpkg".
func (*Dpkg) Name() string { return "dpkg" }

// Collect replaces inv's dpkg packages with what dpkg-query lists. Without
// dpkg-query on PATH it does nothing. Where the commands run in this file
// system (no runner prefix) it reads dpkg's status file itself, as
// dpkg-query does, unless dpkg left updates to fold into it.
func (d *Dpkg) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	if !proc.LookPath("dpkg-query") {
		return nil
	}
	if len(r.Prefix) == 0 {
		dir := d.AdminDir
		if dir == "" {
			dir = r.Getenv("DPKG_ADMINDIR")
		}
		if dir == "" {
			dir = "/var/lib/dpkg"
		}
		if pkgs, ok := readDpkgStatus(dir); ok {
			replacePackages(inv, "dpkg", pkgs)
			return ctx.Err()
		}
	}
	args := []string{"-W", "-f", DpkgQueryFormat}
	if d.AdminDir != "" {
		args = append([]string{"--admindir=" + d.AdminDir}, args...)
	}
	out, err := withEnv(r, "LC_ALL=C").Output(ctx, "dpkg-query", args...)
	if err != nil {
		return fmt.Errorf("list packages: %w", err)
	}
	pkgs, err := ParseDpkgQuery(out)
	replacePackages(inv, "dpkg", pkgs)
	return err
}

// ParseDpkgQuery parses dpkg-query output in DpkgQueryFormat and returns
// the installed packages, Manager "dpkg". It returns the packages of every
// well-formed line, and an error naming the first line that is not four
// tab-separated fields with a name and a version.
func ParseDpkgQuery(out []byte) ([]fleetup.Package, error) {
	var pkgs []fleetup.Package
	var first error
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] == "" || strings.ContainsAny(f[0]+f[1]+f[2], " ") {
			if first == nil {
				first = fmt.Errorf("dpkg-query line %d: %q is not name, version, arch and status separated by tabs", n, clip(line))
			}
			continue
		}
		if f[3] != "installed" {
			continue
		}
		if f[1] == "" {
			if first == nil {
				first = fmt.Errorf("dpkg-query line %d: installed package %q has no version", n, f[0])
			}
			continue
		}
		pkgs = append(pkgs, fleetup.Package{Name: f[0], Version: f[1], Arch: f[2], Manager: "dpkg"})
	}
	if err := sc.Err(); err != nil && first == nil {
		first = fmt.Errorf("dpkg-query line %d: %w", n+1, err)
	}
	return pkgs, first
}

// readDpkgStatus lists the installed packages in the status file of dpkg's
// database at admindir, in dpkg-query's order (name, then architecture).
// ok is false when that file is not the whole truth or cannot be read:
// dpkg keeps changes in admindir/updates until it folds them in.
func readDpkgStatus(admindir string) (pkgs []fleetup.Package, ok bool) {
	if ents, err := os.ReadDir(filepath.Join(admindir, "updates")); err != nil || len(ents) > 0 {
		return nil, false
	}
	f, err := os.Open(filepath.Join(admindir, "status"))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	// Streamed through a small buffer: the file is large (hundreds of
	// KiB), and fresh memory is what costs (page faults), not parsing.
	pkgs, err = parseDpkgStatus(f)
	return pkgs, err == nil
}

// ParseDpkgStatus parses dpkg's status file (deb822 stanzas) and returns
// the installed packages (Status "... installed"), Manager "dpkg", sorted
// by name and architecture as dpkg-query lists them. It returns an error
// for an installed package without a name or a version.
func ParseDpkgStatus(data []byte) ([]fleetup.Package, error) {
	return parseDpkgStatus(bytes.NewReader(data))
}

func parseDpkgStatus(r io.Reader) ([]fleetup.Package, error) {
	var pkgs []fleetup.Package
	var p fleetup.Package
	var status string
	var first error
	flush := func() {
		installed := strings.HasSuffix(status, " installed") && len(strings.Fields(status)) == 3
		if installed {
			if p.Name == "" || p.Version == "" {
				if first == nil {
					first = fmt.Errorf("dpkg status: installed package %q without a name or version", p.Name)
				}
			} else {
				p.Manager = "dpkg"
				pkgs = append(pkgs, p)
			}
		}
		p, status = fleetup.Package{}, ""
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 32<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a continuation line
		}
		k, v, _ := bytes.Cut(line, []byte(":"))
		var field *string
		switch string(k) {
		case "Package":
			field = &p.Name
		case "Version":
			field = &p.Version
		case "Architecture":
			field = &p.Arch
		case "Status":
			field = &status
		default:
			continue
		}
		*field = string(bytes.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	flush()
	sort.SliceStable(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Arch < pkgs[j].Arch
	})
	return pkgs, first
}

package inventory

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
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
// dpkg-query on PATH it does nothing.
func (d *Dpkg) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	if !proc.LookPath("dpkg-query") {
		return nil
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

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

// RPMQueryFormat is the rpm --qf format whose output ParseRPMQuery reads:
// name, [epoch:]version-release and architecture, tab-separated.
const RPMQueryFormat = `%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\n`

// rpmFamily lists the os-release IDs of distributions that install with rpm.
var rpmFamily = []string{"rhel", "fedora", "centos", "suse", "sles", "opensuse", "amzn", "rocky", "almalinux", "ol"}

// RPMBased reports whether a node whose os-release ID is id and ID_LIKE is
// like is rpm-based (rhel, fedora, centos, suse, sles, opensuse, amzn,
// rocky, almalinux, ol, and the "opensuse-*" variants).
func RPMBased(id string, like []string) bool {
	for _, s := range append([]string{id}, like...) {
		for _, f := range rpmFamily {
			if s == f || (f == "opensuse" && strings.HasPrefix(s, "opensuse-")) {
				return true
			}
		}
	}
	return false
}

// RPM collects the packages in the rpm database. It only looks on
// rpm-based nodes (RPMBased), or when DBPath is set: elsewhere rpm is a
// foreign tool whose default database (Debian's is ~/.rpmdb) is not the
// node's, and querying it would create one.
type RPM struct {
	// DBPath is passed as rpm --dbpath when set (tests).
	DBPath string
}

var _ Collector = (*RPM)(nil)

// Name returns "rpm".
func (*RPM) Name() string { return "rpm" }

// Collect replaces inv's rpm packages with what rpm -qa lists. It leaves
// out gpg-pubkey pseudo-packages. Without rpm on PATH, or on a node that
// is not rpm-based (judged from inv.OS, or os-release when inv.OS is
// empty), it does nothing.
func (c *RPM) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	if !proc.LookPath("rpm") {
		return nil
	}
	if c.DBPath == "" && !rpmNode(inv) {
		return nil
	}
	args := []string{"-qa", "--qf", RPMQueryFormat}
	if c.DBPath != "" {
		args = append(args, "--dbpath", c.DBPath)
	}
	out, err := withEnv(r, "LC_ALL=C").Output(ctx, "rpm", args...)
	if err != nil {
		return fmt.Errorf("list packages: %w", err)
	}
	pkgs, err := ParseRPMQuery(out)
	replacePackages(inv, "rpm", pkgs)
	return err
}

func rpmNode(inv *fleetup.Inventory) bool {
	if inv.OS != "" {
		return RPMBased(inv.OS, inv.OSLike)
	}
	for _, p := range DefaultOSRelease {
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		vals, _ := ParseOSRelease(data)
		return RPMBased(vals["ID"], strings.Fields(vals["ID_LIKE"]))
	}
	return false
}

// ParseRPMQuery parses rpm -qa output in RPMQueryFormat and returns the
// packages, Manager "rpm", leaving out gpg-pubkey entries; an architecture
// of "(none)" becomes "". It returns the packages of every well-formed
// line, and an error naming the first line that is not three tab-separated
// fields with a name and a version-release.
func ParseRPMQuery(out []byte) ([]fleetup.Package, error) {
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
		if len(f) != 3 || f[0] == "" || f[1] == "" || strings.ContainsAny(line, " ") ||
			!strings.Contains(f[1], "-") || strings.HasPrefix(f[1], "-") || strings.HasSuffix(f[1], "-") {
			if first == nil {
				first = fmt.Errorf("rpm line %d: %q is not name, [epoch:]version-release and arch separated by tabs", n, clip(line))
			}
			continue
		}
		if f[0] == "gpg-pubkey" {
			continue
		}
		arch := f[2]
		if arch == "(none)" {
			arch = ""
		}
		pkgs = append(pkgs, fleetup.Package{Name: f[0], Version: f[1], Arch: arch, Manager: "rpm"})
	}
	if err := sc.Err(); err != nil && first == nil {
		first = fmt.Errorf("rpm line %d: %w", n+1, err)
	}
	return pkgs, first
}

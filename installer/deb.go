package installer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/version"
)

// Deb installs Debian packages with dpkg.
type Deb struct{ cfg Config }

var _ Installer = (*Deb)(nil)

// NewDeb returns the deb installer built on cfg.
func NewDeb(cfg Config) *Deb { return &Deb{cfg: cfg} }

// Kind returns fleetup.KindDeb.
func (*Deb) Kind() fleetup.Kind { return fleetup.KindDeb }

func (d *Deb) admin() []string {
	if d.cfg.DpkgRoot == "" {
		return nil
	}
	return []string{"--admindir=" + filepath.Join(d.cfg.DpkgRoot, "var", "lib", "dpkg")}
}

// debPackage is the package a component installs: c.Package, else its
// first target.
func debPackage(c *fleetup.Component) string {
	if c.Package != "" {
		return c.Package
	}
	if len(c.Targets) > 0 {
		return c.Targets[0]
	}
	return ""
}

// Probe is applicable when the node has dpkg and c.Arch is "all", empty,
// or dpkg's native architecture. Installed is the version dpkg-query
// reports now for the package (of c.Arch, when several architectures are
// installed).
func (d *Deb) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	p := fleetup.Probe{ComponentID: c.ID}
	if !inv.HasTool("dpkg") {
		p.Reason = "dpkg is not on this node"
		return p, nil
	}
	pkg := debPackage(c)
	if pkg == "" {
		p.Reason = "component names no package"
		return p, nil
	}
	r := d.cfg.runner()
	if c.Arch != "" && c.Arch != "all" {
		out, err := r.Output(ctx, "dpkg", "--print-architecture")
		if err != nil {
			return p, fmt.Errorf("probe %s: %w", c.ID, err)
		}
		if native := strings.TrimSpace(string(out)); native != c.Arch {
			p.Reason = fmt.Sprintf("package is for %s, node is %s", c.Arch, native)
			return p, nil
		}
	}
	installed, err := d.installed(ctx, pkg, c.Arch)
	if err != nil {
		return p, fmt.Errorf("probe %s: %w", c.ID, err)
	}
	p.Applicable = true
	p.Installed = installed
	if installed == "" {
		p.Reason = fmt.Sprintf("package %s is not installed", pkg)
	} else {
		p.Reason = fmt.Sprintf("package %s %s is installed", pkg, installed)
	}
	return p, nil
}

// debQueryFormat is the dpkg-query -f format parseDebQuery reads.
const debQueryFormat = `${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n`

// installed returns the installed version of pkg ("" for none), preferring
// the architecture arch when it is set and not "all". Not installed is
// dpkg-query's exit status 1 ("no packages found", documented in
// dpkg-query(1)), never its message, which is translated.
func (d *Deb) installed(ctx context.Context, pkg, arch string) (string, error) {
	args := append(d.admin(), "-W", "-f", debQueryFormat, "--", pkg)
	res, err := d.cfg.runner().Run(ctx, nil, "dpkg-query", args...)
	if err != nil {
		if exitCode(err) == 1 && ctx.Err() == nil {
			return "", nil
		}
		return "", fmt.Errorf("query package %s: %w", pkg, err)
	}
	return parseDebQuery(res.Stdout, pkg, arch), nil
}

// parseDebQuery picks, from dpkg-query output in debQueryFormat, the
// version of package pkg (its name before any ":arch") whose status is
// "installed": the one of architecture arch (or "all") when arch is set
// and not "all", else the first. Lines of other packages (pkg is a
// pattern to dpkg-query) and malformed lines are skipped; "" when none is
// installed.
func parseDebQuery(out []byte, pkg, arch string) string {
	name, _, _ := strings.Cut(pkg, ":")
	var any string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Split(strings.TrimRight(sc.Text(), "\r"), "\t")
		if len(f) != 4 || f[0] != name || f[3] != "installed" || f[1] == "" {
			continue
		}
		if arch == "" || arch == "all" || f[2] == arch || f[2] == "all" {
			return f[1]
		}
		if any == "" {
			any = f[1]
		}
	}
	return any
}

// debFields reads fields from the control file of the .deb at path.
func (d *Deb) debFields(ctx context.Context, path string) (map[string]string, error) {
	res, err := d.cfg.runner().Run(ctx, nil, "dpkg-deb", "-f", "--", path, "Package", "Version", "Architecture")
	if err != nil {
		if code := exitCode(err); code >= 0 && res != nil {
			return nil, &InstallError{Tool: "dpkg-deb", ExitCode: code,
				Message: lastLines(string(res.Stderr), 2, nil),
				Hint:    "the file is damaged, truncated or not a Debian package"}
		}
		return nil, err
	}
	vals := parseDebFields(res.Stdout)
	if vals["Package"] == "" || vals["Version"] == "" {
		return nil, fmt.Errorf("%s has no Package or Version in its control file", filepath.Base(path))
	}
	return vals, nil
}

// parseDebFields reads `dpkg-deb -f FILE FIELD...` output (with more than
// one field asked, deb822 "Field: value" lines, multi-line values
// continued on lines that start with a space or tab) into a map of the
// fields' first lines. Field names compare case-insensitively in deb822;
// the map uses the spelling Package, Version, Architecture for those.
// Continuation lines and lines without a colon are skipped, and the first
// occurrence of a field wins.
func parseDebFields(out []byte) map[string]string {
	canon := map[string]string{"package": "Package", "version": "Version", "architecture": "Architecture"}
	vals := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		if c, ok := canon[strings.ToLower(k)]; ok {
			k = c
		}
		if _, dup := vals[k]; !dup {
			vals[k] = strings.TrimSpace(v)
		}
	}
	return vals
}

// Install runs dpkg -i on the package at path, non-interactively
// (DEBIAN_FRONTEND=noninteractive, keeping changed configuration files:
// --force-confdef --force-confold). It first reads the package's name and
// version from the file: a package other than the component's is refused,
// and so are a downgrade without opts.Downgrade (ErrDowngrade) and a
// reinstall of the installed version without opts.Rewrite (ErrReinstall),
// which dpkg would do silently. RebootNeeded is c.Reboot, or true when the
// install created /run/reboot-required (Debian's convention).
func (d *Deb) Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error) {
	base := filepath.Base(path)
	fields, err := d.debFields(ctx, path)
	if err != nil {
		return Outcome{}, fmt.Errorf("install %s: %w", base, err)
	}
	pkg, ver := fields["Package"], fields["Version"]
	if want := debPackage(c); want != "" && want != pkg {
		return Outcome{}, fmt.Errorf("install %s: the file holds package %s, the component is package %s", base, pkg, want)
	}
	installed, err := d.installed(ctx, pkg, fields["Architecture"])
	if err != nil {
		return Outcome{}, fmt.Errorf("install %s: %w", base, err)
	}
	if installed != "" {
		cmp, err := version.Compare("dpkg", ver, installed)
		if err != nil {
			return Outcome{}, fmt.Errorf("install %s: %w", base, err)
		}
		switch {
		case cmp < 0 && !opts.Downgrade:
			return Outcome{}, fmt.Errorf("install %s: %s %s is installed, the file has %s: %w", base, pkg, installed, ver, ErrDowngrade)
		case cmp == 0 && !opts.Rewrite:
			return Outcome{}, fmt.Errorf("install %s: %s %s is installed: %w", base, pkg, installed, ErrReinstall)
		}
	}

	var args []string
	env := []string{"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"}
	if root := d.cfg.DpkgRoot; root != "" {
		args = append(args, "--root="+root)
		args = append(args, d.admin()...)
		args = append(args, "--force-script-chrootless")
		env = append(env, "DPKG_ROOT="+root)
		if os.Geteuid() != 0 {
			args = append(args, "--force-not-root")
		}
	}
	args = append(args, "--force-confdef", "--force-confold")
	if opts.Downgrade {
		args = append(args, "--force-downgrade")
	}
	args = append(args, "-i", path)

	const rebootFlag = "/run/reboot-required"
	_, statErr := os.Stat(rebootFlag)
	hadFlag := statErr == nil

	out := newOutputLog(opts.Log)
	err = stream(ctx, d.cfg.runner(), out, env, "dpkg", args...)
	o := Outcome{Output: out.Tail()}
	if err != nil {
		if code := exitCode(err); code >= 0 {
			err = dpkgFailure(code, o.Output)
		}
		return o, fmt.Errorf("install %s: %w", base, err)
	}
	o.RebootNeeded = c.Reboot
	if _, err := os.Stat(rebootFlag); err == nil && !hadFlag && d.cfg.DpkgRoot == "" {
		o.RebootNeeded = true
	}
	return o, nil
}

// dpkgFailure turns dpkg's output after a failed install into an
// InstallError: the last three of its error lines and their indented
// continuations (or its last lines), with a hint for failures whose cause
// is known. The install has failed already (dpkg's exit status says so);
// the text only picks the hint for the person reading the report, which
// is why it may rest on dpkg's (C locale) messages: dpkg has no machine
// readable failure reason.
func dpkgFailure(code int, output string) *InstallError {
	e := &InstallError{Tool: "dpkg", ExitCode: code}
	var lines []string
	inError := false
	for _, l := range strings.Split(output, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case t == "":
		case strings.HasPrefix(t, "Errors were encountered"):
			inError = false
		case strings.HasPrefix(t, "dpkg:") || strings.HasPrefix(t, "dpkg-deb:") || strings.Contains(t, "error"):
			lines, inError = append(lines, t), true
		case inError && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")):
			lines = append(lines, t)
		default:
			inError = false
		}
	}
	e.Message = lastLines(strings.Join(lines, "\n"), 3, nil)
	if e.Message == "" {
		e.Message = lastLines(output, 3, nil)
	}
	low := strings.ToLower(output)
	switch {
	case strings.Contains(low, "dependency problems") || strings.Contains(low, "depends on"):
		e.Hint = "the package's dependencies are not installed"
	case strings.Contains(low, "unexpected end of file") || strings.Contains(low, "not a debian format archive") ||
		strings.Contains(low, "corrupted") || strings.Contains(low, "subprocess dpkg-deb"):
		e.Hint = "the file is damaged, truncated or not a Debian package"
	case strings.Contains(low, "subprocess") && strings.Contains(low, "script"):
		e.Hint = "a maintainer script of the package failed"
	case strings.Contains(low, "lock"):
		e.Hint = "another package manager holds dpkg's lock"
	}
	return e
}

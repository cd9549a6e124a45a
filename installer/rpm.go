package installer

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/version"
)

// RPM installs RPM packages with rpm -U.
type RPM struct{ cfg Config }

var _ Installer = (*RPM)(nil)

// NewRPM returns the rpm installer built on cfg.
func NewRPM(cfg Config) *RPM { return &RPM{cfg: cfg} }

// Kind returns fleetup.KindRPM.
func (*RPM) Kind() fleetup.Kind { return fleetup.KindRPM }

func (r *RPM) db() []string {
	if r.cfg.RPMDBPath == "" {
		return nil
	}
	return []string{"--dbpath", r.cfg.RPMDBPath}
}

// Probe is applicable when the node has rpm and is rpm-based
// (inventory.RPMBased), or Config.RPMDBPath is set, and c.Arch is empty,
// "noarch" or the node's architecture. Installed is what
// rpm -q reports now, [epoch:]version-release; the newest when several
// versions are installed (kernels).
func (r *RPM) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	p := fleetup.Probe{ComponentID: c.ID}
	if !inv.HasTool("rpm") {
		p.Reason = "rpm is not on this node"
		return p, nil
	}
	if r.cfg.RPMDBPath == "" && !inventory.RPMBased(inv.OS, inv.OSLike) {
		p.Reason = fmt.Sprintf("node runs %s, which is not rpm-based", inv.OS)
		return p, nil
	}
	pkg := debPackage(c)
	if pkg == "" {
		p.Reason = "component names no package"
		return p, nil
	}
	if c.Arch != "" && c.Arch != "noarch" && c.Arch != inv.Arch {
		p.Reason = fmt.Sprintf("package is for %s, node is %s", c.Arch, inv.Arch)
		return p, nil
	}
	installed, err := r.installed(ctx, pkg)
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

// installed returns the newest installed version of pkg, "" for none. It
// lists the packages named pkg with rpm -qa, which prints nothing and
// exits 0 when there are none: "rpm -q pkg" would tell "not installed"
// only by its exit status, which also counts other failures, and by a
// translated message.
func (r *RPM) installed(ctx context.Context, pkg string) (string, error) {
	args := append([]string{"-qa", "--qf", rpmQueryFormat}, r.db()...)
	args = append(args, "--", pkg)
	res, err := r.cfg.runner().Run(ctx, nil, "rpm", args...)
	if err != nil {
		return "", fmt.Errorf("query package %s: %w", pkg, err)
	}
	return newestRPM(rpmVersions(string(res.Stdout), pkg))
}

// rpmQueryFormat is the rpm --qf format rpmVersions reads.
const rpmQueryFormat = `%{NAME}\t%{EPOCH}:%{VERSION}-%{RELEASE}\n`

// rpmVersions returns, one a line, the EPOCH:VERSION-RELEASE of the lines
// of rpm output in rpmQueryFormat whose name is exactly pkg (rpm -qa takes
// pkg as a pattern).
func rpmVersions(out, pkg string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		name, evr, ok := strings.Cut(strings.TrimRight(l, "\r"), "\t")
		if ok && name == pkg && evr != "" {
			b.WriteString(evr)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// newestRPM picks the newest of rpm -q's lines "EPOCH:VERSION-RELEASE",
// dropping the "(none):" epoch rpm prints for packages without one.
func newestRPM(out string) (string, error) {
	best := ""
	for _, l := range strings.Split(out, "\n") {
		v := strings.TrimPrefix(strings.TrimSpace(l), "(none):")
		if v == "" {
			continue
		}
		if best == "" {
			best = v
			continue
		}
		c, err := version.Compare("rpm", v, best)
		if err != nil {
			return "", fmt.Errorf("rpm -q printed %q: %w", v, err)
		}
		if c > 0 {
			best = v
		}
	}
	return best, nil
}

// Install runs rpm -U on the package at path, with --oldpackage when
// opts.Downgrade and --replacepkgs when opts.Rewrite; rpm itself refuses
// downgrades and reinstalls without them. It first checks that the file is
// an rpm of the component's package. RebootNeeded is c.Reboot.
func (r *RPM) Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error) {
	base := filepath.Base(path)
	env := []string{"LC_ALL=C"}
	res, err := r.cfg.runner().Run(ctx, nil, "rpm", append(append([]string{"-qp", "--qf", `%{NAME}`}, r.db()...), path)...)
	if err != nil {
		if code := exitCode(err); code >= 0 && res != nil {
			err = &InstallError{Tool: "rpm", ExitCode: code,
				Message: lastLines(string(res.Stderr), 2, rpmErrorLine),
				Hint:    "the file is damaged, truncated or not an RPM package"}
		}
		return Outcome{}, fmt.Errorf("install %s: %w", base, err)
	}
	if name, want := strings.TrimSpace(string(res.Stdout)), debPackage(c); want != "" && name != want {
		return Outcome{}, fmt.Errorf("install %s: the file holds package %s, the component is package %s", base, name, want)
	}
	args := append([]string{"-U"}, r.db()...)
	if opts.Downgrade {
		args = append(args, "--oldpackage")
	}
	if opts.Rewrite {
		args = append(args, "--replacepkgs")
	}
	args = append(args, path)
	out := newOutputLog(opts.Log)
	err = stream(ctx, r.cfg.runner(), out, env, "rpm", args...)
	o := Outcome{Output: out.Tail()}
	if err != nil {
		if code := exitCode(err); code >= 0 {
			err = rpmFailure(code, o.Output)
		}
		return o, fmt.Errorf("install %s: %w", base, err)
	}
	o.RebootNeeded = c.Reboot
	return o, nil
}

// rpmErrorLine keeps rpm's error lines for a report.
func rpmErrorLine(l string) bool {
	// Debian's rpm prints a warning about alien on every call; keep errors.
	return !strings.HasPrefix(l, "rpm: ")
}

// rpmFailure turns rpm's output after a failed install into an
// InstallError, with a hint for failures whose cause is known. rpm's exit
// status has decided already that the install failed; its (C locale)
// messages only choose the hint shown to the reader, for rpm has no
// machine readable failure reason.
func rpmFailure(code int, output string) *InstallError {
	e := &InstallError{Tool: "rpm", ExitCode: code}
	e.Message = lastLines(output, 3, rpmErrorLine)
	low := strings.ToLower(output)
	switch {
	case strings.Contains(low, "newer") && strings.Contains(low, "already installed"):
		e.Hint = "a newer version is installed; downgrading needs the downgrade option"
	case strings.Contains(low, "is already installed"):
		e.Hint = "this version is installed; reinstalling needs the rewrite option"
	case strings.Contains(low, "failed dependencies"):
		e.Hint = "the package's dependencies are not installed"
	case strings.Contains(low, "not an rpm package") || strings.Contains(low, "read failed") || strings.Contains(low, "digest") ||
		strings.Contains(low, "corrupt") || strings.Contains(low, "unpacking of archive failed"):
		e.Hint = "the file is damaged, truncated or not an RPM package"
	case strings.Contains(low, "scriptlet failed"):
		e.Hint = "a scriptlet of the package failed"
	}
	return e
}

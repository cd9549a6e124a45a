//go:build !windows

package installer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/installer/installertest"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
)

const (
	webcamGUID = "b585990a-003e-5270-89d5-3705a17f9a43"
	fakeCab    = "/usr/share/installed-tests/fwupd/fakedevice124.cab"
)

func newMarker(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "fleetup-installer-test-" + hex.EncodeToString(b)
}

func write(t *testing.T, path, data string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// truncated writes the first n bytes of src to a new file in dir.
func truncated(t *testing.T, src, dir string, n int) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return write(t, filepath.Join(dir, "truncated-"+filepath.Base(src)), string(data[:min(n, len(data))]), 0o644)
}

func run(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// fwupdRunner returns a runner whose fwupdtool sees fwupd's test devices,
// with its configuration, history and lock in dir (FWUPD_LOCKDIR, so that
// concurrent tests do not collide on /run/lock/fwupdtool).
func fwupdRunner(t *testing.T, marker, dir, extraConf string) *proc.Runner {
	write(t, filepath.Join(dir, "etc", "fwupd", "fwupd.conf"), "[fwupd]\nTestDevices=true\n"+extraConf, 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "lock"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &proc.Runner{Marker: marker, Env: []string{
		"FWUPD_SYSCONFDIR=" + filepath.Join(dir, "etc"),
		"FWUPD_LOCALSTATEDIR=" + filepath.Join(dir, "var"),
		"FWUPD_LOCKDIR=" + filepath.Join(dir, "lock"),
	}}
}

func fwupdEnv(t *testing.T) installertest.Env {
	testenv.RequireTools(t, "fwupdtool")
	if _, err := os.Stat(fakeCab); err != nil {
		testenv.Skip(t, "needs fwupd-tests ("+fakeCab+")")
	}
	marker := newMarker(t)
	dir := t.TempDir()
	r := fwupdRunner(t, marker, filepath.Join(dir, "node"), "")
	slowRunner := fwupdRunner(t, marker, filepath.Join(dir, "slow"), "[test]\nDecompressDelay=10000\n")
	cfg := installer.Config{Runner: r, FwupdPlugins: []string{"test"}}
	comp := func(id string, guid string) *fleetup.Component {
		return &fleetup.Component{ID: id, Kind: fleetup.KindFwupd, Version: "1.2.4", VersionFormat: "triplet", File: "fakedevice124.cab", Targets: []string{guid}}
	}
	return installertest.Env{
		Installer: installer.NewFwupd(cfg),
		Marker:    marker,
		Inventory: func(ctx context.Context) *fleetup.Inventory {
			return inventory.Collect(ctx, r, inventory.Options{}, &inventory.Tools{}, &inventory.Fwupd{Plugins: []string{"test"}})
		},
		Good:          installertest.Case{Component: comp("webcam", strings.ToUpper(webcamGUID)), Path: fakeCab, Before: "1.2.2"},
		Bad:           installertest.Case{Component: comp("webcam", webcamGUID), Path: truncated(t, fakeCab, dir, 100), ErrContains: "cabinet is damaged"},
		WrongTarget:   comp("other", "12345678-1234-5678-1234-567812345678"),
		Slow:          installertest.Case{Component: comp("webcam", webcamGUID), Path: fakeCab, Ready: "Decompressing"},
		SlowInstaller: installer.NewFwupd(installer.Config{Runner: slowRunner, FwupdPlugins: []string{"test"}}),
		NoReadBack:    "fwupd's fake test device starts at 1.2.2 in every fwupdtool process",
		Verify: func(t *testing.T) {
			out, err := r.Output(context.Background(), "fwupdtool", "get-history", "--json", "--plugins", "test")
			if err != nil {
				t.Fatalf("get-history: %v", err)
			}
			var h struct {
				Devices []struct {
					UpdateState int
					Releases    []struct{ Version string }
				}
			}
			if err := json.Unmarshal(out[strings.IndexByte(string(out), '{'):], &h); err != nil {
				t.Fatalf("get-history: %v\n%s", err, out)
			}
			for _, d := range h.Devices {
				if d.UpdateState == 2 && len(d.Releases) > 0 && d.Releases[0].Version == "1.2.4" {
					return
				}
			}
			t.Errorf("fwupd history shows no successful flash of 1.2.4:\n%s", out)
		},
	}
}

func TestFwupdSuite(t *testing.T) { installertest.Run(t, fwupdEnv(t)) }

// TestFwupdWrongDevice installs a well-formed cabinet for a device the node
// does not have: fwupdtool exits 3 and the error says so.
func TestFwupdWrongDevice(t *testing.T) {
	testenv.RequireTools(t, "fwupdtool", "gcab")
	dir := t.TempDir()
	src := "/usr/share/installed-tests/fwupd/"
	meta, err := os.ReadFile(src + "fakedevice124.metainfo.xml")
	if err != nil {
		testenv.Skip(t, "needs fwupd-tests: "+err.Error())
	}
	bin, err := os.ReadFile(src + "fakedevice124.bin")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "cab", "fakedevice124.metainfo.xml"), strings.ReplaceAll(string(meta), webcamGUID, "12345678-1234-5678-1234-567812345678"), 0o644)
	write(t, filepath.Join(dir, "cab", "fakedevice124.bin"), string(bin), 0o644)
	cab := filepath.Join(dir, "other.cab")
	cmd := exec.Command("gcab", "-c", "-n", cab, "fakedevice124.bin", "fakedevice124.metainfo.xml")
	cmd.Dir = filepath.Join(dir, "cab")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcab: %v\n%s", err, out)
	}
	r := fwupdRunner(t, newMarker(t), filepath.Join(dir, "node"), "")
	in := installer.NewFwupd(installer.Config{Runner: r, FwupdPlugins: []string{"test"}})
	c := &fleetup.Component{ID: "other", Kind: fleetup.KindFwupd, Version: "1.2.4", Targets: []string{"12345678-1234-5678-1234-567812345678"}}
	_, err = in.Install(context.Background(), c, cab, installer.Options{})
	var ie *installer.InstallError
	if !errors.As(err, &ie) || ie.ExitCode != 3 || ie.Message != "No supported devices found" || !strings.Contains(ie.Hint, "no device on this node") {
		t.Fatalf("error = %v (%#v), want fwupdtool's exit 3 'No supported devices found'", err, ie)
	}
	if !strings.HasPrefix(err.Error(), "install other.cab: fwupdtool exited with status 3: No supported devices found (") {
		t.Errorf("error text %q", err)
	}
}

const debControl = "Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: fleetup tests <tests@example.invalid>\nDescription: fleetup installer test package\n"

// buildDeb builds a .deb of pkg at ver holding /usr/share/PKG/version,
// with preinst as its preinst script when not empty.
func buildDeb(t *testing.T, dir, pkg, ver, preinst string) string {
	t.Helper()
	tree := filepath.Join(dir, "build", pkg+"-"+ver)
	write(t, filepath.Join(tree, "DEBIAN", "control"), sprintf(debControl, pkg, ver), 0o644)
	if preinst != "" {
		write(t, filepath.Join(tree, "DEBIAN", "preinst"), "#!/bin/sh\n"+preinst+"\n", 0o755)
	}
	write(t, filepath.Join(tree, "usr", "share", pkg, "version"), ver+"\n", 0o644)
	out := filepath.Join(dir, pkg+"_"+ver+"_all.deb")
	run(t, nil, "dpkg-deb", "--root-owner-group", "-Zgzip", "-b", tree, out)
	return out
}

func sprintf(format string, a ...any) string {
	for _, s := range a {
		format = strings.Replace(format, "%s", s.(string), 1)
	}
	return format
}

// dpkgRoot makes an empty dpkg database under a new directory.
func dpkgRoot(t *testing.T) string {
	root := t.TempDir()
	write(t, filepath.Join(root, "var", "lib", "dpkg", "status"), "", 0o644)
	for _, d := range []string{"updates", "info"} {
		if err := os.MkdirAll(filepath.Join(root, "var", "lib", "dpkg", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func debComponent(id, pkg, ver string) *fleetup.Component {
	return &fleetup.Component{ID: id, Kind: fleetup.KindDeb, Version: ver, VersionFormat: "dpkg", Package: pkg, Targets: []string{pkg}, Arch: "all"}
}

func debEnv(t *testing.T) (installertest.Env, string) {
	testenv.RequireTools(t, "dpkg", "dpkg-deb", "dpkg-query")
	marker := newMarker(t)
	dir, root := t.TempDir(), dpkgRoot(t)
	r := &proc.Runner{Marker: marker}
	good := buildDeb(t, dir, "fleetup-test", "1.0-1", "")
	wrong := debComponent("wrong-arch", "fleetup-test", "1.0-1")
	wrong.Arch = "s390x-not-this-node"
	return installertest.Env{
		Installer: installer.NewDeb(installer.Config{Runner: r, DpkgRoot: root}),
		Marker:    marker,
		Inventory: func(ctx context.Context) *fleetup.Inventory {
			return inventory.Collect(ctx, r, inventory.Options{}, &inventory.Tools{})
		},
		Good:        installertest.Case{Component: debComponent("test", "fleetup-test", "1.0-1"), Path: good},
		Bad:         installertest.Case{Component: debComponent("test", "fleetup-test", "1.0-1"), Path: truncated(t, good, dir, 300), ErrContains: "damaged"},
		WrongTarget: wrong,
		Slow: installertest.Case{Component: debComponent("slow", "fleetup-slow", "1.0-1"),
			Path: buildDeb(t, dir, "fleetup-slow", "1.0-1", "echo preinst-started; sleep 300"), Ready: "preinst-started"},
		Verify: func(t *testing.T) {
			if data, err := os.ReadFile(filepath.Join(root, "usr", "share", "fleetup-test", "version")); err != nil || string(data) != "1.0-1\n" {
				t.Errorf("installed file: %q, %v", data, err)
			}
		},
	}, root
}

func TestDebSuite(t *testing.T) {
	env, _ := debEnv(t)
	installertest.Run(t, env)
}

// TestDebGuards checks what the deb installer refuses that dpkg would do.
func TestDebGuards(t *testing.T) {
	env, _ := debEnv(t)
	ctx := context.Background()
	in := env.Installer
	dir := t.TempDir()
	newer := buildDeb(t, dir, "fleetup-test", "1:0.5-1", "")
	older := buildDeb(t, dir, "fleetup-test", "0.9-1", "")
	if _, err := in.Install(ctx, env.Good.Component, env.Good.Path, installer.Options{}); err != nil {
		t.Fatal(err)
	}
	probe := func(want string) {
		t.Helper()
		p, err := in.Probe(ctx, env.Good.Component, env.Inventory(ctx))
		if err != nil || p.Installed != want {
			t.Fatalf("Probe = %+v, %v; want installed %q", p, err, want)
		}
	}
	tests := []struct {
		name    string
		path    string
		comp    *fleetup.Component
		opts    installer.Options
		wantErr error
		wantMsg string
		after   string
	}{
		{name: "reinstall without rewrite", path: env.Good.Path, wantErr: installer.ErrReinstall, after: "1.0-1"},
		{name: "downgrade without option", path: older, wantErr: installer.ErrDowngrade, after: "1.0-1"},
		{name: "downgrade allowed", path: older, opts: installer.Options{Downgrade: true}, after: "0.9-1"},
		{name: "epoch upgrade", path: newer, after: "1:0.5-1"},
		{name: "other package", path: env.Slow.Path, wantMsg: "the file holds package fleetup-slow, the component is package fleetup-test", after: "1:0.5-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := in.Install(ctx, env.Good.Component, tt.path, tt.opts)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			case tt.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.wantMsg)):
				t.Errorf("error = %v, want %q", err, tt.wantMsg)
			case tt.wantErr == nil && tt.wantMsg == "" && err != nil:
				t.Errorf("error: %v", err)
			}
			probe(tt.after)
		})
	}
}

const rpmSpec = `Name: %s
Version: %s
Release: 1
Summary: fleetup installer test package
License: MIT
BuildArch: noarch
%%description
fleetup installer test package
%s
%%files
`

// buildRPM builds a noarch rpm of name at ver, with no files (so that it
// installs into a temporary database without touching the file system)
// and script as extra spec text (a scriptlet).
func buildRPM(t *testing.T, dir, name, ver, script string) string {
	t.Helper()
	top := filepath.Join(dir, "rpmbuild-"+name+"-"+ver)
	spec := strings.Replace(strings.Replace(strings.Replace(rpmSpec, "%s", name, 1), "%s", ver, 1), "%s", script, 1)
	spec = strings.ReplaceAll(spec, "%%", "%")
	specPath := write(t, filepath.Join(top, name+".spec"), spec, 0o644)
	// HOME keeps rpmbuild from creating ~/.rpmdb.
	run(t, []string{"HOME=" + top}, "rpmbuild", "--quiet", "--define", "_topdir "+top, "-bb", specPath)
	return filepath.Join(top, "RPMS", "noarch", name+"-"+ver+"-1.noarch.rpm")
}

func rpmComponent(id, name, ver string) *fleetup.Component {
	return &fleetup.Component{ID: id, Kind: fleetup.KindRPM, Version: ver + "-1", VersionFormat: "rpm", Package: name, Targets: []string{name}, Arch: "noarch"}
}

func rpmEnv(t *testing.T) installertest.Env {
	testenv.RequireTools(t, "rpm", "rpmbuild")
	marker := newMarker(t)
	dir, db := t.TempDir(), t.TempDir()
	r := &proc.Runner{Marker: marker}
	good := buildRPM(t, dir, "fleetup-test", "1.0", "")
	wrong := rpmComponent("wrong-arch", "fleetup-test", "1.0")
	wrong.Arch = "s390x"
	return installertest.Env{
		Installer: installer.NewRPM(installer.Config{Runner: r, RPMDBPath: db}),
		Marker:    marker,
		Inventory: func(ctx context.Context) *fleetup.Inventory {
			return inventory.Collect(ctx, r, inventory.Options{}, &inventory.System{}, &inventory.Tools{})
		},
		Good:        installertest.Case{Component: rpmComponent("test", "fleetup-test", "1.0"), Path: good},
		Bad:         installertest.Case{Component: rpmComponent("test", "fleetup-test", "1.0"), Path: truncated(t, good, dir, 200), ErrContains: "damaged"},
		WrongTarget: wrong,
		Slow: installertest.Case{Component: rpmComponent("slow", "fleetup-slow", "1.0"),
			Path: buildRPM(t, dir, "fleetup-slow", "1.0", "%%pre -p <lua>\nio.stderr:write(\"pre-started\\n\")\nio.stderr:flush()\nposix.sleep(300)\n"), Ready: "pre-started"},
	}
}

func TestRPMSuite(t *testing.T) { installertest.Run(t, rpmEnv(t)) }

// TestRPMGuards checks that rpm's own refusals come back as clear errors.
func TestRPMGuards(t *testing.T) {
	env := rpmEnv(t)
	ctx := context.Background()
	in := env.Installer
	older := buildRPM(t, t.TempDir(), "fleetup-test", "0.9", "")
	if _, err := in.Install(ctx, env.Good.Component, env.Good.Path, installer.Options{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		opts     installer.Options
		wantHint string
		after    string
	}{
		{name: "reinstall without rewrite", path: env.Good.Path, wantHint: "rewrite option", after: "1.0-1"},
		{name: "downgrade without option", path: older, wantHint: "downgrade option", after: "1.0-1"},
		{name: "downgrade allowed", path: older, opts: installer.Options{Downgrade: true}, after: "0.9-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := in.Install(ctx, env.Good.Component, tt.path, tt.opts)
			var ie *installer.InstallError
			if tt.wantHint != "" && (!errors.As(err, &ie) || !strings.Contains(ie.Hint, tt.wantHint)) {
				t.Errorf("error = %v, want hint %q", err, tt.wantHint)
			}
			if tt.wantHint == "" && err != nil {
				t.Errorf("error: %v", err)
			}
			p, err := in.Probe(ctx, env.Good.Component, env.Inventory(ctx))
			if err != nil || p.Installed != tt.after {
				t.Errorf("Probe = %+v, %v; want installed %q", p, err, tt.after)
			}
		})
	}
}

func scriptComponent(id, state string) *fleetup.Component {
	return &fleetup.Component{ID: id, Kind: fleetup.KindScript, Version: "2.1", VersionFormat: "plain", Targets: []string{"linux"},
		VersionCommand: "cat " + state}
}

func scriptEnv(t *testing.T) installertest.Env {
	testenv.RequireTools(t, "sh")
	marker := newMarker(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	r := &proc.Runner{Marker: marker}
	wrong := scriptComponent("windows-only", state)
	wrong.Targets = []string{"windows"}
	return installertest.Env{
		Installer: installer.NewScript(installer.Config{Runner: r}),
		Marker:    marker,
		Inventory: func(ctx context.Context) *fleetup.Inventory {
			return inventory.Collect(ctx, r, inventory.Options{}, &inventory.System{}, &inventory.Tools{})
		},
		Good: installertest.Case{Component: scriptComponent("tool", state),
			Path: write(t, filepath.Join(dir, "good.sh"), "echo installing $FLEETUP_COMPONENT_ID\necho \"$FLEETUP_COMPONENT_VERSION\" > "+state+"\n", 0o644)},
		Bad: installertest.Case{Component: scriptComponent("tool", state),
			Path: write(t, filepath.Join(dir, "bad.sh"), "echo step one\necho 'boom: disk full' >&2\nexit 3\n", 0o644), ErrContains: "sh exited with status 3: step one; boom: disk full"},
		WrongTarget: wrong,
		Slow: installertest.Case{Component: scriptComponent("slow", state),
			Path: write(t, filepath.Join(dir, "slow.sh"), "echo script-started\nsleep 300 &\nsleep 301\n", 0o644), Ready: "script-started"},
	}
}

func TestScriptSuite(t *testing.T) { installertest.Run(t, scriptEnv(t)) }

func TestByKind(t *testing.T) {
	m := installer.ByKind(installer.Config{})
	for _, k := range []fleetup.Kind{fleetup.KindFwupd, fleetup.KindDeb, fleetup.KindRPM, fleetup.KindScript} {
		if m[k] == nil || m[k].Kind() != k {
			t.Errorf("ByKind()[%q] = %v", k, m[k])
		}
	}
	if len(m) != 4 {
		t.Errorf("ByKind has %d installers, want 4", len(m))
	}
}

package inventory

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// The Package.Manager of what the Windows collectors find.
const (
	// ManagerMSI is a program installed by Windows Installer (its
	// Uninstall key has WindowsInstaller = 1; the key's name is the
	// product code).
	ManagerMSI = "msi"
	// ManagerProgram is any other program of the Uninstall keys.
	ManagerProgram = "program"
	// ManagerHotfix is an installed update, named by its KB number.
	ManagerHotfix = "hotfix"
)

// Programs collects the installed programs of both Uninstall views
// (UninstallKey, Arch "x64", and UninstallKey32, Arch "x86"): every
// subkey with a DisplayName, except the updates listed under their
// program (a ParentKeyName). Name is the DisplayName, Version the
// DisplayVersion, Manager ManagerMSI or ManagerProgram.
type Programs struct{ Registry Registry }

var _ Collector = (*Programs)(nil)

// Name returns "programs".
func (*Programs) Name() string { return "programs" }

// Collect replaces inv's packages of ManagerMSI and ManagerProgram. A
// view that does not exist adds nothing.
func (p *Programs) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	var pkgs []fleetup.Package
	var errs []error
	for _, view := range []struct{ path, arch string }{{UninstallKey, "x64"}, {UninstallKey32, "x86"}} {
		got, err := p.view(ctx, view.path, view.arch)
		if err != nil {
			errs = append(errs, err)
		}
		pkgs = append(pkgs, got...)
	}
	sort.SliceStable(pkgs, func(i, j int) bool { return strings.ToLower(pkgs[i].Name) < strings.ToLower(pkgs[j].Name) })
	replacePackages(inv, ManagerProgram, nil)
	replacePackages(inv, ManagerMSI, pkgs)
	return errors.Join(errs...)
}

func (p *Programs) view(ctx context.Context, path, arch string) ([]fleetup.Package, error) {
	k, err := p.Registry.Open(path)
	if IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf(`HKLM\%s: %w`, path, err)
	}
	defer k.Close()
	names, err := subKeys(k)
	if err != nil {
		return nil, fmt.Errorf(`HKLM\%s: %w`, path, err)
	}
	var pkgs []fleetup.Package
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return pkgs, err
		}
		sk, err := p.Registry.Open(path + `\` + name)
		if err != nil {
			continue
		}
		display := strings.TrimSpace(regString(sk, "DisplayName"))
		parent := regString(sk, "ParentKeyName")
		manager := ManagerProgram
		if n, ok := regInt(sk, "WindowsInstaller"); ok && n == 1 {
			manager = ManagerMSI
		}
		version := strings.TrimSpace(regString(sk, "DisplayVersion"))
		sk.Close()
		if display == "" || parent != "" {
			continue
		}
		pkgs = append(pkgs, fleetup.Package{Name: display, Version: version, Arch: arch, Manager: manager})
	}
	return pkgs, nil
}

// hotfixPackage matches a Component Based Servicing package of an update:
// "Package_for_KB5005112~31bf3856ad364e35~amd64~~17763.2090.1.7" (also
// "Package_1_for_KB...", "Package_for_RollupFix~...": a cumulative update
// has no KB in its name and is left out).
var hotfixPackage = regexp.MustCompile(`(?i)^Package_(?:\d+_)?for_(KB\d+)~[^~]*~[^~]*~[^~]*~(.*)$`)

// cbsInstalled is a CBS package's CurrentState when it is installed.
const cbsInstalled = 0x70

// Hotfixes collects the installed updates from the servicing stack's
// package list (PackagesKey): one Package per KB number (Name "KB5005112",
// Version the package version, Manager ManagerHotfix; in KB order) whose
// package's CurrentState says installed (0x70). It reads the registry rather than
// running wmic qfe or Get-HotFix: wmic is gone from recent Windows
// releases, PowerShell's start-up costs seconds, and neither runs under
// Wine, where the key does not exist and nothing is added.
type Hotfixes struct{ Registry Registry }

var _ Collector = (*Hotfixes)(nil)

// Name returns "hotfixes".
func (*Hotfixes) Name() string { return "hotfixes" }

// Collect replaces inv's packages of ManagerHotfix.
func (h *Hotfixes) Collect(ctx context.Context, r *proc.Runner, inv *fleetup.Inventory) error {
	k, err := h.Registry.Open(PackagesKey)
	if IsNotExist(err) {
		replacePackages(inv, ManagerHotfix, nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf(`HKLM\%s: %w`, PackagesKey, err)
	}
	defer k.Close()
	names, err := subKeys(k)
	if err != nil {
		return fmt.Errorf(`HKLM\%s: %w`, PackagesKey, err)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	var pkgs []fleetup.Package
	for _, name := range names {
		m := hotfixPackage.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		kb := strings.ToUpper(m[1])
		if seen[kb] {
			continue
		}
		sk, err := h.Registry.Open(PackagesKey + `\` + name)
		if err != nil {
			continue
		}
		state, ok := regInt(sk, "CurrentState")
		sk.Close()
		if !ok || state != cbsInstalled {
			continue
		}
		seen[kb] = true
		pkgs = append(pkgs, fleetup.Package{Name: kb, Version: m[2], Manager: ManagerHotfix})
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	replacePackages(inv, ManagerHotfix, pkgs)
	return nil
}

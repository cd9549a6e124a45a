// Package installer installs components on the node it runs on (inside the
// engine). One Installer per component kind:
//
//   - fwupd cabinets through "fwupdtool install" (no daemon needed); only
//     when fwupdtool is absent and fwupdmgr exists does it fall back to
//     "fwupdmgr install", which needs the fwupd daemon;
//   - deb through "dpkg -i";
//   - rpm through "rpm -U" (never --nodeps);
//   - scripts through their manifest's interpreter (/bin/sh by default).
//
// Every command runs through the Config's proc.Runner settings: it carries
// the run's marker, runs non-interactively (stdin is empty) in its own
// process group, and is killed with its group when the context ends, so
// Install returns promptly on cancel with an error wrapping
// context.Canceled. Anything that escapes the group still carries the
// marker for proc.KillMarked.
//
// Probe never changes the node. The fwupd installer reads device versions
// from the inventory it is given, so after an install the caller collects
// the inventory again before probing; deb, rpm and script installers read
// the installed version live from the package database or the version
// command.
//
// Install does not decide whether to install: analysis does. It passes the
// tools the guard flags that Options allow (fwupdtool --allow-older and
// --allow-reinstall, rpm --oldpackage and --replacepkgs, dpkg
// --force-downgrade) and lets the tools refuse the rest; dpkg, which
// downgrades and reinstalls silently, is guarded by the deb installer
// itself (ErrDowngrade, ErrReinstall). A tool that fails yields an
// *InstallError carrying its own explanation.
//
// Every implementation passes the shared suite in installertest.
//
// Written by hand: the read-only reader of fwupd's history database
// (fwupddb.go), the part of SQLite's file format that one table scan
// needs. The SQLite libraries for Go either need cgo (mattn/go-sqlite3:
// the engine is a static binary) or would take the engine past its 8 MiB
// budget (modernc.org/sqlite adds several MiB), all to read a few rows
// once per flash. The reader refuses what it does not know for certain
// (a journal or WAL beside the file, an unexpected page or record) and
// then falls back to fwupdtool get-history; it is fuzzed
// (FuzzParseHistoryDB).
package installer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// Installer installs one kind of component.
type Installer interface {
	Kind() fleetup.Kind
	// Probe says whether c applies to the node described by inv, and which
	// version of it is installed ("" for none). It changes nothing.
	Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error)
	// Install installs the payload at path, whose SHA-256 the caller has
	// already checked against c.SHA256. It returns when the install has
	// finished; every process it started has ended by then or carries the
	// runner's marker, so the engine can stop it.
	Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error)
}

// Options are the per-install choices.
type Options struct {
	Downgrade bool // allow installing an older version
	Rewrite   bool // allow reinstalling the same version
	// Log receives the tools' output (standard output and error, in the
	// order written) as it is produced; may be nil.
	Log io.Writer
}

// Outcome is what an install produced.
type Outcome struct {
	RebootNeeded bool
	// Version is the version the tool itself records as installed, where
	// it keeps such a record (fwupd's history); empty otherwise, and the
	// caller reads the version back with Probe. fwupd's test device, for
	// one, reports its starting version again to every new process.
	Version string
	// Output is the tail (at most OutputTail bytes) of the tools' combined
	// output, for the report.
	Output string
}

// OutputTail is the most output an Outcome keeps.
const OutputTail = 4096

// Config is shared by all installers of one engine.
type Config struct {
	// Runner runs every command; it carries the run's marker. A nil Runner
	// runs commands unmarked.
	Runner *proc.Runner
	// FwupdPlugins, when set, limits fwupdtool to these plugins
	// (--plugins), e.g. "test" in the lab.
	FwupdPlugins []string
	// RPMDBPath and DpkgRoot let tests point the package tools elsewhere;
	// empty on real nodes. With DpkgRoot, dpkg runs with --root and
	// --admindir under it and maintainer scripts run without chroot
	// (--force-script-chrootless, with DPKG_ROOT set, as dpkg's own
	// bootstrap support does); as non-root it adds --force-not-root.
	RPMDBPath string
	DpkgRoot  string
}

func (c Config) runner() *proc.Runner {
	if c.Runner == nil {
		return &proc.Runner{}
	}
	return c.Runner
}

// Errors the deb installer returns when Options do not allow an install
// that dpkg would do without asking.
var (
	ErrDowngrade = errors.New("installing an older version needs the downgrade option")
	ErrReinstall = errors.New("reinstalling the installed version needs the rewrite option")
)

// InstallError is returned when an install tool ran and failed.
type InstallError struct {
	Tool     string // the program that failed, e.g. "fwupdtool"
	ExitCode int
	// Message is the tool's own explanation: its error lines, or the last
	// lines of its output.
	Message string
	// Hint says what the failure most likely means, when known.
	Hint string
}

func (e *InstallError) Error() string {
	s := fmt.Sprintf("%s exited with status %d", e.Tool, e.ExitCode)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Package installer installs components on the node it runs on (inside the
// engine). One Installer per component kind: fwupd cabinets through
// fwupdtool (or fwupdmgr), deb through dpkg, rpm through rpm, scripts
// through their manifest's interpreter. Every implementation passes the
// shared suite in installertest.
package installer

import (
	"context"
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
	// Log receives the tools' output as it is produced; may be nil.
	Log io.Writer
}

// Outcome is what an install produced.
type Outcome struct {
	RebootNeeded bool
	// Output is the tail of the tools' combined output, for the report.
	Output string
}

// Config is shared by all installers of one engine.
type Config struct {
	// Runner runs every command; it carries the run's marker.
	Runner *proc.Runner
	// FwupdPlugins, when set, limits fwupdtool to these plugins
	// (--plugins), e.g. "test" in the lab.
	FwupdPlugins []string
	// RPMDBPath and DpkgRoot let tests point the package tools elsewhere;
	// empty on real nodes.
	RPMDBPath string
	DpkgRoot  string
}

// ByKind returns the installers for every kind, built on cfg.
func ByKind(cfg Config) map[fleetup.Kind]Installer {
	panic("implemented in registry.go")
}

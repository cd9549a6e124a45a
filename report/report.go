// Package report turns a recorded run (a *store.RunDetail) into the
// reports HP SUM has: the deploy report, the inventory report, the
// firmware report and the failed-dependencies report, each as one
// self-contained HTML file, indented JSON or CSV.
//
// Every report is built first as a documented Go struct (DeployReport,
// InventoryReport, FirmwareReport, DependencyReport): the JSON format is
// that struct as it is, and its field names are a stable interface. The
// HTML format renders the same struct through html/template, with inline
// CSS and no reference to anything outside the file; the CSV format
// flattens it to one row per node and item, with a leading ' on every cell that
// a spreadsheet would take for a formula.
//
// Nothing here reads a database or a file: the caller (the CLI, package
// web) fetches the run and hands it over.
package report

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/fleetup/fleetup/store"
)

// Kind is which report: KindDeploy, KindInventory, KindFirmware or
// KindFailedDependencies.
type Kind string

// The report kinds.
const (
	// KindDeploy is what each node's deploy did, component by component.
	KindDeploy Kind = "deploy"
	// KindInventory is what each node is and has.
	KindInventory Kind = "inventory"
	// KindFirmware is every firmware item of every node, against the
	// baseline where the run's components target it.
	KindFirmware Kind = "firmware"
	// KindFailedDependencies is every requirement that was not met.
	KindFailedDependencies Kind = "failed-dependencies"
)

// Kinds lists every report kind, in the order usage texts name them.
func Kinds() []Kind {
	return []Kind{KindDeploy, KindInventory, KindFirmware, KindFailedDependencies}
}

// Format is how a report is written: FormatHTML, FormatJSON or FormatCSV.
type Format string

// The report formats.
const (
	FormatHTML Format = "html"
	FormatJSON Format = "json"
	FormatCSV  Format = "csv"
)

// Formats lists every report format.
func Formats() []Format { return []Format{FormatHTML, FormatJSON, FormatCSV} }

// ErrUnknownKind and ErrUnknownFormat are wrapped by ParseKind,
// ParseFormat and Write for a value they do not know.
var (
	ErrUnknownKind   = errors.New("unknown report kind")
	ErrUnknownFormat = errors.New("unknown report format")
)

// ParseKind reads a report kind, in any case. An unknown one is an error
// wrapping ErrUnknownKind that lists the valid kinds.
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.ToLower(strings.TrimSpace(s)))
	for _, v := range Kinds() {
		if k == v {
			return k, nil
		}
	}
	names := make([]string, 0, 4)
	for _, v := range Kinds() {
		names = append(names, string(v))
	}
	return "", fmt.Errorf("%w %q: want one of %s", ErrUnknownKind, s, strings.Join(names, ", "))
}

// ParseFormat reads a report format, in any case. An unknown one is an
// error wrapping ErrUnknownFormat that lists the valid formats.
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	for _, v := range Formats() {
		if f == v {
			return f, nil
		}
	}
	return "", fmt.Errorf("%w %q: want one of html, json, csv", ErrUnknownFormat, s)
}

// ContentType is the HTTP Content-Type of a report in format f;
// "application/octet-stream" for an unknown format.
func ContentType(f Format) string {
	switch f {
	case FormatHTML:
		return "text/html; charset=utf-8"
	case FormatJSON:
		return "application/json"
	case FormatCSV:
		return "text/csv; charset=utf-8"
	}
	return "application/octet-stream"
}

// unsafeName is what FileName replaces in a run id: anything but letters,
// digits, '.', '_' and '-'.
var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// FileName is the file name of a report: "fleetup-RUNID-KIND.FORMAT", as
// in fleetup-20261202-061500-ab12cd-deploy.html. A run id is made safe
// as a file name (no separators, no leading dot) whatever it holds.
func FileName(runID string, k Kind, f Format) string {
	id := strings.TrimLeft(unsafeName.ReplaceAllString(runID, "_"), ".")
	if id == "" {
		id = "run"
	}
	return "fleetup-" + id + "-" + string(k) + "." + string(f)
}

// Version is the fleetup version reports name in their header. It is the
// main module's version from the build information (a tagged release or
// a pseudo-version), "dev" without one; a program that knows better (its
// link-time version) sets it once at start-up, before any report is
// written.
var Version = buildVersion()

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Write writes the report of kind k on run in format f to w. It fails
// for a nil run, an unknown kind or format, and when w fails.
func Write(w io.Writer, run *store.RunDetail, k Kind, f Format) error {
	if run == nil {
		return errors.New("report: no run")
	}
	if !slices.Contains(Kinds(), k) {
		return fmt.Errorf("report: %w %q", ErrUnknownKind, k)
	}
	if !slices.Contains(Formats(), f) {
		return fmt.Errorf("report: %w %q", ErrUnknownFormat, f)
	}
	rep := build(run, k)
	var err error
	switch f {
	case FormatJSON:
		err = writeJSON(w, rep)
	case FormatCSV:
		err = writeCSV(w, rep)
	case FormatHTML:
		err = writeHTML(w, rep)
	}
	if err != nil {
		return fmt.Errorf("report %s %s of run %s: %w", k, f, run.ID, err)
	}
	return nil
}

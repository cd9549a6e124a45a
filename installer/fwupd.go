package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// Fwupd installs fwupd cabinet archives.
type Fwupd struct{ cfg Config }

var _ Installer = (*Fwupd)(nil)

// NewFwupd returns the fwupd installer built on cfg.
func NewFwupd(cfg Config) *Fwupd { return &Fwupd{cfg: cfg} }

// Kind returns fleetup.KindFwupd.
func (*Fwupd) Kind() fleetup.Kind { return fleetup.KindFwupd }

// Probe finds an updatable device in inv.Devices that has one of
// c.Targets' GUIDs (compared case-insensitively). Installed is that
// device's version and Reason names it.
func (f *Fwupd) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	p := fleetup.Probe{ComponentID: c.ID}
	want := map[string]bool{}
	for _, g := range c.Targets {
		if g = strings.ToLower(strings.TrimSpace(g)); g != "" {
			want[g] = true
		}
	}
	if len(want) == 0 {
		p.Reason = "component names no device GUID"
		return p, nil
	}
	var notUpdatable *fleetup.Device
	for i := range inv.Devices {
		d := &inv.Devices[i]
		for _, g := range d.GUIDs {
			if !want[strings.ToLower(g)] {
				continue
			}
			if !d.Updatable {
				notUpdatable = d
				continue
			}
			p.Applicable = true
			p.Installed = d.Version
			p.Reason = fmt.Sprintf("device %q (%s, plugin %s, GUID %s) has version %s", d.Name, d.ID, d.Plugin, strings.ToLower(g), d.Version)
			return p, nil
		}
	}
	if notUpdatable != nil {
		p.Reason = fmt.Sprintf("device %q (%s) matches but fwupd cannot update it", notUpdatable.Name, notUpdatable.ID)
		return p, nil
	}
	p.Reason = fmt.Sprintf("no updatable fwupd device has GUID %s", strings.Join(c.Targets, ", "))
	return p, nil
}

// Install flashes the cabinet at path with fwupdtool (fwupdmgr when
// fwupdtool is absent). RebootNeeded is c.Reboot, or true when fwupd says
// a reboot or shutdown is needed.
func (f *Fwupd) Install(ctx context.Context, c *fleetup.Component, path string, opts Options) (Outcome, error) {
	tool := "fwupdtool"
	args := []string{"install", path, "--no-reboot-check"}
	switch {
	case proc.LookPath("fwupdtool"):
		if len(f.cfg.FwupdPlugins) > 0 {
			args = append(args, "--plugins", strings.Join(f.cfg.FwupdPlugins, ","))
		}
	case proc.LookPath("fwupdmgr"):
		tool = "fwupdmgr"
		args = append(args, "--assume-yes")
	default:
		return Outcome{}, fmt.Errorf("install %s: neither fwupdtool nor fwupdmgr is on this node", filepath.Base(path))
	}
	if opts.Downgrade {
		args = append(args, "--allow-older")
	}
	if opts.Rewrite {
		args = append(args, "--allow-reinstall")
	}
	out := newOutputLog(opts.Log)
	started := time.Now().Add(-2 * time.Second) // history times are whole seconds
	err := stream(ctx, f.cfg.runner(), out, []string{"NO_COLOR=1", "LC_ALL=C"}, tool, args...)
	o := Outcome{Output: out.Tail()}
	if err != nil {
		if code := exitCode(err); code >= 0 {
			err = fwupdFailure(tool, code, o.Output)
		}
		return o, fmt.Errorf("install %s: %w", filepath.Base(path), err)
	}
	// fwupd's history is the machine-readable record of what the install
	// did (the version written, and whether it waits for a reboot);
	// fwupdtool install prints no such record, so its messages remain the
	// fallback for the reboot, and for fwupdmgr the only source.
	o.RebootNeeded = c.Reboot || fwupdWantsReboot(o.Output)
	if tool == "fwupdtool" {
		if h, herr := f.history(ctx, c.ID, started); herr == nil {
			o.Version = h.Version
			o.RebootNeeded = o.RebootNeeded || h.Reboot
		}
	}
	return o, nil
}

// history is what fwupd's history records of the installs of release id
// since the given time (see pickHistory). It reads fwupd's history
// database directly where the commands run in this file system (no runner
// prefix), and asks `fwupdtool get-history` when that finds nothing or
// cannot be read with certainty.
func (f *Fwupd) history(ctx context.Context, id string, since time.Time) (historyResult, error) {
	r := f.cfg.runner()
	if len(r.Prefix) == 0 {
		db := historyDBPath(r.Getenv("FWUPD_LOCALSTATEDIR"))
		if h, err := historyDB(db, id, since); err == nil && (h.Version != "" || h.Reboot) {
			return h, nil
		}
	}
	args := []string{"get-history", "--json"}
	if len(f.cfg.FwupdPlugins) > 0 {
		// The history is fwupd's database whatever the plugins; loading
		// fewer of them makes the call cheaper.
		args = append(args, "--plugins", strings.Join(f.cfg.FwupdPlugins, ","))
	}
	res, err := r.Run(ctx, nil, "fwupdtool", args...)
	if err != nil && res == nil {
		return historyResult{}, err
	}
	entries, err := parseHistoryJSON(res.Stdout)
	if err != nil {
		return historyResult{}, err
	}
	return pickHistory(entries, id, since), nil
}

// ParseHistoryVersion finds, in `fwupdtool get-history --json` output, the
// newest successful (UpdateState 2) entry for release id made at or after
// since, and returns its version ("" when there is none).
func ParseHistoryVersion(out []byte, id string, since time.Time) (string, error) {
	entries, err := parseHistoryJSON(out)
	if err != nil {
		return "", err
	}
	return pickHistory(entries, id, since).Version, nil
}

// parseHistoryJSON reads the entries of `fwupdtool get-history --json`
// output (the JSON document from its first "{"; what precedes it is
// progress), one per device entry that names a release, with that
// release's id and version.
func parseHistoryJSON(out []byte) ([]HistoryEntry, error) {
	start := bytes.IndexByte(out, '{')
	if start < 0 {
		return nil, fmt.Errorf("no JSON in fwupd history")
	}
	var doc struct {
		Devices []struct {
			Created     int64
			UpdateState int64
			Releases    []struct {
				AppstreamID string `json:"AppstreamId"`
				Version     string
			}
		}
	}
	if err := json.Unmarshal(out[start:], &doc); err != nil {
		return nil, fmt.Errorf("fwupd history: %w", err)
	}
	var entries []HistoryEntry
	for _, d := range doc.Devices {
		if len(d.Releases) == 0 {
			continue
		}
		entries = append(entries, HistoryEntry{AppstreamID: d.Releases[0].AppstreamID, UpdateState: d.UpdateState, Created: d.Created, VersionNew: d.Releases[0].Version})
	}
	return entries, nil
}

// fwupdProgress matches fwupdtool's progress lines, "Writing…: 50%".
var fwupdProgress = regexp.MustCompile(`^[\p{L} ]+(…|\.\.\.)?: *\d+%$`)

// fwupdFailure turns fwupd's output after a failed install into an
// InstallError: its last non-progress line, and a hint for the failures
// whose cause is known. The exit status has decided that the install
// failed, and exit status 3 (nothing supported) picks its hint; the other
// hints rest on fwupd's (C locale) messages, for it reports no other
// machine-readable reason. They are for the reader only.
func fwupdFailure(tool string, code int, output string) *InstallError {
	e := &InstallError{Tool: tool, ExitCode: code}
	e.Message = lastLines(output, 1, func(l string) bool { return !fwupdProgress.MatchString(l) })
	low := strings.ToLower(e.Message)
	switch {
	case code == 3 || strings.Contains(low, "no supported devices"):
		e.Hint = "no device on this node accepts this firmware"
	case strings.Contains(low, "another instance") || strings.Contains(low, "locked"):
		e.Hint = "another fwupd instance holds the lock; retry when it has finished"
	case strings.Contains(low, "older") || strings.Contains(low, "downgrade"):
		e.Hint = "the firmware is older than the device's; downgrading needs the downgrade option"
	case strings.Contains(low, "already") || strings.Contains(low, "reinstall") || strings.Contains(low, "same version"):
		e.Hint = "the device already has this version; reinstalling needs the rewrite option"
	case strings.Contains(low, "cab") || strings.Contains(low, "failed read") || strings.Contains(low, "archive") ||
		strings.Contains(low, "no data") || strings.Contains(low, "metainfo") || strings.Contains(low, "checksum"):
		e.Hint = "the cabinet is damaged, truncated or not a firmware archive"
	}
	return e
}

// fwupdReboot matches fwupd's messages that a reboot or shutdown is
// needed to finish an update (and not its "Restarting device…" progress).
var fwupdReboot = regexp.MustCompile(`(?i)(requires? (a reboot|a restart|the system to (shutdown|shut down|reboot|restart))|needs? (a )?(reboot|shutdown)|(reboot|restart) to complete|(restart|reboot) (the|your) (system|computer)|pending reboot|reboot is pending)`)

// fwupdWantsReboot reports whether fwupd's output says the update needs a
// reboot or a shutdown.
func fwupdWantsReboot(output string) bool { return fwupdReboot.MatchString(output) }

// Package fleetup holds the domain types every other package shares: the
// components of a baseline, what a node reports about itself, the decision
// taken for each component on each node, and the events a run emits.
//
// The packages beside it each own one concern: baseline reads a baseline
// directory, version compares versions, target parses node addresses,
// transport reaches a node, engine is the small program that runs on the
// node, installer and inventory do the node-side work, firewall opens and
// closes ports, depot is the manager's web server, orchestrator drives a
// run, and journal remembers what must be cleaned up after a crash.
package fleetup

import (
	"fmt"
	"time"
)

// Kind is the format of a component, and so the installer that handles it.
type Kind string

// The component kinds fleetup knows.
const (
	KindFwupd  Kind = "fwupd"  // a fwupd/LVFS cabinet archive (.cab)
	KindDeb    Kind = "deb"    // a Debian package (.deb)
	KindRPM    Kind = "rpm"    // an RPM package (.rpm)
	KindScript Kind = "script" // a plain script described by a manifest
	KindMSI    Kind = "msi"    // a Windows Installer package (.msi)
	KindMSU    Kind = "msu"    // a Windows update package (.msu)
	KindExe    Kind = "exe"    // a Windows installer program (.exe) described by a manifest, e.g. an HPE Smart Component
	// KindBMC is a BMC firmware image described by a manifest, flashed
	// over Redfish (no engine runs on a BMC).
	KindBMC Kind = "bmc"
)

// Component is one deployable item of a baseline. Its payload is a single
// file, identified by its SHA-256; the engine on a node refuses a payload
// whose hash differs.
type Component struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    Kind   `json:"kind"`
	// VersionFormat names the rules used to compare versions of this
	// component (see package version): "dpkg", "rpm", or one of fwupd's
	// formats ("triplet", "quad", "pair", "plain", ...).
	VersionFormat string `json:"version_format"`
	// File is the payload's base name in the baseline directory.
	File string `json:"file"`
	// Path is the payload's path on the manager. It never leaves the manager.
	Path   string `json:"-"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Targets says what the component applies to: device GUIDs for fwupd,
	// the package name for deb and rpm, OS ids ("debian", "rhel", "linux")
	// for scripts.
	Targets []string `json:"targets"`
	// Package and Arch are set for deb and rpm components; Package also
	// for msi (its ProductCode or ProductName) and msu (its KB number).
	Package string `json:"package,omitempty"`
	Arch    string `json:"arch,omitempty"`
	// Reboot is true when the component needs a reboot to take effect.
	Reboot bool `json:"reboot,omitempty"`
	// VersionCommand is, for scripts, the shell command whose standard
	// output is the installed version (empty output: not installed).
	VersionCommand string `json:"version_command,omitempty"`
	// Interpreter runs a script component's payload ("/bin/sh" if empty).
	Interpreter string `json:"interpreter,omitempty"`
	// Requires lists what must be on a node, at a matching version, before
	// this component is installed there: another component of the
	// baseline, or something the node already has. A run installs a
	// component after what it requires (see orchestrator.DependencyPolicy
	// for what happens when a requirement is not met).
	Requires []Requirement `json:"requires,omitempty"`
	// Installer says how an exe component's installer runs silently
	// (its manifest's args, force_args and exit_codes); nil for every
	// other kind.
	Installer *InstallerSpec `json:"installer,omitempty"`
}

// InstallerSpec is how a Windows .exe installer runs: its silent
// arguments, the arguments added for a downgrade or a rewrite, and what
// each exit code (in decimal) means: "ok", "reboot" (installed, a reboot
// needed), "current" (nothing to do) or "failed". A code not listed is a
// failure.
type InstallerSpec struct {
	Args      []string          `json:"args,omitempty"`
	ForceArgs []string          `json:"force_args,omitempty"`
	ExitCodes map[string]string `json:"exit_codes,omitempty"`
}

func (c *Component) String() string { return fmt.Sprintf("%s %s (%s)", c.ID, c.Version, c.File) }

// Requirement is one entry of a component's requires: the component ID at
// a version that compares with Version as Op says. Op is one of ">=", ">",
// "=", "<=", "<", or empty (with an empty Version) for any version at all.
// Versions compare in the required component's version format.
type Requirement struct {
	ID      string `json:"id"`
	Op      string `json:"op,omitempty"`
	Version string `json:"version,omitempty"`
}

// String is the requirement as a manifest writes it: "ID >= VERSION", or
// "ID" for any version.
func (r Requirement) String() string {
	if r.Op == "" {
		return r.ID
	}
	return r.ID + " " + r.Op + " " + r.Version
}

// Inventory is what a node reports about itself.
type Inventory struct {
	Hostname  string    `json:"hostname"`
	OS        string    `json:"os"` // os-release ID, e.g. "debian"
	OSLike    []string  `json:"os_like,omitempty"`
	OSVersion string    `json:"os_version"`
	OSName    string    `json:"os_name"`
	Kernel    string    `json:"kernel"`
	Arch      string    `json:"arch"` // uname -m
	Packages  []Package `json:"packages,omitempty"`
	Devices   []Device  `json:"devices,omitempty"`
	// Tools lists the installer tools found on the node (fwupdtool,
	// fwupdmgr, dpkg, rpm, sh), so that analysis can tell "not applicable"
	// from "cannot install here".
	Tools []string `json:"tools,omitempty"`
	// BMC is set for a BMC node (Redfish): its manager, firmware and
	// system. A BMC node has no OS fields, packages or devices.
	BMC *BMCInventory `json:"bmc,omitempty"`
	// Warnings are collector failures that did not stop the inventory.
	Warnings []string `json:"warnings,omitempty"`
}

// BMCInventory is what a BMC reports over Redfish.
type BMCInventory struct {
	// Vendor is the service root's Vendor ("HPE", "Dell", "OpenBMC"),
	// or the name of its Oem section when it has no Vendor.
	Vendor         string `json:"vendor,omitempty"`
	RedfishVersion string `json:"redfish_version,omitempty"`
	// Manager is the BMC itself (the first member of Managers).
	Manager BMCManager `json:"manager"`
	// Firmware is the UpdateService's FirmwareInventory.
	Firmware []Firmware `json:"firmware,omitempty"`
	// System is the first member of Systems; nil when there is none.
	System *BMCSystem `json:"system,omitempty"`
}

// BMCManager is a Redfish Manager resource.
type BMCManager struct {
	ID              string `json:"id"`
	Model           string `json:"model,omitempty"`
	FirmwareVersion string `json:"firmware_version,omitempty"`
}

// Firmware is one member of a BMC's FirmwareInventory.
type Firmware struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	SoftwareID string `json:"software_id,omitempty"`
	Updateable bool   `json:"updateable"`
}

// BMCSystem is the server a BMC manages (a Redfish ComputerSystem).
type BMCSystem struct {
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	SerialNumber string `json:"serial_number,omitempty"`
	PowerState   string `json:"power_state,omitempty"`
	BIOSVersion  string `json:"bios_version,omitempty"`
}

// HasTool reports whether the node has the named installer tool.
func (inv *Inventory) HasTool(name string) bool {
	for _, t := range inv.Tools {
		if t == name {
			return true
		}
	}
	return false
}

// Package is an installed software package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	Manager string `json:"manager"` // "dpkg" or "rpm"
}

// Device is a firmware device as fwupd reports it.
type Device struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Vendor        string   `json:"vendor,omitempty"`
	GUIDs         []string `json:"guids"`
	Version       string   `json:"version"`
	VersionFormat string   `json:"version_format,omitempty"`
	Plugin        string   `json:"plugin,omitempty"`
	Updatable     bool     `json:"updatable"`
}

// Probe is what a node's installer says about one component before anything
// is installed.
type Probe struct {
	ComponentID string `json:"component_id"`
	Applicable  bool   `json:"applicable"`
	// Installed is the installed version; empty when not installed.
	Installed string `json:"installed,omitempty"`
	// Reason explains why the component is not applicable, or which
	// device or package it matched.
	Reason string `json:"reason,omitempty"`
}

// Action is the decision taken for one component on one node.
type Action string

// The actions of analysis.
const (
	ActionUpdate        Action = "update"          // installed version is older, or nothing installed
	ActionUpToDate      Action = "up-to-date"      // same version installed, no --rewrite
	ActionNotApplicable Action = "not-applicable"  // no matching device, package manager or OS
	ActionNeedDowngrade Action = "needs-downgrade" // newer installed, no --downgrade
	ActionDowngrade     Action = "downgrade"       // newer installed, --downgrade given
	ActionRewrite       Action = "rewrite"         // same version installed, --rewrite given
)

// Installs reports whether the action installs the component.
func (a Action) Installs() bool {
	return a == ActionUpdate || a == ActionDowngrade || a == ActionRewrite
}

// NodeState is where a node is in a run. The states follow HP SUM's:
// scouting, inventory, analysis (HP SUM's review), deploy, and an end state.
type NodeState string

// The node states, in order; Complete, Failed, RebootNeeded, Cancelled and
// Skipped end a node.
const (
	StatePending   NodeState = "pending"
	StateScouting  NodeState = "scouting"
	StateInventory NodeState = "inventory"
	StateAnalysis  NodeState = "analysis"
	StateDeploy    NodeState = "deploy"
	// StateReboot is a node being rebooted after its deploy (--reboot):
	// the run closed on it, the reboot, the wait for it to come back, and
	// the inventory that confirms what was installed.
	StateReboot       NodeState = "reboot"
	StateHealth       NodeState = "health" // the run's health command, after a deploy that installed something (and its reboot)
	StateCleanup      NodeState = "cleanup"
	StateComplete     NodeState = "complete"
	StateRebootNeeded NodeState = "reboot-needed"
	StateFailed       NodeState = "failed"
	StateCancelled    NodeState = "cancelled"
	// StateSkipped is a node that was not worked on because of another:
	// the address of a server worked on before it (its BMC) failed.
	StateSkipped NodeState = "skipped"
)

// Final reports whether s ends a node's run.
func (s NodeState) Final() bool {
	switch s {
	case StateComplete, StateRebootNeeded, StateFailed, StateCancelled, StateSkipped:
		return true
	}
	return false
}

// Phase is a step of one component's deployment on a node.
type Phase string

// The component phases, as the engine reports them.
const (
	PhaseDownload  Phase = "download"
	PhaseVerify    Phase = "verify"
	PhaseInstall   Phase = "install"
	PhaseInstalled Phase = "installed"
	PhaseFailed    Phase = "failed"
	PhaseSkipped   Phase = "skipped"
)

// Event is one thing that happened during a run. With --json every event is
// printed as one JSON line.
type Event struct {
	Time      time.Time `json:"time"`
	Node      string    `json:"node"`
	State     NodeState `json:"state,omitempty"`
	Component string    `json:"component,omitempty"`
	Phase     Phase     `json:"phase,omitempty"`
	Bytes     int64     `json:"bytes,omitempty"`
	Total     int64     `json:"total,omitempty"`
	Message   string    `json:"message,omitempty"`
}

// ComponentResult is the outcome of one component on one node.
type ComponentResult struct {
	ComponentID string `json:"component_id"`
	Version     string `json:"version"`
	Installed   string `json:"installed,omitempty"` // version before the run
	Action      Action `json:"action"`
	// Phase is PhaseInstalled, PhaseFailed or PhaseSkipped once deployed;
	// empty for components that were not to be installed or in a dry run.
	Phase        Phase  `json:"phase,omitempty"`
	RebootNeeded bool   `json:"reboot_needed,omitempty"`
	Reason       string `json:"reason,omitempty"`
	Error        string `json:"error,omitempty"`
	// After is the version read back from the node after installation.
	After string `json:"after,omitempty"`
}

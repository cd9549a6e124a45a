package report

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/store"
)

// now is the clock of the Generated time; tests replace it.
var now = time.Now

// Header is what every report says of itself and of its run. Its fields
// come first in every JSON report.
type Header struct {
	Report    Kind      `json:"report"` // the report's kind
	RunID     string    `json:"run_id"`
	RunKind   string    `json:"run_kind"`  // store.RunDeploy, RunInventory, RunReview
	RunState  string    `json:"run_state"` // store.RunEnded, RunCancelled, ...
	Source    string    `json:"source,omitempty"`
	Account   string    `json:"account,omitempty"`
	Baseline  string    `json:"baseline,omitempty"`
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended,omitzero"`
	Generated time.Time `json:"generated"`
	// FleetupVersion is the version of the fleetup that wrote the report
	// (Version).
	FleetupVersion string `json:"fleetup_version"`
}

// DeployReport is the deploy report (KindDeploy): every node of the run
// and what became of every component on it.
type DeployReport struct {
	Header
	// Totals counts the nodes per end state ("complete": 3, ...).
	Totals map[string]int `json:"totals"`
	Nodes  []DeployNode   `json:"nodes"`
}

// DeployNode is one node of a deploy report.
type DeployNode struct {
	Node   string `json:"node"`
	Server string `json:"server,omitempty"`
	State  string `json:"state"`
	// FailedIn is the phase a failed or cancelled node ended in.
	FailedIn string `json:"failed_in,omitempty"`
	Error    string `json:"error,omitempty"`
	// DurationNS is how long the node took, in nanoseconds.
	DurationNS int64 `json:"duration_ns"`
	// RebootNeeded is true when the node still needs a reboot for what
	// was installed to take effect.
	RebootNeeded bool `json:"reboot_needed,omitempty"`
	// Reboot is set when the run rebooted the node.
	Reboot *Reboot `json:"reboot,omitempty"`
	// Health is the health command's outcome: "passed", "failed (exit
	// N)", "not run: WHY"; empty when it was not to run.
	Health       string `json:"health,omitempty"`
	CleanupError string `json:"cleanup_error,omitempty"`
	// FromRun is the earlier run whose outcome this is, on a node a
	// resumed run did not work on again.
	FromRun    string            `json:"from_run,omitempty"`
	Components []DeployComponent `json:"components"`
}

// Reboot is what the run's reboot of a node did.
type Reboot struct {
	Back       bool  `json:"back"`
	DurationNS int64 `json:"duration_ns,omitempty"`
}

// DeployComponent is one component on one node.
type DeployComponent struct {
	ID string `json:"id"`
	// Before is the version installed before the run; empty: none.
	Before string `json:"before,omitempty"`
	// Version is the baseline's version.
	Version string `json:"version"`
	Action  string `json:"action"`
	// Phase is installed, failed or skipped once deployed; empty when
	// the component was not to be installed, or in a dry run.
	Phase string `json:"phase,omitempty"`
	// After is the version read back after the installation.
	After        string `json:"after,omitempty"`
	RebootNeeded bool   `json:"reboot_needed,omitempty"`
	Reason       string `json:"reason,omitempty"`
	Error        string `json:"error,omitempty"`
}

// InventoryReport is the inventory report (KindInventory): what each node
// is and has.
type InventoryReport struct {
	Header
	Nodes []InventoryNode `json:"nodes"`
}

// InventoryNode is one node of an inventory report. Without an inventory
// (the node failed before it) only the first fields are set.
type InventoryNode struct {
	Node         string `json:"node"`
	Server       string `json:"server,omitempty"`
	State        string `json:"state"`
	Error        string `json:"error,omitempty"`
	HasInventory bool   `json:"has_inventory"`
	Hostname     string `json:"hostname,omitempty"`
	OS           string `json:"os,omitempty"` // os-release ID
	OSName       string `json:"os_name,omitempty"`
	OSVersion    string `json:"os_version,omitempty"`
	Kernel       string `json:"kernel,omitempty"`
	Arch         string `json:"arch,omitempty"`
	Packages     int    `json:"packages"`
	// Devices are the node's fwupd firmware devices.
	Devices []Device `json:"devices,omitempty"`
	// BMC is set for a BMC node.
	BMC      *BMC     `json:"bmc,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Device is a fwupd firmware device.
type Device struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Vendor    string   `json:"vendor,omitempty"`
	Version   string   `json:"version"`
	Plugin    string   `json:"plugin,omitempty"`
	Updatable bool     `json:"updatable"`
	GUIDs     []string `json:"guids,omitempty"`
}

// BMC is what a BMC node reported over Redfish.
type BMC struct {
	Vendor          string `json:"vendor,omitempty"`
	RedfishVersion  string `json:"redfish_version,omitempty"`
	ManagerID       string `json:"manager_id,omitempty"`
	ManagerModel    string `json:"manager_model,omitempty"`
	ManagerFirmware string `json:"manager_firmware,omitempty"`
	// System is the server the BMC manages: manufacturer and model,
	// serial number, power state, BIOS version.
	System   *fleetup.BMCSystem `json:"system,omitempty"`
	Firmware []BMCFirmware      `json:"firmware,omitempty"`
}

// BMCFirmware is one member of a BMC's FirmwareInventory.
type BMCFirmware struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	SoftwareID string `json:"software_id,omitempty"`
	Updateable bool   `json:"updateable"`
}

// FirmwareReport is the firmware report (KindFirmware): every firmware
// item of every node, with the baseline's version where the run's
// components target it.
type FirmwareReport struct {
	Header
	Nodes []FirmwareNode `json:"nodes"`
}

// FirmwareNode is one node of a firmware report.
type FirmwareNode struct {
	Node         string         `json:"node"`
	Server       string         `json:"server,omitempty"`
	State        string         `json:"state"`
	Error        string         `json:"error,omitempty"`
	HasInventory bool           `json:"has_inventory"`
	Items        []FirmwareItem `json:"items"`
}

// The kinds of firmware item.
const (
	ItemFwupd       = "fwupd"        // a fwupd device
	ItemBMCManager  = "bmc-manager"  // the BMC itself (its Manager resource)
	ItemBMCFirmware = "bmc-firmware" // a member of the BMC's FirmwareInventory
)

// FirmwareItem is one firmware item of a node and the components of the
// run that target it (none: the baseline has nothing for it).
type FirmwareItem struct {
	Kind      string `json:"kind"` // ItemFwupd, ItemBMCManager, ItemBMCFirmware
	ID        string `json:"id"`
	Name      string `json:"name"`
	Version   string `json:"version"`
	Updatable bool   `json:"updatable"`
	// Baseline are the run's components that target the item.
	Baseline []FirmwareMatch `json:"baseline,omitempty"`
}

// The statuses of a FirmwareMatch: the installed version against the
// baseline's, as the run's analysis compared them.
const (
	StatusUpToDate = "up-to-date"
	StatusOlder    = "older" // installed older than the baseline: an update
	StatusNewer    = "newer" // installed newer than the baseline
)

// FirmwareMatch is one component of the run that targets a firmware item.
type FirmwareMatch struct {
	ComponentID string `json:"component_id"`
	Version     string `json:"version"` // the baseline's
	Action      string `json:"action"`
	// Status is StatusUpToDate, StatusOlder or StatusNewer; empty when
	// the analysis could not compare.
	Status string `json:"status,omitempty"`
	// After is the version read back after this run installed it.
	After string `json:"after,omitempty"`
}

// DependencyReport is the failed-dependencies report
// (KindFailedDependencies): every requirement of a component that was
// not met on a node, and what the run did about it.
type DependencyReport struct {
	Header
	Nodes []DependencyNode `json:"nodes"`
}

// DependencyNode is one node of a failed-dependencies report; Failed is
// empty when every requirement was met.
type DependencyNode struct {
	Node   string              `json:"node"`
	Server string              `json:"server,omitempty"`
	State  string              `json:"state"`
	Failed []FailedRequirement `json:"failed"`
}

// FailedRequirement is one requirement not met.
type FailedRequirement struct {
	Component string `json:"component"`
	// Requirement is as a manifest writes it: "ID >= VERSION", or "ID".
	Requirement string `json:"requirement"`
	// Why completes "which ...": "is installed at 1.0 on this node".
	Why string `json:"why"`
	// Action is the policy applied: omit-host, omit-component or force.
	Action string `json:"action"`
}

// stateOrder is the order in which totals list node states.
var stateOrder = []fleetup.NodeState{
	fleetup.StateComplete, fleetup.StateRebootNeeded, fleetup.StateFailed,
	fleetup.StateCancelled, fleetup.StateSkipped,
}

func header(run *store.RunDetail, k Kind) Header {
	return Header{
		Report: k, RunID: run.ID, RunKind: run.Kind, RunState: run.State,
		Source: run.Source, Account: run.Account, Baseline: run.Baseline,
		Started: run.Started, Ended: run.Ended, Generated: now().UTC().Truncate(time.Second),
		FleetupVersion: Version,
	}
}

// build makes the report of kind k (a valid one) on run.
func build(run *store.RunDetail, k Kind) any {
	switch k {
	case KindInventory:
		return buildInventory(run)
	case KindFirmware:
		return buildFirmware(run)
	case KindFailedDependencies:
		return buildDependencies(run)
	}
	return buildDeploy(run)
}

func buildDeploy(run *store.RunDetail) *DeployReport {
	rep := &DeployReport{Header: header(run, KindDeploy), Totals: map[string]int{}, Nodes: []DeployNode{}}
	for _, n := range run.Nodes {
		rep.Totals[string(n.State)]++
		d := DeployNode{
			Node: n.Node, Server: n.Server, State: string(n.State), FailedIn: string(n.FailedIn),
			Error: n.Error, DurationNS: int64(n.Duration), CleanupError: n.CleanupError,
			FromRun: n.FromRun, RebootNeeded: n.State == fleetup.StateRebootNeeded,
			Health: health(n.Health), Components: []DeployComponent{},
		}
		if n.Reboot != nil {
			d.Reboot = &Reboot{Back: n.Reboot.Back, DurationNS: int64(n.Reboot.Duration)}
		}
		for _, c := range n.Components {
			d.Components = append(d.Components, DeployComponent{
				ID: c.ComponentID, Before: c.Installed, Version: c.Version, Action: string(c.Action),
				Phase: string(c.Phase), After: c.After, RebootNeeded: c.RebootNeeded,
				Reason: c.Reason, Error: c.Error,
			})
		}
		rep.Nodes = append(rep.Nodes, d)
	}
	return rep
}

func health(h *orchestrator.HealthResult) string {
	switch {
	case h == nil:
		return ""
	case h.NotRun != "":
		return "not run: " + h.NotRun
	case h.Passed:
		return "passed"
	}
	return "failed (exit " + strconv.Itoa(h.ExitCode) + ")"
}

func buildInventory(run *store.RunDetail) *InventoryReport {
	rep := &InventoryReport{Header: header(run, KindInventory), Nodes: []InventoryNode{}}
	for _, n := range run.Nodes {
		in := InventoryNode{Node: n.Node, Server: n.Server, State: string(n.State), Error: n.Error}
		if inv := n.Inventory; inv != nil {
			in.HasInventory = true
			in.Hostname, in.OS, in.OSName, in.OSVersion = inv.Hostname, inv.OS, inv.OSName, inv.OSVersion
			in.Kernel, in.Arch, in.Packages = inv.Kernel, inv.Arch, len(inv.Packages)
			in.Warnings = inv.Warnings
			for _, d := range inv.Devices {
				in.Devices = append(in.Devices, Device{ID: d.ID, Name: d.Name, Vendor: d.Vendor,
					Version: d.Version, Plugin: d.Plugin, Updatable: d.Updatable, GUIDs: d.GUIDs})
			}
			if b := inv.BMC; b != nil {
				in.BMC = &BMC{Vendor: b.Vendor, RedfishVersion: b.RedfishVersion, ManagerID: b.Manager.ID,
					ManagerModel: b.Manager.Model, ManagerFirmware: b.Manager.FirmwareVersion, System: b.System}
				for _, f := range b.Firmware {
					in.BMC.Firmware = append(in.BMC.Firmware, BMCFirmware(f))
				}
			}
		}
		rep.Nodes = append(rep.Nodes, in)
	}
	return rep
}

func buildFirmware(run *store.RunDetail) *FirmwareReport {
	rep := &FirmwareReport{Header: header(run, KindFirmware), Nodes: []FirmwareNode{}}
	for _, n := range run.Nodes {
		fn := FirmwareNode{Node: n.Node, Server: n.Server, State: string(n.State), Error: n.Error, Items: []FirmwareItem{}}
		if inv := n.Inventory; inv != nil {
			fn.HasInventory = true
			for _, d := range inv.Devices {
				it := FirmwareItem{Kind: ItemFwupd, ID: d.ID, Name: d.Name, Version: d.Version, Updatable: d.Updatable}
				it.Baseline = matches(n.Components, func(reason string) bool {
					// installer/fwupd.go: device "NAME" (ID, plugin P, GUID G) has version V
					return d.ID != "" && strings.HasPrefix(reason, "device ") && strings.Contains(reason, " ("+d.ID+", ")
				})
				fn.Items = append(fn.Items, it)
			}
			if b := inv.BMC; b != nil {
				if b.Manager.Model != "" || b.Manager.FirmwareVersion != "" {
					it := FirmwareItem{Kind: ItemBMCManager, ID: b.Manager.ID, Name: b.Manager.Model, Version: b.Manager.FirmwareVersion, Updatable: true}
					it.Baseline = matches(n.Components, func(reason string) bool {
						// agent/bmc: the BMC (MODEL)
						return b.Manager.Model != "" && strings.HasPrefix(reason, "the BMC ("+b.Manager.Model+")")
					})
					fn.Items = append(fn.Items, it)
				}
				for _, f := range b.Firmware {
					it := FirmwareItem{Kind: ItemBMCFirmware, ID: f.ID, Name: f.Name, Version: f.Version, Updatable: f.Updateable}
					it.Baseline = matches(n.Components, func(reason string) bool {
						// agent/bmc: FirmwareInventory ID (NAME)
						return strings.HasPrefix(reason, "FirmwareInventory "+f.ID+" (")
					})
					fn.Items = append(fn.Items, it)
				}
			}
		}
		rep.Nodes = append(rep.Nodes, fn)
	}
	return rep
}

// matches returns the components whose analysis reason (the probe's,
// which names the device or FirmwareInventory member it matched) is
// about the item; names tells.
func matches(comps []fleetup.ComponentResult, names func(reason string) bool) []FirmwareMatch {
	var out []FirmwareMatch
	for _, c := range comps {
		if c.Action == fleetup.ActionNotApplicable || !names(c.Reason) {
			continue
		}
		m := FirmwareMatch{ComponentID: c.ComponentID, Version: c.Version, Action: string(c.Action)}
		switch c.Action {
		case fleetup.ActionUpToDate, fleetup.ActionRewrite:
			m.Status = StatusUpToDate
		case fleetup.ActionUpdate:
			m.Status = StatusOlder
		case fleetup.ActionNeedDowngrade, fleetup.ActionDowngrade:
			m.Status = StatusNewer
		}
		if c.Phase == fleetup.PhaseInstalled {
			m.After = c.After
		}
		out = append(out, m)
	}
	return out
}

func buildDependencies(run *store.RunDetail) *DependencyReport {
	rep := &DependencyReport{Header: header(run, KindFailedDependencies), Nodes: []DependencyNode{}}
	for _, n := range run.Nodes {
		dn := DependencyNode{Node: n.Node, Server: n.Server, State: string(n.State), Failed: []FailedRequirement{}}
		for _, f := range n.FailedDependencies {
			dn.Failed = append(dn.Failed, FailedRequirement{Component: f.Component,
				Requirement: f.Requirement.String(), Why: f.Why, Action: string(f.Action)})
		}
		rep.Nodes = append(rep.Nodes, dn)
	}
	return rep
}

func writeJSON(w io.Writer, rep any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

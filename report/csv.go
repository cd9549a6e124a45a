package report

import (
	"encoding/csv"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cell is s made safe for a spreadsheet: a cell that begins with = + - @,
// a tab or a carriage return would be read as a formula (CSV injection),
// so it gets a leading single quote, which spreadsheets show as text.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func boolCell(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func seconds(ns int64) string {
	return strconv.FormatFloat(time.Duration(ns).Seconds(), 'f', 3, 64)
}

// writeCSV writes rep as one header row and one row per node and item
// (component, firmware item, requirement); a node without items has one
// row with those cells empty.
func writeCSV(w io.Writer, rep any) error {
	var rows [][]string
	switch r := rep.(type) {
	case *DeployReport:
		rows = deployRows(r)
	case *InventoryReport:
		rows = inventoryRows(r)
	case *FirmwareReport:
		rows = firmwareRows(r)
	case *DependencyReport:
		rows = dependencyRows(r)
	}
	cw := csv.NewWriter(w)
	for i, row := range rows {
		if i > 0 { // the header row is ours
			for j := range row {
				row[j] = cell(row[j])
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func deployRows(r *DeployReport) [][]string {
	rows := [][]string{{"run_id", "node", "server", "state", "failed_in", "node_error", "duration_s", "rebooted", "reboot_needed",
		"component", "before", "version", "action", "phase", "after", "component_reboot_needed", "reason", "component_error"}}
	for _, n := range r.Nodes {
		rebooted := ""
		if n.Reboot != nil {
			rebooted = "yes"
			if !n.Reboot.Back {
				rebooted = "not back"
			}
		}
		node := []string{r.RunID, n.Node, n.Server, n.State, n.FailedIn, n.Error, seconds(n.DurationNS), rebooted, boolCell(n.RebootNeeded)}
		if len(n.Components) == 0 {
			rows = append(rows, append(node, make([]string, 9)...))
		}
		for _, c := range n.Components {
			rows = append(rows, append(slices.Clone(node), c.ID, c.Before, c.Version, c.Action, c.Phase, c.After,
				boolCell(c.RebootNeeded), c.Reason, c.Error))
		}
	}
	return rows
}

func inventoryRows(r *InventoryReport) [][]string {
	rows := [][]string{{"run_id", "node", "server", "state", "error", "hostname", "os", "os_name", "os_version", "kernel", "arch", "packages",
		"bmc_vendor", "bmc_model", "bmc_firmware", "warnings", "item_kind", "item_id", "item_name", "item_version", "item_updatable"}}
	for _, n := range r.Nodes {
		var vendor, model, fw string
		if n.BMC != nil {
			vendor, model, fw = n.BMC.Vendor, n.BMC.ManagerModel, n.BMC.ManagerFirmware
		}
		pkgs := ""
		if n.HasInventory {
			pkgs = strconv.Itoa(n.Packages)
		}
		node := []string{r.RunID, n.Node, n.Server, n.State, n.Error, n.Hostname, n.OS, n.OSName, n.OSVersion, n.Kernel, n.Arch, pkgs,
			vendor, model, fw, strings.Join(n.Warnings, "; ")}
		items := 0
		for _, d := range n.Devices {
			rows = append(rows, append(slices.Clone(node), ItemFwupd, d.ID, d.Name, d.Version, boolCell(d.Updatable)))
			items++
		}
		if n.BMC != nil {
			for _, f := range n.BMC.Firmware {
				rows = append(rows, append(slices.Clone(node), ItemBMCFirmware, f.ID, f.Name, f.Version, boolCell(f.Updateable)))
				items++
			}
		}
		if items == 0 {
			rows = append(rows, append(node, make([]string, 5)...))
		}
	}
	return rows
}

func firmwareRows(r *FirmwareReport) [][]string {
	rows := [][]string{{"run_id", "node", "server", "state", "error", "item_kind", "item_id", "item_name", "item_version", "item_updatable",
		"component", "baseline_version", "action", "status", "after"}}
	for _, n := range r.Nodes {
		node := []string{r.RunID, n.Node, n.Server, n.State, n.Error}
		if len(n.Items) == 0 {
			rows = append(rows, append(node, make([]string, 10)...))
		}
		for _, it := range n.Items {
			item := append(slices.Clone(node), it.Kind, it.ID, it.Name, it.Version, boolCell(it.Updatable))
			if len(it.Baseline) == 0 {
				rows = append(rows, append(item, make([]string, 5)...))
			}
			for _, m := range it.Baseline {
				rows = append(rows, append(slices.Clone(item), m.ComponentID, m.Version, m.Action, m.Status, m.After))
			}
		}
	}
	return rows
}

func dependencyRows(r *DependencyReport) [][]string {
	rows := [][]string{{"run_id", "node", "server", "state", "component", "requirement", "why", "action"}}
	for _, n := range r.Nodes {
		node := []string{r.RunID, n.Node, n.Server, n.State}
		if len(n.Failed) == 0 {
			rows = append(rows, append(node, make([]string, 4)...))
		}
		for _, f := range n.Failed {
			rows = append(rows, append(slices.Clone(node), f.Component, f.Requirement, f.Why, f.Action))
		}
	}
	return rows
}

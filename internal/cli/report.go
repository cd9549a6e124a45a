package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/orchestrator"
)

// summary prints the results: one JSON line per node, or a table of every
// component on every node followed by each node's errors and clean-up.
func (r *reporter) summary(results []orchestrator.NodeResult, inventory bool) {
	if r.json {
		for _, res := range results {
			r.line(struct {
				Type string `json:"type"`
				orchestrator.NodeResult
			}{"result", res})
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(r.w)
	if inventory {
		tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSTATE\tHOST\tOS\tKERNEL\tARCH\tPACKAGES\tFIRMWARE DEVICES")
		for _, res := range results {
			inv := res.Inventory
			if inv == nil {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\n", res.Node, res.State)
				continue
			}
			if b := inv.BMC; b != nil {
				// A BMC: the server it manages, its model and firmware,
				// and its FirmwareInventory.
				host := "-"
				if s := b.System; s != nil {
					host = strings.TrimSpace(fmt.Sprintf("%s %s (serial %s, power %s)", s.Manufacturer, s.Model, orDash(s.SerialNumber), orDash(s.PowerState)))
				}
				var fws []string
				for _, f := range b.Firmware {
					fws = append(fws, fmt.Sprintf("%s %s", f.Name, f.Version))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\tBMC %s\t%s\t-\t-\t%s\n", res.Node, res.State, host, orDash(inv.OSName), orDash(b.Manager.FirmwareVersion), orDash(strings.Join(fws, ", ")))
				continue
			}
			var devs []string
			for _, d := range inv.Devices {
				devs = append(devs, fmt.Sprintf("%s %s", d.Name, d.Version))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\t%s\t%d\t%s\n", res.Node, res.State, inv.Hostname, inv.OS, inv.OSVersion, inv.Kernel, inv.Arch, len(inv.Packages), orDash(strings.Join(devs, ", ")))
		}
		tw.Flush()
	}
	if !inventory || anyComponents(results) {
		tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSTATE\tCOMPONENT\tVERSION\tACTION\tBEFORE\tAFTER\tRESULT")
		for _, res := range results {
			if len(res.Components) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\n", res.Node, res.State)
			}
			for _, c := range res.Components {
				result := string(c.Phase)
				if result == "" {
					result = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", res.Node, res.State, c.ComponentID, c.Version, c.Action, orDash(c.Installed), orDash(c.After), result)
			}
		}
		tw.Flush()
	}
	for _, res := range results {
		if res.FromRun != "" { // a resume's untouched node (cmd_deploy_resume.go)
			fmt.Fprintf(r.w, "%s: %s in run %s: not touched again\n", res.Node, res.State, res.FromRun)
		}
		for _, c := range res.Components {
			if c.Error != "" {
				fmt.Fprintf(r.w, "%s: %s: %s\n", res.Node, c.ComponentID, c.Error)
			}
		}
		if res.Error != "" {
			fmt.Fprintf(r.w, "%s: %s\n", res.Node, res.Error)
		}
		for _, fd := range res.FailedDependencies {
			fmt.Fprintf(r.w, "%s: failed dependency (%s): %s\n", res.Node, fd.Action, fd)
		}
		if res.CleanupError != "" {
			fmt.Fprintf(r.w, "%s: %s\n", res.Node, res.CleanupError)
		}
		if res.Cleanup != nil && !res.Cleanup.Empty() {
			fmt.Fprintf(r.w, "%s: cleaned up: %s\n", res.Node, agent.Describe(res.Cleanup))
		}
		if line := rebootLine(res); line != "" {
			fmt.Fprintf(r.w, "%s: %s\n", res.Node, line)
		}
	}
	// The servers with several addresses, each address with its end.
	var servers []string
	members := map[string][]string{}
	for _, res := range results {
		if res.Server == "" {
			continue
		}
		if _, ok := members[res.Server]; !ok {
			servers = append(servers, res.Server)
		}
		members[res.Server] = append(members[res.Server], fmt.Sprintf("%s %s", res.Node, res.State))
	}
	for _, s := range servers {
		fmt.Fprintf(r.w, "server %s: %s\n", s, strings.Join(members[s], ", then "))
	}
	counts := map[string]int{}
	for _, res := range results {
		counts[string(res.State)]++
	}
	var parts []string
	for _, s := range []string{"complete", "reboot-needed", "failed", "cancelled", "skipped"} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(r.w, "\n%d node(s): %s\n", len(results), strings.Join(parts, ", "))
}

// rebootLine says what a node's reboot did, or which of its components
// wait for one ("" when neither).
func rebootLine(res orchestrator.NodeResult) string {
	if rb := res.Reboot; rb != nil && rb.Back {
		return fmt.Sprintf("rebooted: back in %s with boot id %s (was %s)", rb.Duration.Round(time.Second), rb.BootIDAfter, rb.BootIDBefore)
	}
	if res.State != fleetup.StateRebootNeeded {
		return ""
	}
	var ids []string
	for _, c := range res.Components {
		if c.RebootNeeded {
			ids = append(ids, c.ComponentID)
		}
	}
	return "not rebooted: a reboot completes " + strings.Join(ids, ", ") + " (fleetup reboots a node with --reboot)"
}

func anyComponents(rs []orchestrator.NodeResult) bool {
	for _, r := range rs {
		if len(r.Components) > 0 {
			return true
		}
	}
	return false
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

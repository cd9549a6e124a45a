package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/store"
)

const hostile = `<script>alert("x")</script> & 'quotes'`

// testRun is a run with a Linux node that completed, a server whose BMC
// failed and whose OS address was skipped for it, a cancelled node, and
// a node that needs a reboot and had a requirement not met.
func testRun() *store.RunDetail {
	t0 := time.Date(2026, 12, 2, 6, 15, 0, 0, time.UTC)
	return &store.RunDetail{
		Run: store.Run{
			ID: "20261202-061500-ab12cd", Kind: store.RunDeploy, Source: store.SourceCLI,
			Baseline: "/srv/baseline", Targets: []string{"a", "b"}, Started: t0, Ended: t0.Add(5 * time.Minute),
			State: store.RunEnded,
		},
		Nodes: []orchestrator.NodeResult{
			{
				Node: "root@198.18.1.2:22", State: fleetup.StateComplete, Duration: 90 * time.Second,
				Inventory: &fleetup.Inventory{
					Hostname: "web1", OS: "debian", OSName: "Debian GNU/Linux", OSVersion: "12", Kernel: "6.1.0", Arch: "x86_64",
					Packages: []fleetup.Package{{Name: "openssl", Version: "3.0.11", Manager: "dpkg"}, {Name: "bash", Version: "5.2", Manager: "dpkg"}},
					Devices: []fleetup.Device{
						{ID: "dev-bios", Name: "System Firmware", Version: "1.2.0", Plugin: "uefi_capsule", Updatable: true, GUIDs: []string{"g1"}},
						{ID: "dev-nvme", Name: "NVMe SSD", Version: "4.0", Plugin: "nvme", Updatable: true},
					},
					Warnings: []string{"fwupd: " + hostile},
				},
				Components: []fleetup.ComponentResult{
					{ComponentID: "bios", Version: "1.3.0", Installed: "1.2.0", Action: fleetup.ActionUpdate, Phase: fleetup.PhaseInstalled, After: "1.3.0",
						Reason: `device "System Firmware" (dev-bios, plugin uefi_capsule, GUID g1) has version 1.2.0`},
					{ComponentID: "nvme-fw", Version: "4.0", Installed: "4.0", Action: fleetup.ActionUpToDate,
						Reason: `device "NVMe SSD" (dev-nvme, plugin nvme, GUID g2) has version 4.0`},
					{ComponentID: "openssl", Version: "3.0.11", Installed: "3.0.11", Action: fleetup.ActionUpToDate, Reason: "package openssl 3.0.11 is installed"},
				},
			},
			{
				Node: "bmc://admin@[fd42:5e::2]:443", Server: "srv1", State: fleetup.StateFailed, FailedIn: fleetup.StateDeploy,
				Error: "flash: " + hostile, Duration: 3 * time.Minute,
				Inventory: &fleetup.Inventory{
					Hostname: "ilo-srv1", OSName: "iLO 5",
					BMC: &fleetup.BMCInventory{
						Vendor: "HPE", RedfishVersion: "1.13.0",
						Manager:  fleetup.BMCManager{ID: "1", Model: "iLO 5", FirmwareVersion: "iLO 5 v2.72"},
						Firmware: []fleetup.Firmware{{ID: "1", Name: "iLO 5", Version: "2.72 Sep 04 2022", Updateable: true}, {ID: "2", Name: "System ROM", Version: "U46 v2.90", Updateable: true}},
						System:   &fleetup.BMCSystem{Manufacturer: "HPE", Model: "ProLiant DL380 Gen10", SerialNumber: "CZ123", PowerState: "On"},
					},
				},
				Components: []fleetup.ComponentResult{
					{ComponentID: "ilo5", Version: "3.01", Installed: "2.72", Action: fleetup.ActionUpdate, Phase: fleetup.PhaseFailed,
						Reason: `FirmwareInventory 1 (iLO 5), version "2.72 Sep 04 2022"`, Error: hostile},
					{ComponentID: "rom", Version: "2.80", Installed: "2.90", Action: fleetup.ActionNeedDowngrade, Reason: "FirmwareInventory 2 (System ROM)"},
				},
			},
			{Node: "root@srv1:22", Server: "srv1", State: fleetup.StateSkipped, Error: "its BMC bmc://admin@[fd42:5e::2]:443 failed"},
			{Node: "root@198.18.1.4:22", State: fleetup.StateCancelled, FailedIn: fleetup.StateDeploy, Error: "cancelled"},
			{
				Node: "root@198.18.1.5:22", State: fleetup.StateRebootNeeded, Duration: time.Minute,
				Reboot: &orchestrator.RebootResult{Back: true, Duration: 40 * time.Second},
				Health: &orchestrator.HealthResult{Passed: true},
				Components: []fleetup.ComponentResult{
					{ComponentID: "=cmd|' /C calc'!A0", Version: "+1", Action: fleetup.ActionUpdate, Phase: fleetup.PhaseInstalled, RebootNeeded: true, After: "@2"},
					{ComponentID: "agent", Version: "2.0", Action: fleetup.ActionUpdate, Phase: fleetup.PhaseSkipped, Reason: "-requires lib"},
				},
				FailedDependencies: []orchestrator.FailedDependency{
					{Component: "agent", Requirement: fleetup.Requirement{ID: "lib", Op: ">=", Version: "2.0"}, Why: "is installed at 1.0 on this node", Action: orchestrator.OmitComponent},
				},
			},
		},
	}
}

func write(t *testing.T, run *store.RunDetail, k Kind, f Format) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, run, k, f); err != nil {
		t.Fatalf("Write(%s, %s): %v", k, f, err)
	}
	return b.Bytes()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		kind     Kind
		format   Format
		kindErr  bool
		fmtErr   bool
	}{
		{name: "deploy html", in: "deploy", kind: KindDeploy, fmtErr: true},
		{name: "case and spaces", in: " Failed-Dependencies ", kind: KindFailedDependencies, fmtErr: true},
		{name: "json", in: "JSON", format: FormatJSON, kindErr: true},
		{name: "csv", in: "csv", format: FormatCSV, kindErr: true},
		{name: "html", in: "html", format: FormatHTML, kindErr: true},
		{name: "neither", in: "pdf", kindErr: true, fmtErr: true},
		{name: "empty", in: "", kindErr: true, fmtErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKind(tt.in)
			if tt.kindErr {
				if !errors.Is(err, ErrUnknownKind) || !strings.Contains(err.Error(), "deploy, inventory, firmware, failed-dependencies") {
					t.Errorf("ParseKind(%q) = %v, want an error listing the kinds", tt.in, err)
				}
			} else if err != nil || k != tt.kind {
				t.Errorf("ParseKind(%q) = %q, %v, want %q", tt.in, k, err, tt.kind)
			}
			f, err := ParseFormat(tt.in)
			if tt.fmtErr {
				if !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "html, json, csv") {
					t.Errorf("ParseFormat(%q) = %v, want an error listing the formats", tt.in, err)
				}
			} else if err != nil || f != tt.format {
				t.Errorf("ParseFormat(%q) = %q, %v, want %q", tt.in, f, err, tt.format)
			}
		})
	}
}

func TestFileNameAndContentType(t *testing.T) {
	tests := []struct {
		name, id string
		k        Kind
		f        Format
		want     string
	}{
		{name: "run id", id: "20261202-061500-ab12cd", k: KindDeploy, f: FormatHTML, want: "fleetup-20261202-061500-ab12cd-deploy.html"},
		{name: "unsafe id", id: "../../etc/x y", k: KindFirmware, f: FormatCSV, want: "fleetup-_.._etc_x_y-firmware.csv"},
		{name: "empty id", id: "", k: KindInventory, f: FormatJSON, want: "fleetup-run-inventory.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FileName(tt.id, tt.k, tt.f); got != tt.want {
				t.Errorf("FileName = %q, want %q", got, tt.want)
			}
		})
	}
	for f, want := range map[Format]string{FormatHTML: "text/html", FormatJSON: "application/json", FormatCSV: "text/csv", "x": "application/octet-stream"} {
		if got := ContentType(f); !strings.HasPrefix(got, want) {
			t.Errorf("ContentType(%q) = %q, want %s...", f, got, want)
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, nil, KindDeploy, FormatHTML); err == nil {
		t.Error("Write of a nil run: no error")
	}
	if err := Write(&b, testRun(), "Deploy", FormatHTML); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("Write of kind Deploy: %v, want ErrUnknownKind", err)
	}
	if err := Write(&b, testRun(), KindDeploy, "pdf"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Write of format pdf: %v, want ErrUnknownFormat", err)
	}
}

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"=1+1", "'=1+1"}, {"+1", "'+1"}, {"-1", "'-1"}, {"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"}, {"\rx", "'\rx"}, {"1.2.3", "1.2.3"}, {"", ""}, {"a=b", "a=b"},
	}
	for _, tt := range tests {
		if got := cell(tt.in); got != tt.want {
			t.Errorf("cell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDeployJSON(t *testing.T) {
	var rep DeployReport
	if err := json.Unmarshal(write(t, testRun(), KindDeploy, FormatJSON), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Report != KindDeploy || rep.RunID != "20261202-061500-ab12cd" || rep.Baseline != "/srv/baseline" || rep.FleetupVersion == "" || rep.Generated.IsZero() {
		t.Errorf("header = %+v", rep.Header)
	}
	want := map[string]int{"complete": 1, "failed": 1, "skipped": 1, "cancelled": 1, "reboot-needed": 1}
	if diff := cmp.Diff(want, rep.Totals); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if len(rep.Nodes) != 5 {
		t.Fatalf("%d nodes, want 5", len(rep.Nodes))
	}
	bmc := rep.Nodes[1]
	if bmc.State != "failed" || bmc.FailedIn != "deploy" || bmc.Server != "srv1" || !strings.Contains(bmc.Error, hostile) || bmc.DurationNS != int64(3*time.Minute) {
		t.Errorf("BMC node = %+v", bmc)
	}
	wantComp := DeployComponent{ID: "bios", Before: "1.2.0", Version: "1.3.0", Action: "update", Phase: "installed", After: "1.3.0",
		Reason: `device "System Firmware" (dev-bios, plugin uefi_capsule, GUID g1) has version 1.2.0`}
	if diff := cmp.Diff(wantComp, rep.Nodes[0].Components[0]); diff != "" {
		t.Errorf("component (-want +got):\n%s", diff)
	}
	rb := rep.Nodes[4]
	if !rb.RebootNeeded || rb.Reboot == nil || !rb.Reboot.Back || rb.Health != "passed" || !rb.Components[0].RebootNeeded {
		t.Errorf("reboot node = %+v", rb)
	}
	if rep.Nodes[2].Components == nil {
		t.Error("a node without components has components null, want []")
	}
}

func TestInventoryJSON(t *testing.T) {
	var rep InventoryReport
	if err := json.Unmarshal(write(t, testRun(), KindInventory, FormatJSON), &rep); err != nil {
		t.Fatal(err)
	}
	linux, bmc, skipped := rep.Nodes[0], rep.Nodes[1], rep.Nodes[2]
	if !linux.HasInventory || linux.Hostname != "web1" || linux.OSName != "Debian GNU/Linux" || linux.OSVersion != "12" ||
		linux.Kernel != "6.1.0" || linux.Arch != "x86_64" || linux.Packages != 2 || len(linux.Devices) != 2 || len(linux.Warnings) != 1 {
		t.Errorf("Linux node = %+v", linux)
	}
	if bmc.BMC == nil || bmc.BMC.ManagerModel != "iLO 5" || bmc.BMC.ManagerFirmware != "iLO 5 v2.72" || len(bmc.BMC.Firmware) != 2 || bmc.BMC.System.SerialNumber != "CZ123" {
		t.Errorf("BMC node = %+v", bmc)
	}
	if skipped.HasInventory || skipped.State != "skipped" {
		t.Errorf("skipped node = %+v", skipped)
	}
}

func TestFirmwareJSON(t *testing.T) {
	var rep FirmwareReport
	if err := json.Unmarshal(write(t, testRun(), KindFirmware, FormatJSON), &rep); err != nil {
		t.Fatal(err)
	}
	type row struct{ Node, Kind, ID, Version, Comp, Baseline, Status, After string }
	var got []row
	for _, n := range rep.Nodes {
		for _, it := range n.Items {
			if len(it.Baseline) == 0 {
				got = append(got, row{n.Node, it.Kind, it.ID, it.Version, "", "", "", ""})
			}
			for _, m := range it.Baseline {
				got = append(got, row{n.Node, it.Kind, it.ID, it.Version, m.ComponentID, m.Version, m.Status, m.After})
			}
		}
	}
	const lin, bmc = "root@198.18.1.2:22", "bmc://admin@[fd42:5e::2]:443"
	want := []row{
		{lin, ItemFwupd, "dev-bios", "1.2.0", "bios", "1.3.0", StatusOlder, "1.3.0"},
		{lin, ItemFwupd, "dev-nvme", "4.0", "nvme-fw", "4.0", StatusUpToDate, ""},
		{bmc, ItemBMCManager, "1", "iLO 5 v2.72", "", "", "", ""},
		{bmc, ItemBMCFirmware, "1", "2.72 Sep 04 2022", "ilo5", "3.01", StatusOlder, ""},
		{bmc, ItemBMCFirmware, "2", "U46 v2.90", "rom", "2.80", StatusNewer, ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("firmware items (-want +got):\n%s", diff)
	}
	if len(rep.Nodes) != 5 || rep.Nodes[3].HasInventory || rep.Nodes[3].Items == nil {
		t.Errorf("nodes = %+v", rep.Nodes)
	}
}

func TestDependenciesJSON(t *testing.T) {
	var rep DependencyReport
	if err := json.Unmarshal(write(t, testRun(), KindFailedDependencies, FormatJSON), &rep); err != nil {
		t.Fatal(err)
	}
	want := []FailedRequirement{{Component: "agent", Requirement: "lib >= 2.0", Why: "is installed at 1.0 on this node", Action: "omit-component"}}
	if diff := cmp.Diff(want, rep.Nodes[4].Failed); diff != "" {
		t.Errorf("failed (-want +got):\n%s", diff)
	}
	if len(rep.Nodes) != 5 || rep.Nodes[0].Failed == nil || len(rep.Nodes[0].Failed) != 0 {
		t.Errorf("nodes = %+v", rep.Nodes)
	}
}

func TestCSV(t *testing.T) {
	tests := []struct {
		kind   Kind
		header []string // the first columns
		rows   int      // besides the header
		// find is a row's cells that must be present, by column name.
		find map[string]string
	}{
		{kind: KindDeploy, header: []string{"run_id", "node", "server", "state", "failed_in"}, rows: 3 + 2 + 1 + 1 + 2,
			find: map[string]string{"node": "root@198.18.1.5:22", "component": "'=cmd|' /C calc'!A0", "version": "'+1", "after": "'@2"}},
		{kind: KindInventory, header: []string{"run_id", "node", "server", "state", "error", "hostname"}, rows: 2 + 2 + 1 + 1 + 1,
			find: map[string]string{"node": "bmc://admin@[fd42:5e::2]:443", "item_kind": "bmc-firmware", "item_id": "2", "item_version": "U46 v2.90", "bmc_model": "iLO 5"}},
		{kind: KindFirmware, header: []string{"run_id", "node", "server", "state", "error", "item_kind"}, rows: 2 + 3 + 1 + 1 + 1,
			find: map[string]string{"item_id": "dev-bios", "component": "bios", "baseline_version": "1.3.0", "status": "older", "item_version": "1.2.0"}},
		{kind: KindFailedDependencies, header: []string{"run_id", "node", "server", "state", "component", "requirement", "why", "action"}, rows: 5,
			find: map[string]string{"component": "agent", "requirement": "lib >= 2.0", "action": "omit-component"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			recs, err := csv.NewReader(bytes.NewReader(write(t, testRun(), tt.kind, FormatCSV))).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.header, recs[0][:len(tt.header)]); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			if len(recs)-1 != tt.rows {
				t.Errorf("%d rows, want %d", len(recs)-1, tt.rows)
			}
			col := map[string]int{}
			for i, h := range recs[0] {
				col[h] = i
			}
			found := false
			for _, r := range recs[1:] {
				if r[col["run_id"]] != "20261202-061500-ab12cd" {
					t.Errorf("row %q: run_id %q", r, r[0])
				}
				ok := true
				for k, v := range tt.find {
					if i, has := col[k]; !has {
						t.Fatalf("no column %q", k)
					} else if r[i] != v {
						ok = false
					}
				}
				found = found || ok
				for _, c := range r {
					if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
						t.Errorf("cell %q starts like a formula", c)
					}
				}
			}
			if !found {
				t.Errorf("no row with %v in %q", tt.find, recs)
			}
		})
	}
}

// checkHTML asserts what every HTML report must be: hostile strings
// escaped, no script, no reference outside the file.
func checkHTML(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(strings.ToLower(out), "<script") {
		t.Error("HTML holds an unescaped <script")
	}
	for _, ref := range []string{"http://", "https://", "//fonts", "src=", "@import", "url("} {
		if strings.Contains(out, ref) {
			t.Errorf("HTML holds %q", ref)
		}
	}
	if !strings.HasPrefix(out, "<!DOCTYPE html>") || !strings.Contains(out, "</html>") {
		t.Error("not a whole HTML document")
	}
}

func TestHTML(t *testing.T) {
	tests := []struct {
		kind Kind
		want []string
	}{
		{KindDeploy, []string{"Deploy report", "root@198.18.1.2:22", "bmc://admin@[fd42:5e::2]:443", "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;",
			"1.2.0", "1.3.0", "reboot-needed", "in deploy", "skipped", "cancelled", "/srv/baseline", "fleetup " + Version}},
		{KindInventory, []string{"Inventory report", "web1", "Debian GNU/Linux", "6.1.0", "System Firmware", "U46 v2.90", "ProLiant DL380 Gen10", "&lt;script&gt;"}},
		{KindFirmware, []string{"Firmware report", "dev-bios", "older", "newer", "up-to-date", "not in the baseline"}},
		{KindFailedDependencies, []string{"Failed dependencies report", "lib &gt;= 2.0", "which is installed at 1.0 on this node", "omit-component", "Every requirement was met"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			out := string(write(t, testRun(), tt.kind, FormatHTML))
			checkHTML(t, out)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("HTML lacks %q", w)
				}
			}
			if !strings.Contains(out, "20261202-061500-ab12cd") || !strings.Contains(out, "2026-12-02 06:15:00 UTC") {
				t.Error("HTML header lacks the run id or start")
			}
		})
	}
}

func TestEmptyRun(t *testing.T) {
	run := &store.RunDetail{Run: store.Run{ID: "r1", State: store.RunRunning}}
	for _, k := range Kinds() {
		for _, f := range Formats() {
			out := write(t, run, k, f)
			if f == FormatJSON && !json.Valid(out) {
				t.Errorf("%s %s: invalid JSON", k, f)
			}
			if f == FormatHTML {
				checkHTML(t, string(out))
			}
		}
	}
}

func FuzzWrite(f *testing.F) {
	f.Add("<script>alert(1)</script>", "=1+1", "node\x00\r\n", "\xff\xfe")
	f.Add("", "", "", "")
	f.Add("<ScRiPt src=x>", "javascript:x", `"><img onerror=x>`, "</style><script>")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		run := testRun()
		run.ID, run.Baseline, run.Account, run.State = a, b, c, d
		for i := range run.Nodes {
			n := &run.Nodes[i]
			n.Node, n.Error, n.Server = a+c, b+a, d
			n.State = fleetup.NodeState(c)
			for j := range n.Components {
				n.Components[j].ComponentID, n.Components[j].Reason, n.Components[j].Error = d, "FirmwareInventory "+a+" ("+b, c
			}
			if inv := n.Inventory; inv != nil {
				inv.Hostname, inv.Warnings = b, []string{a, d}
				for j := range inv.Devices {
					inv.Devices[j].ID, inv.Devices[j].Name = a, c
				}
				if inv.BMC != nil {
					inv.BMC.Manager.Model = a
					inv.BMC.Firmware[0].ID = a
				}
			}
			for j := range n.FailedDependencies {
				n.FailedDependencies[j].Why = d
			}
		}
		for _, k := range Kinds() {
			for _, fm := range Formats() {
				var out bytes.Buffer
				if err := Write(&out, run, k, fm); err != nil {
					t.Fatalf("Write(%s, %s): %v", k, fm, err)
				}
				switch fm {
				case FormatHTML:
					if strings.Contains(strings.ToLower(out.String()), "<script") {
						t.Fatalf("%s HTML holds an unescaped <script", k)
					}
				case FormatJSON:
					if !json.Valid(out.Bytes()) {
						t.Fatalf("%s JSON invalid", k)
					}
				case FormatCSV:
					if _, err := csv.NewReader(&out).ReadAll(); err != nil {
						t.Fatalf("%s CSV does not parse back: %v", k, err)
					}
				}
			}
		}
	})
}

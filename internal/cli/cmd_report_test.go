package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/report"
	"github.com/fleetup/fleetup/store"
)

const testRunID = "20261202-061500-ab12cd"

// recordStoreRun records in a real store in a new state directory a deploy
// run with a Linux node that completed, a BMC that failed with a hostile
// error and the skipped OS address of its server, and their events; it
// returns the state directory.
func recordStoreRun(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(store.Path(dir), store.KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 12, 2, 6, 15, 0, 0, time.UTC)
	const lin, bmc, os = "root@198.18.1.2:22", "bmc://admin@[fd42:5e::2]:443", "root@srv1:22"
	if err := db.BeginRun(ctx, store.Run{ID: testRunID, Kind: store.RunDeploy, Source: store.SourceCLI, Baseline: "/srv/baseline",
		Targets: []string{lin, bmc, os}, Started: t0}); err != nil {
		t.Fatal(err)
	}
	evs := []fleetup.Event{
		{Time: t0, Message: "the manager listens on 198.18.1.1:8000"},
		{Time: t0.Add(time.Second), Node: lin, State: fleetup.StateScouting},
		{Time: t0.Add(2 * time.Second), Node: bmc, State: fleetup.StateDeploy, Component: "ilo5", Phase: fleetup.PhaseDownload, Bytes: 512, Total: 1024, Message: "line one\nline two\tend"},
		{Time: t0.Add(3 * time.Second), Node: lin, State: fleetup.StateComplete},
	}
	if err := db.AddEvents(ctx, testRunID, evs); err != nil {
		t.Fatal(err)
	}
	for _, r := range []orchestrator.NodeResult{
		{Node: lin, State: fleetup.StateComplete, Duration: time.Minute,
			Inventory: &fleetup.Inventory{Hostname: "web1", OSName: "Debian GNU/Linux", OSVersion: "12", Kernel: "6.1.0", Arch: "x86_64",
				Devices: []fleetup.Device{{ID: "dev-bios", Name: "System Firmware", Version: "1.2.0", Updatable: true}}},
			Components: []fleetup.ComponentResult{{ComponentID: "bios", Version: "1.3.0", Installed: "1.2.0", Action: fleetup.ActionUpdate,
				Phase: fleetup.PhaseInstalled, After: "1.3.0", Reason: `device "System Firmware" (dev-bios, plugin uefi_capsule, GUID g) has version 1.2.0`}}},
		{Node: bmc, Server: "srv1", State: fleetup.StateFailed, FailedIn: fleetup.StateDeploy, Error: "<script>alert(1)</script>",
			Inventory: &fleetup.Inventory{BMC: &fleetup.BMCInventory{Manager: fleetup.BMCManager{ID: "1", Model: "iLO 5", FirmwareVersion: "2.72"}}}},
		{Node: os, Server: "srv1", State: fleetup.StateSkipped, Error: "its BMC failed"},
	} {
		if err := db.NodeEnded(ctx, testRunID, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.EndRun(ctx, testRunID, store.RunEnded, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReportCommand(t *testing.T) {
	dir := recordStoreRun(t)
	tests := []struct {
		name string
		args []string
		code int
		// check looks at standard output and the file written, if any.
		check func(t *testing.T, stdout string)
	}{
		{name: "defaults: latest deploy html", args: []string{"report", "--state-dir", dir}, check: func(t *testing.T, out string) {
			for _, want := range []string{"<!DOCTYPE html>", testRunID, "&lt;script&gt;alert(1)&lt;/script&gt;", "root@srv1:22"} {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q", want)
				}
			}
			if strings.Contains(out, "<script>") {
				t.Error("report holds <script>")
			}
		}},
		{name: "run first, then flags", args: []string{"report", testRunID, "--kind", "inventory", "--format", "json", "--state-dir", dir}, check: func(t *testing.T, out string) {
			var rep report.InventoryReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Report != report.KindInventory || rep.RunID != testRunID || len(rep.Nodes) != 3 || rep.Nodes[0].Hostname != "web1" {
				t.Errorf("report = %+v", rep)
			}
		}},
		{name: "flags, then run", args: []string{"report", "--state-dir", dir, "--kind=firmware", "--format=csv", "latest"}, check: func(t *testing.T, out string) {
			recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 4 || recs[1][6] != "dev-bios" {
				t.Errorf("CSV = %q", recs)
			}
		}},
		{name: "unknown run", args: []string{"report", "20200101-000000-000000", "--state-dir", dir}, code: ExitUsage},
		{name: "no store", args: []string{"report", "--state-dir", t.TempDir()}, code: ExitUsage},
		{name: "bad kind", args: []string{"report", "--kind", "summary", "--state-dir", dir}, code: ExitUsage},
		{name: "two runs", args: []string{"report", "a", "b", "--state-dir", dir}, code: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, errs)
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
	// The errors say what is wrong.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "20200101-000000-000000", "--state-dir", dir}, `run "20200101-000000-000000" is not recorded`},
		{[]string{"report", "--state-dir", "/nonexistent/fleetup"}, "no runs recorded in /nonexistent/fleetup"},
		{[]string{"report", "--kind", "summary", "--state-dir", dir}, "deploy, inventory, firmware, failed-dependencies"},
		{[]string{"report", "--format", "pdf", "--state-dir", dir}, "html, json, csv"},
	} {
		if _, _, errs := run(t, "", c.args...); !strings.Contains(errs, c.want) {
			t.Errorf("%q: stderr %q, want %q", c.args, errs, c.want)
		}
	}
	if _, err := os.Stat(store.Path("/nonexistent/fleetup")); err == nil {
		t.Error("a report made a store")
	}
}

func TestReportOutput(t *testing.T) {
	dir := recordStoreRun(t)
	out := filepath.Join(t.TempDir(), "r.csv")
	code, stdout, errs := run(t, "", "report", "--output", out, "--kind", "deploy", "--state-dir", dir)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.TrimSpace(stdout) != out {
		t.Errorf("stdout %q, want the path %s", stdout, out)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	f, _ := os.Open(out)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || recs[0][0] != "run_id" {
		t.Errorf("--output .csv did not write CSV: %v %q", err, recs)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestReportFlags(t *testing.T) {
	dir := recordStoreRun(t)
	repDir := filepath.Join(t.TempDir(), "reports")
	var rf reportFlags
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rf.register(fs)
	if err := fs.Parse([]string{"--report", "deploy", "--report", "firmware", "--report", "deploy", "--report-format", "json", "--report-format", "csv", "--report-dir", repDir}); err != nil {
		t.Fatal(err)
	}
	paths, err := rf.write(context.Background(), &Env{}, dir, testRunID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(repDir, "fleetup-"+testRunID+"-deploy.json"), filepath.Join(repDir, "fleetup-"+testRunID+"-deploy.csv"),
		filepath.Join(repDir, "fleetup-"+testRunID+"-firmware.json"), filepath.Join(repDir, "fleetup-"+testRunID+"-firmware.csv"),
	}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := fs.Parse([]string{"--report", "summary"}); err == nil || !strings.Contains(err.Error(), "failed-dependencies") {
		t.Errorf("--report summary: %v, want an error listing the kinds", err)
	}
	if err := fs.Parse([]string{"--report-format", "pdf"}); err == nil {
		t.Error("--report-format pdf: no error")
	}

	// Without --report nothing is written, nothing even opened.
	var none reportFlags
	if paths, err := none.write(context.Background(), &Env{}, "/nonexistent/fleetup", "x"); paths != nil || err != nil {
		t.Errorf("no --report: %q, %v", paths, err)
	}
	// The default: HTML in the current directory.
	t.Chdir(t.TempDir())
	html := reportFlags{Kinds: []report.Kind{report.KindInventory}}
	paths, err = html.write(context.Background(), &Env{}, dir, "latest")
	if err != nil || len(paths) != 1 || paths[0] != "fleetup-"+testRunID+"-inventory.html" {
		t.Fatalf("default: %q, %v", paths, err)
	}
	if _, err := os.Stat(paths[0]); err != nil {
		t.Error(err)
	}
	if _, err := html.write(context.Background(), &Env{}, dir, "20200101-000000-000000"); err == nil || !strings.Contains(err.Error(), "not recorded") {
		t.Errorf("unknown run: %v", err)
	}
}

func TestTranslateHPSUMReports(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "report is a dry run's deploy report", args: []string{"/report", "/target", "h"}, want: []string{"--report=deploy", "--dry-run", "--target", "h"}},
		{name: "inventory report", args: []string{"/inventory_report"}, want: []string{"--report=inventory"}},
		{name: "firmware report", args: []string{"/Firmware_Report"}, want: []string{"--report=firmware"}},
		{name: "logdir", args: []string{"/logdir", "/var/log/sum", "/report"}, want: []string{"--report-dir", "/var/log/sum", "--report=deploy", "--dry-run"}},
		{name: "logdir joined", args: []string{"/logdir=/tmp/r"}, want: []string{"--report-dir=/tmp/r"}},
		{name: "all three", args: []string{"/report", "/inventory_report", "/firmware_report"},
			want: []string{"--report=deploy", "--dry-run", "--report=inventory", "--report=firmware"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := translateHPSUM(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := translateHPSUM([]string{"/logdir"}); err == nil {
		t.Error("/logdir without a value: no error")
	}
}

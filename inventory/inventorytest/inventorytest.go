// Package inventorytest is the shared suite every inventory.Collector
// passes: run against the machine the test runs on, it checks structural
// invariants of what the collector reports, that collecting twice into one
// inventory gives what collecting once gives, that the collector leaves
// the rest of the inventory alone, and that it honours a cancelled
// context.
package inventorytest

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
	"github.com/google/go-cmp/cmp"
)

// Env is what one collector's test gives the suite.
type Env struct {
	Collector inventory.Collector
	// Runner runs the collector's commands; a zero Runner when nil.
	Runner *proc.Runner
	// Owns lists the Inventory fields the collector sets (e.g. "Packages",
	// "Devices", "Tools", "OS"); the suite checks it touches no other.
	Owns []string
	// NeedsTool, when set, names the program without which the collector
	// adds nothing; the suite then expects an empty result when it is
	// absent, and skips the cancel check.
	NeedsTool string
}

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Run runs the suite against env.
func Run(t *testing.T, env Env) {
	r := env.Runner
	if r == nil {
		r = &proc.Runner{}
	}
	ctx := context.Background()
	c := env.Collector

	t.Run("Name", func(t *testing.T) {
		if n := c.Name(); n == "" || n != strings.ToLower(n) || strings.ContainsAny(n, " :") {
			t.Errorf("Name() = %q, want a short lowercase word", n)
		}
	})

	t.Run("Invariants", func(t *testing.T) {
		inv := &fleetup.Inventory{}
		if err := c.Collect(ctx, r, inv); err != nil {
			t.Fatalf("Collect on this machine: %v", err)
		}
		Check(t, inv)
		if env.NeedsTool != "" && !proc.LookPath(env.NeedsTool) {
			if d := cmp.Diff(&fleetup.Inventory{}, inv); d != "" {
				t.Errorf("without %s the collector added (-want +got):\n%s", env.NeedsTool, d)
			}
		}
	})

	t.Run("Idempotent", func(t *testing.T) {
		once := &fleetup.Inventory{}
		if err := c.Collect(ctx, r, once); err != nil {
			t.Fatal(err)
		}
		twice := &fleetup.Inventory{}
		for i := 0; i < 2; i++ {
			if err := c.Collect(ctx, r, twice); err != nil {
				t.Fatal(err)
			}
		}
		if d := cmp.Diff(once, twice); d != "" {
			t.Errorf("collecting twice differs from once (-once +twice):\n%s", d)
		}
	})

	t.Run("LeavesOthersAlone", func(t *testing.T) {
		inv := sentinel()
		if err := c.Collect(ctx, r, inv); err != nil {
			t.Fatal(err)
		}
		want := sentinel()
		got := *inv
		for _, f := range env.Owns {
			switch f {
			case "Hostname":
				got.Hostname = want.Hostname
			case "OS":
				got.OS, got.OSLike, got.OSVersion, got.OSName = want.OS, want.OSLike, want.OSVersion, want.OSName
			case "Kernel":
				got.Kernel = want.Kernel
			case "Arch":
				got.Arch = want.Arch
			case "Packages":
				// A package collector keeps the other manager's packages.
				var kept []fleetup.Package
				for _, p := range got.Packages {
					if p.Manager == "other" {
						kept = append(kept, p)
					}
				}
				got.Packages = kept
			case "Devices":
				got.Devices = want.Devices
			case "Tools":
				got.Tools = want.Tools
			default:
				t.Fatalf("Env.Owns names unknown field %q", f)
			}
		}
		if d := cmp.Diff(want, &got); d != "" {
			t.Errorf("collector changed fields it does not own (-want +got):\n%s", d)
		}
	})

	if env.NeedsTool == "" {
		return // nothing runs, so nothing can be cancelled
	}
	t.Run("Cancelled", func(t *testing.T) {
		if !proc.LookPath(env.NeedsTool) {
			testenv.Skip(t, "needs "+env.NeedsTool)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := c.Collect(cctx, r, &fleetup.Inventory{}); err == nil {
			t.Errorf("Collect with a cancelled context returned nil; want an error (a silent empty result would read as 'nothing installed')")
		}
	})
}

func sentinel() *fleetup.Inventory {
	return &fleetup.Inventory{
		Hostname: "sentinel-host", OS: "sentinel", OSLike: []string{"s"}, OSVersion: "0", OSName: "Sentinel",
		Kernel: "0.0", Arch: "sentinel64",
		Packages: []fleetup.Package{{Name: "sentinel", Version: "1", Manager: "other"}},
		Devices:  []fleetup.Device{{ID: "sentinel", Name: "Sentinel", GUIDs: []string{}}},
		Tools:    []string{"sentinel"},
		Warnings: []string{"sentinel"},
	}
}

// Check reports every structural invariant inv breaks: packages have a
// name, version and known manager and are not listed twice; devices have
// an id, name and well-formed lowercase GUIDs and are not listed twice;
// tools are known and not repeated; OS fields have no surrounding space.
func Check(t testing.TB, inv *fleetup.Inventory) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range inv.Packages {
		if p.Name == "" || p.Version == "" {
			t.Errorf("package without name or version: %+v", p)
		}
		if p.Manager != "dpkg" && p.Manager != "rpm" {
			t.Errorf("package %s: manager %q", p.Name, p.Manager)
		}
		k := p.Manager + "/" + p.Name + "/" + p.Arch
		if seen[k] {
			t.Errorf("package %s listed twice", k)
		}
		seen[k] = true
	}
	for _, d := range inv.Devices {
		if d.ID == "" || d.Name == "" {
			t.Errorf("device without id or name: %+v", d)
		}
		if seen["dev/"+d.ID] {
			t.Errorf("device %s listed twice", d.ID)
		}
		seen["dev/"+d.ID] = true
		for _, g := range d.GUIDs {
			if !guidRE.MatchString(g) {
				t.Errorf("device %s: GUID %q is not a lowercase GUID", d.ID, g)
			}
		}
		if d.Updatable && d.Version == "" {
			t.Errorf("updatable device %s has no version", d.ID)
		}
	}
	known := map[string]bool{}
	for _, n := range inventory.ToolNames {
		known[n] = true
	}
	for _, n := range inv.Tools {
		if !known[n] || seen["tool/"+n] {
			t.Errorf("tool %q unknown or repeated in %q", n, inv.Tools)
		}
		seen["tool/"+n] = true
	}
	for name, v := range map[string]string{"Hostname": inv.Hostname, "OS": inv.OS, "OSVersion": inv.OSVersion, "Kernel": inv.Kernel, "Arch": inv.Arch} {
		if v != strings.TrimSpace(v) || strings.ContainsAny(v, " \t\n") {
			t.Errorf("%s = %q has whitespace", name, v)
		}
	}
	for _, l := range inv.OSLike {
		if l == "" || strings.ContainsAny(l, " \t\n") {
			t.Errorf("OSLike %q has an empty or spaced entry", inv.OSLike)
		}
	}
}

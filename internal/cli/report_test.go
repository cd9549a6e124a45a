package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/target"
)

// TestSummaryBMCAndServer prints a BMC's inventory as a BMC (its system,
// model, firmware) and the addresses of a server together, in order.
func TestSummaryBMCAndServer(t *testing.T) {
	var out bytes.Buffer
	r := newReporter(&out, false)
	r.summary([]orchestrator.NodeResult{
		{Node: "bmc://admin@198.18.2.2:443", Server: "root@198.18.1.2", State: fleetup.StateComplete, Inventory: &fleetup.Inventory{
			OS: "bmc", OSName: "HPE iLO 5", BMC: &fleetup.BMCInventory{
				Manager:  fleetup.BMCManager{Model: "iLO 5", FirmwareVersion: "iLO 5 v2.78"},
				Firmware: []fleetup.Firmware{{Name: "iLO 5", Version: "2.78"}, {Name: "System ROM", Version: "U32 v2.68"}},
				System:   &fleetup.BMCSystem{Manufacturer: "HPE", Model: "ProLiant DL360 Gen10", SerialNumber: "CZJ1", PowerState: "On"},
			}}},
		{Node: "root@198.18.1.2:22", Server: "root@198.18.1.2", State: fleetup.StateSkipped, Error: "not worked on: bmc://admin@198.18.2.2:443 ... ended failed"},
	}, true)
	for _, want := range []string{"BMC HPE iLO 5", "iLO 5 v2.78", "ProLiant DL360 Gen10 (serial CZJ1, power On)", "System ROM U32 v2.68",
		"server root@198.18.1.2: bmc://admin@198.18.2.2:443 complete, then root@198.18.1.2:22 skipped", "1 complete, 1 skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

// TestServerOrderAndBMCUser: a server's addresses come together at the
// place of its first, the BMC first; a bmc target without a user takes
// --bmc-user, or is refused.
func TestServerOrderAndBMCUser(t *testing.T) {
	parse := func(s string) target.Target {
		t.Helper()
		ts, err := target.ParseList(strings.NewReader(s), "nodes")
		if err != nil {
			t.Fatal(err)
		}
		return ts[0]
	}
	ts, err := target.ParseList(strings.NewReader("a.example\nroot@h1 bmc://admin@b1\nbmc://admin@b2\n"), "nodes")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, t := range serverOrder(ts) {
		got = append(got, t.String())
	}
	if want := "a.example bmc://admin@b1 root@h1 bmc://admin@b2"; strings.Join(got, " ") != want {
		t.Errorf("order %q, want %q", strings.Join(got, " "), want)
	}
	o := &nodeOptions{User: "root"}
	bt := parse("bmc://b3")
	if err := o.complete(&bt); err == nil || !strings.Contains(err.Error(), "--bmc-user") {
		t.Errorf("bmc target without a user: %v, want a usage error naming --bmc-user", err)
	}
	o.BMCUser = "Administrator"
	if err := o.complete(&bt); err != nil || bt.User != "Administrator" || bt.Port != 443 {
		t.Errorf("complete = %+v, %v", bt, err)
	}
	st := parse("h2")
	if err := o.complete(&st); err != nil || st.User != "root" || st.Port != 22 {
		t.Errorf("complete ssh = %+v, %v", st, err)
	}
}

// TestSummaryFailedDependencies names each failed dependency and what was
// done about it.
func TestSummaryFailedDependencies(t *testing.T) {
	var out bytes.Buffer
	r := newReporter(&out, false)
	r.summary([]orchestrator.NodeResult{{Node: "n1", State: fleetup.StateFailed, FailedDependencies: []orchestrator.FailedDependency{{
		Component: "app", Requirement: fleetup.Requirement{ID: "base", Op: ">=", Version: "2.0"}, Why: "is installed at 1.0 on this node", Action: orchestrator.OmitComponent,
	}}}}, false)
	if want := "n1: failed dependency (omit-component): app requires base >= 2.0, which is installed at 1.0 on this node"; !strings.Contains(out.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, out.String())
	}
}

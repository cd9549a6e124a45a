package bmc

import (
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
)

func TestVersionOf(t *testing.T) {
	tests := []struct{ v, name, want string }{
		{"iLO 5 v2.72", "iLO 5", "2.72"},
		{"2.72 Sep 04 2022", "iLO 5", "2.72"},
		{"7.00.00.00", "Integrated Dell Remote Access Controller", "7.00.00.00"},
		{"2.14.0-dev-12-g3b1", "bmc", "2.14.0"},
		{"U46 v2.90 (06/16/2023)", "System ROM", "2.90"},
		{"A40 06/05/2024", "System ROM", "40"},
		{"no digits", "", "no digits"},
		{"  1.2  ", "", "1.2"},
	}
	for _, tt := range tests {
		if got := VersionOf(tt.v, tt.name); got != tt.want {
			t.Errorf("VersionOf(%q, %q) = %q, want %q", tt.v, tt.name, got, tt.want)
		}
	}
}

func TestProbe(t *testing.T) {
	bi := &fleetup.BMCInventory{
		Manager: fleetup.BMCManager{ID: "1", Model: "iLO 5", FirmwareVersion: "iLO 5 v2.72"},
		Firmware: []fleetup.Firmware{
			{ID: "1", Name: "iLO 5", Version: "2.72 Sep 04 2022", Updateable: true},
			{ID: "Installed-159-1.2.3", Name: "BIOS", Version: "1.2.3", SoftwareID: "159", Updateable: true},
			{ID: "3", Name: "Power Supply", Version: "1.00", Updateable: false},
		},
	}
	bmcComp := func(targets ...string) *fleetup.Component {
		return &fleetup.Component{ID: "c", Kind: fleetup.KindBMC, Version: "2.78", Targets: targets}
	}
	tests := []struct {
		name       string
		c          *fleetup.Component
		applicable bool
		installed  string
		reason     string
	}{
		{"member by name", bmcComp("iLO 5"), true, "2.72", "FirmwareInventory 1 (iLO 5)"},
		{"member by SoftwareId", bmcComp("159"), true, "1.2.3", "BIOS"},
		{"member by id, case-insensitive", bmcComp("installed-159-1.2.3"), true, "1.2.3", "BIOS"},
		{"first matching target wins", bmcComp("nothing", "BIOS", "iLO 5"), true, "1.2.3", "BIOS"},
		{"not updateable", bmcComp("Power Supply"), false, "", "not updateable"},
		{"no target on the BMC", bmcComp("iDRAC"), false, "", "none of its targets"},
		{"an OS component", &fleetup.Component{ID: "d", Kind: fleetup.KindDeb}, false, "", "for the server's OS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := probe(tt.c, bi)
			if p.Applicable != tt.applicable || p.Installed != tt.installed || !strings.Contains(p.Reason, tt.reason) || p.ComponentID != tt.c.ID {
				t.Errorf("probe = %+v, want applicable %v, installed %q, reason containing %q", p, tt.applicable, tt.installed, tt.reason)
			}
		})
	}
	// The Manager's model, when no member has that name.
	bi.Firmware = bi.Firmware[1:]
	if p := probe(bmcComp("ilo 5"), bi); !p.Applicable || p.Installed != "2.72" || !strings.Contains(p.Reason, "the BMC (iLO 5)") {
		t.Errorf("probe by the Manager's model = %+v", p)
	}
}

// TestProbeIDRACPrevious: an iDRAC's rollback image (a "Previous-"
// member, listed first here) is not taken for the installed firmware.
func TestProbeIDRACPrevious(t *testing.T) {
	const name = "Integrated Dell Remote Access Controller"
	bi := &fleetup.BMCInventory{
		Manager: fleetup.BMCManager{ID: "iDRAC.Embedded.1", Model: "16G Monolithic", FirmwareVersion: "7.00.00.00"},
		Firmware: []fleetup.Firmware{
			{ID: "Previous-25227-6.10.30.00__iDRAC.Embedded.1-1", Name: name, Version: "6.10.30.00", SoftwareID: "25227", Updateable: true},
			{ID: "Installed-25227-7.00.00.00__iDRAC.Embedded.1-1", Name: name, Version: "7.00.00.00", SoftwareID: "25227", Updateable: true},
		},
	}
	for _, target := range []string{name, "25227"} {
		c := &fleetup.Component{ID: "c", Kind: fleetup.KindBMC, Version: "7.10.00.00", Targets: []string{target}}
		if p := probe(c, bi); !p.Applicable || p.Installed != "7.00.00.00" || !strings.Contains(p.Reason, "Installed-") {
			t.Errorf("probe by %q = %+v, want the installed 7.00.00.00", target, p)
		}
	}
	// By its id, the rollback image is still what the user named.
	c := &fleetup.Component{ID: "c", Kind: fleetup.KindBMC, Version: "7.10.00.00", Targets: []string{bi.Firmware[0].ID}}
	if p := probe(c, bi); !p.Applicable || p.Installed != "6.10.30.00" {
		t.Errorf("probe by the Previous- id = %+v", p)
	}
}

func TestRedactGrant(t *testing.T) {
	u := "https://[fd42:5e:0:2::1]:63002/v1/grants/0123456789abcdef0123456789abcdef/ilo5.bin"
	if got := redactGrant(u); got != "https://[fd42:5e:0:2::1]:63002/v1/grants/…/ilo5.bin" {
		t.Errorf("redactGrant = %q", got)
	}
	if got := grantPath(u); got != "/v1/grants/0123456789abcdef0123456789abcdef/ilo5.bin" {
		t.Errorf("grantPath = %q", got)
	}
	if got := grantToken(u); got != "0123456789abcdef0123456789abcdef" {
		t.Errorf("grantToken = %q", got)
	}
}

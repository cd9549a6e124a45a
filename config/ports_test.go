package config

import (
	"testing"
)

func TestPortTable(t *testing.T) {
	find := func(rows []PortRow, k NodeKind, key string, port int) *PortRow {
		for i, r := range rows {
			if r.Kind == k && r.Key == key && (port == 0 || r.Port == port) {
				return &rows[i]
			}
		}
		return nil
	}
	def := PortTable(Default())
	for _, k := range []NodeKind{NodeLinux, NodeWindows} {
		if r := find(def, k, "", 22); r == nil || r.Direction != ToNode {
			t.Errorf("%s: no 22 to node: %+v", k, r)
		}
		if r := find(def, k, KeyEnginePort, 62286); r == nil || r.Direction != ToNode {
			t.Errorf("%s: no engine port 62286 to node: %+v", k, r)
		}
	}
	for _, k := range NodeKinds {
		r := find(def, k, "", 443)
		if k == NodeLinux {
			// fleetup reaches Linux nodes over SSH and the engine port.
			if r != nil {
				t.Errorf("linux: 443 listed although fleetup does not use it: %+v", r)
			}
			continue
		}
		if r == nil || r.Direction != ToNode {
			t.Errorf("%s: no 443 to node: %+v", k, r)
		}
	}
	for _, k := range []NodeKind{NodeLinux, NodeWindows, NodeVMware, NodeBMC} {
		if r := find(def, k, KeyPort, 63001); r == nil || r.Direction != Both {
			t.Errorf("%s: no http 63001 both ways: %+v", k, r)
		}
		if r := find(def, k, KeySSLPort, 63002); r == nil || r.Direction != Both {
			t.Errorf("%s: no https 63002 both ways: %+v", k, r)
		}
	}
	for _, p := range []int{137, 138, 139, 445} {
		if find(def, NodeWindows, "", p) == nil {
			t.Errorf("windows: no port %d", p)
		}
	}
	if find(def, NodeVMware, "", 5989) == nil {
		t.Errorf("vmware: no 5989")
	}
	if r := find(def, NodeSwitch, KeyFTPPort, 0); r != nil {
		t.Errorf("FTP row while FTP is off: %+v", r)
	}

	c, err := Load(LoadOptions{Flags: map[string]string{"port": "80", "ssl-port": "443", "ftp-port": "63007", "engine-port": "6000"}})
	if err != nil {
		t.Fatal(err)
	}
	rows := PortTable(c)
	for _, want := range []struct {
		kind NodeKind
		key  string
		port int
	}{
		{NodeLinux, KeyPort, 80}, {NodeBMC, KeyPort, 80}, {NodeVMware, KeySSLPort, 443},
		{NodeWindows, KeyEnginePort, 6000}, {NodeSwitch, KeyFTPPort, 63007},
	} {
		r := find(rows, want.kind, want.key, 0)
		if r == nil || r.Port != want.port {
			t.Errorf("%s %s: row %+v, want port %d", want.kind, want.key, r, want.port)
		}
	}
	if r := find(rows, NodeSwitch, KeyFTPPort, 0); r == nil || r.Direction != FromNode {
		t.Errorf("FTP row %+v, want from node", r)
	}
	// The passive data ports, less the control port.
	for _, p := range []int{63006, 63008, 63009, 63010} {
		if r := find(rows, NodeSwitch, "", p); r == nil || r.Direction != FromNode {
			t.Errorf("no FTP passive port %d from the switch: %+v", p, r)
		}
	}
	if r := find(rows, NodeSwitch, "", 63007); r != nil {
		t.Errorf("control port 63007 listed as a passive port too: %+v", r)
	}
}

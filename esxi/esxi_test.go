package esxi

import (
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/transport/local"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// configRoot is the rule file's structure, as ESXi reads it.
type configRoot struct {
	XMLName  xml.Name `xml:"ConfigRoot"`
	Services []struct {
		ID    string `xml:"id,attr"`
		Name  string `xml:"id"`
		Rules []struct {
			ID        string `xml:"id,attr"`
			Direction string `xml:"direction"`
			Protocol  string `xml:"protocol"`
			PortType  string `xml:"porttype"`
			Port      int    `xml:"port"`
		} `xml:"rule"`
		Enabled  string `xml:"enabled"`
		Required string `xml:"required"`
	} `xml:"service"`
}

// parseRuleXML parses a rule file back with encoding/xml.
func parseRuleXML(data []byte) (*configRoot, error) {
	var c configRoot
	if err := xml.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func TestRuleXMLGolden(t *testing.T) {
	got, err := RuleXML(Services(63001, 63002))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "fleetup.xml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("RuleXML differs from %s (-want +got):\n%s", golden, diff)
	}
}

func TestRuleXMLStructure(t *testing.T) {
	data, err := RuleXML([]Service{{"fleetupHTTP", 80}, {"fleetupHTTPS", 8443}, {"fleetup-ftp", 21}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseRuleXML(data)
	if err != nil {
		t.Fatalf("parse RuleXML output: %v\n%s", err, data)
	}
	if len(c.Services) != 3 {
		t.Fatalf("%d services, want 3:\n%s", len(c.Services), data)
	}
	for i, want := range []struct {
		id, name string
		port     int
	}{{"0000", "fleetupHTTP", 80}, {"0001", "fleetupHTTPS", 8443}, {"0002", "fleetup-ftp", 21}} {
		s := c.Services[i]
		if s.ID != want.id || s.Name != want.name || s.Enabled != "true" || s.Required != "false" {
			t.Errorf("service %d = id %q name %q enabled %q required %q; want %q %q true false", i, s.ID, s.Name, s.Enabled, s.Required, want.id, want.name)
		}
		if len(s.Rules) != 1 {
			t.Fatalf("service %d has %d rules, want 1", i, len(s.Rules))
		}
		r := s.Rules[0]
		if r.ID != "0000" || r.Direction != "outbound" || r.Protocol != "tcp" || r.PortType != "dst" || r.Port != want.port {
			t.Errorf("service %d rule = %+v; want id 0000 outbound tcp dst %d", i, r, want.port)
		}
	}
}

func TestRuleXMLBadInput(t *testing.T) {
	tests := []struct {
		name string
		svcs []Service
		want string
	}{
		{"none", nil, "no services"},
		{"port 0", []Service{{"a", 0}}, "service a: port 0 out of range"},
		{"port 65536", []Service{{"a", 65536}}, "port 65536 out of range"},
		{"no name", []Service{{"", 1}}, "service for port 1 has no name"},
		{"markup in name", []Service{{"a</id>", 1}}, `service name "a</id>" has character '<'`},
		{"same name twice", []Service{{"a", 1}, {"a", 2}}, `service name "a" twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RuleXML(tc.svcs)
			if !errors.Is(err, ErrInvalidService) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RuleXML = %v, want ErrInvalidService containing %q", err, tc.want)
			}
		})
	}
}

// fakeHost is a directory standing for an ESXi host's firewall directory,
// with an esxcli stand-in that records its arguments and the directory's
// files at each call, and fails while a file "fail" exists.
func fakeHost(t *testing.T) (dir, esxcli, log string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "firewall")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	esxcli = filepath.Join(root, "esxcli")
	log = filepath.Join(root, "esxcli.log")
	script := "#!/bin/sh\necho \"$* [$(ls " + dir + " | tr '\\n' ' ')]\" >> " + log + "\n[ ! -e " + root + "/fail ]\n"
	if err := os.WriteFile(esxcli, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, esxcli, log
}

func readLog(t *testing.T, log string) string {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(data)
}

func TestInstallRemove(t *testing.T) {
	ctx := context.Background()
	conn, err := local.New()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dir, esxcli, log := fakeHost(t)
	opts := Options{File: filepath.Join(dir, "fleetup.xml"), Esxcli: esxcli}
	data, err := RuleXML(Services(63001, 63002))
	if err != nil {
		t.Fatal(err)
	}
	if err := Install(ctx, conn, data, opts); err != nil {
		t.Fatalf("Install: %v", err)
	}
	got, err := os.ReadFile(opts.File)
	if err != nil || string(got) != string(data) {
		t.Fatalf("rule file = %q, %v; want the rule XML", got, err)
	}
	if fi, _ := os.Stat(opts.File); fi.Mode().Perm() != 0o444 {
		t.Errorf("rule file mode %v, want 0444", fi.Mode().Perm())
	}
	if diff := cmp.Diff("network firewall refresh [fleetup.xml ]\n", readLog(t, log)); diff != "" {
		t.Errorf("esxcli calls (-want +got):\n%s", diff)
	}
	removed, err := Remove(ctx, conn, opts)
	if err != nil || !removed {
		t.Fatalf("Remove = %v, %v; want true", removed, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("firewall directory after Remove holds %v", entries)
	}
	if diff := cmp.Diff("network firewall refresh [fleetup.xml ]\nnetwork firewall refresh []\n", readLog(t, log)); diff != "" {
		t.Errorf("esxcli calls (-want +got):\n%s", diff)
	}
	removed, err = Remove(ctx, conn, opts)
	if err != nil || removed {
		t.Fatalf("second Remove = %v, %v; want false", removed, err)
	}
	if n := strings.Count(readLog(t, log), "\n"); n != 2 {
		t.Errorf("Remove without a file ran esxcli (%d calls)", n)
	}
}

func TestInstallRefreshFails(t *testing.T) {
	ctx := context.Background()
	conn, err := local.New()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dir, esxcli, log := fakeHost(t)
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "fail"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	data, _ := RuleXML(Services(63001, 63002))
	err = Install(ctx, conn, data, Options{File: filepath.Join(dir, "fleetup.xml"), Esxcli: esxcli})
	if err == nil || !strings.Contains(err.Error(), "refresh firewall") {
		t.Fatalf("Install = %v, want a refresh error", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("firewall directory after a failed refresh holds %v", entries)
	}
	if !strings.Contains(readLog(t, log), "network firewall refresh []") {
		t.Errorf("no refresh after taking the file away:\n%s", readLog(t, log))
	}
}

func TestInstallBadPaths(t *testing.T) {
	ctx := context.Background()
	conn, err := local.New()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data, _ := RuleXML(Services(63001, 63002))
	for _, tc := range []struct{ file, want string }{
		{"fleetup.xml", "not a clean absolute path"},
		{"/etc/vmware/../firewall/x.xml", "not a clean absolute path"},
		{filepath.Join(t.TempDir(), "nodir", "fleetup.xml"), "no such directory, not an ESXi host?"},
	} {
		if err := Install(ctx, conn, data, Options{File: tc.file, Esxcli: "/bin/false"}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Install to %q = %v, want an error containing %q", tc.file, err, tc.want)
		}
	}
}

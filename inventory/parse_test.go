//go:build !windows

package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseOSRelease(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		file    string
		want    map[string]string // only these keys are compared
		wantErr string
	}{
		{name: "debian 12 recorded", file: "os-release.debian12", want: map[string]string{
			"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID_LIKE": "",
		}},
		{name: "rocky 9", file: "os-release.rocky9", want: map[string]string{
			"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.3", "PRETTY_NAME": "Rocky Linux 9.3 (Blue Onyx)",
		}},
		{name: "unquoted, comments, blanks", in: "# c\n\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=22.04\n", want: map[string]string{
			"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "22.04",
		}},
		{name: "single quotes and escapes", in: "NAME='A \"B\"'\nX=\"a\\\"b\\$c\\\\\"\n", want: map[string]string{
			"NAME": `A "B"`, "X": `a"b$c\`,
		}},
		{name: "not key value", in: "ID=debian\nthis is junk\n", want: map[string]string{"ID": "debian"}, wantErr: `line 2: "this is junk" is not KEY=VALUE`},
		{name: "unterminated quote", in: "ID=\"debian\nVERSION_ID=12\n", want: map[string]string{"VERSION_ID": "12"}, wantErr: `line 1: ID: unterminated " quote`},
		{name: "unquoted space", in: "NAME=Debian Linux\n", want: map[string]string{}, wantErr: "line 1: NAME: unquoted whitespace"},
		{name: "bad key", in: "1D=x\n", want: map[string]string{}, wantErr: "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := ParseOSRelease(in)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			sub := map[string]string{}
			for k := range tt.want {
				if v, ok := got[k]; ok {
					sub[k] = v
				} else if tt.want[k] != "" {
					sub[k] = "<missing>"
				} else {
					sub[k] = ""
				}
			}
			if d := cmp.Diff(tt.want, sub); d != "" {
				t.Errorf("values (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseUname(t *testing.T) {
	h, k, a, err := parseUname([]byte("vm 6.18.44-fc-v669 x86_64\n"))
	if err != nil || h != "vm" || k != "6.18.44-fc-v669" || a != "x86_64" {
		t.Fatalf("got %q %q %q %v", h, k, a, err)
	}
	if _, _, _, err := parseUname([]byte("vm x86_64\n")); err == nil || !strings.Contains(err.Error(), "want 3 fields") {
		t.Fatalf("two fields: error = %v", err)
	}
}

func TestParseDpkgQuery(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []fleetup.Package
		wantErr string
	}{
		{name: "installed only", in: "a\t1.0-1\tamd64\tinstalled\nb\t2\tall\tconfig-files\nc\t1:3~rc1\tarm64\thalf-installed\nd\t0.1\tall\tinstalled\n",
			want: []fleetup.Package{{Name: "a", Version: "1.0-1", Arch: "amd64", Manager: "dpkg"}, {Name: "d", Version: "0.1", Arch: "all", Manager: "dpkg"}}},
		{name: "empty", in: ""},
		{name: "crlf and blank", in: "a\t1\tall\tinstalled\r\n\n", want: []fleetup.Package{{Name: "a", Version: "1", Arch: "all", Manager: "dpkg"}}},
		{name: "three fields", in: "a\t1\tinstalled\nb\t2\tall\tinstalled\n", want: []fleetup.Package{{Name: "b", Version: "2", Arch: "all", Manager: "dpkg"}},
			wantErr: `dpkg-query line 1: "a\t1\tinstalled" is not`},
		{name: "installed without version", in: "a\t\tall\tinstalled\n", wantErr: `line 1: installed package "a" has no version`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDpkgQuery([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("packages (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseDpkgQueryRecorded(t *testing.T) {
	in := readTestdata(t, "dpkg-query.debian12.txt")
	got, err := ParseDpkgQuery(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Count(string(in), "\tinstalled\n"); len(got) != want {
		t.Fatalf("got %d packages, want %d", len(got), want)
	}
	byName := map[string]fleetup.Package{}
	for _, p := range got {
		byName[p.Name] = p
	}
	for _, want := range []fleetup.Package{
		{Name: "bsdutils", Version: "1:2.38.1-5+deb12u3", Arch: "amd64", Manager: "dpkg"},
		{Name: "cpp", Version: "4:12.2.0-3", Arch: "amd64", Manager: "dpkg"},
	} {
		if d := cmp.Diff(want, byName[want.Name]); d != "" {
			t.Errorf("%s (-want +got):\n%s", want.Name, d)
		}
	}
}

func TestParseRPMQuery(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		file    string
		want    []fleetup.Package
		wantErr string
	}{
		{name: "recorded with epoch", file: "rpm-qa.txt", want: []fleetup.Package{
			{Name: "fleetup-test", Version: "1.0-1", Arch: "noarch", Manager: "rpm"},
			{Name: "fleetup-slow", Version: "1.0-1", Arch: "noarch", Manager: "rpm"},
			{Name: "fleetup-epoch", Version: "2:3.1.4-5.el9", Arch: "x86_64", Manager: "rpm"},
		}},
		{name: "gpg-pubkey and none arch", in: "gpg-pubkey\t3228467c-613798eb\t(none)\nkernel\t5.14.0-362.el9\t(none)\n",
			want: []fleetup.Package{{Name: "kernel", Version: "5.14.0-362.el9", Manager: "rpm"}}},
		{name: "no release", in: "bash\t5.1\tx86_64\n", wantErr: `rpm line 1: "bash\t5.1\tx86_64" is not`},
		{name: "space", in: "bash 5.1-1 x86_64\n", wantErr: "rpm line 1"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := ParseRPMQuery(in)
			checkErr(t, err, tt.wantErr)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("packages (-want +got):\n%s", d)
			}
		})
	}
}

var testWebcam = fleetup.Device{
	ID:            "08d460be0f1f9f128413f816022a6439e0078018",
	Name:          "Integrated Webcam™",
	Vendor:        "ACME Corp.",
	GUIDs:         []string{"b585990a-003e-5270-89d5-3705a17f9a43"},
	Version:       "1.2.2",
	VersionFormat: "triplet",
	Plugin:        "test",
	Updatable:     true,
}

func TestParseFwupdDevices(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		file    string
		want    []fleetup.Device
		wantErr string
		wantIs  error
	}{
		{name: "test plugin recorded", file: "fwupd-test-plugin.json", want: []fleetup.Device{testWebcam}},
		{name: "noisy output", file: "fwupd-noisy.txt", want: []fleetup.Device{testWebcam}},
		{name: "no devices recorded", file: "fwupd-no-devices.json", wantIs: ErrNoDevices},
		{name: "other error", in: `{"Error":{"Domain":"FwupdError","Code":1,"Message":"Permission denied"}}`, wantErr: "fwupd error 1: Permission denied"},
		{name: "no devices by code, translated", in: `{"Error":{"Domain":"FwupdError","Code":9,"Message":"Keine Geräte erkannt"}}`, wantIs: ErrNoDevices},
		{name: "the message does not decide", in: `{"Error":{"Domain":"FwupdError","Code":8,"Message":"No devices found for this GUID"}}`, wantErr: "fwupd error 8: No devices"},
		{name: "code 9 of another domain", in: `{"Error":{"Domain":"g-io-error-quark","Code":9,"Message":"No detected devices"}}`, wantErr: "fwupd error 9"},
		{name: "uppercase guid, not updatable, no id skipped", in: `{"Devices":[{"DeviceId":"x","Name":"N","Guid":["ABC-DEF"],"Flags":["internal"]},{"Name":"no id"}]}`,
			want: []fleetup.Device{{ID: "x", Name: "N", GUIDs: []string{"abc-def"}}}},
		{name: "empty list", in: `{"Devices":[]}`},
		{name: "no json", in: "Loading…: 0%\n", wantErr: "no fwupd JSON document"},
		{name: "truncated json", in: `{"Devices":[{"DeviceId":"x"`, wantErr: "unexpected EOF"},
		{name: "wrong type", in: `{"Devices":{"DeviceId":"x"}}`, wantErr: "no fwupd JSON document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readTestdata(t, tt.file)
			}
			got, err := ParseFwupdDevices(in)
			if tt.wantIs != nil {
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("error = %v, want %v", err, tt.wantIs)
				}
			} else {
				checkErr(t, err, tt.wantErr)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("devices (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseFwupdDevicesRecordedCPU(t *testing.T) {
	got, err := ParseFwupdDevices(readTestdata(t, "fwupd-cpu.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Plugin != "cpu" || len(got[0].GUIDs) != 2 || got[0].Updatable {
		t.Fatalf("got %+v", got)
	}
}

func TestRPMBased(t *testing.T) {
	tests := []struct {
		id   string
		like []string
		want bool
	}{
		{"debian", nil, false},
		{"ubuntu", []string{"debian"}, false},
		{"rocky", []string{"rhel", "centos", "fedora"}, true},
		{"opensuse-leap", []string{"suse", "opensuse"}, true},
		{"opensuse-tumbleweed", nil, true},
		{"amzn", []string{"centos", "rhel", "fedora"}, true},
		{"myos", []string{"fedora"}, true},
		{"", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := RPMBased(tt.id, tt.like); got != tt.want {
				t.Errorf("RPMBased(%q, %q) = %v, want %v", tt.id, tt.like, got, tt.want)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("error: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want one containing %q", err, want)
	}
}

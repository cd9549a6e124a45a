package inventory

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/windows/registry"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/proc"
)

// testRegistry fills HKCU\Software\fleetup-test-<test>\ with keys (paths
// relative to HKLM, as the collectors read them) and returns a Registry
// that reads there; it is removed when the test ends.
func testRegistry(t *testing.T, keys map[string]map[string]any) Registry {
	t.Helper()
	prefix := `Software\fleetup-test-` + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	deleteTree(registry.CURRENT_USER, prefix)
	for path, values := range keys {
		k, _, err := registry.CreateKey(registry.CURRENT_USER, prefix+`\`+path, registry.ALL_ACCESS)
		if err != nil {
			t.Fatalf("create %s: %v", path, err)
		}
		for name, v := range values {
			switch v := v.(type) {
			case string:
				err = k.SetStringValue(name, v)
			case uint32:
				err = k.SetDWordValue(name, v)
			default:
				t.Fatalf("value %s: type %T", name, v)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		k.Close()
	}
	t.Cleanup(func() { deleteTree(registry.CURRENT_USER, prefix) })
	return Registry{Root: registry.CURRENT_USER, Prefix: prefix}
}

func deleteTree(root registry.Key, path string) {
	if k, err := registry.OpenKey(root, path, registry.ENUMERATE_SUB_KEYS); err == nil {
		names, _ := k.ReadSubKeyNames(-1)
		k.Close()
		for _, n := range names {
			deleteTree(root, path+`\`+n)
		}
	}
	_ = registry.DeleteKey(root, path)
}

// collect runs c on a fresh inventory holding what other collectors put
// there, checks that c leaves that alone and that collecting twice gives
// what collecting once gives, and returns what c added.
func collect(t *testing.T, c Collector) *fleetup.Inventory {
	t.Helper()
	other := func() *fleetup.Inventory {
		return &fleetup.Inventory{
			Packages: []fleetup.Package{{Name: "bash", Version: "5.2", Manager: "dpkg"}},
			Devices:  []fleetup.Device{{ID: "x", Name: "Webcam", GUIDs: []string{}, Version: "1.2.2", Plugin: "test"}},
		}
	}
	once := other()
	if err := c.Collect(context.Background(), &proc.Runner{}, once); err != nil {
		t.Fatalf("%s: %v", c.Name(), err)
	}
	twice := other()
	for i := 0; i < 2; i++ {
		if err := c.Collect(context.Background(), &proc.Runner{}, twice); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(once, twice); d != "" {
		t.Errorf("%s: collecting twice differs from once (-once +twice):\n%s", c.Name(), d)
	}
	if once.Packages[0].Manager != "dpkg" || once.Devices[0].Plugin != "test" {
		t.Errorf("%s dropped what other collectors found: %+v %+v", c.Name(), once.Packages, once.Devices)
	}
	// What c added, without the others'.
	added := *once
	added.Packages, added.Devices = once.Packages[1:], once.Devices[1:]
	if len(added.Packages) == 0 {
		added.Packages = nil
	}
	if len(added.Devices) == 0 {
		added.Devices = nil
	}
	return &added
}

func TestWindowsSystem(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   [3]string // OSName, OSVersion, Kernel
	}{
		{"server 2022", map[string]any{"ProductName": "Windows Server 2022 Standard", "DisplayVersion": "21H2", "CurrentBuild": "20348", "UBR": uint32(1787), "CurrentMajorVersionNumber": uint32(10), "CurrentMinorVersionNumber": uint32(0), "CurrentVersion": "6.3"},
			[3]string{"Windows Server 2022 Standard", "21H2", "10.0.20348.1787"}},
		{"windows 11 calls itself 10", map[string]any{"ProductName": "Windows 10 Pro", "DisplayVersion": "23H2", "CurrentBuild": "22631", "UBR": uint32(2861), "CurrentMajorVersionNumber": uint32(10), "CurrentMinorVersionNumber": uint32(0)},
			[3]string{"Windows 11 Pro", "23H2", "10.0.22631.2861"}},
		{"server 2016: ReleaseId", map[string]any{"ProductName": "Windows Server 2016 Datacenter", "ReleaseId": "1607", "CurrentBuildNumber": "14393", "UBR": uint32(6897), "CurrentMajorVersionNumber": uint32(10), "CurrentMinorVersionNumber": uint32(0)},
			[3]string{"Windows Server 2016 Datacenter", "1607", "10.0.14393.6897"}},
		{"2012 R2: CurrentVersion only", map[string]any{"ProductName": "Windows Server 2012 R2 Standard", "CurrentVersion": "6.3", "CurrentBuild": "9600"},
			[3]string{"Windows Server 2012 R2 Standard", "6.3", "6.3.9600"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := testRegistry(t, map[string]map[string]any{CurrentVersionKey: tt.values})
			inv := collect(t, &WindowsSystem{Registry: reg})
			if got := [3]string{inv.OSName, inv.OSVersion, inv.Kernel}; got != tt.want {
				t.Errorf("name, version, build = %q, want %q", got, tt.want)
			}
			if inv.OS != "windows" || inv.Arch != "x86_64" || inv.Hostname == "" {
				t.Errorf("OS %q, arch %q, host %q", inv.OS, inv.Arch, inv.Hostname)
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		reg := Registry{Root: registry.CURRENT_USER, Prefix: `Software\fleetup-test-none`}
		inv := &fleetup.Inventory{}
		if err := (&WindowsSystem{Registry: reg}).Collect(context.Background(), &proc.Runner{}, inv); err == nil {
			t.Error("no error without the CurrentVersion key")
		}
		if inv.OS != "windows" {
			t.Errorf("OS %q", inv.OS)
		}
	})
}

// TestWindowsSystemHere reads the machine's own registry (Wine's says
// Windows 7, 6.1.7601, unless the prefix was set to another version).
func TestWindowsSystemHere(t *testing.T) {
	inv := collect(t, &WindowsSystem{})
	if inv.OS != "windows" || inv.OSName == "" || inv.OSVersion == "" || !strings.Contains(inv.Kernel, ".") {
		t.Errorf("inventory %+v", inv)
	}
	t.Logf("this node: %s %s, build %s", inv.OSName, inv.OSVersion, inv.Kernel)
}

func TestPrograms(t *testing.T) {
	reg := testRegistry(t, map[string]map[string]any{
		UninstallKey + `\{11111111-2222-3333-4444-555555555555}`: {"DisplayName": "Demo Agent", "DisplayVersion": "2.4.1", "WindowsInstaller": uint32(1)},
		UninstallKey + `\Zeta`:     {"DisplayName": "zeta tool ", "DisplayVersion": " 1.0 "},
		UninstallKey + `\KB123`:    {"DisplayName": "Update for Demo", "ParentKeyName": "Demo"},
		UninstallKey + `\NoName`:   {"DisplayVersion": "9"},
		UninstallKey32 + `\Legacy`: {"DisplayName": "Legacy Tool", "DisplayVersion": "7.0"},
	})
	inv := collect(t, &Programs{Registry: reg})
	want := []fleetup.Package{
		{Name: "Demo Agent", Version: "2.4.1", Arch: "x64", Manager: ManagerMSI},
		{Name: "Legacy Tool", Version: "7.0", Arch: "x86", Manager: ManagerProgram},
		{Name: "zeta tool", Version: "1.0", Arch: "x64", Manager: ManagerProgram},
	}
	if d := cmp.Diff(want, inv.Packages); d != "" {
		t.Errorf("programs (-want +got):\n%s", d)
	}
}

// TestProgramsRegAdd fills the registry with reg.exe, as an administrator
// would.
func TestProgramsRegAdd(t *testing.T) {
	reg := testRegistry(t, nil)
	key := `HKCU\` + reg.Prefix + `\` + UninstallKey + `\Tool`
	for _, v := range [][]string{{"DisplayName", "REG_SZ", "Added Tool"}, {"DisplayVersion", "REG_SZ", "3.2"}} {
		if out, err := exec.Command("reg.exe", "add", key, "/v", v[0], "/t", v[1], "/d", v[2], "/f").CombinedOutput(); err != nil {
			t.Fatalf("reg add: %v: %s", err, out)
		}
	}
	inv := collect(t, &Programs{Registry: reg})
	want := []fleetup.Package{{Name: "Added Tool", Version: "3.2", Arch: "x64", Manager: ManagerProgram}}
	if d := cmp.Diff(want, inv.Packages); d != "" {
		t.Errorf("programs (-want +got):\n%s", d)
	}
}

func TestHotfixes(t *testing.T) {
	reg := testRegistry(t, map[string]map[string]any{
		PackagesKey + `\Package_for_KB5005112~31bf3856ad364e35~amd64~~17763.2090.1.7`:              {"CurrentState": uint32(0x70)},
		PackagesKey + `\Package_1_for_KB5005112~31bf3856ad364e35~amd64~~17763.2090.1.7`:            {"CurrentState": uint32(0x70)},
		PackagesKey + `\Package_for_KB4000001~31bf3856ad364e35~amd64~~10.0.1.0`:                    {"CurrentState": uint32(0x05)}, // staged, not installed
		PackagesKey + `\Package_for_RollupFix~31bf3856ad364e35~amd64~~17763.2090.1.7`:              {"CurrentState": uint32(0x70)},
		PackagesKey + `\Microsoft-Windows-Foundation-Package~31bf3856ad364e35~amd64~~10.0.17763.1`: {"CurrentState": uint32(0x70)},
		PackagesKey + `\Package_for_KB4589208~31bf3856ad364e35~amd64~~2.0.0.0`:                     {"CurrentState": uint32(0x70)},
	})
	inv := collect(t, &Hotfixes{Registry: reg})
	want := []fleetup.Package{
		{Name: "KB4589208", Version: "2.0.0.0", Manager: ManagerHotfix},
		{Name: "KB5005112", Version: "17763.2090.1.7", Manager: ManagerHotfix},
	}
	if d := cmp.Diff(want, inv.Packages); d != "" {
		t.Errorf("hotfixes (-want +got):\n%s", d)
	}
	// Wine has no servicing stack: nothing, and no error.
	if inv := collect(t, &Hotfixes{Registry: testRegistry(t, nil)}); len(inv.Packages) != 0 {
		t.Errorf("hotfixes without the key: %+v", inv.Packages)
	}
}

func TestDrivers(t *testing.T) {
	const net, disp = `{4d36e972-e325-11ce-bfc1-08002be10318}`, `{4d36e968-e325-11ce-bfc1-08002be10318}`
	reg := testRegistry(t, map[string]map[string]any{
		ClassKey + `\` + net + `\0000`:       {"DriverDesc": "Intel(R) Ethernet Controller X710", "ProviderName": "Intel", "DriverVersion": "1.16.202.10", "MatchingDeviceId": `pci\ven_8086&dev_1572`},
		ClassKey + `\` + net + `\0001`:       {"DriverDesc": "WAN Miniport (IP)"}, // no driver version
		ClassKey + `\` + net + `\Properties`: {"x": "y"},
		ClassKey + `\` + disp + `\0000`:      {"DriverDesc": "Microsoft Basic Display Adapter", "ProviderName": "Microsoft", "DriverVersion": "10.0.20348.1"},
	})
	inv := collect(t, &Drivers{Registry: reg})
	want := []fleetup.Device{
		{ID: disp + `\0000`, Name: "Microsoft Basic Display Adapter", Vendor: "Microsoft", Version: "10.0.20348.1", Plugin: PluginDriver, GUIDs: []string{}},
		{ID: net + `\0000`, Name: "Intel(R) Ethernet Controller X710", Vendor: "Intel", Version: "1.16.202.10", Plugin: PluginDriver, GUIDs: []string{`pci\ven_8086&dev_1572`}},
	}
	sortByID := cmp.Transformer("byID", func(d []fleetup.Device) map[string]fleetup.Device {
		m := map[string]fleetup.Device{}
		for _, x := range d {
			m[x.ID] = x
		}
		return m
	})
	if d := cmp.Diff(want, inv.Devices, sortByID); d != "" {
		t.Errorf("drivers (-want +got):\n%s", d)
	}
}

func TestBIOS(t *testing.T) {
	reg := testRegistry(t, map[string]map[string]any{BIOSKey: {"BIOSVendor": "HPE", "BIOSVersion": "U30", "SystemManufacturer": "HPE", "SystemProductName": "ProLiant DL380 Gen10"}})
	inv := collect(t, &BIOS{Registry: reg})
	want := []fleetup.Device{{ID: "bios", Name: "BIOS of HPE ProLiant DL380 Gen10", Vendor: "HPE", Version: "U30", Plugin: PluginBIOS, GUIDs: []string{}}}
	if d := cmp.Diff(want, inv.Devices); d != "" {
		t.Errorf("bios (-want +got):\n%s", d)
	}
	// Wine's BIOS key has empty values: no device.
	if inv := collect(t, &BIOS{Registry: testRegistry(t, map[string]map[string]any{BIOSKey: {"BIOSVersion": ""}})}); len(inv.Devices) != 0 {
		t.Errorf("an empty BIOS version: %+v", inv.Devices)
	}
}

func TestCollectHere(t *testing.T) {
	inv := Collect(context.Background(), nil, Options{})
	if inv.OS != "windows" || len(inv.Warnings) != 0 {
		t.Errorf("inventory of this node: OS %q, warnings %q", inv.OS, inv.Warnings)
	}
	var names []string
	for _, c := range All(Options{}) {
		names = append(names, c.Name())
	}
	if got := strings.Join(names, " "); got != "system tools programs hotfixes drivers bios" {
		t.Errorf("collectors %s", got)
	}
	t.Logf("tools %q, %d programs and hotfixes, %d drivers", inv.Tools, len(inv.Packages), len(inv.Devices))
}

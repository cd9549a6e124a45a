package baseline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
)

// TestWindowsManifests: msi, msu and exe installers and Windows scripts
// are described by manifests; every bad key is refused naming it.
func TestWindowsManifests(t *testing.T) {
	good := map[string]string{
		"agent.msi": `kind = "msi"
id = "com.example.agent"
version = "4.2.1"
file = "agent.msi"
package = "{6F1D3A1E-1111-4A2B-9C3D-0123456789AB}"`,
		"kb.msu": `kind = "msu"
id = "microsoft.kb5034441"
version = "1"
file = "kb.msu"
package = "KB5034441"`,
		"cp0123.exe": `kind = "exe"
id = "hpe.cp0123"
version = "2.1.0"
file = "cp0123.exe"
args = ["/s"]
force_args = ["/f"]
exit_codes = { 1 = "ok", 2 = "reboot", 3 = "current", 0 = "failed" }
version_command = 'HKLM\SOFTWARE\Hewlett-Packard\cp0123\Version'`,
		"hello.ps1": `id = "dev.example.hello-win"
version = "1.0"
script = "hello.ps1"
interpreter = "powershell"
version_command = "Get-Content C:\\hello.txt"
targets = ["windows"]`,
	}
	dir := t.TempDir()
	for file, manifest := range good {
		if err := os.WriteFile(filepath.Join(dir, file), []byte("payload of "+file), 0o644); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(file, filepath.Ext(file)) + ManifestSuffix
		if err := os.WriteFile(filepath.Join(dir, name), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Problems) != 0 || len(b.Components) != 4 {
		t.Fatalf("components %v, problems %v", b.Components, b.Problems)
	}
	for _, c := range b.Components {
		switch c.Kind {
		case fleetup.KindMSI, fleetup.KindMSU:
			if c.Package == "" || c.Targets[0] != "windows" || c.VersionFormat != "plain" {
				t.Errorf("%s: %+v", c.ID, c)
			}
		case fleetup.KindExe:
			if c.Installer == nil || c.Installer.Args[0] != "/s" || c.Installer.ExitCodes["2"] != "reboot" || !strings.HasPrefix(c.VersionCommand, `HKLM\`) {
				t.Errorf("exe: %+v %+v", c, c.Installer)
			}
		case fleetup.KindScript:
			if c.Interpreter != "powershell" {
				t.Errorf("script: %+v", c)
			}
		}
	}
	for _, tc := range []struct{ manifest, want string }{
		{`kind = "msi"` + "\nid = \"a\"\nversion = \"1\"\nfile = \"a.msi\"", "missing package"},
		{`kind = "msu"` + "\nid = \"a\"\nversion = \"1\"\nfile = \"a.msu\"", "KB number"},
		{`kind = "msi"` + "\nid = \"a\"\nversion = \"1\"\nfile = \"a.exe\"\npackage = \"x\"", "must end in .msi"},
		{`kind = "msi"` + "\nid = \"a\"\nversion = \"1\"\nfile = \"a.msi\"\npackage = \"x\"\nargs = [\"/q\"]", "for exe installers"},
		{`kind = "exe"` + "\nid = \"a\"\nversion = \"1\"\nfile = \"a.exe\"", "missing exit_codes"},
		{`kind = "exe"` + "\nid = \"a\"\nversion = \"1\"\nfile = \"a.exe\"\nexit_codes = { x = \"ok\" }", `exit code "x"`},
		{`kind = "exe"` + "\nid = \"a\"\nversion = \"1\"\nfile = \"a.exe\"\nexit_codes = { 0 = \"fine\" }", `means "fine"`},
		{`kind = "exe"` + "\nid = \"a\"\nversion = \"1\"\nfile = \"a.exe\"\nexit_codes = { 0 = \"ok\" }\ntargets = [\"debian\"]", "targets of a exe"},
		{"id = \"a\"\nversion = \"1\"\nscript = \"a.ps1\"\ninterpreter = \"powershell\"\nversion_command = \"x\"\ntargets = [\"debian\"]", `targets must be ["windows"]`},
		{"id = \"a\"\nversion = \"1\"\nscript = \"a.sh\"\nversion_command = \"x\"\ntargets = [\"debian\"]\nargs = [\"-x\"]", "for Windows installers"},
	} {
		if _, err := ParseManifest([]byte(tc.manifest), "x.component.toml"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.manifest, err, tc.want)
		}
	}
}

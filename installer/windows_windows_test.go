package installer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/windows/registry"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
)

// The test binary doubles as the Windows installer tools (msiexec, wusa,
// an .exe, powershell): with fakeTool set it records its arguments in
// fakeRecord, writes fakeLog (UTF-16, as msiexec does) to the file after
// /l*v, prints fakeOut and exits with fakeExit.
const (
	fakeTool   = "FLEETUP_FAKE_TOOL"
	fakeRecord = "FLEETUP_FAKE_RECORD"
	fakeLog    = "FLEETUP_FAKE_LOG"
	fakeOut    = "FLEETUP_FAKE_OUT"
	fakeExit   = "FLEETUP_FAKE_EXIT"
)

func TestMain(m *testing.M) {
	if os.Getenv(fakeTool) != "" {
		os.Exit(runFake())
	}
	os.Exit(m.Run())
}

func runFake() int {
	args := os.Args[1:]
	rec := map[string]any{"args": args, "component": os.Getenv("FLEETUP_COMPONENT_ID"), "marker": os.Getenv(proc.MarkerVar)}
	b, _ := json.Marshal(rec)
	_ = os.WriteFile(os.Getenv(fakeRecord), b, 0o600)
	for i, a := range args {
		if a == "/l*v" && i+1 < len(args) {
			u := utf16.Encode([]rune(os.Getenv(fakeLog)))
			out := []byte{0xff, 0xfe}
			for _, c := range u {
				out = append(out, byte(c), byte(c>>8))
			}
			_ = os.WriteFile(args[i+1], out, 0o600)
		}
	}
	fmt.Print(os.Getenv(fakeOut))
	code, _ := strconv.ParseUint(os.Getenv(fakeExit), 0, 32)
	return int(int32(uint32(code)))
}

// fake is one fake tool's set-up: a runner whose commands are the fake,
// and where it records its arguments.
type fake struct {
	cfg    Config
	self   string
	record string
}

func newFake(t *testing.T, exit uint32, out, log string) *fake {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(tempDir(t), "record.json")
	r := &proc.Runner{Marker: "20261202-061500-ab12cd", Env: []string{fakeTool + "=1", fakeRecord + "=" + record, fakeOut + "=" + out, fakeLog + "=" + log, fakeExit + "=" + strconv.FormatUint(uint64(exit), 10)}}
	return &fake{cfg: Config{Runner: r}, self: self, record: record}
}

// args returns what the fake was run with.
func (f *fake) args(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.record)
	if err != nil {
		t.Fatalf("the tool did not run: %v", err)
	}
	var rec struct {
		Args   []string
		Marker string
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Marker != "20261202-061500-ab12cd" {
		t.Errorf("the tool ran without the run's marker (%q)", rec.Marker)
	}
	return rec.Args
}

// tempDir is t.TempDir, removed file by file: testing's own clean-up
// uses os.RemoveAll, which fails under Wine.
func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fleetup-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeDir(t, dir) })
	return dir
}

func removeDir(t *testing.T, dir string) {
	var paths []string
	_ = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			paths = append(paths, p)
		}
		return nil
	})
	for i := len(paths) - 1; i >= 0; i-- {
		if err := os.Remove(paths[i]); err != nil {
			t.Logf("clean up: %v", err)
		}
	}
}

var windowsNode = &fleetup.Inventory{OS: "windows"}

func TestMSIInstall(t *testing.T) {
	const log = "Action start 10:00:01: InstallFiles.\r\nError 1722. There is a problem with this Windows Installer package.\r\nAction ended 10:00:02: InstallFinalize. Return value 3.\r\nMSI (s) (A4:B8) [10:00:02:123]: Product: Demo -- Installation failed.\r\n=== Logging stopped ===\r\n"
	tests := []struct {
		name       string
		exit       uint32
		opts       Options
		wantReboot bool
		wantErr    string
		wantArgs   []string
	}{
		{name: "ok", exit: 0, wantArgs: []string{"/i", "PAYLOAD", "/qn", "/norestart", "/l*v", "PAYLOAD.log"}},
		{name: "reboot 3010", exit: 3010, wantReboot: true},
		{name: "reboot 1641", exit: 1641, wantReboot: true},
		{name: "rewrite", exit: 0, opts: Options{Rewrite: true}, wantArgs: []string{"/i", "PAYLOAD", "/qn", "/norestart", "/l*v", "PAYLOAD.log", "REINSTALL=ALL", "REINSTALLMODE=vomus"}},
		{name: "fatal 1603", exit: 1603, wantErr: "msiexec exited with status 1603: Error 1722. There is a problem with this Windows Installer package.; Action ended 10:00:02: InstallFinalize. Return value 3.; MSI (s) (A4:B8) [10:00:02:123]: Product: Demo -- Installation failed. (a fatal error during installation: see the log lines)"},
		{name: "another version 1638", exit: 1638, wantErr: "another version of this product is already installed"},
		{name: "unknown code", exit: 1, wantErr: "msiexec exited with status 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.exit, "", log)
			m := NewMSI(f.cfg)
			m.Program = f.self
			payload := filepath.Join(tempDir(t), "demo.msi")
			if err := os.WriteFile(payload, []byte("msi"), 0o600); err != nil {
				t.Fatal(err)
			}
			c := &fleetup.Component{ID: "demo", Kind: fleetup.KindMSI, File: "demo.msi", Version: "1.0"}
			o, err := m.Install(context.Background(), c, payload, tt.opts)
			if tt.wantErr != "" {
				var ie *InstallError
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want an InstallError with %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if o.RebootNeeded != tt.wantReboot {
				t.Errorf("RebootNeeded = %v, want %v", o.RebootNeeded, tt.wantReboot)
			}
			if !strings.Contains(o.Output, "Logging stopped") {
				t.Errorf("the output does not end with the log: %q", o.Output)
			}
			if _, err := os.Stat(payload + ".log"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the log was left beside the payload: %v", err)
			}
			if tt.wantArgs != nil {
				got := f.args(t)
				for i := range got {
					got[i] = strings.ReplaceAll(got[i], payload, "PAYLOAD")
				}
				if d := cmp.Diff(tt.wantArgs, got); d != "" {
					t.Errorf("msiexec arguments (-want +got):\n%s", d)
				}
			}
		})
	}
}

func TestMSUInstall(t *testing.T) {
	tests := []struct {
		name        string
		exit        uint32
		wantReboot  bool
		wantVersion string
		wantErr     string
	}{
		{name: "ok", exit: 0},
		{name: "reboot", exit: 3010, wantReboot: true},
		{name: "already installed", exit: 2359302, wantVersion: "2021.07"},
		{name: "not applicable", exit: 0x80240017, wantErr: "wusa exited with status 2149842967: wusa: (the update does not apply to this computer)"},
		{name: "other", exit: 0x80070005, wantErr: "(code 0x80070005)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.exit, "wusa: ", "")
			m := NewMSU(f.cfg)
			m.Program = f.self
			payload := filepath.Join(tempDir(t), "windows10.0-kb5005112-x64.msu")
			c := &fleetup.Component{ID: "kb5005112", Kind: fleetup.KindMSU, File: filepath.Base(payload), Version: "2021.07"}
			o, err := m.Install(context.Background(), c, payload, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.RebootNeeded != tt.wantReboot || o.Version != tt.wantVersion {
				t.Errorf("outcome %+v, want reboot %v, version %q", o, tt.wantReboot, tt.wantVersion)
			}
			if d := cmp.Diff([]string{payload, "/quiet", "/norestart"}, f.args(t)); d != "" {
				t.Errorf("wusa arguments (-want +got):\n%s", d)
			}
		})
	}
}

func TestMSUProbe(t *testing.T) {
	m := NewMSU(Config{})
	c := &fleetup.Component{ID: "kb", Kind: fleetup.KindMSU, File: "windows10.0-kb5005112-x64.msu", Version: "2021.07"}
	inv := &fleetup.Inventory{OS: "windows", Packages: []fleetup.Package{{Name: "KB5005112", Version: "17763.2090.1.7", Manager: inventory.ManagerHotfix}}}
	p, err := m.Probe(context.Background(), c, inv)
	if err != nil || !p.Applicable || p.Installed != "2021.07" {
		t.Errorf("installed update: %+v, %v", p, err)
	}
	p, _ = m.Probe(context.Background(), c, windowsNode)
	if !p.Applicable || p.Installed != "" {
		t.Errorf("missing update: %+v", p)
	}
	p, _ = m.Probe(context.Background(), c, &fleetup.Inventory{OS: "debian"})
	if p.Applicable {
		t.Errorf("a Linux node: %+v", p)
	}
}

func TestExeSmartComponent(t *testing.T) {
	tests := []struct {
		name       string
		exit       uint32
		opts       Options
		wantArgs   []string
		wantReboot bool
		wantErr    string
	}{
		{name: "installed", exit: 1, wantArgs: []string{"/s"}},
		{name: "reboot", exit: 2, wantArgs: []string{"/s"}, wantReboot: true},
		{name: "current", exit: 3, wantArgs: []string{"/s"}},
		{name: "forced", exit: 1, opts: Options{Downgrade: true}, wantArgs: []string{"/s", "/f"}},
		{name: "failed", exit: 0, wantErr: "cp045678.exe exited with status 0"},
		{name: "unknown", exit: 7, wantErr: "cp045678.exe exited with status 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.exit, "", "")
			payload := filepath.Join(tempDir(t), "cp045678.exe")
			self, _ := os.ReadFile(f.self)
			if err := os.WriteFile(payload, self, 0o700); err != nil {
				t.Fatal(err)
			}
			e := NewExe(f.cfg)
			c := &fleetup.Component{ID: "cp045678", Kind: fleetup.KindExe, File: "cp045678.exe", Version: "2.1"}
			o, err := e.Install(context.Background(), c, payload, tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.RebootNeeded != tt.wantReboot {
				t.Errorf("RebootNeeded = %v", o.RebootNeeded)
			}
			if d := cmp.Diff(tt.wantArgs, f.args(t)); d != "" {
				t.Errorf("arguments (-want +got):\n%s", d)
			}
		})
	}
	// Another .exe has no known silent arguments: not applicable.
	p, err := NewExe(Config{}).Probe(context.Background(), &fleetup.Component{ID: "x", Kind: fleetup.KindExe, File: "setup.exe"}, windowsNode)
	if err != nil || p.Applicable || !strings.Contains(p.Reason, "args and exit_codes") {
		t.Errorf("setup.exe: %+v, %v", p, err)
	}
	// With its manifest's args and exit codes, any .exe runs.
	spec, err := SpecFor(&fleetup.Component{ID: "y", Kind: fleetup.KindExe, File: "setup.exe", VersionCommand: `HKLM\SOFTWARE\y\Version`,
		Installer: &fleetup.InstallerSpec{Args: []string{"/S"}, ForceArgs: []string{"/force"}, ExitCodes: map[string]string{"0": "ok", "3010": "reboot", "1": "current", "2": "failed"}}})
	if err != nil || spec.Args[0] != "/S" || spec.ForceArgs[0] != "/force" || spec.Version != `HKLM\SOFTWARE\y\Version` ||
		spec.Codes.Meaning[0] != ExitOK || spec.Codes.Meaning[3010] != ExitReboot || spec.Codes.Meaning[1] != ExitCurrent {
		t.Errorf("SpecFor a manifest's exe: %+v, %v", spec, err)
	}
	if _, listed := spec.Codes.Meaning[2]; listed {
		t.Errorf("a failed code is listed as a meaning: %+v", spec.Codes)
	}
}

// testRegistry makes a registry of the keys the installers read under
// HKCU\Software\fleetup-test-<name>, removed when the test ends.
func testRegistry(t *testing.T, keys map[string]map[string]any) inventory.Registry {
	t.Helper()
	prefix := `Software\fleetup-test-` + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
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
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		k.Close()
	}
	t.Cleanup(func() { deleteTree(registry.CURRENT_USER, prefix) })
	return inventory.Registry{Root: registry.CURRENT_USER, Prefix: prefix}
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

func TestMSIProbe(t *testing.T) {
	reg := testRegistry(t, map[string]map[string]any{
		inventory.UninstallKey + `\{11111111-2222-3333-4444-555555555555}`: {"DisplayName": "Demo Agent", "DisplayVersion": "2.4.1", "WindowsInstaller": uint32(1)},
		inventory.UninstallKey32 + `\Legacy`:                               {"DisplayName": "Legacy Tool", "DisplayVersion": "7.0"},
	})
	m := NewMSI(Config{})
	m.Registry = reg
	tests := []struct{ name, pkg, want string }{
		{"by product code", "{11111111-2222-3333-4444-555555555555}", "2.4.1"},
		{"by name, 32-bit view", "legacy tool", "7.0"},
		{"absent", "{99999999-2222-3333-4444-555555555555}", ""},
	}
	for _, tt := range tests {
		p, err := m.Probe(context.Background(), &fleetup.Component{ID: "x", Kind: fleetup.KindMSI, Package: tt.pkg}, windowsNode)
		if err != nil || !p.Applicable || p.Installed != tt.want {
			t.Errorf("%s: %+v, %v; want installed %q", tt.name, p, err, tt.want)
		}
	}
}

func TestExeProbeVersion(t *testing.T) {
	reg := testRegistry(t, map[string]map[string]any{`SOFTWARE\HPE\NIC`: {"Version": "1.2.3", "Build": uint32(42)}})
	e := NewExe(Config{})
	e.Registry = reg
	tests := []struct{ name, version, want string }{
		{"registry string", `HKLM\SOFTWARE\HPE\NIC\Version`, "1.2.3"},
		{"registry dword", `HKEY_LOCAL_MACHINE\SOFTWARE\HPE\NIC\Build`, "42"},
		{"registry absent", `HKLM\SOFTWARE\HPE\Nothing\Version`, ""},
		{"command", `echo 4.5.6`, "4.5.6"},
		{"command fails", `exit /b 3`, ""},
	}
	for _, tt := range tests {
		c := &fleetup.Component{ID: "cp", Kind: fleetup.KindExe, File: "cp000001.exe", VersionCommand: tt.version}
		p, err := e.Probe(context.Background(), c, windowsNode)
		if err != nil || !p.Applicable || p.Installed != tt.want {
			t.Errorf("%s: %+v, %v; want installed %q", tt.name, p, err, tt.want)
		}
	}
}

func TestWinScriptCommand(t *testing.T) {
	s := NewWinScript(Config{})
	tests := []struct {
		interp, file string
		want         []string
	}{
		{"powershell", "x.ps1", []string{"powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", `C:\p\x.ps1`}},
		{"", "x.ps1", []string{"powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", `C:\p\x.ps1`}},
		{"cmd", "x.txt", []string{"cmd.exe", `cmd.exe /d /c "C:\p\x.txt"`}},
		{"", "x.bat", []string{"cmd.exe", `cmd.exe /d /c "C:\p\x.bat"`}},
		{`C:\Python\python.exe -u`, "x.py", []string{`C:\Python\python.exe`, "-u", `C:\p\x.py`}},
	}
	for _, tt := range tests {
		prog, args, line, err := s.Command(&fleetup.Component{Interpreter: tt.interp, File: tt.file}, `C:\p\`+tt.file)
		if err != nil {
			t.Fatal(err)
		}
		got := append([]string{prog}, args...)
		if line != "" {
			got = append(got, line)
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("%q %s (-want +got):\n%s", tt.interp, tt.file, d)
		}
	}
	if _, _, _, err := s.Command(&fleetup.Component{File: "x.sh"}, `C:\p\x.sh`); err == nil {
		t.Error("a script with no interpreter and no known extension was given one")
	}
}

func TestWinScriptPowerShell(t *testing.T) {
	f := newFake(t, 0, "3.1\r\n", "")
	s := NewWinScript(f.cfg)
	s.PowerShell = f.self
	c := &fleetup.Component{ID: "ps", Kind: fleetup.KindScript, File: "fix.ps1", Version: "3.1", Interpreter: "powershell", Targets: []string{"windows"}, VersionCommand: "(Get-Item C:\\fix).VersionInfo"}
	p, err := s.Probe(context.Background(), c, windowsNode)
	if err != nil || !p.Applicable || p.Installed != "3.1" {
		t.Errorf("probe %+v, %v", p, err)
	}
	if d := cmp.Diff(append(append([]string{}, psArgs...), "-Command", c.VersionCommand), f.args(t)); d != "" {
		t.Errorf("version command arguments (-want +got):\n%s", d)
	}
	if _, err := s.Install(context.Background(), c, `C:\p\fix.ps1`, Options{}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(append(append([]string{}, psArgs...), "-File", `C:\p\fix.ps1`), f.args(t)); d != "" {
		t.Errorf("install arguments (-want +got):\n%s", d)
	}
	p, _ = s.Probe(context.Background(), &fleetup.Component{ID: "l", Targets: []string{"debian"}}, windowsNode)
	if p.Applicable {
		t.Errorf("a Linux script on Windows: %+v", p)
	}
}

// TestWinScriptCmd runs real scripts with Wine's (or Windows') cmd.exe.
func TestWinScriptCmd(t *testing.T) {
	dir := tempDir(t)
	s := NewWinScript(Config{Runner: &proc.Runner{Marker: "20261202-061500-ab12cd"}})
	good := filepath.Join(dir, "good script.cmd")
	if err := os.WriteFile(good, []byte("@echo off\r\necho %FLEETUP_COMPONENT_ID% %FLEETUP_COMPONENT_VERSION% > \""+dir+"\\out.txt\"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &fleetup.Component{ID: "dev.example.cmd", Version: "1.0", Kind: fleetup.KindScript, File: "good script.cmd", Targets: []string{"windows"}, VersionCommand: `type "` + dir + `\out.txt"`}
	if p, _ := s.Probe(context.Background(), c, windowsNode); p.Installed != "" {
		t.Errorf("before: %+v", p)
	}
	if _, err := s.Install(context.Background(), c, good, Options{}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Probe(context.Background(), c, windowsNode); err != nil || p.Installed != "dev.example.cmd 1.0" {
		t.Errorf("after: %+v, %v", p, err)
	}
	bad := filepath.Join(dir, "bad.cmd")
	if err := os.WriteFile(bad, []byte("@echo off\r\necho broken\r\nexit /b 4\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Install(context.Background(), &fleetup.Component{ID: "bad", File: "bad.cmd"}, bad, Options{})
	var ie *InstallError
	if !errors.As(err, &ie) || ie.ExitCode != 4 || !strings.Contains(ie.Message, "broken") {
		t.Errorf("failing script: %v", err)
	}
}

func TestByKindWindows(t *testing.T) {
	m := ByKind(Config{})
	for _, k := range []fleetup.Kind{fleetup.KindMSI, fleetup.KindMSU, fleetup.KindExe, fleetup.KindScript} {
		if _, ok := m[k]; !ok {
			t.Errorf("no installer for %s", k)
		}
	}
	if _, ok := m[fleetup.KindDeb]; ok {
		t.Error("a deb installer on Windows")
	}
}

func TestDecodeLog(t *testing.T) {
	u := utf16.Encode([]rune("Grüße\r\n"))
	var le []byte
	for _, c := range u {
		le = append(le, byte(c), byte(c>>8))
	}
	for name, b := range map[string][]byte{"utf-16 bom": append([]byte{0xff, 0xfe}, le...), "utf-16": le, "utf-8": []byte("Grüße\r\n")} {
		if got := decodeLog(b); got != "Grüße\r\n" {
			t.Errorf("%s: %q", name, got)
		}
	}
}

// TestMSIWithMsiexec installs testdata/fleetup-demo.msi (made with wixl)
// with the real msiexec (Wine's, or Windows'), reads its version back by
// product code, and removes it again.
func TestMSIWithMsiexec(t *testing.T) {
	const code = "{6F1C7A3E-2B7D-4E1A-9C55-0F6A1B2C3D4E}"
	uninstall := func() { _ = exec.Command("msiexec.exe", "/x", code, "/qn", "/norestart").Run() }
	uninstall()
	t.Cleanup(uninstall)
	b, err := os.ReadFile(filepath.Join("testdata", "fleetup-demo.msi"))
	if err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(tempDir(t), "0123456789abcdef-fleetup-demo.msi")
	if err := os.WriteFile(payload, b, 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMSI(Config{Runner: &proc.Runner{Marker: "20261202-061500-ab12cd"}})
	c := &fleetup.Component{ID: "dev.example.demo", Name: "fleetup demo", Kind: fleetup.KindMSI, File: "fleetup-demo.msi", Version: "1.2.0", Package: code}
	if p, err := m.Probe(context.Background(), c, windowsNode); err != nil || p.Installed != "" {
		t.Fatalf("before: %+v, %v", p, err)
	}
	o, err := m.Install(context.Background(), c, payload, Options{})
	if err != nil {
		t.Fatalf("install: %v\n%s", err, o.Output)
	}
	if !strings.Contains(o.Output, "INSTALL. Return value 1") {
		t.Errorf("no verbose log in the output: %q", o.Output)
	}
	if p, err := m.Probe(context.Background(), c, windowsNode); err != nil || p.Installed != "1.2.0" {
		t.Errorf("after: %+v, %v", p, err)
	}
	// By its name too (the component without a product code).
	byName := *c
	byName.Package = ""
	if p, err := m.Probe(context.Background(), &byName, windowsNode); err != nil || p.Installed != "1.2.0" {
		t.Errorf("by name: %+v, %v", p, err)
	}

	bad := filepath.Join(filepath.Dir(payload), "bad.msi")
	if err := os.WriteFile(bad, []byte("not a package"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = m.Install(context.Background(), &fleetup.Component{ID: "bad", Kind: fleetup.KindMSI, File: "bad.msi"}, bad, Options{})
	var ie *InstallError
	if !errors.As(err, &ie) || ie.ExitCode == 0 || ie.Tool != "msiexec" {
		t.Errorf("a broken package: %v", err)
	}
	t.Logf("a broken package: %v", err)
}

package baseline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/internal/testenv"
)

func fileSum(t *testing.T, path string) (int64, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return int64(len(b)), hex.EncodeToString(s[:])
}

// buildRPM makes a noarch rpm with rpmbuild.
func buildRPM(t *testing.T, dir, name, version, release string, epoch int) string {
	t.Helper()
	top := t.TempDir()
	spec := "Name: " + name + "\nVersion: " + version + "\nRelease: " + release + "\nSummary: " + name + " summary\nLicense: MIT\nBuildArch: noarch\n"
	if epoch > 0 {
		spec += "Epoch: " + strings.TrimSpace(string(rune('0'+epoch))) + "\n"
	}
	spec += "%description\ntest\n%files\n"
	specPath := filepath.Join(top, name+".spec")
	os.WriteFile(specPath, []byte(spec), 0o644)
	cmd := exec.Command("rpmbuild", "-bb", "--define", "_topdir "+top, "--define", "_rpmdir "+dir,
		"--define", "_build_name_fmt %{NAME}.rpm", "--quiet", specPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	return filepath.Join(dir, name+".rpm")
}

func TestLoad(t *testing.T) {
	testenv.RequireTools(t, "dpkg-deb", "rpmbuild")
	dir := t.TempDir()
	guid := testbaseline.FakeDeviceGUID
	cab := testbaseline.Cab(t, dir, "fw.cab", "com.example.fw", "1.2.4", strings.ToUpper(guid))
	deb := testbaseline.Deb(t, dir, "hello-fleetup", "1:2.0-1", map[string]string{"/usr/share/doc/hello-fleetup/x": "x"})
	debZ := testbaseline.DebCompressed(t, dir, "zstd", "zst-pkg", "1.0~rc1", nil)
	debGz := testbaseline.DebCompressed(t, dir, "gzip", "gz-pkg", "3.0", nil)
	rpm := buildRPM(t, dir, "rpm-pkg", "4.1", "2.el9", 1)
	manifest := testbaseline.Script(t, dir, "com.example.script", "1.0.0", "#!/bin/sh\necho hi\n", "cat /x", "debian", "rhel")

	// One of each problem.
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "ignored")
	write(".hidden", "ignored")
	write("notes.txt", "not a component")
	write("empty.deb", "")
	write("empty.cab", "")
	write("empty.rpm", "")
	good, _ := os.ReadFile(deb)
	write("truncated.deb", string(good[:len(good)-len(good)/2]))
	write("garbage.rpm", "this is not an rpm file at all, not even close to one")
	bad := testbaseline.Cab(t, dir, "corrupt.cab", "com.example.corrupt", "1.0.0", guid)
	testbaseline.Corrupt(t, bad)
	write("dup.component.toml", "id = \"hello-fleetup\"\nversion = \"9\"\nscript = \"dup.sh\"\nversion_command = \"true\"\ntargets = [\"linux\"]\n")
	write("dup.sh", "#!/bin/sh\n")
	write("unknown.component.toml", "id = \"x.y\"\nversion = \"1\"\nscript = \"u.sh\"\nversion_command = \"true\"\ntargets = [\"linux\"]\ncolour = \"red\"\n")
	write("missing.component.toml", "id = \"x.z\"\nversion = \"1\"\nscript = \"nope.sh\"\nversion_command = \"true\"\ntargets = [\"linux\"]\n")
	write("badversion.component.toml", "id = \"x.w\"\nversion = \"one\"\nscript = \"bv.sh\"\nversion_command = \"true\"\ntargets = [\"linux\"]\n")
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	badXML := cabWith(t, dir, "badxml.cab", map[string]string{"a.metainfo.xml": "<component type=\"firmware\"><id>x</id"})
	_ = badXML
	cabWith(t, dir, "nometa.cab", map[string]string{"firmware.bin": "x"})
	cabWith(t, dir, "mismatch.cab", map[string]string{
		"f.bin":          "firmware",
		"f.metainfo.xml": metainfoXML("com.example.mismatch", "1.0.0", guid, "f.bin", strings.Repeat("0", 64)),
	})
	cabWith(t, dir, "absent.cab", map[string]string{
		"f.metainfo.xml": metainfoXML("com.example.absent", "1.0.0", guid, "nothere.bin", strings.Repeat("0", 64)),
	})

	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}

	cabSize, cabSum := fileSum(t, cab)
	debSize, debSum := fileSum(t, deb)
	zSize, zSum := fileSum(t, debZ)
	gzSize, gzSum := fileSum(t, debGz)
	rpmSize, rpmSum := fileSum(t, rpm)
	scriptPath := filepath.Join(dir, "com.example.script.sh")
	scriptSize, scriptSum := fileSum(t, scriptPath)
	want := []*fleetup.Component{
		{ID: "com.example.fw", Name: "com.example.fw", Version: "1.2.4", Kind: fleetup.KindFwupd, VersionFormat: "triplet",
			File: "fw.cab", Path: cab, Size: cabSize, SHA256: cabSum, Targets: []string{guid}},
		{ID: "gz-pkg", Name: "gz-pkg test package", Version: "3.0", Kind: fleetup.KindDeb, VersionFormat: "dpkg",
			File: filepath.Base(debGz), Path: debGz, Size: gzSize, SHA256: gzSum, Targets: []string{"gz-pkg"}, Package: "gz-pkg", Arch: "all"},
		{ID: "rpm-pkg", Name: "rpm-pkg summary", Version: "1:4.1-2.el9", Kind: fleetup.KindRPM, VersionFormat: "rpm",
			File: "rpm-pkg.rpm", Path: rpm, Size: rpmSize, SHA256: rpmSum, Targets: []string{"rpm-pkg"}, Package: "rpm-pkg", Arch: "noarch"},
		{ID: "com.example.script", Name: "com.example.script test script", Version: "1.0.0", Kind: fleetup.KindScript, VersionFormat: "dpkg",
			File: "com.example.script.sh", Path: scriptPath, Size: scriptSize, SHA256: scriptSum, Targets: []string{"debian", "rhel"},
			VersionCommand: "cat /x", Interpreter: "/bin/sh"},
		{ID: "zst-pkg", Name: "zst-pkg test package", Version: "1.0~rc1", Kind: fleetup.KindDeb, VersionFormat: "dpkg",
			File: filepath.Base(debZ), Path: debZ, Size: zSize, SHA256: zSum, Targets: []string{"zst-pkg"}, Package: "zst-pkg", Arch: "all"},
	}
	_ = manifest
	_, _ = debSize, debSum
	sortByID := cmpopts.SortSlices(func(a, b *fleetup.Component) bool { return a.ID < b.ID })
	if diff := cmp.Diff(want, b.Components, sortByID); diff != "" {
		t.Errorf("components (-want +got):\n%s", diff)
	}

	wantProblems := map[string]string{
		"absent.cab":                  `f.metainfo.xml: release 1.0.0: firmware file "nothere.bin" is not in the cabinet`,
		"badversion.component.toml":   `invalid dpkg version "one": upstream version does not start with a digit`,
		"badxml.cab":                  "a.metainfo.xml: bad metainfo XML",
		"corrupt.cab":                 "checksum",
		"dup.component.toml":          `duplicate id "hello-fleetup" (also in hello-fleetup_2.0-1_all.deb)`,
		"empty.cab":                   "empty file",
		"empty.deb":                   "empty file",
		"empty.rpm":                   "empty file",
		"garbage.rpm":                 "rpm:",
		"hello-fleetup_2.0-1_all.deb": `duplicate id "hello-fleetup" (also in dup.component.toml)`,
		"mismatch.cab":                `sha256 of "f.bin" is`,
		"missing.component.toml":      `script "nope.sh" does not exist`,
		"nometa.cab":                  "no *.metainfo.xml member",
		"notes.txt":                   "not a component: unknown type",
		"subdir":                      "not a component: a directory",
		"truncated.deb":               "truncated",
		"unknown.component.toml":      `unknown key "colour"`,
	}
	got := map[string]string{}
	for _, p := range b.Problems {
		if _, dup := got[p.File]; dup {
			t.Errorf("two problems for %s", p.File)
		}
		got[p.File] = p.Reason
	}
	for file, reason := range wantProblems {
		if !strings.Contains(got[file], reason) {
			t.Errorf("problem for %s = %q, want it to contain %q", file, got[file], reason)
		}
	}
	for file, reason := range got {
		if _, ok := wantProblems[file]; !ok {
			t.Errorf("unexpected problem %s: %s", file, reason)
		}
	}
	if b.Err() == nil || !strings.Contains(b.Err().Error(), "notes.txt: not a component: unknown type") {
		t.Errorf("Err() = %v", b.Err())
	}
	if c := b.Component("rpm-pkg"); c == nil || c.Version != "1:4.1-2.el9" {
		t.Errorf("Component(rpm-pkg) = %v", c)
	}
	if b.Component("hello-fleetup") != nil {
		t.Errorf("a duplicated id is in Components")
	}

	var table bytes.Buffer
	WriteTable(&table, b)
	for _, s := range []string{"ID", "SHA256", cabSum, "com.example.fw", "1:4.1-2.el9", "debian,rhel", "notes.txt: not a component: unknown type"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Errorf("Load(missing dir) succeeded")
	}
	b, err := Load(t.TempDir())
	if err != nil || len(b.Components) != 0 || b.Err() != nil {
		t.Errorf("Load(empty dir) = %+v, %v", b, err)
	}
}

// TestFwupdFixture loads fwupd's own test cabinet.
func TestFwupdFixture(t *testing.T) {
	src := "/usr/share/installed-tests/fwupd/fakedevice124.cab"
	data, err := os.ReadFile(src)
	if err != nil {
		testenv.Skip(t, "needs fwupd-tests: "+err.Error())
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "fakedevice124.cab"), data, 0o644)
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	c := b.Component("org.fwupd.fakedevice.firmware")
	if c == nil {
		t.Fatalf("components: %v", b.Components)
	}
	if c.Version != "1.2.4" || c.Name != "FakeDevice" || c.VersionFormat != "triplet" ||
		!cmp.Equal(c.Targets, []string{"b585990a-003e-5270-89d5-3705a17f9a43"}) {
		t.Errorf("component = %+v", c)
	}
}

// TestExample checks the example baseline of the README demo, and that its
// script's version command prints exactly the version after it ran.
func TestExample(t *testing.T) {
	b, err := Load("../examples/baseline")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	fw := b.Component("dev.fleetup.example.fakedevice")
	if fw == nil || fw.Version != "1.2.5" || !cmp.Equal(fw.Targets, []string{testbaseline.FakeDeviceGUID}) {
		t.Errorf("firmware component = %+v", fw)
	}
	hello := b.Component("dev.fleetup.example.hello")
	if hello == nil || hello.Version != "1.0.0" || !cmp.Equal(hello.Targets, []string{"linux"}) {
		t.Fatalf("hello component = %+v", hello)
	}
	if len(b.Components) != 2 {
		t.Errorf("%d components, want 2", len(b.Components))
	}

	// Run the script and its version command with the state directory
	// moved into a temporary directory.
	state := t.TempDir()
	relocate := func(s string) string { return strings.ReplaceAll(s, "/var/lib/fleetup-example", state) }
	script, err := os.ReadFile(hello.Path)
	if err != nil {
		t.Fatal(err)
	}
	run := func(code string) string {
		out, err := exec.Command(hello.Interpreter, "-c", relocate(code)).Output()
		if err != nil {
			t.Fatalf("sh -c %q: %v", code, err)
		}
		return string(out)
	}
	if got := run(hello.VersionCommand); got != "" {
		t.Errorf("version command before install printed %q, want nothing", got)
	}
	run(string(script))
	if got := run(hello.VersionCommand); got != hello.Version+"\n" {
		t.Errorf("version command printed %q, want %q", got, hello.Version+"\n")
	}
	content, _ := os.ReadFile(filepath.Join(state, "hello"))
	if !strings.Contains(string(content), "deployed by fleetup") {
		t.Errorf("hello file = %q", content)
	}
}

// TestBMCManifest loads BMC images described by manifests, and refuses
// the manifests that mix in a script's keys or name no target.
func TestBMCManifest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ilo5.bin", "an image")
	write("ilo5.component.toml", "kind = \"bmc\"\nid = \"hpe.ilo5\"\nname = \"iLO 5 firmware\"\nversion = \"2.78\"\nfile = \"ilo5.bin\"\ntargets = [\"iLO 5\"]\n")
	write("mixed.component.toml", "kind = \"bmc\"\nid = \"mixed\"\nversion = \"1\"\nfile = \"ilo5.bin\"\ntargets = [\"x\"]\nversion_command = \"true\"\n")
	write("notarget.component.toml", "kind = \"bmc\"\nid = \"nt\"\nversion = \"1\"\nfile = \"nt.bin\"\n")
	write("nt.bin", "x")
	write("absent.component.toml", "kind = \"bmc\"\nid = \"ab\"\nversion = \"1\"\nfile = \"absent.bin\"\ntargets = [\"BIOS\"]\n")
	write("kind.component.toml", "kind = \"firmware\"\nid = \"k\"\nversion = \"1\"\nfile = \"k.bin\"\ntargets = [\"x\"]\n")
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	size, sum := fileSum(t, filepath.Join(dir, "ilo5.bin"))
	want := []*fleetup.Component{{ID: "hpe.ilo5", Name: "iLO 5 firmware", Version: "2.78", Kind: fleetup.KindBMC, VersionFormat: "plain",
		File: "ilo5.bin", Path: filepath.Join(dir, "ilo5.bin"), Size: size, SHA256: sum, Targets: []string{"iLO 5"}}}
	if diff := cmp.Diff(want, b.Components); diff != "" {
		t.Errorf("components (-want +got):\n%s", diff)
	}
	wantProblems := map[string]string{
		"mixed.component.toml":    "script, interpreter and version_command are for scripts",
		"notarget.component.toml": "missing targets",
		"absent.component.toml":   `image "absent.bin" does not exist`,
		"kind.component.toml":     `kind "firmware" is not one of`,
		"nt.bin":                  "not a component: unknown type",
	}
	got := map[string]string{}
	for _, p := range b.Problems {
		got[p.File] = p.Reason
	}
	for file, reason := range wantProblems {
		if !strings.Contains(got[file], reason) {
			t.Errorf("problem for %s = %q, want it to contain %q", file, got[file], reason)
		}
	}
	if len(got) != len(wantProblems) {
		t.Errorf("problems = %v", got)
	}
}

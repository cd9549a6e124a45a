// Package testbaseline builds baseline components for tests: fwupd
// cabinets for fwupd's test device, Debian packages, script components,
// and corrupted copies of any of them. Every helper writes into a directory
// the test owns (normally t.TempDir()) and fails the test on error.
package testbaseline

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/fleetup/fleetup/cabfile"
)

// FakeDeviceGUID is the GUID of fwupd's test device (plugin "test",
// enabled by TestDevices=true), which starts at version 1.2.2.
const FakeDeviceGUID = "b585990a-003e-5270-89d5-3705a17f9a43"

// Firmware describes a firmware cabinet for FirmwareCab.
type Firmware struct {
	ID      string // AppStream id, e.g. "com.example.device.firmware"
	Name    string // defaults to ID
	Version string // triplet, e.g. "1.2.4"
	GUID    string // device GUID the firmware is flashed to
	Payload []byte // firmware image
	Date    string // release date YYYY-MM-DD; defaults to 2024-01-01
	// Base names the members: Base.bin and Base.metainfo.xml; default
	// "firmware".
	Base string
}

var metainfoTmpl = template.Must(template.New("metainfo").Parse(`<?xml version="1.0" encoding="UTF-8"?>
<component type="firmware">
  <id>{{.ID}}</id>
  <name>{{.Name}}</name>
  <summary>Test firmware for {{.Name}}</summary>
  <description>
    <p>Firmware built by fleetup's tests.</p>
  </description>
  <provides>
    <firmware type="flashed">{{.GUID}}</firmware>
  </provides>
  <metadata_license>CC0-1.0</metadata_license>
  <project_license>GPL-2.0+</project_license>
  <developer_name>fleetup</developer_name>
  <custom>
    <value key="LVFS::DeviceIntegrity">unsigned</value>
    <value key="LVFS::VersionFormat">triplet</value>
    <value key="LVFS::UpdateProtocol">com.acme.test</value>
  </custom>
  <releases>
    <release version="{{.Version}}" date="{{.Date}}" urgency="medium">
      <checksum type="sha256" filename="{{.Bin}}" target="content">{{.SHA256}}</checksum>
      <description>
        <p>Version {{.Version}}.</p>
      </description>
    </release>
  </releases>
</component>
`))

// FirmwareCab returns the bytes of an uncompressed fwupd cabinet for fw,
// with a metainfo modelled on fwupd's fakedevice124.metainfo.xml: the
// firmware's sha256 as content checksum, LVFS::VersionFormat triplet and
// LVFS::UpdateProtocol com.acme.test. The output depends only on fw.
func FirmwareCab(fw Firmware) ([]byte, error) {
	if fw.Name == "" {
		fw.Name = fw.ID
	}
	if fw.Date == "" {
		fw.Date = "2024-01-01"
	}
	if fw.Base == "" {
		fw.Base = "firmware"
	}
	sum := sha256.Sum256(fw.Payload)
	var meta bytes.Buffer
	err := metainfoTmpl.Execute(&meta, map[string]string{
		"ID": fw.ID, "Name": fw.Name, "Version": fw.Version, "GUID": fw.GUID,
		"Date": fw.Date, "Bin": fw.Base + ".bin", "SHA256": hex.EncodeToString(sum[:]),
	})
	if err != nil {
		return nil, err
	}
	mod, err := time.Parse("2006-01-02", fw.Date)
	if err != nil {
		return nil, fmt.Errorf("firmware date %q: %w", fw.Date, err)
	}
	var cab bytes.Buffer
	err = cabfile.Write(&cab, []cabfile.WriteFile{
		{Name: fw.Base + ".bin", Data: fw.Payload, ModTime: mod},
		{Name: fw.Base + ".metainfo.xml", Data: meta.Bytes(), ModTime: mod},
	})
	return cab.Bytes(), err
}

// Cab writes dir/file, a firmware cabinet for the device with guid holding
// a few random bytes of firmware, and returns its path.
func Cab(t testing.TB, dir, file, id, version, guid string) string {
	t.Helper()
	payload := make([]byte, 64)
	rand.Read(payload)
	b, err := FirmwareCab(Firmware{ID: id, Version: version, GUID: guid, Payload: payload})
	if err != nil {
		t.Fatalf("testbaseline.Cab: %v", err)
	}
	return write(t, filepath.Join(dir, file), b, 0o644)
}

// Deb builds dir/PKG_VERSION_all.deb with dpkg-deb, holding files (absolute
// paths to contents), and returns its path. It needs dpkg-deb.
func Deb(t testing.TB, dir, pkg, version string, files map[string]string) string {
	t.Helper()
	return DebCompressed(t, dir, "", pkg, version, files)
}

// DebCompressed is Deb with dpkg-deb's -Z compression ("gzip", "xz",
// "zstd", "none"; "" for dpkg-deb's default).
func DebCompressed(t testing.TB, dir, compression, pkg, version string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: fleetup tests <tests@fleetup.invalid>\nDescription: %s test package\n built by fleetup's testbaseline.\n", pkg, version, pkg)
	write(t, filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644)
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		if !filepath.IsAbs(p) {
			t.Fatalf("testbaseline.Deb: file %q is not an absolute path", p)
		}
		dst := filepath.Join(root, filepath.Clean(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, dst, []byte(files[p]), 0o644)
	}
	ver := version
	if i := strings.IndexByte(ver, ':'); i >= 0 {
		ver = ver[i+1:]
	}
	out := filepath.Join(dir, fmt.Sprintf("%s_%s_all.deb", pkg, ver))
	args := []string{"--build", "--root-owner-group"}
	if compression != "" {
		args = append(args, "-Z"+compression)
	}
	cmd := exec.Command("dpkg-deb", append(args, root, out)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testbaseline.Deb: dpkg-deb: %v\n%s", err, b)
	}
	return out
}

// Script writes the script component id: dir/ID.component.toml and the
// script dir/ID.sh with body, and returns the manifest's path.
func Script(t testing.TB, dir, id, version, body, versionCommand string, targets ...string) string {
	t.Helper()
	script := id + ".sh"
	write(t, filepath.Join(dir, script), []byte(body), 0o755)
	var m strings.Builder
	fmt.Fprintf(&m, "id = %q\nname = %q\nversion = %q\nscript = %q\nversion_command = %q\ntargets = [", id, id+" test script", version, script, versionCommand)
	for i, tg := range targets {
		if i > 0 {
			m.WriteString(", ")
		}
		fmt.Fprintf(&m, "%q", tg)
	}
	m.WriteString("]\n")
	return write(t, filepath.Join(dir, id+".component.toml"), []byte(m.String()), 0o644)
}

// Corrupt flips bytes near the end of the file at path, keeping its size,
// so that its SHA-256 changes. For a cabinet made by Cab the flipped bytes
// are inside the last data block; for a script, its last bytes.
func Corrupt(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testbaseline.Corrupt: %v", err)
	}
	if len(b) == 0 {
		t.Fatalf("testbaseline.Corrupt: %s is empty", path)
	}
	n := min(4, len(b))
	for i := len(b) - n; i < len(b); i++ {
		b[i] ^= 0x5a
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, b, st.Mode().Perm())
}

func write(t testing.TB, path string, b []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatalf("testbaseline: %v", err)
	}
	return path
}

//go:build !windows

package inventory

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup"
)

const statusSample = `Package: zlib1g
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 in gzip and PKZIP.
 .
 Version: 9.9 (a continuation line, not a field)

Package: zlib1g
Status: install ok installed
Architecture: i386
Version: 1:1.2.13.dfsg-1

Package: removed
Status: deinstall ok config-files
Architecture: all
Version: 2.0

Package: broken
Status: install reinstreq half-installed
Architecture: all
Version: 0.1

Package: held
Status: hold ok installed
Architecture: all
Version: 3.0-1

Package: adduser
Status: install ok installed
Architecture: all
Version: 3.134
`

func TestParseDpkgStatus(t *testing.T) {
	got, err := ParseDpkgStatus([]byte(statusSample))
	if err != nil {
		t.Fatal(err)
	}
	want := []fleetup.Package{
		{Name: "adduser", Version: "3.134", Arch: "all", Manager: "dpkg"},
		{Name: "held", Version: "3.0-1", Arch: "all", Manager: "dpkg"},
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "amd64", Manager: "dpkg"},
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Arch: "i386", Manager: "dpkg"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if _, err := ParseDpkgStatus([]byte("Package: x\nStatus: install ok installed\n")); err == nil {
		t.Error("no error for an installed package without a version")
	}
}

// TestDpkgStatusMatchesDpkgQuery reads this machine's dpkg database both
// ways: the status file must give what dpkg-query gives.
func TestDpkgStatusMatchesDpkgQuery(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg-query")
	}
	out, err := exec.Command("dpkg-query", "-W", "-f", DpkgQueryFormat).Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := ParseDpkgQuery(out)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := readDpkgStatus("/var/lib/dpkg")
	if !ok {
		t.Skip("dpkg has updates pending in /var/lib/dpkg/updates")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status file against dpkg-query (-want +got):\n%s", diff)
	}
}

// TestDpkgStatusPendingUpdates checks that the status file is not taken
// as the truth while dpkg has updates to fold into it.
func TestDpkgStatusPendingUpdates(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "updates"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(statusSample), 0o644); err != nil {
		t.Fatal(err)
	}
	if pkgs, ok := readDpkgStatus(dir); !ok || len(pkgs) != 4 {
		t.Fatalf("clean database: %d packages, ok %v", len(pkgs), ok)
	}
	if err := os.WriteFile(filepath.Join(dir, "updates", "0000"), []byte("Package: adduser\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := readDpkgStatus(dir); ok {
		t.Error("pending updates: status file taken as the truth")
	}
	if _, ok := readDpkgStatus(filepath.Join(dir, "missing")); ok {
		t.Error("missing database: ok")
	}
}

func FuzzParseDpkgStatus(f *testing.F) {
	f.Add([]byte(statusSample))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, _ := ParseDpkgStatus(data)
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Manager != "dpkg" {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}

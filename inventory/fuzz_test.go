//go:build !windows

package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func addTestdata(f *testing.F, pattern string) {
	names, _ := filepath.Glob(filepath.Join("testdata", pattern))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzParseOSRelease(f *testing.F) {
	addTestdata(f, "os-release.*")
	f.Add([]byte("ID='a b'\nX=\"\\\"\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vals, err := ParseOSRelease(data)
		if vals == nil {
			t.Fatal("nil map")
		}
		for k := range vals {
			if !validKey(k) {
				t.Fatalf("invalid key %q accepted", k)
			}
		}
		_ = err
	})
}

func FuzzParseDpkgQuery(f *testing.F) {
	addTestdata(f, "dpkg-query.*")
	f.Add([]byte("a\t1\tall\tinstalled\nb\t\tall\tinstalled\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, _ := ParseDpkgQuery(data)
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.Manager != "dpkg" || strings.ContainsAny(p.Name+p.Version, "\t\n") {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}

func FuzzParseRPMQuery(f *testing.F) {
	addTestdata(f, "rpm-qa.txt")
	f.Add([]byte("gpg-pubkey\t1-2\t(none)\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, _ := ParseRPMQuery(data)
		for _, p := range pkgs {
			if p.Name == "" || p.Name == "gpg-pubkey" || !strings.Contains(p.Version, "-") || p.Manager != "rpm" {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}

func FuzzParseFwupdDevices(f *testing.F) {
	addTestdata(f, "fwupd-*")
	f.Add([]byte(`{"Devices":[{"DeviceId":"x","Guid":["A"],"Flags":["updatable"]}]}`))
	f.Add([]byte(`{"Error":{"Code":9,"Message":"No detected devices"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		devs, err := ParseFwupdDevices(data)
		if err != nil && (len(devs) > 0) {
			t.Fatalf("devices with error %v", err)
		}
		if err != nil && !errors.Is(err, ErrNoDevices) && !utf8.ValidString(err.Error()) && utf8.Valid(data) {
			t.Fatalf("invalid error text %q", err)
		}
		for _, d := range devs {
			if d.ID == "" {
				t.Fatal("device without id")
			}
			for _, g := range d.GUIDs {
				if g != strings.ToLower(g) {
					t.Fatalf("guid %q not lowercase", g)
				}
			}
		}
	})
}

//go:build !windows

package installer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup"
)

func TestParseDebQuery(t *testing.T) {
	out := "foo\t1.0-1\tamd64\tinstalled\n" +
		"foo\t1.0-1\ti386\tinstalled\n" +
		"foo\t0.9\tarm64\tconfig-files\n" +
		"foobar\t9.9\tamd64\tinstalled\n" + // another package the pattern matched
		"foo\t\tamd64\tinstalled\n" + // no version
		"broken line\n"
	tests := []struct {
		name, out, pkg, arch, want string
	}{
		{"any arch", out, "foo", "", "1.0-1"},
		{"native", out, "foo", "amd64", "1.0-1"},
		{"other arch installed", out, "foo", "i386", "1.0-1"},
		{"arch not installed: any", out, "foo", "arm64", "1.0-1"},
		{"arch-qualified name", out, "foo:i386", "i386", "1.0-1"},
		{"other package only by exact name", out, "foobar", "", "9.9"},
		{"config-files is not installed", "foo\t0.9\tarm64\tconfig-files\n", "foo", "arm64", ""},
		{"nothing", "", "foo", "", ""},
		{"crlf", "foo\t2.0\tall\tinstalled\r\n", "foo", "amd64", "2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseDebQuery([]byte(tt.out), tt.pkg, tt.arch); got != tt.want {
				t.Errorf("parseDebQuery = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseDebFields(t *testing.T) {
	tests := []struct {
		name, out string
		want      map[string]string
	}{
		{"three fields", "Package: tp\nVersion: 1.0-1\nArchitecture: all\n",
			map[string]string{"Package": "tp", "Version": "1.0-1", "Architecture": "all"}},
		{"continuation lines are not fields", "Package: tp\nDescription: short\n Version: 6.6\n\tVersion: 7\nVersion: 1.0\n",
			map[string]string{"Package": "tp", "Description": "short", "Version": "1.0"}},
		{"case-insensitive names", "package: tp\nVERSION: 2\n", map[string]string{"Package": "tp", "Version": "2"}},
		{"first wins", "Package: a\nPackage: b\n", map[string]string{"Package": "a"}},
		{"crlf and junk", "Package: tp\r\nno colon here\n: empty name\nbad name: x\n", map[string]string{"Package": "tp"}},
		{"value with colons", "Version: 2:1.0-1\n", map[string]string{"Version": "2:1.0-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseDebFields([]byte(tt.out))); diff != "" {
				t.Errorf("parseDebFields (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeTool puts an executable script named name first on PATH.
func fakeTool(t *testing.T, name, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// localeCheck makes a fake tool fail unless it runs in the C locale.
const localeCheck = `[ "$LC_ALL" = C ] && [ "$LANG" = C ] && [ -z "${LANGUAGE+set}" ] || { echo "locale not C: LC_ALL=$LC_ALL LANG=$LANG LANGUAGE=$LANGUAGE" >&2; exit 2; }
`

// A package that is not installed is known by dpkg-query's exit status 1,
// whatever language its message is in, and the query runs in the C
// locale.
func TestDebProbeNotInstalledByExitStatus(t *testing.T) {
	t.Setenv("LANG", "de_DE.UTF-8")
	t.Setenv("LANGUAGE", "de")
	fakeTool(t, "dpkg-query", localeCheck+`echo "dpkg-query: keine Pakete gefunden, die auf $4 passen" >&2; exit 1
`)
	inv := &fleetup.Inventory{Tools: []string{"dpkg"}}
	c := &fleetup.Component{ID: "x", Kind: fleetup.KindDeb, Package: "nosuchpkg"}
	p, err := NewDeb(Config{}).Probe(context.Background(), c, inv)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if !p.Applicable || p.Installed != "" {
		t.Errorf("probe %+v, want applicable and not installed", p)
	}
}

// Any other failure of dpkg-query is an error, not "not installed".
func TestDebProbeQueryFails(t *testing.T) {
	fakeTool(t, "dpkg-query", `echo "dpkg-query: error: parsing file '/var/lib/dpkg/status'" >&2; exit 2
`)
	inv := &fleetup.Inventory{Tools: []string{"dpkg"}}
	c := &fleetup.Component{ID: "x", Kind: fleetup.KindDeb, Package: "foo"}
	if p, err := NewDeb(Config{}).Probe(context.Background(), c, inv); err == nil {
		t.Fatalf("probe %+v, want an error", p)
	}
}

// rpm's "not installed" is told by rpm -qa listing nothing, not by the
// (translated) message of rpm -q.
func TestRPMProbeNotInstalledWithoutText(t *testing.T) {
	t.Setenv("LANG", "de_DE.UTF-8")
	fakeTool(t, "rpm", localeCheck+`case "$1" in
-qa) exit 0 ;;
*) echo "Paket nosuch ist nicht installiert"; exit 1 ;;
esac
`)
	inv := &fleetup.Inventory{Tools: []string{"rpm"}}
	c := &fleetup.Component{ID: "x", Kind: fleetup.KindRPM, Package: "nosuch"}
	p, err := NewRPM(Config{RPMDBPath: t.TempDir()}).Probe(context.Background(), c, inv)
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if !p.Applicable || p.Installed != "" {
		t.Errorf("probe %+v, want applicable and not installed", p)
	}
}

func TestRPMVersions(t *testing.T) {
	out := "kernel\t(none):5.14.0-70.el9\nkernel-core\t(none):9-9\nkernel\t(none):5.14.0-362.el9\n\nkernel\t\n"
	if got, want := rpmVersions(out, "kernel"), "(none):5.14.0-70.el9\n(none):5.14.0-362.el9\n"; got != want {
		t.Errorf("rpmVersions = %q, want %q", got, want)
	}
}

func TestPickHistory(t *testing.T) {
	e := func(state, created int64, v string) HistoryEntry {
		return HistoryEntry{AppstreamID: "a.fw", UpdateState: state, Created: created, VersionNew: v}
	}
	tests := []struct {
		name    string
		entries []HistoryEntry
		want    historyResult
	}{
		{"success", []HistoryEntry{e(2, 100, "1.2"), e(2, 200, "1.3")}, historyResult{Version: "1.3"}},
		{"needs reboot", []HistoryEntry{e(4, 100, "1.4")}, historyResult{Reboot: true}},
		{"pending", []HistoryEntry{e(1, 100, "1.4")}, historyResult{Reboot: true}},
		{"old pending ignored", []HistoryEntry{e(1, 10, "1.4"), e(2, 100, "1.3")}, historyResult{Version: "1.3"}},
		{"failed", []HistoryEntry{e(3, 100, "1.4")}, historyResult{}},
		{"other release", []HistoryEntry{{AppstreamID: "b.fw", UpdateState: 4, Created: 100}}, historyResult{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pickHistory(tt.entries, "a.fw", time.Unix(50, 0)); got != tt.want {
				t.Errorf("pickHistory = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseDebQuery(f *testing.F) {
	f.Add([]byte("foo\t1.0-1\tamd64\tinstalled\nfoo\t1.0\ti386\tinstalled\n"), "foo", "i386")
	f.Add([]byte("foo\t0.9\tarm64\tconfig-files\n"), "foo:arm64", "arm64")
	f.Add([]byte("\t\t\t\n\n\r\n"), "", "")
	f.Fuzz(func(t *testing.T, out []byte, pkg, arch string) {
		v := parseDebQuery(out, pkg, arch)
		if v != "" && (strings.ContainsAny(v, "\t\n") || !strings.Contains(string(out), v)) {
			t.Fatalf("version %q not a field of the output", v)
		}
	})
}

func FuzzParseDebFields(f *testing.F) {
	f.Add([]byte("Package: tp\nVersion: 1.0-1\nArchitecture: all\n"))
	f.Add([]byte("Package: tp\nDescription: x\n more\n\tVersion: 2\n: \n\r\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		for k, v := range parseDebFields(out) {
			if k == "" || strings.ContainsAny(k, " \t\n") || strings.ContainsAny(v, "\n") {
				t.Fatalf("field %q = %q", k, v)
			}
		}
	})
}

func FuzzRPMVersions(f *testing.F) {
	f.Add("kernel\t(none):5.14.0-70.el9\nkernel\t2:1-1\n", "kernel")
	f.Fuzz(func(t *testing.T, out, pkg string) {
		vs := rpmVersions(out, pkg)
		if _, err := newestRPM(vs); err == nil && vs != "" && !strings.HasSuffix(vs, "\n") {
			t.Fatalf("rpmVersions = %q", vs)
		}
	})
}

func FuzzParseHistoryJSON(f *testing.F) {
	f.Add([]byte(`Loading…{"Devices":[{"Created":1,"UpdateState":4,"Releases":[{"AppstreamId":"a","Version":"1"}]}]}`), "a")
	f.Fuzz(func(t *testing.T, out []byte, id string) {
		entries, err := parseHistoryJSON(out)
		if err != nil {
			return
		}
		r := pickHistory(entries, id, time.Time{})
		if r.Version != "" {
			found := false
			for _, e := range entries {
				found = found || (e.VersionNew == r.Version && e.AppstreamID == id && e.UpdateState == historySuccess)
			}
			if !found {
				t.Fatalf("version %q from no successful entry", r.Version)
			}
		}
	})
}

package baseline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup"
)

func TestParseRequirement(t *testing.T) {
	tests := []struct {
		name, in string
		want     fleetup.Requirement
		err      string // a part of the error; empty: no error
	}{
		{"bare id", "dev.example.base", fleetup.Requirement{ID: "dev.example.base"}, ""},
		{"bare id with spaces around", "  base\t", fleetup.Requirement{ID: "base"}, ""},
		{">=", "base >= 1.0", fleetup.Requirement{ID: "base", Op: ">=", Version: "1.0"}, ""},
		{">= without spaces", "base>=1.0~rc1", fleetup.Requirement{ID: "base", Op: ">=", Version: "1.0~rc1"}, ""},
		{">", "base > 1:2.0-3", fleetup.Requirement{ID: "base", Op: ">", Version: "1:2.0-3"}, ""},
		{"=", "base = 2", fleetup.Requirement{ID: "base", Op: "=", Version: "2"}, ""},
		{"<=", "base <= 2.0", fleetup.Requirement{ID: "base", Op: "<=", Version: "2.0"}, ""},
		{"<", "base <2.0", fleetup.Requirement{ID: "base", Op: "<", Version: "2.0"}, ""},
		{"empty", "  ", fleetup.Requirement{}, "empty entry"},
		{"==", "base == 1", fleetup.Requirement{}, `operator "==" is not one of`},
		{"!=", "base != 1", fleetup.Requirement{}, `operator "!=" is not one of`},
		{"~>", "base ~> 1", fleetup.Requirement{}, `operator "~>" is not one of`},
		{"=>", "base => 1", fleetup.Requirement{}, `operator "=>" is not one of`},
		{"no version", "base >=", fleetup.Requirement{}, `missing version after ">="`},
		{"no id", ">= 1.0", fleetup.Requirement{}, "missing id"},
		{"no operator", "base 1.0", fleetup.Requirement{}, "need an operator"},
		{"a range", "base >= 1 < 2", fleetup.Requirement{}, "one operator per entry"},
		{"a range without spaces", "base>=1<2", fleetup.Requirement{}, "one operator per entry"},
		{"space in the version", "base >= 1 2", fleetup.Requirement{}, "contains spaces"},
		{"bad id", "../base >= 1", fleetup.Requirement{}, `id "../base"`},
		{"bad bare id", "base/x", fleetup.Requirement{}, `id "base/x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequirement(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseRequirement(%q) = %+v, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRequirement(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseRequirement(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// The requires of a manifest, of both kinds, and its errors naming the
// manifest and the entry.
func TestManifestRequires(t *testing.T) {
	script := "id = \"s\"\nversion = \"1.0\"\nscript = \"s.sh\"\nversion_command = \"true\"\ntargets = [\"linux\"]\n"
	bmc := "kind = \"bmc\"\nid = \"b\"\nversion = \"2.78\"\nfile = \"b.bin\"\ntargets = [\"iLO 5\"]\n"
	for _, base := range []string{script, bmc} {
		m, err := ParseManifest([]byte(base+"requires = [\"base >= 1.0\", \"other\"]\n"), "x.component.toml")
		if err != nil {
			t.Fatal(err)
		}
		want := []fleetup.Requirement{{ID: "base", Op: ">=", Version: "1.0"}, {ID: "other"}}
		if diff := cmp.Diff(want, m.Requirements); diff != "" {
			t.Errorf("%s requirements (-want +got):\n%s", m.Kind, diff)
		}
		_, err = ParseManifest([]byte(base+"requires = [\"base >= 1.0\", \"base >>= 1\"]\n"), "x.component.toml")
		if err == nil || !strings.Contains(err.Error(), "manifest x.component.toml") || !strings.Contains(err.Error(), `requires "base >>= 1": operator ">>="`) {
			t.Errorf("%s: error %v does not name the manifest and the entry", strings.Split(base, "\n")[0], err)
		}
	}
	if _, err := ParseManifest([]byte(script+"requires = \"base\"\n"), "x.component.toml"); err == nil {
		t.Error("requires as a string, not an array, was accepted")
	}
}

// TestLoadRequires loads requires: versions checked in the format of the
// component they name (else the requiring one's), cycles of one, two and
// three components refused with the cycle named, and a requirement on an
// id the baseline does not have accepted.
func TestLoadRequires(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := func(id string, requires ...string) {
		t.Helper()
		q := make([]string, len(requires))
		for i, r := range requires {
			q[i] = `"` + r + `"`
		}
		write(id+".sh", "#!/bin/sh\n")
		write(id+".component.toml", "id = \""+id+"\"\nversion = \"1.0\"\nscript = \""+id+".sh\"\nversion_command = \"true\"\ntargets = [\"linux\"]\nrequires = ["+strings.Join(q, ", ")+"]\n")
	}
	bmc := func(id string, requires ...string) {
		t.Helper()
		q := make([]string, len(requires))
		for i, r := range requires {
			q[i] = `"` + r + `"`
		}
		write(id+".bin", "an image")
		write(id+".component.toml", "kind = \"bmc\"\nid = \""+id+"\"\nversion = \"2.78\"\nfile = \""+id+".bin\"\ntargets = [\"iLO 5\"]\nrequires = ["+strings.Join(q, ", ")+"]\n")
	}
	script("base")
	script("app", "base >= 1.0", "not.in.baseline >= 3")     // an absent id is fine
	script("badver", "base >= 1.0", "base >= one")           // base is dpkg: "one" is not a version
	bmc("fw", "not.in.baseline >= one", "loose >= anything") // absent: the bmc's own plain format takes anything
	bmc("loose")
	script("dpkgonplain", "loose >= v-one")    // loose is plain
	bmc("plainondpkg", "base >= one")          // base is dpkg
	script("self", "self >= 1.0")              // a cycle of one
	script("p1", "p2")                         // a cycle of two
	script("p2", "p1 >= 1.0")                  //
	script("t1", "t2")                         // a cycle of three
	script("t2", "t3")                         //
	script("t3", "t1", "base")                 //
	script("waits", "t1 >= 1.0")               // requires a member of a cycle, not in one itself
	script("both", "both", "base >= nonsense") // a bad version and a cycle: both said

	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range b.Components {
		ids = append(ids, c.ID)
	}
	if diff := cmp.Diff([]string{"app", "base", "dpkgonplain", "fw", "loose", "waits"}, ids); diff != "" {
		t.Errorf("components (-want +got):\n%s", diff)
	}
	if c := b.Component("app"); c == nil || !cmp.Equal(c.Requires, []fleetup.Requirement{{ID: "base", Op: ">=", Version: "1.0"}, {ID: "not.in.baseline", Op: ">=", Version: "3"}}) {
		t.Errorf("app = %+v", c)
	}
	want := map[string][]string{
		"badver.component.toml":      {`requires "base >= one": invalid dpkg version "one"`},
		"plainondpkg.component.toml": {`requires "base >= one": invalid dpkg version "one"`},
		"self.component.toml":        {"requires cycle: self -> self"},
		"p1.component.toml":          {"requires cycle: p1 -> p2 -> p1"},
		"p2.component.toml":          {"requires cycle: p1 -> p2 -> p1"},
		"t1.component.toml":          {"requires cycle: t1 -> t2 -> t3 -> t1"},
		"t2.component.toml":          {"requires cycle: t1 -> t2 -> t3 -> t1"},
		"t3.component.toml":          {"requires cycle: t1 -> t2 -> t3 -> t1"},
		"both.component.toml":        {`requires "base >= nonsense": invalid dpkg version`, "requires cycle: both -> both"},
	}
	got := map[string][]string{}
	for _, p := range b.Problems {
		got[p.File] = append(got[p.File], p.Reason)
	}
	for file, reasons := range want {
		if len(got[file]) != len(reasons) {
			t.Errorf("%s: problems %q, want %d", file, got[file], len(reasons))
			continue
		}
		for i, r := range reasons {
			if !strings.Contains(got[file][i], r) {
				t.Errorf("%s: problem %q, want it to contain %q", file, got[file][i], r)
			}
		}
	}
	for file, reasons := range got {
		if _, ok := want[file]; !ok {
			t.Errorf("unexpected problem %s: %q", file, reasons)
		}
	}

	var table bytes.Buffer
	WriteTable(&table, b)
	for _, s := range []string{"REQUIRES", "base >= 1.0, not.in.baseline >= 3", "p1.component.toml: requires cycle: p1 -> p2 -> p1"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
}

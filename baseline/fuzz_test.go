package baseline

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/fleetup/fleetup"
)

func FuzzParseManifest(f *testing.F) {
	if b, err := os.ReadFile("../examples/baseline/hello.component.toml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("id = \"a.b\"\nversion = \"1\"\nscript = \"s\"\nversion_command = \"true\"\ntargets = [\"linux\"]\n"))
	f.Add([]byte("id = 1\n[x]\ny = 2\n"))
	f.Add([]byte("script = \"../etc/passwd\"\n"))
	f.Add([]byte("kind = \"bmc\"\nid = \"ilo5\"\nversion = \"2.78\"\nfile = \"ilo5.bin\"\ntargets = [\"iLO 5\"]\n"))
	f.Add([]byte("kind = \"bmc\"\nid = \"x\"\nversion = \"1\"\nfile = \"../x\"\ntargets = [\" \"]\nscript = \"s\"\n"))
	f.Add([]byte("id = \"a.b\"\nversion = \"1\"\nscript = \"s\"\nversion_command = \"true\"\ntargets = [\"linux\"]\nrequires = [\"base >= 1.0\", \"other\", \"x<2\"]\n"))
	f.Add([]byte("kind = \"bmc\"\nid = \"ilo5\"\nversion = \"2.78\"\nfile = \"ilo5.bin\"\ntargets = [\"iLO 5\"]\nrequires = [\"hpe.rom = U30 v2.90\"]\n"))
	f.Add([]byte("id = \"a\"\nversion = \"1\"\nscript = \"s\"\nversion_command = \"true\"\ntargets = [\"linux\"]\nrequires = [\"a >=\", \">= 1\", \"a == 1\", \"a >= 1 < 2\", \"\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data, "fuzz.component.toml")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.component.toml") {
				t.Fatalf("error does not name the manifest: %v", err)
			}
			return
		}
		if m.ID == "" || m.Version == "" || len(m.Targets) == 0 {
			t.Fatalf("accepted incomplete manifest %+v", m)
		}
		switch m.Kind {
		case fleetup.KindScript:
			if m.VersionCommand == "" || m.Interpreter == "" || m.File != "" {
				t.Fatalf("accepted incomplete script manifest %+v", m)
			}
		case fleetup.KindBMC:
			if m.Script != "" || m.VersionCommand != "" || m.Interpreter != "" {
				t.Fatalf("accepted a bmc manifest with script keys %+v", m)
			}
		default:
			t.Fatalf("accepted kind %q", m.Kind)
		}
		if p := m.payloadName(); strings.ContainsAny(p, `/\`) || p == ".." || p == "" {
			t.Fatalf("accepted payload name %q", p)
		}
		if len(m.Requirements) != len(m.Requires) {
			t.Fatalf("%d requires entries made %d requirements", len(m.Requires), len(m.Requirements))
		}
		for _, r := range m.Requirements {
			checkRequirement(t, r)
		}
	})
}

// FuzzParseRequirement feeds arbitrary entries to the requires parser.
func FuzzParseRequirement(f *testing.F) {
	for _, s := range []string{"base", "base >= 1.0", "base<2", "base = 1:2.0-3", "base >= 1 < 2", "base == 1", ">= 1", "base >=", " a\t>\t1 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRequirement(s)
		if err != nil {
			return
		}
		checkRequirement(t, r)
		// What String writes, ParseRequirement reads back the same.
		if again, err := ParseRequirement(r.String()); err != nil || again != r {
			t.Fatalf("%q parsed as %+v, whose String %q parses as %+v, %v", s, r, r.String(), again, err)
		}
	})
}

// checkRequirement fails unless r is what ParseRequirement may accept: a
// valid id, a known operator with a version without spaces or operators,
// or neither.
func checkRequirement(t *testing.T, r fleetup.Requirement) {
	t.Helper()
	if err := checkID(r.ID); err != nil {
		t.Fatalf("accepted requirement id %q: %v", r.ID, err)
	}
	switch r.Op {
	case "":
		if r.Version != "" {
			t.Fatalf("accepted a version without an operator: %+v", r)
		}
		return
	case ">=", ">", "=", "<=", "<":
	default:
		t.Fatalf("accepted operator %q", r.Op)
	}
	if r.Version == "" || strings.ContainsAny(r.Version, "<>=! \t\n") {
		t.Fatalf("accepted requirement version %q", r.Version)
	}
}

func FuzzParseControl(f *testing.F) {
	f.Add([]byte("Package: hello\nVersion: 1.0-1\nArchitecture: amd64\nDescription: greets\n the world\n .\n more\n"))
	f.Add([]byte("Package: a\n continuation\n\nPackage: b\n"))
	f.Add([]byte("# comment\nPackage: x\r\nVersion: 1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseControl(data)
		if err != nil {
			return
		}
		checkControl(t, c)
	})
}

// FuzzReadDebControl feeds arbitrary bytes to the .deb reader.
func FuzzReadDebControl(f *testing.F) {
	f.Add([]byte("!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"))
	f.Add([]byte("!<arch>\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := readDebControl(bytes.NewReader(data))
		if err != nil {
			return
		}
		checkControl(t, c)
	})
}

// checkControl fails unless c is what ParseControl may accept: the fields
// fleetup needs, a valid package name, field names that are names.
func checkControl(t *testing.T, c Control) {
	t.Helper()
	if c["Package"] == "" || c["Version"] == "" || c["Architecture"] == "" {
		t.Fatalf("accepted control without required fields: %v", c)
	}
	if err := checkPackageName(c["Package"]); err != nil {
		t.Fatalf("accepted bad package name: %v", err)
	}
	for k, v := range c {
		if k == "" || strings.ContainsAny(k, " \t\n:") {
			t.Fatalf("accepted field name %q", k)
		}
		if k != "Description" && strings.HasPrefix(v, " ") {
			t.Fatalf("field %s = %q not trimmed", k, v)
		}
	}
}

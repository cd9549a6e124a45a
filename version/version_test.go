package version

import (
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		name   string
		format string
		a, b   string
		want   int
	}{
		// dpkg: the cases from dpkg's own t-version.c and Debian policy.
		{"dpkg equal", "dpkg", "1.0", "1.0", 0},
		{"dpkg tilde before release", "dpkg", "1.0~rc1", "1.0", -1},
		{"dpkg tilde before tilde", "dpkg", "1.0~~", "1.0~", -1},
		{"dpkg tilde chain", "dpkg", "1.0~~a", "1.0~~", 1},
		{"dpkg letter after end", "dpkg", "1.0a", "1.0", 1},
		{"dpkg plus after end", "dpkg", "1.0+b1", "1.0", 1},
		{"dpkg letters before non-letters", "dpkg", "1.0a", "1.0+", -1},
		{"dpkg epoch wins", "dpkg", "1:0.9", "2.0", 1},
		{"dpkg epoch zero implicit", "dpkg", "0:1.0", "1.0", 0},
		{"dpkg numeric not lexical", "dpkg", "1.10", "1.9", 1},
		{"dpkg leading zeros", "dpkg", "1.002", "1.2", 0},
		{"dpkg revision", "dpkg", "1.0-1", "1.0-2", -1},
		{"dpkg revision numeric", "dpkg", "1.0-10", "1.0-9", 1},
		{"dpkg no revision equals revision 0", "dpkg", "1.0", "1.0-0", 0},
		{"dpkg hyphen in upstream", "dpkg", "1.0-rc1-1", "1.0-1", 1},
		{"dpkg debian revision tilde", "dpkg", "2.30-1~bpo1", "2.30-1", -1},
		{"dpkg ubuntu", "dpkg", "1.2.3-0ubuntu1", "1.2.3-1", -1},
		{"dpkg alpha vs digit", "dpkg", "1.0.a", "1.0.1", 1},
		// rpm: cases from rpm's tests/rpmvercmp.at.
		{"rpm equal", "rpm", "1.0", "1.0", 0},
		{"rpm numeric", "rpm", "1.0", "2.0", -1},
		{"rpm longer", "rpm", "2.0.1", "2.0", 1},
		{"rpm letter after end", "rpm", "2.0.1a", "2.0.1", 1},
		{"rpm 5.5p1 < 5.5p2", "rpm", "5.5p1", "5.5p2", -1},
		{"rpm 5.5p10 > 5.5p1", "rpm", "5.5p10", "5.5p1", 1},
		{"rpm xyz10 < xyz10.1", "rpm", "xyz10", "xyz10.1", -1},
		{"rpm separators equal", "rpm", "xyz.4", "xyz_4", 0},
		{"rpm alpha vs numeric", "rpm", "1.0a", "1.0.1", -1},
		{"rpm 1b.fc17 vs 1.fc17", "rpm", "1b.fc17", "1.fc17", -1},
		{"rpm leading zeros", "rpm", "1.01", "1.1", 0},
		{"rpm tilde", "rpm", "1.0~rc1", "1.0", -1},
		{"rpm tilde both", "rpm", "1.0~rc1", "1.0~rc2", -1},
		{"rpm tilde tilde", "rpm", "1.0~rc1~git123", "1.0~rc1", -1},
		{"rpm caret", "rpm", "1.0^", "1.0", 1},
		{"rpm caret git", "rpm", "1.0^git1", "1.0", 1},
		{"rpm caret before next", "rpm", "1.0^git1", "1.01", -1},
		{"rpm caret vs tilde", "rpm", "1.0^git1~pre", "1.0^git1", -1},
		{"rpm caret then tilde", "rpm", "1.0~rc1^git1", "1.0~rc1", 1},
		{"rpm epoch wins", "rpm", "1:0.9", "2.0", 1},
		{"rpm release", "rpm", "1.0-1.el9", "1.0-2.el9", -1},
		{"rpm missing release is older", "rpm", "1.0", "1.0-5", -1},
		{"rpm 1.0a vs 1.0", "rpm", "1.0a", "1.0", 1},
		// fwupd.
		{"plain is strcmp", "plain", "1.10", "1.9", -1},
		{"empty format is plain", "", "1.10", "1.9", -1},
		{"triplet numeric", "triplet", "1.2.10", "1.2.9", 1},
		{"triplet equal", "triplet", "1.2.4", "1.2.4", 0},
		{"triplet lost dot", "triplet", "1.2", "1.2.0", -1},
		{"triplet raw hex", "triplet", "0x01020004", "1.2.4", 0},
		{"triplet raw decimal", "triplet", "16908292", "1.2.3", 1},
		{"quad", "quad", "1.2.3.4", "1.2.3.5", -1},
		{"pair suffix", "pair", "1.2b", "1.2a", 1},
		{"pair tilde", "pair", "1.2~rc1", "1.2", -1},
		{"number", "number", "100", "99", 1},
		{"hex", "hex", "0x10", "0xf", 1},
		{"hex vs decimal", "hex", "0x10", "16", 0},
		{"intel-me raw", "intel-me", "0x00010002", "11.0.1.2", 0},
		{"bcd raw", "bcd", "0x12345678", "12.34.56.78", 0},
		{"dell-bios", "dell-bios", "1.20.3", "1.3.9", 1},
		{"surface", "surface", "1.2.3", "1.2.4", -1},
		{"surface-legacy", "surface-legacy", "2.0.0", "1.9.9", 1},
		{"intel-me2", "intel-me2", "1.2.3.4", "1.2.3.4", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compare(tc.format, tc.a, tc.b)
			if err != nil {
				t.Fatalf("Compare(%q, %q, %q): %v", tc.format, tc.a, tc.b, err)
			}
			if got != tc.want {
				t.Errorf("Compare(%q, %q, %q) = %d, want %d", tc.format, tc.a, tc.b, got, tc.want)
			}
			rev, err := Compare(tc.format, tc.b, tc.a)
			if err != nil || rev != -tc.want {
				t.Errorf("Compare(%q, %q, %q) = %d, %v, want %d", tc.format, tc.b, tc.a, rev, err, -tc.want)
			}
		})
	}
}

func TestCompareErrors(t *testing.T) {
	tests := []struct {
		name, format, a, b, want string
	}{
		{"unknown format", "semver", "1", "2", `unknown version format "semver"`},
		{"dpkg bad epoch", "dpkg", "x:1.0", "1.0", `dpkg version "x:1.0": epoch "x" is not a number`},
		{"dpkg empty", "dpkg", "1.0", "", `dpkg version "": empty`},
		{"rpm bad epoch", "rpm", "1.0", "e:1", `rpm version "e:1": epoch "e" is not a number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compare(tc.format, tc.a, tc.b)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Compare(%q, %q, %q) error = %v, want %q", tc.format, tc.a, tc.b, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, format, v string
		wantErr         string // substring; "" means valid
	}{
		{"dpkg simple", "dpkg", "1.0", ""},
		{"dpkg full", "dpkg", "2:1.2.3~rc1+dfsg-0ubuntu1~22.04", ""},
		{"dpkg hyphen in upstream", "dpkg", "1.0-rc1-1", ""},
		{"dpkg empty", "dpkg", "", "empty"},
		{"dpkg letter first", "dpkg", "a1.0", "does not start with a digit"},
		{"dpkg bad char", "dpkg", "1.0_1", `invalid character '_'`},
		{"dpkg bad revision char", "dpkg", "1.0-1:2", `epoch "1.0-1" is not a number`},
		{"dpkg empty revision", "dpkg", "1.0-", "revision is empty"},
		{"dpkg empty upstream", "dpkg", "1:", "upstream version is empty"},
		{"dpkg space", "dpkg", "1.0 1", "whitespace"},
		{"dpkg epoch huge", "dpkg", "99999999999:1", "too big"},
		{"rpm simple", "rpm", "1.0-1.el9", ""},
		{"rpm epoch", "rpm", "3:1.0^git2-1", ""},
		{"rpm empty", "rpm", "", "empty"},
		{"rpm empty release", "rpm", "1.0-", "release is empty"},
		{"rpm double hyphen", "rpm", "1.0-1-1", "contains '-'"},
		{"rpm no alnum", "rpm", "..", "no letter or digit"},
		{"plain anything", "plain", "Version A (beta)", ""},
		{"plain empty", "", "", "empty"},
		{"triplet", "triplet", "1.2.4", ""},
		{"triplet raw", "triplet", "0x01020004", ""},
		{"triplet too short", "triplet", "1.2", "has 2 dot-separated sections, want 3"},
		{"triplet letters", "triplet", "1.2.x", `section "x" is not a number`},
		{"quad", "quad", "1.2.3.4", ""},
		{"quad as triplet", "quad", "1.2.3", "want 4"},
		{"pair", "pair", "1.2", ""},
		{"number", "number", "1234", ""},
		{"number hex", "number", "0x1234", ""},
		{"number dotted", "number", "1.2", "not a decimal"},
		{"hex", "hex", "0xdeadbeef", ""},
		{"hex bad", "hex", "0xzz", "not a decimal"},
		{"intel-me", "intel-me", "11.8.50.3425", ""},
		{"dell-bios", "dell-bios", "1.2.3", ""},
		{"bcd", "bcd", "1.2", ""},
		{"control char", "plain", "1.0\n", "control"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.format, tc.v)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate(%q, %q) = %v, want nil", tc.format, tc.v, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate(%q, %q) = %v, want error containing %q", tc.format, tc.v, err, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), "version "+quote(tc.v)):
				t.Errorf("Validate(%q, %q) = %v, want the version named", tc.format, tc.v, err)
			}
		})
	}
	if err := Validate("semver", "1.0"); err == nil || !strings.Contains(err.Error(), `"semver"`) {
		t.Errorf("Validate(semver) = %v, want error naming the format", err)
	}
}

func quote(s string) string { return strings.TrimSpace(strings.ReplaceAll(`"`+s+`"`, "\n", `\n`)) }

// FuzzCompare checks that Compare never panics, is antisymmetric, and that
// a version equals itself, in every format.
func FuzzCompare(f *testing.F) {
	seeds := [][2]string{
		{"1.0~rc1", "1.0"}, {"1:0.9", "2.0"}, {"1.0a", "1.0"}, {"1.0^git1", "1.0~"},
		{"0x01020004", "1.2.4"}, {"1.2~", "1.2-"}, {"-1.2", " 3"}, {"99999999999999999999", "1"},
		{"", "."}, {"1.0-1", "1.0"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	formats := append(Formats(), "")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, format := range formats {
			ab, errA := Compare(format, a, b)
			ba, errB := Compare(format, b, a)
			if (errA == nil) != (errB == nil) {
				t.Fatalf("%s: Compare(%q,%q) err %v but reversed err %v", format, a, b, errA, errB)
			}
			if errA != nil {
				continue
			}
			if ab != -ba || ab < -1 || ab > 1 {
				t.Fatalf("%s: Compare(%q,%q)=%d, Compare(%q,%q)=%d", format, a, b, ab, b, a, ba)
			}
			if aa, err := Compare(format, a, a); err != nil || aa != 0 {
				t.Fatalf("%s: Compare(%q,%q)=%d, %v", format, a, a, aa, err)
			}
			_ = Validate(format, a)
		}
	})
}

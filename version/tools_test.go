package version

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetup/fleetup/internal/testenv"
)

// TestAgainstTools checks the dpkg and rpm cases of TestCompare against the
// real dpkg --compare-versions and rpm's own rpm.vercmp.
func TestAgainstTools(t *testing.T) {
	testenv.RequireTools(t, "dpkg", "rpm")
	cases := [][2]string{
		{"1.0~rc1", "1.0"}, {"1.0~~", "1.0~"}, {"1.0a", "1.0"}, {"1.0a", "1.0+"}, {"1:0.9", "2.0"},
		{"1.10", "1.9"}, {"1.0-10", "1.0-9"}, {"1.0-rc1-1", "1.0-1"}, {"2.30-1~bpo1", "2.30-1"},
		{"1.0.a", "1.0.1"}, {"1.2.3-0ubuntu1", "1.2.3-1"}, {"5.5p10", "5.5p1"}, {"1.0", "1.0-0"},
		{"1.0^git1", "1.01"}, {"1.0~rc1^git1", "1.0~rc1"}, {"1b.fc17", "1.fc17"}, {"xyz.4", "xyz_4"},
		{"1.0a", "1.0.1"}, {"2.0.1a", "2.0.1"}, {"1.0-1.el9", "1.0-2.el9"},
	}
	for _, c := range cases {
		a, b := c[0], c[1]
		if Validate("dpkg", a) == nil && Validate("dpkg", b) == nil {
			want := 0
			if exec.Command("dpkg", "--compare-versions", a, "lt", b).Run() == nil {
				want = -1
			} else if exec.Command("dpkg", "--compare-versions", a, "gt", b).Run() == nil {
				want = 1
			}
			if got, _ := Compare("dpkg", a, b); got != want {
				t.Errorf("dpkg: Compare(%q, %q) = %d, dpkg says %d", a, b, got, want)
			}
		}
		if Validate("rpm", a) == nil && Validate("rpm", b) == nil {
			out, err := exec.Command("rpm", "--eval", `%{lua: print(rpm.vercmp("`+a+`", "`+b+`"))}`).Output()
			if err != nil {
				t.Fatalf("rpm vercmp: %v", err)
			}
			want, err := strconv.Atoi(strings.TrimSpace(string(out)))
			if err != nil {
				t.Fatalf("rpm vercmp output %q: %v", out, err)
			}
			if got, _ := Compare("rpm", a, b); got != want {
				t.Errorf("rpm: Compare(%q, %q) = %d, rpm says %d", a, b, got, want)
			}
		}
	}
}

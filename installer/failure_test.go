//go:build !windows

package installer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func recorded(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestFailureParsers(t *testing.T) {
	tests := []struct {
		name  string
		parse func(code int, out string) *InstallError
		code  int
		file  string
		in    string
		want  *InstallError
	}{
		{name: "fwupd truncated cab", parse: fwupdFail, code: 1, file: "fwupdtool-truncated-cab.txt", want: &InstallError{Tool: "fwupdtool", ExitCode: 1,
			Message: "FuStructCabData failed read of 0x8: no data could be read", Hint: "the cabinet is damaged, truncated or not a firmware archive"}},
		{name: "fwupd no supported devices", parse: fwupdFail, code: 3, file: "fwupdtool-no-supported-devices.txt", want: &InstallError{Tool: "fwupdtool", ExitCode: 3,
			Message: "No supported devices found", Hint: "no device on this node accepts this firmware"}},
		{name: "fwupd locked", parse: fwupdFail, code: 1, in: "Loading…: 0%\nanother instance has locked /run/lock/fwupdtool\n", want: &InstallError{Tool: "fwupdtool", ExitCode: 1,
			Message: "another instance has locked /run/lock/fwupdtool", Hint: "another fwupd instance holds the lock; retry when it has finished"}},
		{name: "fwupd only progress", parse: fwupdFail, code: 1, in: "Loading…: 0%\nWriting...: 50%\n", want: &InstallError{Tool: "fwupdtool", ExitCode: 1}},
		{name: "dpkg truncated", parse: dpkgFailure, code: 1, file: "dpkg-truncated.txt", want: &InstallError{Tool: "dpkg", ExitCode: 1,
			Message: "dpkg-deb: error: tar subprocess returned error exit status 2; dpkg: error processing archive /tmp/trunc.deb (--install):; dpkg-deb --control subprocess returned error exit status 2",
			Hint:    "the file is damaged, truncated or not a Debian package"}},
		{name: "dpkg dependencies", parse: dpkgFailure, code: 1, in: "dpkg: dependency problems prevent configuration of foo:\n foo depends on bar; however:\n  Package bar is not installed.\n",
			want: &InstallError{Tool: "dpkg", ExitCode: 1, Message: "dpkg: dependency problems prevent configuration of foo:; foo depends on bar; however:; Package bar is not installed.",
				Hint: "the package's dependencies are not installed"}},
		{name: "rpm already installed", parse: rpmFailure, code: 2, file: "rpm-already-installed.txt", want: &InstallError{Tool: "rpm", ExitCode: 2,
			Message: "package fleetup-test-1.0-1.noarch is already installed", Hint: "this version is installed; reinstalling needs the rewrite option"}},
		{name: "rpm newer installed", parse: rpmFailure, code: 2, in: "\tpackage t-1.0-1.noarch (which is newer than t-0.9-1.noarch) is already installed\n", want: &InstallError{Tool: "rpm", ExitCode: 2,
			Message: "package t-1.0-1.noarch (which is newer than t-0.9-1.noarch) is already installed", Hint: "a newer version is installed; downgrading needs the downgrade option"}},
		{name: "rpm truncated", parse: rpmFailure, code: 1, file: "rpm-truncated.txt", want: &InstallError{Tool: "rpm", ExitCode: 1,
			Message: "error: /tmp/trunc.rpm: signature hdr blob(4388): BAD, read returned 0; error: /tmp/trunc.rpm cannot be installed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if tt.file != "" {
				in = recorded(t, tt.file)
			}
			if d := cmp.Diff(tt.want, tt.parse(tt.code, in)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func fwupdFail(code int, out string) *InstallError { return fwupdFailure("fwupdtool", code, out) }

func TestFwupdWantsReboot(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{recorded(t, "fwupdtool-success.txt"), false},
		{"Restarting device…: 50%\n", false},
		{"An update requires a reboot to complete.\n", true},
		{"An update requires the system to shutdown to complete.\n", true},
		{"1 device has been updated and needs a reboot.\n", true},
		{"Reboot to complete the update.\n", true},
		{"A reboot is pending\n", true},
	}
	for _, tt := range tests {
		name := strings.SplitN(strings.TrimSpace(tt.in), "\n", 2)[0]
		t.Run(name, func(t *testing.T) {
			if got := fwupdWantsReboot(tt.in); got != tt.want {
				t.Errorf("fwupdWantsReboot = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewestRPM(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "none epoch", in: "(none):1.0-1\n", want: "1.0-1"},
		{name: "epoch kept", in: "2:3.1-4\n", want: "2:3.1-4"},
		{name: "kernels", in: "(none):5.14.0-70.el9\n(none):5.14.0-362.el9\n(none):5.14.0-284.el9\n", want: "5.14.0-362.el9"},
		{name: "empty", in: "", want: ""},
		{name: "bad epoch", in: "(none):1-1\nx:2-1\n", wantErr: `rpm -q printed "x:2-1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newestRPM(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("newestRPM = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func FuzzFailureParsers(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, n := range names {
		f.Add(1, recorded(f, filepath.Base(n)))
	}
	f.Fuzz(func(t *testing.T, code int, out string) {
		for _, e := range []*InstallError{fwupdFailure("fwupdtool", code, out), dpkgFailure(code, out), rpmFailure(code, out)} {
			if e.ExitCode != code || len(e.Message) > 1100 || strings.Contains(e.Message, "\n") {
				t.Fatalf("bad error %#v", e)
			}
			_ = e.Error()
		}
		_ = fwupdWantsReboot(out)
	})
}

func FuzzNewestRPM(f *testing.F) {
	f.Add("(none):1.0-1\n2:3-4\n")
	f.Fuzz(func(t *testing.T, out string) {
		v, err := newestRPM(out)
		if err == nil && strings.ContainsAny(v, "\n") {
			t.Fatalf("version %q", v)
		}
	})
}

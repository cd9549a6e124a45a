package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/target"
)

func TestTranslateHPSUM(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantErr string
	}{
		{name: "hp sum command line",
			args: []string{"/target", "198.18.1.2", "/user", "admin", "/s", "/dryrun", "/port", "80", "/ssl_port=443", "/open_firewall"},
			want: []string{"--target", "198.18.1.2", "--user", "admin", "--dry-run", "--port", "80", "--ssl-port=443", "--open-firewall"}},
		{name: "case and short forms", args: []string{"/G", "/e", "/InputFile", "in.txt", "/Silent"},
			want: []string{"--downgrade", "--rewrite", "--inputfile", "in.txt"}},
		{name: "paths and values stay", args: []string{"--baseline", "/srv/baseline", "/target", "/dryrun"},
			want: []string{"--baseline", "/srv/baseline", "--target", "/dryrun"}},
		{name: "the manual's example", args: []string{"/port", "80", "/ssl_port", "443", "/ftp_port", "21"}, want: []string{"--port", "80", "--ssl-port", "443", "--ftp-port", "21"}},
		{name: "port options in any case", args: []string{"/PORT", "80", "/Open_Firewall"}, want: []string{"--port", "80", "--open-firewall"}},
		{name: "open_firewall takes no value", args: []string{"/open_firewall", "/port", "80"}, want: []string{"--open-firewall", "--port", "80"}},
		{name: "an option's value is never translated", args: []string{"/port", "/port"}, want: []string{"--port", "/port"}},
		{name: "unknown slash words untouched", args: []string{"--config", "/tmp/x", "/tmp/port", "/", "/ports"}, want: []string{"--config", "/tmp/x", "/tmp/port", "/", "/ports"}},
		{name: "empty", args: nil, want: []string{}},
		{name: "after --", args: []string{"/dryrun", "--", "/g"}, want: []string{"--dry-run", "--", "/g"}},
		{name: "fleetup flags untouched", args: []string{"--target", "x", "--dry-run"}, want: []string{"--target", "x", "--dry-run"}},
		{name: "colon joins a value", args: []string{"/user:admin", "/target:198.18.1.2"}, want: []string{"--user=admin", "--target=198.18.1.2"}},
		{name: "password joined with a colon refused", args: []string{"/passwd:secret"}, wantErr: "--password-file"},
		{name: "password on argv refused", args: []string{"/target", "x", "/passwd", "secret"}, wantErr: "--password-file"},
		{name: "reboot options", args: []string{"/r", "/reboot_always", "/reboot_delay", "15", "/reboot_message", "bye now"},
			want: []string{"--reboot", "--reboot-always", "--reboot-delay", "15", "--reboot-message", "bye now"}},
		{name: "reboot delay joined", args: []string{"/reboot_delay=120"}, want: []string{"--reboot-delay=120"}},
		{name: "romonly refused", args: []string{"/romonly"}, wantErr: "firmware-only"},
		{name: "value missing", args: []string{"/target"}, wantErr: "/target needs a value"},
		{name: "port value missing", args: []string{"/port"}, wantErr: "/port needs a value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := translateHPSUM(tt.args)
			if tt.wantErr != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want a usage error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error repeats the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func writeInput(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.txt")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInputFileTargetsAndPasswords(t *testing.T) {
	p := writeInput(t, "SILENT=YES\n[TARGETS]\nHOST=198.18.1.2\nHOST=other@198.18.2.2\nUID=admin\nPWD=group-secret\n[END]\n[TARGETS]\nHOST=[fd42:5e:0:3::2]:2222\nUSECURRENTCREDENTIAL=YES\n[END]\n", 0o600)
	o := &nodeOptions{InputFile: p, User: "root", Parallel: 1}
	ts, err := o.targets(&Env{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range ts {
		names = append(names, tg.String())
	}
	want := []string{"admin@198.18.1.2:22", "other@198.18.2.2:22", "root@[fd42:5e:0:3::2]:2222"}
	if d := cmp.Diff(want, names); d != "" {
		t.Fatalf("targets (-want +got):\n%s", d)
	}
	run := func() ([]byte, error) { return []byte("run-password"), nil }
	for i, wantPW := range []string{"group-secret", "group-secret", "run-password"} {
		got, err := o.passwordFor(ts[i], run)()
		if err != nil || string(got) != wantPW {
			t.Errorf("%s: password %q, %v; want %q", ts[i], got, err, wantPW)
		}
		if sp := o.sudoPassword(ts[i], run); ts[i].User != "root" && sp == nil {
			t.Errorf("%s: no sudo password although the section gives one", ts[i])
		}
	}
}

func TestInputFileRefused(t *testing.T) {
	tests := []struct {
		name, body string
		mode       os.FileMode
		want       string
	}{
		{"password readable by others", "[TARGETS]\nHOST=198.18.1.2\nUID=a\nPWD=pw\n[END]\n", 0o644, "chmod 600"},
		{"no targets section", "SILENT=YES\n", 0o600, "no [TARGETS] section"},
		{"unclosed", "[TARGETS]\nHOST=198.18.1.2\n", 0o600, "not closed"},
		{"bad host", "[TARGETS]\nHOST=a b\n[END]\n", 0o600, ":2: HOST"},
		{"twice with --target", "[TARGETS]\nHOST=root@198.18.1.2\n[END]\n", 0o600, "named twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeInput(t, tt.body, tt.mode)
			o := &nodeOptions{InputFile: p, User: "root", Parallel: 1, Targets: stringList{"root@198.18.1.2"}}
			_, err := o.targets(&Env{})
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want a usage error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PWD=pw") || strings.Contains(err.Error(), ": pw") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestApplyInputOptions(t *testing.T) {
	tests := []struct {
		name      string
		options   string
		baseline  string
		want      deployOptions
		wantErr   string
		wantWarns string
		flags     map[string]bool // set on the command line
		set       deployOptions   // their values
	}{
		{name: "dry run and source path", options: "DRYRUN=YES\nDOWNGRADE=no\nREWRITE=Yes\nSOURCEPATH=/srv/base\nSILENT=YES\n",
			want: deployOptions{DryRun: true, Rewrite: true, Baseline: "/srv/base"}},
		{name: "flags win", options: "DRYRUN=YES\nDOWNGRADE=YES\n", flags: map[string]bool{"dry-run": true, "downgrade": true}, set: deployOptions{Downgrade: true},
			want: deployOptions{Downgrade: true}},
		{name: "source path agrees with --baseline", options: "SOURCEPATH=/srv/base/\n", baseline: "/srv/base", want: deployOptions{Baseline: "/srv/base"}},
		{name: "source path differs", options: "SOURCEPATH=/srv/other\n", baseline: "/srv/base", wantErr: "name different baselines"},
		{name: "reboot asked", options: "REBOOTALLOWED=YES\nREBOOTALWAYS=NO\nREBOOTDELAY=90\nREBOOTMESSAGE=going down\n",
			want: deployOptions{Reboot: true, RebootDelay: 90 * time.Second, RebootMessage: "going down"}},
		{name: "reboot always", options: "REBOOTALWAYS=YES\n", want: deployOptions{RebootAlways: true}},
		{name: "reboot flag wins", options: "REBOOTALLOWED=YES\nREBOOTDELAY=90\n", flags: map[string]bool{"reboot": true, "reboot-delay": true},
			want: deployOptions{}},
		{name: "reboot not asked", options: "REBOOTALLOWED=NO\nREBOOTDELAY=60\n", want: deployOptions{RebootDelay: time.Minute}},
		{name: "reboot delay too short", options: "REBOOTDELAY=5\n", wantErr: "between 15s and 1h0m0s"},
		{name: "reboot delay not a number", options: "REBOOTDELAY=soon\n", wantErr: "REBOOTDELAY"},
		{name: "reboot bad yes/no", options: "REBOOTALLOWED=perhaps\n", wantErr: "want YES or NO"},
		{name: "port in input file", options: "PORT=80\n", wantErr: "--config"},
		{name: "bad yes/no", options: "DRYRUN=maybe\n", wantErr: `DRYRUN="maybe": want YES or NO`},
		{name: "report dir warned", options: "REPORTDIR=/tmp/r\n", wantWarns: "REPORTDIR= ignored"},
		{name: "unknown key warned", options: "FROBNICATE=1\n", wantWarns: "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeInput(t, tt.options+"[TARGETS]\nHOST=198.18.1.2\n[END]\n", 0o600)
			opts := &deployOptions{Baseline: tt.baseline, setFlags: tt.flags, DryRun: tt.set.DryRun, Downgrade: tt.set.Downgrade, Rewrite: tt.set.Rewrite}
			opts.InputFile, opts.User, opts.Parallel = p, "root", 1
			if _, err := opts.targets(&Env{}); err != nil {
				t.Fatal(err)
			}
			var errb strings.Builder
			err := applyInputOptions(&Env{Stderr: &errb}, opts)
			if tt.wantErr != "" {
				var ue *usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want a usage error naming %s containing %q", err, p, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				DryRun, Downgrade, Rewrite bool
				Baseline                   string
				Reboot, RebootAlways       bool
				RebootDelay                time.Duration
				RebootMessage              string
			}
			got := result{opts.DryRun, opts.Downgrade, opts.Rewrite, opts.Baseline, opts.Reboot, opts.RebootAlways, opts.RebootDelay, opts.RebootMessage}
			want := result{tt.want.DryRun, tt.want.Downgrade, tt.want.Rewrite, tt.want.Baseline, tt.want.Reboot, tt.want.RebootAlways, tt.want.RebootDelay, tt.want.RebootMessage}
			if want.Baseline == "" {
				want.Baseline = tt.baseline
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if !strings.Contains(errb.String(), tt.wantWarns) {
				t.Errorf("warnings %q, want %q", errb.String(), tt.wantWarns)
			}
		})
	}
}

// FuzzTranslateHPSUM: any command line either is refused or comes out no
// longer than it went in, with every word kept as it was or turned into a
// fleetup flag.
func FuzzTranslateHPSUM(f *testing.F) {
	f.Add("/target\x00198.18.1.2\x00/dryrun\x00/port=80")
	f.Add("/passwd\x00x")
	f.Add("--\x00/g")
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		out, err := translateHPSUM(args)
		if err != nil {
			return
		}
		if len(out) > len(args) {
			t.Fatalf("%q became longer: %q", args, out)
		}
		in := map[string]bool{}
		for _, a := range args {
			in[a] = true
		}
		for _, w := range out {
			if !in[w] && !strings.HasPrefix(w, "--") {
				t.Fatalf("%q: word %q is neither an input word nor a flag", args, w)
			}
		}
	})
}

// TestInputFileBMCs: a TYPE=bmc section's hosts are BMCs with the
// section's user and password (unless --bmc-password-file), a HOST= of a
// host and its BMC is one server, BMC first.
func TestInputFileBMCs(t *testing.T) {
	p := writeInput(t, "[TARGETS]\nTYPE=bmc\nHOST=198.18.2.2\nUID=Administrator\nPWD=bmc-secret\n[END]\n[TARGETS]\nHOST=198.18.1.2 bmc://admin@198.18.3.2\nUID=root\nPWD=os-secret\n[END]\n", 0o600)
	o := &nodeOptions{InputFile: p, User: "root", Parallel: 1}
	ts, err := o.targets(&Env{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range serverOrder(ts) {
		names = append(names, tg.String()+"|"+tg.Server)
	}
	want := []string{"bmc://Administrator@198.18.2.2:443|", "bmc://admin@198.18.3.2:443|198.18.1.2", "root@198.18.1.2:22|198.18.1.2"}
	if d := cmp.Diff(want, names); d != "" {
		t.Fatalf("targets (-want +got):\n%s", d)
	}
	run := func() ([]byte, error) { return []byte("run-password"), nil }
	for i, wantPW := range []string{"bmc-secret", "os-secret", "os-secret"} {
		tg := serverOrder(ts)[i]
		pw := o.passwordFor(tg, run)
		if tg.Kind == target.KindBMC {
			pw = o.bmcPassword(context.Background(), tg, run)
		}
		got, err := pw()
		if err != nil || string(got) != wantPW {
			t.Errorf("%s: password %q, %v; want %q", tg, got, err, wantPW)
		}
	}
	// --bmc-password-file wins for BMCs.
	pwFile := filepath.Join(t.TempDir(), "bmcpw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o.BMCPasswordFile = pwFile
	if got, err := o.bmcPassword(context.Background(), ts[0], run)(); err != nil || string(got) != "from-file" {
		t.Errorf("--bmc-password-file: %q, %v", got, err)
	}
}

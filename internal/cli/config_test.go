package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/config"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// cleanPortEnv unsets fleetup's port variables for the test, so that the
// caller's environment cannot change what it sees.
func cleanPortEnv(t *testing.T) {
	for _, v := range []string{"FLEETUP_PORT", "FLEETUP_SSL_PORT", "FLEETUP_ENGINE_PORT", "FLEETUP_FTP_PORT", "FLEETUP_OPEN_FIREWALL"} {
		t.Setenv(v, "")
	}
}

// runCmd runs one command function and returns its output.
func runCmd(t *testing.T, fn func(context.Context, *Env, []string) error, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	// As Run does for every command.
	args, err := translateHPSUM(args)
	if err != nil {
		return "", "", err
	}
	err = fn(context.Background(), &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
	return out.String(), errb.String(), err
}

func TestRunConfig(t *testing.T) {
	cleanPortEnv(t)
	ini := filepath.Join(t.TempDir(), "hpsum.ini")
	if err := os.WriteFile(ini, []byte("[hpsum]\nport=8080\nssl_port=8443\nsilent=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLEETUP_SSL_PORT", "9443")
	out, errs, err := runCmd(t, runConfig, "--config", ini, "/port", "80", "/open_firewall")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"KEY            VALUE  SOURCE",
		"port           80     flag --port",
		"ssl_port       9443   env FLEETUP_SSL_PORT",
		"engine_port    62286  default",
		"ftp_port       off    default",
		"open_firewall  true   flag --open-firewall",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(out), "\n")); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	if !strings.Contains(errs, ini+`:4: unknown key "silent" ignored`) {
		t.Errorf("stderr %q lacks the warning about silent", errs)
	}

	out, _, err = runCmd(t, runConfig, "--json", "--config", ini)
	if err != nil {
		t.Fatal(err)
	}
	var got config.Config
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if got.HTTPPort.Value != 8080 || got.HTTPPort.Source != (config.Source{Kind: config.KindINI, Name: ini + ":2"}) ||
		got.HTTPSPort.Value != 9443 || got.HTTPSPort.Source.Kind != config.KindEnv || got.File != ini {
		t.Errorf("JSON %s", out)
	}
}

func TestRunConfigRefuses(t *testing.T) {
	cleanPortEnv(t)
	bad := filepath.Join(t.TempDir(), "bad.ini")
	if err := os.WriteFile(bad, []byte("; ports\nport=8080\nssl_port=70000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"zero", []string{"--port", "0"}, `--port "0": not a port: 0`},
		{"hpsum spelling", []string{"/ssl_port", "x"}, `--ssl-port "x": not a number`},
		{"ini line", []string{"--config", bad}, bad + `:3: ssl_port "70000": not a port: above 65535`},
		{"same port", []string{"--port", "8000", "--ssl-port", "8000"}, "must differ"},
		{"ftp range", []string{"--ftp-port", "2121"}, `--ftp-port "2121": not an FTP port: want 21 or 63006-63010`},
		{"missing file", []string{"--config", "/nonexistent/fleetup.ini"}, "/nonexistent/fleetup.ini"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runCmd(t, runConfig, tt.args...)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want a usage error with %q", err, tt.want)
			}
		})
	}
}

// TestPortFlagsBesideNodeFlags checks that the port flags share a flag set
// with nodeOptions, whose --engine-port they read rather than redefine.
func TestPortFlagsBesideNodeFlags(t *testing.T) {
	cleanPortEnv(t)
	env := &Env{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	var opts nodeOptions
	fs := newFlags("deploy", env)
	opts.register(fs)
	pf := registerPortFlags(fs)
	args, err := translateHPSUM([]string{"--engine-port", "62300", "/port", "80"})
	if err != nil {
		t.Fatal(err)
	}
	if err := parse(fs, args); err != nil {
		t.Fatal(err)
	}
	c, err := pf.load(env, fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.EnginePort.Value != 62300 || !c.EnginePort.Explicit() || c.HTTPPort.Value != 80 || c.HTTPSPort.Explicit() {
		t.Errorf("config %+v", c)
	}
}

func TestRunPorts(t *testing.T) {
	cleanPortEnv(t)
	t.Setenv("FLEETUP_FTP_PORT", "21")
	out, _, err := runCmd(t, runPorts, "/port", "80", "--engine-port", "6000")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"linux      80     tcp       both       manager's web server, http",
		"bmc        80     tcp       both",
		"windows    6000   tcp       to node    manager to the engine",
		"switch     21     tcp       from node  manager's FTP server",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "63001") {
		t.Errorf("table still names 63001:\n%s", out)
	}
}

// TestPortsGolden compares the default port table, as text and as JSON,
// with testdata/ports.golden and testdata/ports_json.golden; -update
// rewrites them.
func TestPortsGolden(t *testing.T) {
	cleanPortEnv(t)
	for _, tt := range []struct {
		file string
		args []string
	}{
		{"ports.golden", nil},
		{"ports_json.golden", []string{"--json"}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			out, _, err := runCmd(t, runPorts, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.file)
			if *updateGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), out); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
}

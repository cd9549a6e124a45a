package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeINI writes text to a file in a fresh directory and returns its path.
func writeINI(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleetup.ini")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	want := []Item{
		{"port", "63001", Source{Kind: KindDefault}},
		{"ssl_port", "63002", Source{Kind: KindDefault}},
		{"engine_port", "62286", Source{Kind: KindDefault}},
		{"ftp_port", "off", Source{Kind: KindDefault}},
		{"open_firewall", "false", Source{Kind: KindDefault}},
	}
	if diff := cmp.Diff(want, c.Items()); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if c.HTTPPort.Explicit() || c.FTPEnabled() {
		t.Errorf("defaults: explicit http port %v, FTP on %v", c.HTTPPort.Explicit(), c.FTPEnabled())
	}
}

func TestLoadPrecedence(t *testing.T) {
	hpsum := "testdata/hpsum.ini"
	own := writeINI(t, "port=7001\nssl_port=7002\nengine_port=7003\nftp_port=63006\nopen_firewall=yes\n")
	tests := []struct {
		name  string
		opts  LoadOptions
		key   string
		value string
		src   Source
	}{
		{"default", LoadOptions{}, KeyPort, "63001", Source{Kind: KindDefault}},
		{"ini", LoadOptions{File: own}, KeyPort, "7001", Source{KindINI, own + ":1"}},
		{"hpsum.ini moves http", LoadOptions{File: hpsum}, KeyPort, "8080", Source{KindINI, hpsum + ":3"}},
		{"hpsum.ini moves https", LoadOptions{File: hpsum}, KeySSLPort, "8443", Source{KindINI, hpsum + ":4"}},
		{"hpsum.ini keeps the engine default", LoadOptions{File: hpsum}, KeyEnginePort, "62286", Source{Kind: KindDefault}},
		{"flag beats hpsum.ini", LoadOptions{File: hpsum, Flags: map[string]string{"port": "80"}}, KeyPort, "80", Source{KindFlag, "--port"}},
		{"hpsum.ini value a flag does not touch", LoadOptions{File: hpsum, Flags: map[string]string{"port": "80"}}, KeySSLPort, "8443", Source{KindINI, hpsum + ":4"}},
		{"env beats ini", LoadOptions{File: own, Env: envMap(map[string]string{"FLEETUP_SSL_PORT": "9002"})}, KeySSLPort, "9002", Source{KindEnv, "FLEETUP_SSL_PORT"}},
		{"flag beats env", LoadOptions{File: own, Env: envMap(map[string]string{"FLEETUP_ENGINE_PORT": "9003"}), Flags: map[string]string{"engine-port": "10003"}}, KeyEnginePort, "10003", Source{KindFlag, "--engine-port"}},
		{"empty env is unset", LoadOptions{File: own, Env: envMap(map[string]string{"FLEETUP_PORT": ""})}, KeyPort, "7001", Source{KindINI, own + ":1"}},
		{"env alone", LoadOptions{Env: envMap(map[string]string{"FLEETUP_FTP_PORT": "21"})}, KeyFTPPort, "21", Source{KindEnv, "FLEETUP_FTP_PORT"}},
		{"ftp from ini", LoadOptions{File: own}, KeyFTPPort, "63006", Source{KindINI, own + ":4"}},
		{"open_firewall from ini", LoadOptions{File: own}, KeyOpenFirewall, "true", Source{KindINI, own + ":5"}},
		{"open_firewall off by flag beats ini", LoadOptions{File: own, Flags: map[string]string{"open-firewall": "false"}}, KeyOpenFirewall, "false", Source{KindFlag, "--open-firewall"}},
		{"open_firewall from env", LoadOptions{Env: envMap(map[string]string{"FLEETUP_OPEN_FIREWALL": "1"})}, KeyOpenFirewall, "true", Source{KindEnv, "FLEETUP_OPEN_FIREWALL"}},
		{"flag with dashes", LoadOptions{Flags: map[string]string{"--ssl-port": "443"}}, KeySSLPort, "443", Source{KindFlag, "--ssl-port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got *Item
			for _, it := range c.Items() {
				if it.Key == tt.key {
					got = &it
				}
			}
			want := Item{tt.key, tt.value, tt.src}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.key, diff)
			}
		})
	}
}

func TestLoadExplicit(t *testing.T) {
	c, err := Load(LoadOptions{File: "testdata/hpsum.ini", Env: envMap(map[string]string{"FLEETUP_ENGINE_PORT": "62300"})})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{
		"http": c.HTTPPort.Explicit(), "https": c.HTTPSPort.Explicit(), "engine": c.EnginePort.Explicit(),
		"ftp": c.FTPPort.Explicit(), "open_firewall": c.OpenFirewall.Explicit(),
	}
	want := map[string]bool{"http": true, "https": true, "engine": true, "ftp": false, "open_firewall": false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("explicit (-want +got):\n%s", diff)
	}
	wantWarn := []string{`testdata/hpsum.ini:8: unknown key "silent" ignored`}
	if diff := cmp.Diff(wantWarn, c.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestLoadWarnings(t *testing.T) {
	path := writeINI(t, "[hpsum]\nport=8080\nlogdir=/var/log/sum\n[Defaults]\nPORT=8081\n")
	c, err := Load(LoadOptions{File: path})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPPort.Value != 8081 || c.HTTPPort.Source.Name != path+":5" {
		t.Errorf("http port %+v, want 8081 from line 5 (the last one counts)", c.HTTPPort)
	}
	want := []string{
		path + `:3: unknown key "logdir" ignored`,
		path + ":5: port set again (first on line 2); line 5 counts",
	}
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestFTPOff: "off" from a flag turns off the FTP an ini file turned on.
func TestFTPOff(t *testing.T) {
	c, err := Load(LoadOptions{File: writeINI(t, "[hpsum]\nftp_port=21\nport=63008\n"), Flags: map[string]string{"ftp-port": "OFF"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.FTPEnabled() || c.FTPPort.Source.Kind != KindFlag {
		t.Errorf("ftp %+v, want off by the flag", c.FTPPort)
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		ini  string            // written to a file when not empty; its path replaces FILE in want
		env  map[string]string // environment
		flag map[string]string
		want []string // each in the error, in order
		key  string   // Key of the first *ValidationError
	}{
		{name: "zero in ini", ini: "[hpsum]\nport=0\n", want: []string{`FILE:2: port "0": not a port: 0`}, key: KeyPort},
		{name: "above 65535 in ini", ini: "; c\n\nssl_port=65536\n", want: []string{`FILE:3: ssl_port "65536": not a port: above 65535`}, key: KeySSLPort},
		{name: "huge number", ini: "engine_port=99999999999999999999999\n", want: []string{`FILE:1: engine_port "99999999999999999999999": not a port: above 65535`}, key: KeyEnginePort},
		{name: "not a number in ini", ini: "[hpsum]\nPORT = eighty\n", want: []string{`FILE:2: port "eighty": not a number`}, key: KeyPort},
		{name: "negative", ini: "port=-1\n", want: []string{`FILE:1: port "-1": not a number`}, key: KeyPort},
		{name: "empty value", ini: "ssl_port=\n", want: []string{`FILE:1: ssl_port "": empty`}, key: KeySSLPort},
		{name: "ftp outside its range", ini: "ftp_port=2121\n", want: []string{`FILE:1: ftp_port "2121": not an FTP port: want 21 or 63006-63010`}, key: KeyFTPPort},
		{name: "ftp zero", flag: map[string]string{"ftp-port": "0"}, want: []string{`--ftp-port "0": not a port: 0 (off turns FTP off)`}, key: KeyFTPPort},
		{name: "ftp 63011", env: map[string]string{"FLEETUP_FTP_PORT": "63011"}, want: []string{`FLEETUP_FTP_PORT "63011": not an FTP port`}, key: KeyFTPPort},
		{name: "bad bool", ini: "open_firewall=maybe\n", want: []string{`FILE:1: open_firewall "maybe": not a yes/no value`}, key: KeyOpenFirewall},
		{name: "flag not a number", flag: map[string]string{"port": "8o"}, want: []string{`--port "8o": not a number`}, key: KeyPort},
		{name: "env above range", env: map[string]string{"FLEETUP_ENGINE_PORT": "70000"}, want: []string{`FLEETUP_ENGINE_PORT "70000": not a port: above 65535`}, key: KeyEnginePort},
		{name: "same port twice in ini", ini: "port=8080\nssl_port=8080\n", want: []string{`FILE:2: ssl_port "8080": also the http port (port, ini FILE:1): the two must differ`}, key: KeySSLPort},
		{name: "flag takes the default https port", flag: map[string]string{"port": "63002"}, want: []string{`ssl_port "63002" (default): also the http port (port, flag --port): the two must differ`}, key: KeySSLPort},
		{name: "engine on the https port", env: map[string]string{"FLEETUP_ENGINE_PORT": "8443"}, ini: "ssl_port=8443\n", want: []string{`FLEETUP_ENGINE_PORT "8443": also the https port (ssl_port, ini FILE:1)`}, key: KeyEnginePort},
		{name: "ftp on the http port", flag: map[string]string{"port": "21", "ftp-port": "21"}, want: []string{`--ftp-port "21": also the http port (port, flag --port)`}, key: KeyFTPPort},
		{name: "http port in ftp's passive range", flag: map[string]string{"port": "63008", "ftp-port": "63007"}, want: []string{`--port "63008": inside FTP's passive ports 63006-63010, which are on (ftp_port 63007, flag --ftp-port)`}, key: KeyPort},
		{name: "overridden bad ini value still reported", ini: "port=0\n", flag: map[string]string{"port": "80"}, want: []string{`FILE:1: port "0"`}, key: KeyPort},
		{name: "every problem reported", ini: "port=0\nssl_port=x\nftp_port=22\n", want: []string{`FILE:1: port "0"`, `FILE:2: ssl_port "x"`, `FILE:3: ftp_port "22"`}, key: KeyPort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Flags: tt.flag, Env: envMap(tt.env)}
			if tt.ini != "" {
				opts.File = writeINI(t, tt.ini)
			}
			c, err := Load(opts)
			if err == nil {
				t.Fatalf("loaded %+v, want an error", c)
			}
			msg := err.Error()
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "FILE", opts.File)
				if !strings.Contains(msg, w) {
					t.Errorf("error\n%s\nlacks\n%s", msg, w)
				}
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Key != tt.key {
				t.Errorf("error %v: want a *ValidationError for %s", err, tt.key)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.ini")
	if _, err := Load(LoadOptions{File: missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v, want an error naming %s", err, missing)
	}
	bad := writeINI(t, "[hpsum\nport=80\njunk\n")
	_, err := Load(LoadOptions{File: bad})
	for _, w := range []string{bad + ":1: malformed section header", bad + ":3: want key=value"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("syntax errors: %v, want %q", err, w)
		}
	}
	if _, err := Load(LoadOptions{Flags: map[string]string{"target": "x"}}); err == nil || !strings.Contains(err.Error(), "--target") {
		t.Errorf("unknown flag: %v, want an error naming --target", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"ftp on 21", func(c *Config) { c.FTPPort = Setting[int]{21, Source{KindFlag, "--ftp-port"}} }, ""},
		{"ftp on 63010", func(c *Config) { c.FTPPort = Setting[int]{63010, Source{KindFlag, "--ftp-port"}} }, ""},
		{"ftp on 63005", func(c *Config) { c.FTPPort = Setting[int]{63005, Source{KindFlag, "--ftp-port"}} }, `--ftp-port "63005": not an FTP port`},
		{"engine zero", func(c *Config) { c.EnginePort.Value = 0 }, `engine_port "0" (default): not a port: 0`},
		{"https negative", func(c *Config) { c.HTTPSPort = Setting[int]{-5, Source{KindINI, "x.ini:9"}} }, `x.ini:9: ssl_port "-5": not a port: below 1`},
		{"engine on http", func(c *Config) { c.EnginePort = Setting[int]{63001, Source{KindEnv, "FLEETUP_ENGINE_PORT"}} }, `FLEETUP_ENGINE_PORT "63001": also the http port (port, default)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBaselineCheck(t *testing.T) {
	code, out, errs := run(t, "", "baseline", "check", "../../examples/baseline")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"dev.fleetup.example.fakedevice", "1.2.5", "fwupd", "b585990a-003e-5270-89d5-3705a17f9a43", "dev.fleetup.example.hello", "script", "SHA256"} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.deb"), []byte("!<arch>\nnot a deb"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = run(t, "", "baseline", "check", dir)
	if code != ExitUsage || !strings.Contains(out+errs, "bad.deb") {
		t.Errorf("broken baseline: exit %d, output %q %q; want %d naming bad.deb", code, out, errs, ExitUsage)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"deploy without baseline", []string{"deploy"}, "--baseline DIR is required"},
		{"bad target", []string{"deploy", "--baseline", "../../examples/baseline", "--target", "root@[::1"}, `--target "root@[::1"`},
		{"bad port", []string{"deploy", "--baseline", "../../examples/baseline", "--target", "h", "--port", "70000"}, "not a port"},
		{"same ports", []string{"deploy", "--baseline", "../../examples/baseline", "--target", "h", "--port", "8000", "--ssl-port", "8000"}, "must differ"},
		{"duplicate target", []string{"inventory", "--target", "root@h", "--target", "h"}, "named twice"},
		{"missing baseline dir", []string{"deploy", "--baseline", "/nonexistent/fleetup", "--target", "h"}, "/nonexistent/fleetup"},
		{"stray argument", []string{"deploy", "--baseline", "x", "h"}, `unexpected argument "h"`},
		{"cleanup without target", []string{"cleanup"}, "needs --target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := run(t, "", tt.args...)
			if code != ExitUsage || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, ExitUsage, tt.want)
			}
		})
	}
}

func TestNodesFromStdin(t *testing.T) {
	o := &nodeOptions{User: "admin", Parallel: 1, NodesFile: "-"}
	ts, err := o.targets(&Env{Stdin: strings.NewReader("# fleet\n198.18.1.2\nroot@[fd42:5e:0:2::2]:2222\n")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].String() != "admin@198.18.1.2:22" || ts[1].User != "root" || ts[1].Port != 2222 {
		t.Errorf("targets %v", ts)
	}
	o = &nodeOptions{User: "admin", Parallel: 1, NodesFile: "-"}
	_, err = o.targets(&Env{Stdin: strings.NewReader("ok\nbad host name!\n")})
	if err == nil || !strings.Contains(err.Error(), "stdin:2") {
		t.Errorf("bad line: %v, want an error naming stdin:2", err)
	}
}

func TestHelpAndVersion(t *testing.T) {
	if code, out, _ := run(t, "", "help"); code != ExitOK || !strings.Contains(out, "deploy") {
		t.Errorf("help: %d %q", code, out)
	}
	if code, out, _ := run(t, "", "version"); code != ExitOK || !strings.HasPrefix(out, "fleetup ") {
		t.Errorf("version: %d %q", code, out)
	}
}

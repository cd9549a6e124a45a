package bmcsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testenv"
)

// The simulator is good when real Redfish clients accept it: Python's
// sushy (strict about required properties), DMTF's redfishtool and HPE's
// ilorest, all from Debian. These tests skip without them (and fail in CI,
// where skips are refused).

// clientEnv is the environment for the Python clients: without the CA
// bundle variables, which make requests ignore verify=False.
func clientEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "REQUESTS_CA_BUNDLE" || k == "CURL_CA_BUNDLE" || k == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "PYTHONWARNINGS=ignore", "NO_COLOR=1")
}

// runClient runs a client program in dir and returns its standard output.
func runClient(t *testing.T, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = clientEnv(dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// managerPaths are each flavor's Manager paths.
var managerPaths = map[Flavor]string{
	ILO:     "/redfish/v1/Managers/1/",
	IDRAC:   "/redfish/v1/Managers/iDRAC.Embedded.1",
	OpenBMC: "/redfish/v1/Managers/bmc",
}

func TestSushy(t *testing.T) {
	t.Parallel()
	const python = "/usr/bin/python3" // Debian's, with Debian's modules
	if _, err := os.Stat(python); err != nil {
		testenv.Skip(t, "needs "+python)
	}
	if err := exec.Command(python, "-c", "import sushy").Run(); err != nil {
		testenv.Skip(t, "needs python3-sushy")
	}
	for _, f := range Flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			b := startTest(t, testOptions(t, f))
			out, err := runClient(t, t.TempDir(), python, mustAbs(t, "testdata/sushy_read.py"), b.URL(), testUser, testPass)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("sushy:\n%s", out)
			mgr := b.Firmware()[0]
			for _, want := range []string{"system ", "manager " + b.prof.managerID + " " + b.prof.managerModel,
				"firmware " + mgr.ID + " " + mgr.Version + " True", "closed"} {
				if !strings.Contains(out, want) {
					t.Errorf("sushy output lacks %q", want)
				}
			}
			if n := b.OpenSessions(); n != 0 {
				t.Errorf("sushy left %d sessions", n)
			}
		})
	}
}

func TestRedfishtool(t *testing.T) {
	t.Parallel()
	testenv.RequireTools(t, "redfishtool")
	for _, f := range Flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			b := startTest(t, testOptions(t, f))
			host := strings.TrimPrefix(b.URL(), "https://")
			dir := t.TempDir()
			for _, tc := range []struct {
				args []string
				want string // a property of the answer
			}{
				{[]string{"Systems"}, "Members"},
				{[]string{"Systems", "get"}, "BiosVersion"},
				{[]string{"Managers", "get"}, "FirmwareVersion"},
				{[]string{"Chassis"}, "Members"},
				{[]string{"SessionService"}, "Sessions"},
				{[]string{"raw", "GET", "/redfish/v1/UpdateService/FirmwareInventory"}, "Members"},
				{[]string{"-A", "Session", "Managers", "get"}, "FirmwareVersion"},
			} {
				args := append([]string{"-r", host, "-S", "Always", "-u", testUser, "-p", testPass}, tc.args...)
				out, err := runClient(t, dir, "redfishtool", args...)
				if err != nil {
					t.Errorf("%v", err)
					continue
				}
				var o map[string]any
				if err := json.Unmarshal([]byte(out), &o); err != nil || o[tc.want] == nil {
					t.Errorf("redfishtool %v: %v, output %q", tc.args, err, out)
				}
			}
			if n := b.OpenSessions(); n != 0 {
				t.Errorf("redfishtool left %d sessions", n)
			}
		})
	}
}

// listenHTTPSPort listens on port 443 of a random loopback address when it
// can (root), so that ilorest, which mangles session URLs on other ports,
// can log out; otherwise on any port of 127.0.0.1.
func listenHTTPSPort(t *testing.T) (net.Listener, bool) {
	if os.Geteuid() == 0 {
		for range 20 {
			addr := fmt.Sprintf("127.%d.%d.%d:443", rand.IntN(254)+1, rand.IntN(256), rand.IntN(254)+1)
			ln, err := net.Listen("tcp", addr)
			if err == nil {
				return ln, true
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				break
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, false
}

func TestIlorest(t *testing.T) {
	t.Parallel()
	testenv.RequireTools(t, "ilorest")
	for _, f := range Flavors {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			ln, on443 := listenHTTPSPort(t)
			b, err := Start(testOptions(t, f), ln)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			// ilorest keeps its login in HOME and writes its log to the
			// working directory.
			dir := t.TempDir()
			ilorest := func(args ...string) string {
				t.Helper()
				out, err := runClient(t, dir, "ilorest", append([]string{"--nologo"}, args...)...)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			// With an explicit port in the URL, even 443, ilorest
			// cannot log out (it inserts the port into the session's
			// URL path).
			ilorest("login", strings.TrimSuffix(b.URL(), ":443"), "-u", testUser, "-p", testPass)
			if n := b.OpenSessions(); n != 1 {
				t.Errorf("after login: %d sessions", n)
			}
			out := ilorest("rawget", managerPaths[f])
			var m map[string]any
			if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &m); err != nil {
				t.Fatalf("rawget: %v: %q", err, out)
			}
			if m["FirmwareVersion"] != b.prof.managerFirmwareVersion(b.Firmware()[0].Version) {
				t.Errorf("rawget: FirmwareVersion %v", m["FirmwareVersion"])
			}
			if f == ILO {
				// serverinfo reads HPE's resource directory, $expand
				// and the BIOS resource.
				out := ilorest("serverinfo", "--firmware", "--system")
				for _, want := range []string{"iLO 5 : 2.72", "Bios Version: U32 v2.68", "Serial Number: CZJ0000001"} {
					if !strings.Contains(out, want) {
						t.Errorf("serverinfo lacks %q:\n%s", want, out)
					}
				}
			}
			ilorest("logout")
			if n := b.OpenSessions(); n != 0 && on443 {
				t.Errorf("after logout: %d sessions", n)
			}
		})
	}
}

func mustAbs(t *testing.T, p string) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd + "/" + p
}

package ftpd

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetup/fleetup/internal/testenv"
)

// The switch stand-in: a network namespace joined to the host by a veth
// pair, running Debian's lftp against the server in the test process on
// the host side. Addresses are from 198.18.231.0/24 and fd42:5e:0:e7xx::/64,
// which belong to this package's tests (LAB.md); the .128/30 and e7f1
// halves stay clear of a lab node 231's 198.18.231.0/30.
const (
	switchNS    = "fuftp231"
	switchVeth  = "vfuftp231" // host side; the namespace side is eth0
	hostV4      = "198.18.231.129"
	switchV4    = "198.18.231.130"
	hostV6      = "fd42:5e:0:e7f1::1"
	switchV6    = "fd42:5e:0:e7f1::2"
	switchFWLen = 3<<20 + 12345
)

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newSwitch creates the namespace and removes it (and anything running in
// it) when the test ends, pass or fail.
func newSwitch(t *testing.T) {
	t.Helper()
	teardownSwitch() // leftovers of a crashed run
	t.Cleanup(teardownSwitch)
	run(t, "ip", "netns", "add", switchNS)
	etc := filepath.Join("/etc/netns", switchNS)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := fmt.Sprintf("127.0.0.1 localhost\n::1 localhost\n%s manager\n%s manager\n", hostV4, hostV6)
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "link", "add", switchVeth, "type", "veth", "peer", "name", "eth0", "netns", switchNS)
	run(t, "ip", "addr", "add", hostV4+"/30", "dev", switchVeth)
	run(t, "ip", "-6", "addr", "add", hostV6+"/64", "dev", switchVeth, "nodad")
	run(t, "ip", "link", "set", switchVeth, "up")
	in := []string{"ip", "netns", "exec", switchNS}
	run(t, append(in, "ip", "link", "set", "lo", "up")...)
	run(t, append(in, "ip", "addr", "add", switchV4+"/30", "dev", "eth0")...)
	run(t, append(in, "ip", "-6", "addr", "add", switchV6+"/64", "dev", "eth0", "nodad")...)
	run(t, append(in, "ip", "link", "set", "eth0", "up")...)
}

func teardownSwitch() {
	if out, err := exec.Command("ip", "netns", "pids", switchNS).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
		}
	}
	_ = exec.Command("ip", "link", "del", switchVeth).Run()
	_ = exec.Command("ip", "netns", "del", switchNS).Run()
	_ = os.RemoveAll(filepath.Join("/etc/netns", switchNS))
}

// lftp runs lftp in the switch namespace: it logs in to the server at host
// as user/pass and runs script. It returns the output and whether lftp
// succeeded.
func lftp(t *testing.T, home, host, user, pass, script string) (string, bool) {
	t.Helper()
	settings := "set net:max-retries 1; set net:timeout 15; set net:reconnect-interval-base 1; " +
		"set ftp:ssl-allow no; set ftp:passive-mode yes; set ftp:prefer-epsv yes; set cmd:fail-exit yes; set xfer:clobber yes; "
	url := "ftp://" + net.JoinHostPort(host, strconv.Itoa(DefaultPort))
	cmd := exec.Command("ip", "netns", "exec", switchNS, "lftp", "-c",
		settings+fmt.Sprintf("open -u %s,%s %s; %s", user, pass, url, script))
	cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	t.Logf("lftp %s: %s (err %v)\n%s", host, script, err, out)
	return string(out), err == nil
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

func TestSwitchWithLftp(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip", "lftp")
	testenv.HoldPorts(t, "ftp")
	newSwitch(t)

	dir := t.TempDir()
	fw := filepath.Join(dir, "payload-fw.bin")
	if err := os.WriteFile(fw, randomBytes(t, switchFWLen), 0o644); err != nil {
		t.Fatal(err)
	}
	want := sha(t, fw)
	user, pass := NewCredentials()
	srv, err := New(Options{Port: DefaultPort, User: user, Password: pass, Files: map[string]string{"switch-fw-7.1.bin": fw}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("Start on the default ftp port %d (is something else using it?): %v", DefaultPort, err)
	}
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	home := t.TempDir()
	out := t.TempDir() // the switch's flash, seen from the host

	for _, host := range []string{hostV6, hostV4} {
		t.Run("fetch over "+map[bool]string{true: "IPv4", false: "IPv6"}[net.ParseIP(host).To4() != nil], func(t *testing.T) {
			dst := filepath.Join(out, "fw-"+strings.ReplaceAll(host, ":", "_"))
			if o, ok := lftp(t, home, host, user, pass, "get switch-fw-7.1.bin -o "+dst); !ok {
				t.Fatalf("get failed: %s", o)
			}
			if got := sha(t, dst); got != want {
				t.Errorf("sha256 of the fetched file = %s, want %s", got, want)
			}
		})
	}

	t.Run("resume", func(t *testing.T) {
		const have = 1 << 20
		dst := filepath.Join(out, "fw-resumed")
		full, err := os.ReadFile(fw)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, full[:have], 0o644); err != nil {
			t.Fatal(err)
		}
		before := srv.Stats().BytesServed
		if o, ok := lftp(t, home, hostV6, user, pass, "get -c switch-fw-7.1.bin -o "+dst); !ok {
			t.Fatalf("get -c failed: %s", o)
		}
		if got := sha(t, dst); got != want {
			t.Errorf("sha256 of the resumed file = %s, want %s", got, want)
		}
		if sent := srv.Stats().BytesServed - before; sent != switchFWLen-have {
			t.Errorf("the resume sent %d bytes, want only the missing %d", sent, switchFWLen-have)
		}
	})

	refusals := []struct {
		name, host, pass, script, wantOut string
	}{
		{name: "wrong password", host: hostV4, pass: "not-" + pass, script: "ls", wantOut: "Login failed: 530"},
		{name: "upload", host: hostV6, script: "put " + fw + " -o new.bin", wantOut: "550 Permission denied"},
		{name: "name not in the run", host: hostV4, script: "get other.bin -o " + filepath.Join(out, "other"), wantOut: "550"},
		{name: "retr traversal", host: hostV6, script: "get ../../etc/passwd -o " + filepath.Join(out, "passwd"), wantOut: "550"},
		{name: "raw retr traversal", host: hostV4, script: "quote RETR ../../etc/passwd", wantOut: "550"},
		{name: "cwd up", host: hostV6, script: "quote CWD ..", wantOut: "550"},
		{name: "cd into a directory", host: hostV4, script: "cd /etc", wantOut: "550"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			p := pass
			if tt.pass != "" {
				p = tt.pass
			}
			o, ok := lftp(t, home, tt.host, user, p, tt.script)
			// lftp's quote succeeds whatever the reply: the output tells.
			if ok && !strings.HasPrefix(tt.script, "quote ") {
				t.Fatalf("lftp %q succeeded, want a refusal", tt.script)
			}
			if !strings.Contains(o, tt.wantOut) {
				t.Errorf("lftp %q output does not contain %q:\n%s", tt.script, tt.wantOut, o)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(out, "passwd")); err == nil {
		if b, _ := os.ReadFile(filepath.Join(out, "passwd")); len(b) > 0 {
			t.Errorf("the traversal fetched %d bytes", len(b))
		}
	}
	st := srv.Stats()
	if st.FailedLogins != 1 || st.ForeignDataIPs != 0 {
		t.Errorf("Stats = %+v, want 1 failed login and no foreign data connections", st)
	}
}

package lab_test

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/lab"
	"github.com/fleetup/fleetup/lab/winsim"
)

// smbAuthFile writes an smbclient/net authentication file, so that the
// password is never on a command line.
func smbAuthFile(t *testing.T, user, password string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(f, []byte("username = "+user+"\npassword = "+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// smbclient runs smbclient against //addr/ADMIN$ with the commands cmds.
func smbclient(ctx context.Context, auth string, addr netip.Addr, cmds string) (string, error) {
	cmd := exec.CommandContext(ctx, "smbclient", "-s", "/dev/null", "-A", auth, "//"+addr.String()+"/ADMIN$", "-c", cmds)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// netRPC runs Samba's net rpc ARGS against addr.
func netRPC(ctx context.Context, auth string, addr netip.Addr, args ...string) (string, error) {
	argv := append([]string{"-s", "/dev/null", "rpc"}, args...)
	argv = append(argv, "-A", auth, "-I", addr.String())
	out, err := exec.CommandContext(ctx, "net", argv...).CombinedOutput()
	return string(out), err
}

// copyCycle is the smbclient round trip every SMB stand-in must pass.
func copyCycle(t *testing.T, auth string, addr netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(f, []byte(strings.Repeat("fleetup\n", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := smbclient(ctx, auth, addr, `mkdir Temp\x; put `+f+` Temp\x\f; ls Temp\x\*; del Temp\x\f; rmdir Temp\x`)
	if err != nil || strings.Contains(out, "NT_STATUS_") {
		t.Fatalf("smbclient against %s: %v: %s", addr, err, out)
	}
	if !strings.Contains(out, " f ") || !strings.Contains(out, "32768") {
		t.Errorf("smbclient ls against %s does not show f of 32768 bytes:\n%s", addr, out)
	}
}

func requireWindowsTools(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTools(t, append(slices.Clone(lab.WindowsTools), "smbclient", "net", "go")...)
}

// TestWindowsNode runs the stand-in on two nodes: a plain one, checked
// with smbclient and a service's whole life through `net rpc service` over
// IPv4 and IPv6, and one with NoAdminShare and RefuseServices.
func TestWindowsNode(t *testing.T) {
	requireWindowsTools(t)
	l := lab.New(t, lab.Options{Nodes: 2})
	start := time.Now()
	if _, err := lab.WinePrefixTemplate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("wine prefix template ready in %v", time.Since(start).Round(time.Millisecond))

	svcExe := filepath.Join(t.TempDir(), "winsvc.exe")
	var (
		ws   [2]*lab.WindowsNode
		errs [3]error
		wg   sync.WaitGroup
	)
	optss := []lab.WindowsOptions{{}, {NoAdminShare: true, RefuseServices: true}}
	for i, n := range l.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := optss[i]
			o.Logf = t.Logf
			ws[i], errs[i] = n.StartWindows(o)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[2] = winsim.BuildWindows(context.Background(), svcExe, "testdata/winsvc")
	}()
	wg.Wait()
	for i, w := range ws {
		if w != nil {
			t.Cleanup(func() {
				if err := w.Close(); err != nil {
					t.Errorf("close windows node %d: %v", i, err)
				}
			})
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("two stand-ins started in %v", time.Since(start).Round(time.Millisecond))
	w, n := ws[0], l.Nodes[0]
	auth := smbAuthFile(t, lab.UserPassword, l.Password())
	defer func() {
		if t.Failed() {
			t.Logf("winsim log of %s:\n%s", n.Name, tailString(w.Log(), 6000))
		}
	}()

	t.Run("copy", func(t *testing.T) {
		for _, a := range n.Addrs() {
			copyCycle(t, auth, a)
		}
		if _, err := os.Stat(filepath.Join(w.AdminShare(), "Temp", "x")); !os.IsNotExist(err) {
			t.Errorf("Temp\\x left in ADMIN$: %v", err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bad := smbAuthFile(t, lab.UserPassword, l.Password()+"x")
		out, err := smbclient(ctx, bad, n.IPv4, "ls")
		if err == nil || !strings.Contains(out, "NT_STATUS_LOGON_FAILURE") {
			t.Errorf("smbclient with a wrong password: %v: %s", err, out)
		}
		out, err = netRPC(ctx, bad, n.IPv6, "service", "list")
		if err == nil || !strings.Contains(out, "NT_STATUS_LOGON_FAILURE") {
			t.Errorf("net rpc service list with a wrong password: %v: %s", err, out)
		}
	})

	for _, a := range n.Addrs() {
		fam := "v4"
		if a.Is6() {
			fam = "v6"
		}
		t.Run("service over "+fam, func(t *testing.T) { serviceLife(t, w, auth, a, svcExe, "fltest-"+fam) })
	}

	t.Run("no ADMIN$, services refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n1 := l.Nodes[1]
		out, err := smbclient(ctx, auth, n1.IPv4, "ls")
		if err == nil || !strings.Contains(out, "NT_STATUS_BAD_NETWORK_NAME") {
			t.Errorf("smbclient to a node without ADMIN$: %v: %s", err, out)
		}
		out, err = netRPC(ctx, auth, n1.IPv6, "service", "create", "fltest-refused", "refused", `C:\windows\Temp\nothing.exe`)
		if err == nil || !strings.Contains(out, "WERR_ACCESS_DENIED") {
			t.Errorf("net rpc service create on a refusing node: %v: %s", err, out)
		}
		names, err := ws[1].Services(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(names, "fltest-refused") {
			t.Errorf("refused service exists: %v", names)
		}
	})

	t.Run("close", func(t *testing.T) {
		ps, err := w.Processes()
		if err != nil || len(ps) == 0 {
			t.Errorf("before Close: want the prefix's wine processes, got %v, %v", ps, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if ps, err := w.Processes(); err != nil || len(ps) != 0 {
			t.Errorf("after Close: processes %v, %v", ps, err)
		}
		if _, err := os.Stat(w.Prefix()); !os.IsNotExist(err) {
			t.Errorf("after Close: prefix %s: %v", w.Prefix(), err)
		}
		out, _ := exec.Command("ip", "netns", "pids", n.Namespace).Output()
		if got := len(strings.Fields(string(out))); got != 1 {
			t.Errorf("after Close: %d processes in %s, want sshd only", got, n.Namespace)
		}
	})
}

// serviceLife copies winsvc.exe into ADMIN$ and drives its service through
// create, start, status, list, stop, status, delete with net rpc service.
func serviceLife(t *testing.T, w *lab.WindowsNode, auth string, addr netip.Addr, exe, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := `Temp\` + name
	out, err := smbclient(ctx, auth, addr, `mkdir `+dir+`; put `+exe+` `+dir+`\winsvc.exe`)
	if err != nil || strings.Contains(out, "NT_STATUS_") {
		t.Fatalf("copy winsvc.exe: %v: %s", err, out)
	}
	winDir := `C:\windows\` + dir
	state := filepath.Join(w.AdminShare(), "Temp", name, "state.txt")
	step := func(want string, args ...string) string {
		t.Helper()
		begin := time.Now()
		out, err := netRPC(ctx, auth, addr, append([]string{"service"}, args...)...)
		t.Logf("net rpc service %s (%v): %s", args[0], time.Since(begin).Round(time.Millisecond), firstLine(out))
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("net rpc service %s: %v: want %q in:\n%s", strings.Join(args, " "), err, want, out)
		}
		return out
	}
	step("Successfully created Service: "+name,
		"create", name, "fleetup lab "+name, winDir+`\winsvc.exe `+name+` `+winDir+`\state.txt`)
	step("Successfully started service: "+name, "start", name)
	step(name+" service is running.", "status", name)
	if b, err := os.ReadFile(state); err != nil || !strings.HasPrefix(string(b), "running") {
		t.Errorf("state file while running: %q, %v", b, err)
	}
	if !strings.HasSuffix(name, "v6") {
		step(name, "list") // listing queries every service: once is enough
	}
	step("stopped", "stop", name)
	step(name+" service is stopped.", "status", name)
	if b, err := os.ReadFile(state); err != nil || !strings.HasPrefix(string(b), "stopped") {
		t.Errorf("state file after stop: %q, %v", b, err)
	}
	step("Successfully deleted Service: "+name, "delete", name)
	if out, err := netRPC(ctx, auth, addr, "service", "status", name); err == nil || !strings.Contains(out, "WERR_SERVICE_DOES_NOT_EXIST") {
		t.Errorf("net rpc service status after delete: %v: %s", err, out)
	}
	names, err := w.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, name) || !slices.Contains(names, "PlugPlay") {
		t.Errorf("services after delete: %v", names)
	}
	ps, _ := w.Processes()
	for _, p := range ps {
		if strings.Contains(strings.ToLower(p.Cmdline), "winsvc.exe") {
			t.Errorf("service process left: %v", p)
		}
	}
	out, err = smbclient(ctx, auth, addr, `del `+dir+`\*; rmdir `+dir)
	if err != nil || strings.Contains(out, "NT_STATUS_") {
		t.Errorf("remove %s: %v: %s", dir, err, out)
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestWindowsNetsh runs the netsh.exe stand-in in a stand-in's prefix.
func TestWindowsNetsh(t *testing.T) {
	requireWindowsTools(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	w, err := l.Nodes[0].StartWindows(lab.WindowsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	netsh := func(wantErr bool, args ...string) string {
		t.Helper()
		out, err := w.Wine(ctx, append([]string{"netsh"}, args...)...)
		if (err != nil) != wantErr {
			t.Fatalf("netsh %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	rule := "name=fleetup:20261202-061500-ab12cd"
	if out := netsh(false, "advfirewall", "firewall", "add", "rule", rule, "dir=in", "action=allow", "protocol=TCP", "localport=62286", "remoteip=198.18.1.1"); !strings.Contains(out, "Ok.") {
		t.Errorf("add: %s", out)
	}
	if got, err := w.FirewallRules(); err != nil || !slices.Equal(got, []string{"fleetup:20261202-061500-ab12cd"}) {
		t.Errorf("rules after add: %v, %v", got, err)
	}
	if out := netsh(false, "advfirewall", "firewall", "show", "rule", "name=all"); !strings.Contains(out, "LocalPort:                            62286") {
		t.Errorf("show: %s", out)
	}
	netsh(false, "advfirewall", "firewall", "delete", "rule", rule)
	if out := netsh(true, "advfirewall", "firewall", "delete", "rule", rule); !strings.Contains(out, "No rules match the specified criteria.") {
		t.Errorf("second delete: %s", out)
	}
	if got, err := w.FirewallRules(); err != nil || len(got) != 0 {
		t.Errorf("rules after delete: %v, %v", got, err)
	}
}

package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/lab"
)

const fakeCab = "/usr/share/installed-tests/fwupd/fakedevice124.cab"

// sshArgs are the client options every login uses: no user config, only
// the lab's known hosts, strict checking.
func sshArgs(knownHosts string) []string {
	return []string{
		"-F", "/dev/null",
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "ConnectTimeout=10",
		"-o", "LogLevel=ERROR",
	}
}

// sshKey runs command as user on addr with the lab's key.
func sshKey(ctx context.Context, l *lab.Lab, knownHosts, user, addr, stdin, command string) ([]byte, error) {
	args := append(sshArgs(knownHosts),
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
		"-i", l.KeyFile(), user+"@"+addr, command)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ssh %s@%s %q: %w: %s", user, addr, command, err, out)
	}
	return out, nil
}

// sshPassword runs command as user on addr, logging in with password given
// to sshpass through a pipe (fd 3), never on the command line.
func sshPassword(ctx context.Context, l *lab.Lab, user, addr, password, stdin, command string) ([]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	args := append([]string{"-d", "3", "ssh"}, sshArgs(l.KnownHostsFile())...)
	args = append(args,
		"-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
		"-o", "NumberOfPasswordPrompts=1", user+"@"+addr, command)
	cmd := exec.CommandContext(ctx, "sshpass", args...)
	cmd.ExtraFiles = []*os.File{r}
	cmd.Stdin = strings.NewReader(stdin)
	go func() {
		w.WriteString(password + "\n")
		w.Close()
	}()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("sshpass ssh %s@%s %q: %w: %s", user, addr, command, err, out)
	}
	return out, nil
}

// hostAddr is an address as ssh takes it on the command line.
func hostAddrs(n *lab.Node) []string {
	var as []string
	for _, a := range n.Addrs() {
		as = append(as, a.String())
	}
	return as
}

func TestLab(t *testing.T) {
	testenv.RequireTools(t, "ssh", "sshpass")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l := lab.New(t, lab.Options{Nodes: 3, IPv6Only: []int{2}})
	ctx := context.Background()

	t.Run("addresses", func(t *testing.T) {
		seen := map[int]bool{}
		for i, n := range l.Nodes {
			if seen[n.Index] {
				t.Errorf("index %d used twice", n.Index)
			}
			seen[n.Index] = true
			if want := fmt.Sprintf("fd42:5e:0:%d::2", n.Index); n.IPv6.String() != want {
				t.Errorf("node %d IPv6 = %s, want %s", i, n.IPv6, want)
			}
			if i == 2 {
				if n.IPv4.IsValid() || n.HostIPv4.IsValid() {
					t.Errorf("IPv6-only node has IPv4 %v / %v", n.IPv4, n.HostIPv4)
				}
				if got, want := n.Addr(), "["+n.IPv6.String()+"]"; got != want {
					t.Errorf("Addr() = %q, want %q", got, want)
				}
				out, err := n.Exec(ctx, "ip", "-4", "addr", "show", "dev", "eth0")
				if err != nil || strings.Contains(string(out), "inet ") {
					t.Errorf("IPv6-only node has an IPv4 address: %s %v", out, err)
				}
				continue
			}
			if want := fmt.Sprintf("198.18.%d.2", n.Index); n.Addr() != want {
				t.Errorf("node %d Addr() = %q, want %q", i, n.Addr(), want)
			}
		}
	})

	t.Run("logins", func(t *testing.T) {
		for _, n := range l.Nodes {
			for _, addr := range hostAddrs(n) {
				for _, user := range []string{"root", lab.UserKey, lab.UserSudo, lab.UserSudoNoPass} {
					out, err := sshKey(ctx, l, l.KnownHostsFile(), user, addr, "", "id -un; hostname")
					if err != nil {
						t.Error(err)
						continue
					}
					if want := user + "\n" + n.Name + "\n"; string(out) != want {
						t.Errorf("key login %s@%s printed %q, want %q", user, addr, out, want)
					}
				}
				for _, user := range []string{lab.UserPassword, lab.UserSudo, lab.UserSudoNoPass} {
					out, err := sshPassword(ctx, l, user, addr, l.Password(), "", "id -un")
					if err != nil {
						t.Error(err)
						continue
					}
					if string(out) != user+"\n" {
						t.Errorf("password login %s@%s printed %q", user, addr, out)
					}
				}
			}
		}
	})

	t.Run("refused logins", func(t *testing.T) {
		addr := l.Nodes[0].IPv4.String()
		if _, err := sshKey(ctx, l, l.KnownHostsFile(), lab.UserPassword, addr, "", "true"); err == nil {
			t.Errorf("%s logged in with the key", lab.UserPassword)
		}
		if _, err := sshPassword(ctx, l, lab.UserKey, addr, l.Password(), "", "true"); err == nil {
			t.Errorf("%s logged in with the password", lab.UserKey)
		}
		if _, err := sshPassword(ctx, l, lab.UserPassword, addr, "wrong-"+l.Password(), "", "true"); err == nil {
			t.Errorf("%s logged in with a wrong password", lab.UserPassword)
		}
	})

	t.Run("sudo", func(t *testing.T) {
		for _, n := range l.Nodes {
			addr := hostAddrs(n)[0]
			if out, err := sshKey(ctx, l, l.KnownHostsFile(), lab.UserSudoNoPass, addr, "", "sudo -n id -un"); err != nil || string(out) != "root\n" {
				t.Errorf("%s: sudo -n: %q %v", lab.UserSudoNoPass, out, err)
			}
			out, err := sshKey(ctx, l, l.KnownHostsFile(), lab.UserSudo, addr, l.Password()+"\n", "sudo -S -p '' id -un")
			if err != nil || !strings.HasSuffix(string(out), "root\n") {
				t.Errorf("%s: sudo -S: %q %v", lab.UserSudo, out, err)
			}
			if _, err := sshKey(ctx, l, l.KnownHostsFile(), lab.UserSudo, addr, "", "sudo -n true"); err == nil {
				t.Errorf("%s: sudo -n worked without a password", lab.UserSudo)
			}
			if _, err := sshKey(ctx, l, l.KnownHostsFile(), lab.UserKey, addr, "", "sudo -n true"); err == nil {
				t.Errorf("%s: sudo -n worked", lab.UserKey)
			}
		}
	})

	t.Run("fwupd on two nodes at once", func(t *testing.T) {
		flashed := []*lab.Node{l.Nodes[0], l.Nodes[2]}
		var wg sync.WaitGroup
		errs := make([]error, len(flashed))
		for i, n := range flashed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = sshKey(ctx, l, l.KnownHostsFile(), "root", hostAddrs(n)[0], "",
					"fwupdtool install "+fakeCab+" --no-reboot-check")
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		for _, n := range flashed {
			h, err := n.FwupdHistory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != 1 {
				t.Fatalf("%s history has %d entries, want 1: %+v", n.Name, len(h), h)
			}
			r := h[0]
			if r.Device != lab.FwupdDeviceName || r.VersionBefore != lab.FwupdDeviceVersion || r.Version != "1.2.4" || r.State != lab.FwupdStateSuccess {
				t.Errorf("%s history entry %+v, want %s %s -> 1.2.4 success", n.Name, r, lab.FwupdDeviceName, lab.FwupdDeviceVersion)
			}
		}
		if h, err := l.Nodes[1].FwupdHistory(ctx); err != nil || len(h) != 0 {
			t.Errorf("unflashed %s history = %+v, %v; want empty", l.Nodes[1].Name, h, err)
		}
	})

	t.Run("private directories", func(t *testing.T) {
		n1, n2 := l.Nodes[0], l.Nodes[1]
		for _, dir := range []string{"/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/opt", "/root"} {
			name := filepath.Join(dir, "fulab-private-"+filepath.Base(l.Dir))
			// Written by a login session, seen by Exec: both are in the node.
			if _, err := sshKey(ctx, l, l.KnownHostsFile(), "root", n1.IPv4.String(), "", "echo here > "+name); err != nil {
				t.Fatal(err)
			}
			if out, err := n1.Exec(ctx, "cat", name); err != nil || string(out) != "here\n" {
				t.Errorf("%s: %s not seen by Exec on the same node: %q %v", n1.Name, name, out, err)
			}
			if _, err := n2.Exec(ctx, "test", "-e", name); err == nil {
				t.Errorf("%s written on %s is visible on %s", name, n1.Name, n2.Name)
			}
			if _, err := os.Lstat(name); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s written on %s is visible on the host (%v)", name, n1.Name, err)
			}
			if _, err := n1.Exec(ctx, "rm", name); err != nil {
				t.Error(err)
			}
		}
		out, err := n1.Exec(ctx, "stat", "-c", "%U %a", "/home/"+lab.UserKey)
		if err != nil || string(out) != lab.UserKey+" 700\n" {
			t.Errorf("home of %s: %q %v", lab.UserKey, out, err)
		}
		if _, err := n1.Exec(ctx, "grep", "-x", "TestDevices=true", "/etc/fwupd/fwupd.conf"); err != nil {
			t.Errorf("node's /etc/fwupd/fwupd.conf: %v", err)
		}
		if host, err := os.ReadFile("/etc/fwupd/fwupd.conf"); err == nil && strings.Contains(string(host), "TestDevices=true") {
			t.Errorf("the node's fwupd.conf setting leaked to the host's")
		}
		if out, err := n1.Exec(ctx, "hostname"); err != nil || string(out) != n1.Name+"\n" {
			t.Errorf("Exec hostname = %q, %v; want %s", out, err, n1.Name)
		}
	})

	t.Run("node firewall stays in the node", func(t *testing.T) {
		n := l.Nodes[1]
		if _, err := n.Shell(ctx, "nft add table inet fulabfw && nft add chain inet fulabfw in '{ type filter hook input priority 0; }' && nft add rule inet fulabfw in tcp dport 22 drop"); err != nil {
			t.Fatal(err)
		}
		host, err := exec.Command("nft", "list", "tables").CombinedOutput()
		if err != nil || strings.Contains(string(host), "fulabfw") {
			t.Errorf("host's nft tables %q (%v) show the node's table", host, err)
		}
		if _, err := net.DialTimeout("tcp", net.JoinHostPort(n.IPv4.String(), "22"), 500*time.Millisecond); err == nil {
			t.Errorf("%s: TCP 22 accepted through a drop rule", n.Name)
		}
		if _, err := n.Exec(ctx, "nft", "delete", "table", "inet", "fulabfw"); err != nil {
			t.Fatal(err)
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(n.IPv4.String(), "22"), 10*time.Second); err != nil {
			t.Errorf("%s: TCP 22 after removing the rule: %v", n.Name, err)
		} else {
			c.Close()
		}
	})

	t.Run("link down and up", func(t *testing.T) {
		n := l.Nodes[0]
		if err := n.LinkDown(); err != nil {
			t.Fatal(err)
		}
		for _, a := range hostAddrs(n) {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(a, "22"), 1500*time.Millisecond)
			if err == nil {
				c.Close()
				t.Errorf("dial %s with the link down succeeded", a)
				continue
			}
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, syscall.EHOSTUNREACH) {
				t.Errorf("dial %s with the link down: %v, want a timeout", a, err)
			}
		}
		if err := n.LinkUp(); err != nil {
			t.Fatal(err)
		}
		for _, a := range hostAddrs(n) {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(a, "22"), 10*time.Second)
			if err != nil {
				t.Errorf("dial %s after LinkUp: %v", a, err)
				continue
			}
			c.Close()
		}
	})

	t.Run("rate", func(t *testing.T) {
		n := l.Nodes[1]
		if err := n.SetRate("20mbit"); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command("tc", "qdisc", "show", "dev", n.Veth).CombinedOutput()
		if !strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "20Mbit") {
			t.Errorf("qdisc after SetRate: %s", out)
		}
		if err := n.SetRate(""); err != nil {
			t.Fatal(err)
		}
		out, _ = exec.Command("tc", "qdisc", "show", "dev", n.Veth).CombinedOutput()
		if strings.Contains(string(out), "tbf") {
			t.Errorf("qdisc after SetRate(\"\"): %s", out)
		}
		if err := n.SetRate(""); err != nil {
			t.Errorf("second SetRate(\"\"): %v", err)
		}
		if err := n.SetRate("fast"); err == nil || !strings.Contains(err.Error(), `"fast"`) {
			t.Errorf("SetRate(fast) = %v, want an error naming it", err)
		}
	})

	t.Run("snapshot", func(t *testing.T) {
		n := l.Nodes[1]
		before, err := n.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		again, err := n.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := again.Diff(before); d != "" {
			t.Fatalf("Diff of two snapshots with nothing changed:\n%s", d)
		}
		script := `set -e
echo left > /tmp/fulab-left
setsid sleep 300 </dev/null >/dev/null 2>&1 &
setsid /usr/bin/python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",8123)); s.listen(); time.sleep(300)' </dev/null >/dev/null 2>&1 &
nft add table inet fulabsnap
nft add chain inet fulabsnap in '{ type filter hook input priority 0; }'
nft add rule inet fulabsnap in tcp dport 9 drop
iptables -A INPUT -p tcp --dport 10 -j DROP
for i in $(seq 100); do ss -Hltn | grep -q 127.0.0.1:8123 && exit 0; sleep 0.05; done
echo listener did not start >&2; exit 1
`
		if out, err := n.Shell(ctx, script); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		after, err := n.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d := after.Diff(before)
		for _, want := range []string{
			"new file /tmp/fulab-left",
			"): sleep 300",
			"new listener 127.0.0.1:8123 (python3)",
			"new nftables line: tcp dport 9 drop",
			"new iptables line: -A INPUT -p tcp -m tcp --dport 10 -j DROP",
		} {
			if !strings.Contains(d, want) {
				t.Errorf("Diff lacks %q:\n%s", want, d)
			}
		}
		// Undo it all; then nothing is left.
		for _, p := range after.Processes {
			if strings.HasPrefix(p.Cmdline, "sleep 300") || strings.Contains(p.Cmdline, "127.0.0.1\",8123") {
				syscall.Kill(p.PID, syscall.SIGKILL)
			}
		}
		if out, err := n.Shell(ctx, "rm /tmp/fulab-left && nft delete table inet fulabsnap && iptables -D INPUT -p tcp --dport 10 -j DROP && nft delete table ip filter"); err != nil {
			t.Fatalf("%s: %v", out, err)
		}
		var last string
		for range 100 {
			cleaned, err := n.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if last = cleaned.Diff(before); last == "" {
				break
			}
			time.Sleep(50 * time.Millisecond) // killed processes take a moment to go
		}
		if last != "" {
			t.Errorf("Diff after undoing everything:\n%s", last)
		}
	})

	t.Run("rotate host key", func(t *testing.T) {
		n := l.Nodes[2]
		pid, old := n.PID(), n.HostKey
		if err := n.RotateHostKey(); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(old.Marshal(), n.HostKey.Marshal()) {
			t.Fatal("HostKey unchanged")
		}
		if n.PID() != pid {
			t.Errorf("sshd pid changed from %d to %d", pid, n.PID())
		}
		addr := hostAddrs(n)[0]
		out, err := sshKey(ctx, l, l.KnownHostsFile(), "root", addr, "", "true")
		if err == nil || !strings.Contains(string(out), "HOST IDENTIFICATION HAS CHANGED") {
			t.Errorf("ssh with the old known_hosts: %v %s; want a changed host key", err, out)
		}
		fresh := filepath.Join(t.TempDir(), "known_hosts")
		if err := l.WriteKnownHosts(fresh); err != nil {
			t.Fatal(err)
		}
		if _, err := sshKey(ctx, l, fresh, "root", addr, "", "true"); err != nil {
			t.Error(err)
		}
	})

	t.Run("second lab at the same time", func(t *testing.T) {
		l2 := lab.New(t, lab.Options{Nodes: 1, Dpkg: true})
		n := l2.Nodes[0]
		for _, m := range l.Nodes {
			if m.Index == n.Index {
				t.Fatalf("second lab got index %d, in use by the first", n.Index)
			}
		}
		if _, err := n.Exec(ctx, "touch", "/var/lib/dpkg/fulab-private"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat("/var/lib/dpkg/fulab-private"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file written to the node's /var/lib/dpkg is on the host (%v)", err)
		}
		if out, err := n.Exec(ctx, "dpkg-query", "-W", "openssh-server"); err != nil {
			t.Errorf("dpkg database copy: %s %v", out, err)
		}
	})

	t.Run("close", func(t *testing.T) {
		var pids []int
		for _, n := range l.Nodes {
			pids = append(pids, n.PID())
			out, err := exec.Command("ip", "netns", "pids", n.Namespace).Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range strings.Fields(string(out)) {
				var p int
				fmt.Sscan(f, &p)
				pids = append(pids, p)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		for _, n := range l.Nodes {
			for _, p := range []string{"/run/netns/" + n.Namespace, "/sys/class/net/" + n.Veth, "/etc/netns/" + n.Namespace} {
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s remains after Close (%v)", p, err)
				}
			}
		}
		for _, p := range pids {
			// A killed daemon's zombie waits for init to reap it: dead.
			if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil && isZombie(string(stat)) {
				continue
			}
			if err := syscall.Kill(p, 0); !errors.Is(err, syscall.ESRCH) {
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
				t.Errorf("process %d (%q) remains after Close", p, cmd)
			}
		}
		if _, err := os.Lstat(l.Dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lab dir %s remains (%v)", l.Dir, err)
		}
	})
}

// isZombie reports whether a /proc/PID/stat line is a zombie's.
func isZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && strings.HasPrefix(stat[i+1:], " Z")
}

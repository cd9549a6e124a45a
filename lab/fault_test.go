package lab_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/lab"
)

func TestFaults(t *testing.T) {
	testenv.RequireTools(t, "ssh", "bash")
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Nodes[0]
	ctx := context.Background()
	addr := hostAddrs(n)[0]
	before, err := n.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("host path", func(t *testing.T) {
		if _, err := n.Exec(ctx, "touch", "/tmp/fulab-hostpath"); err != nil {
			t.Fatal(err)
		}
		defer n.Exec(ctx, "rm", "-f", "/tmp/fulab-hostpath")
		if _, err := os.Stat(n.HostPath("/tmp/fulab-hostpath")); err != nil {
			t.Errorf("the node's file is not at HostPath: %v", err)
		}
		if _, err := os.Stat("/tmp/fulab-hostpath"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the node's /tmp file is in the host's /tmp (%v)", err)
		}
	})

	t.Run("kill and start sshd", func(t *testing.T) {
		if _, err := n.Exec(ctx, "touch", "/tmp/fulab-survives"); err != nil {
			t.Fatal(err)
		}
		defer n.Exec(ctx, "rm", "-f", "/tmp/fulab-survives")
		// A session in progress breaks when sshd dies.
		args := append(sshArgs(l.KnownHostsFile()), "-o", "BatchMode=yes", "-i", l.KeyFile(), "root@"+addr, "echo up; exec sleep 300")
		session := exec.Command("ssh", args...)
		out, err := session.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := session.Start(); err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		go func() {
			buf := make([]byte, 3)
			_, _ = out.Read(buf)
			ended <- session.Wait()
		}()
		t.Cleanup(func() { _ = session.Process.Kill() })
		eventuallyLab(t, 10*time.Second, func() bool { return len(procs(n, "sleep 300")) == 1 })
		listener := n.PID()
		if err := n.KillSSHD(); err != nil {
			t.Fatal(err)
		}
		if !n.SSHDDown() || n.PID() == listener {
			t.Errorf("after KillSSHD: down %v, PID %d (listener was %d)", n.SSHDDown(), n.PID(), listener)
		}
		if err := n.KillSSHD(); err == nil {
			t.Error("KillSSHD on a node whose sshd is down did not fail")
		}
		select {
		case err := <-ended:
			if err == nil {
				t.Error("the ssh session ended well although sshd was killed")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the ssh session did not end within 10s of KillSSHD")
		}
		if left := procs(n, "sshd"); len(left) != 0 {
			t.Errorf("sshd processes left: %v", left)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "22"), 3*time.Second)
		if err == nil {
			c.Close()
			t.Error("port 22 still accepts connections with sshd killed")
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connect to port 22 with sshd killed: %v, want refused", err)
		}
		// The node lives on, its private mounts too.
		if out, err := n.Exec(ctx, "ls", "/tmp/fulab-survives"); err != nil {
			t.Errorf("the node's /tmp did not survive sshd: %s %v", out, err)
		}
		if _, err := n.Snapshot(ctx); err != nil {
			t.Errorf("snapshot with sshd down: %v", err)
		}

		if err := n.StartSSHD(); err != nil {
			t.Fatal(err)
		}
		if n.SSHDDown() || n.PID() == listener {
			t.Errorf("after StartSSHD: down %v, PID %d", n.SSHDDown(), n.PID())
		}
		if ps := procs(n, "sleep infinity"); len(ps) != 0 {
			t.Errorf("the placeholder outlived StartSSHD: %v", ps)
		}
		if err := n.StartSSHD(); err == nil {
			t.Error("StartSSHD with sshd running did not fail")
		}
		out2, err := sshKey(ctx, l, l.KnownHostsFile(), "root", addr, "", "hostname; ls /tmp/fulab-survives")
		if err != nil || string(out2) != n.Name+"\n/tmp/fulab-survives\n" {
			t.Errorf("after StartSSHD: %q %v, want the same node", out2, err)
		}
		// The session's sleep is the test's to end; then the node is as before.
		if _, err := n.Kill(syscall.SIGKILL, func(p lab.Process) bool { return p.Cmdline == "sleep 300" }); err != nil {
			t.Fatal(err)
		}
		n.Exec(ctx, "rm", "-f", "/tmp/fulab-survives")
		eventuallyLab(t, 10*time.Second, func() bool {
			s, err := n.Snapshot(ctx)
			return err == nil && s.Diff(before) == ""
		})
	})

	t.Run("drop tcp", func(t *testing.T) {
		est, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "22"), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer est.Close()
		if err := n.DropTCP(22, 22); err != nil {
			t.Fatal(err)
		}
		_, err = net.DialTimeout("tcp", net.JoinHostPort(addr, "22"), time.Second)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("connect to a dropped port: %v, want a timeout", err)
		}
		// An established connection gets nothing through either way:
		// sshd's banner may have come before the drop, but no answer to
		// the client's bytes does.
		buf := make([]byte, 256)
		est.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = est.Read(buf)
		est.Write([]byte("SSH-2.0-fulab-test\r\n"))
		est.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := est.Read(buf); err == nil || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("an established connection to a dropped port got %d bytes (%v)", n, err)
		}
		// The node's loopback is not affected.
		if out, err := n.Exec(ctx, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/22 && head -c 4 <&3"); err != nil || string(out) != "SSH-" {
			t.Errorf("loopback to a dropped port: %q %v", out, err)
		}
		if err := n.UndropTCP(); err != nil {
			t.Fatal(err)
		}
		if err := n.UndropTCP(); err != nil {
			t.Errorf("second UndropTCP: %v", err)
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "22"), 3*time.Second)
		if err != nil {
			t.Errorf("connect after UndropTCP: %v", err)
		} else {
			c.Close()
		}
		if err := n.DropTCP(5, 4); err == nil {
			t.Error("DropTCP(5, 4) did not fail")
		}
	})

	t.Run("kill marked", func(t *testing.T) {
		if _, err := n.Shell(ctx, "FULAB_MARK=run1 setsid sleep 301 </dev/null >/dev/null 2>&1 & FULAB_MARK=run2 setsid sleep 302 </dev/null >/dev/null 2>&1 &"); err != nil {
			t.Fatal(err)
		}
		var ps []lab.Process
		// setsid execs sleep: wait for the exec too.
		eventuallyLab(t, 10*time.Second, func() bool {
			ps, _ = n.Marked("FULAB_MARK", "run1")
			return len(ps) == 1 && ps[0].Cmdline == "sleep 301"
		})
		killed, err := n.KillMarked(syscall.SIGKILL, "FULAB_MARK", "run1")
		if err != nil || len(killed) != 1 || killed[0].PID != ps[0].PID {
			t.Errorf("KillMarked killed %v (%v), want %v", killed, err, ps)
		}
		eventuallyLab(t, 10*time.Second, func() bool {
			left, _ := n.Marked("FULAB_MARK", "run1")
			return len(left) == 0
		})
		other, _ := n.Marked("FULAB_MARK", "run2")
		if len(other) != 1 {
			t.Errorf("another run's process: %v, want it untouched", other)
		}
		n.KillMarked(syscall.SIGKILL, "FULAB_MARK", "run2")
	})

	t.Run("shim", func(t *testing.T) {
		if err := n.Shim("fwupdtool", "#!/bin/sh\necho shimmed \"$@\"\n"); err != nil {
			t.Fatal(err)
		}
		if err := n.Shim("fwupdtool", "#!/bin/sh\necho shimmed again \"$@\"\n"); err != nil {
			t.Fatal(err)
		}
		out, err := sshKey(ctx, l, l.KnownHostsFile(), "root", addr, "", "fwupdtool get-devices")
		if err != nil || string(out) != "shimmed again get-devices\n" {
			t.Errorf("root's session ran %q (%v), want the shim", out, err)
		}
		if _, err := os.Stat(lab.ShimDir + "/fwupdtool"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the shim is in the host's %s (%v)", lab.ShimDir, err)
		}
		if err := n.Shim("../x", "#!/bin/sh\n"); err == nil {
			t.Error("a shim name with a slash was accepted")
		}
	})
}

// procs lists the node's processes whose command line starts with prefix.
func procs(n *lab.Node, prefix string) []lab.Process {
	ps, _ := n.Processes()
	var out []lab.Process
	for _, p := range ps {
		if strings.HasPrefix(p.Cmdline, prefix) {
			out = append(out, p)
		}
	}
	return out
}

func eventuallyLab(t *testing.T, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

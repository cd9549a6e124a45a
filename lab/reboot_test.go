package lab_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/lab"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReboot(t *testing.T) {
	testenv.RequireTools(t, "ssh", "wall")
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Nodes[0]
	ctx := context.Background()
	addr := hostAddrs(n)[0]
	if err := n.EnableReboot(lab.RebootOptions{Down: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	hostBoot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	before := n.BootID()
	out, err := sshKey(ctx, l, l.KnownHostsFile(), lab.UserKey, addr, "", "cat /proc/sys/kernel/random/boot_id")
	if err != nil || strings.TrimSpace(string(out)) != before || before == strings.TrimSpace(string(hostBoot)) {
		t.Fatalf("boot id on the node %q (%v), want the node's own %q (the host's is %q)", out, err, before, hostBoot)
	}
	// Other systemctl verbs are the real systemctl's; a user who is not
	// root cannot reboot.
	if out, err := sshKey(ctx, l, l.KnownHostsFile(), "root", addr, "", "systemctl --version"); err != nil || !strings.Contains(string(out), "systemd") {
		t.Errorf("systemctl --version on the node: %q %v", out, err)
	}
	if out, err := sshKey(ctx, l, l.KnownHostsFile(), lab.UserKey, addr, "", lab.ShimDir+"/shutdown -r now"); err == nil || !strings.Contains(string(out), "must be root") {
		t.Errorf("shutdown as %s: %q %v, want refused", lab.UserKey, out, err)
	}
	// The boot script makes a staged version active.
	if _, err := n.Shell(ctx, "echo 2.0 > /opt/staged && printf 'mv /opt/staged /opt/active\\n' > "+lab.BootScript); err != nil {
		t.Fatal(err)
	}
	// A logged-in user, on a pty.
	args := append(sshArgs(l.KnownHostsFile()), "-tt", "-o", "BatchMode=yes", "-i", l.KeyFile(), lab.UserKey+"@"+addr, "echo logged-in; exec sleep 300")
	session := exec.Command("ssh", args...)
	var seen syncBuffer
	session.Stdout, session.Stderr = &seen, &seen
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- session.Wait() }()
	t.Cleanup(func() { _ = session.Process.Kill() })
	eventuallyLab(t, 10*time.Second, func() bool { return strings.Contains(seen.String(), "logged-in") })

	start := time.Now()
	if out, err := sshKey(ctx, l, l.KnownHostsFile(), "root", addr, "", "shutdown -r now 'lab test: going down'"); err != nil {
		t.Logf("shutdown: %q %v (the session may break under the reboot)", out, err)
	}
	eventuallyLab(t, 30*time.Second, func() bool { c, _ := n.Reboots(); return c == 1 })
	if _, err := n.Reboots(); err != nil {
		t.Fatalf("reboot: %v", err)
	}
	t.Logf("reboot took %s", time.Since(start))
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Error("the logged-in session outlived the reboot")
	}
	if !strings.Contains(seen.String(), "lab test: going down") || !strings.Contains(seen.String(), "reboot now") {
		t.Errorf("the logged-in user saw %q, want the reboot's message", seen.String())
	}
	after := n.BootID()
	out, err = sshKey(ctx, l, l.KnownHostsFile(), "root", addr, "", "cat /proc/sys/kernel/random/boot_id /opt/active; ls /opt")
	if err != nil || after == before || !strings.HasPrefix(string(out), after+"\n2.0\n") || strings.Contains(string(out), "staged") {
		t.Errorf("after the reboot (same host key, known hosts checked): %q %v; boot id %s, was %s", out, err, after, before)
	}
	if ps := procs(n, "sleep 300"); len(ps) != 0 {
		t.Errorf("processes of the session survived the reboot: %v", ps)
	}

	// A node told not to come back stays down until StartSSHD.
	if err := n.EnableReboot(lab.RebootOptions{NoReturn: true}); err != nil {
		t.Fatal(err)
	}
	_, _ = sshKey(ctx, l, l.KnownHostsFile(), "root", addr, "", "reboot")
	eventuallyLab(t, 30*time.Second, func() bool { c, _ := n.Reboots(); return c == 2 })
	if !n.SSHDDown() || n.BootID() == after {
		t.Errorf("after a reboot with NoReturn: sshd down %v, boot id %s (was %s)", n.SSHDDown(), n.BootID(), after)
	}
	if err := n.StartSSHD(); err != nil {
		t.Fatal(err)
	}
	if _, err := sshKey(ctx, l, l.KnownHostsFile(), "root", addr, "", "true"); err != nil {
		t.Error(err)
	}
}

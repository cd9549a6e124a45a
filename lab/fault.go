package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Faults a test can put on a node in the middle of a run, and their undoing.
// A cut link is LinkDown and LinkUp (node.go); this file has the rest: the
// node's sshd dying and coming back (KillSSHD, StartSSHD), the node's
// firewall starting to drop ports (DropTCP, UndropTCP), processes killed
// (Kill, KillMarked), and programs on the node's PATH replaced by slower or
// broken ones (Shim).

// KillSSHD kills every sshd process of the node with SIGKILL: the listener
// and the processes serving connections (their internal-sftp too), as when
// sshd crashes or is killed by the OOM killer. Every SSH session to the node
// breaks at once, so what those sessions run sees its standard streams
// close, and new connections are refused. The node lives on: a placeholder
// process keeps its namespaces, so its /tmp and the rest of its private
// mounts survive and Exec, Shell, Snapshot and HostPath keep working. Until
// StartSSHD, PID is the placeholder's. KillSSHD on a node whose sshd is down
// is an error.
func (n *Node) KillSSHD() error {
	n.mu.Lock()
	down, listener, exited := n.sshdDown, n.pid, n.exited
	n.mu.Unlock()
	if down {
		return fmt.Errorf("%s: kill sshd: it is down already", n.Name)
	}
	if listener == 0 {
		return fmt.Errorf("%s: kill sshd: node not running", n.Name)
	}
	holder, holderExited, err := n.spawn(listener, "sleep", "infinity")
	if err != nil {
		return fmt.Errorf("%s: kill sshd: start placeholder: %w", n.Name, err)
	}
	if err := waitEntered(holder.Process.Pid, listener, "sleep", holderExited); err != nil {
		_ = holder.Process.Kill()
		<-holderExited
		return fmt.Errorf("%s: kill sshd: placeholder: %w", n.Name, err)
	}
	n.mu.Lock()
	n.cmd, n.pid, n.exited, n.sshdDown = holder, holder.Process.Pid, holderExited, true
	n.mu.Unlock()
	// A listener being killed may still fork a connection's process:
	// kill until none is left.
	netns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid))
	if err != nil {
		return fmt.Errorf("%s: kill sshd: %w", n.Name, err)
	}
	killed := map[int]bool{}
	for attempt := 0; ; attempt++ {
		pids := sshdPIDs(netns)
		if len(pids) == 0 {
			break
		}
		if attempt == 100 {
			return fmt.Errorf("%s: kill sshd: sshd processes %v left after killing them 100 times", n.Name, pids)
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
			killed[p] = true
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: kill sshd: listener %d did not exit", n.Name, listener)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p := range killed {
		for !deadOrZombie(p) {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: kill sshd: process %d still exiting 10s after SIGKILL", n.Name, p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// StartSSHD starts the node's sshd again after KillSSHD, with the same
// configuration and host key, in the node's namespaces, and returns once it
// presents its host key on every address. PID is then the new listener's.
func (n *Node) StartSSHD() error {
	n.mu.Lock()
	down, holder, holderExited := n.sshdDown, n.cmd, n.exited
	n.mu.Unlock()
	if !down {
		return fmt.Errorf("%s: start sshd: it is running", n.Name)
	}
	cmd, exited, err := n.spawn(holder.Process.Pid, "/usr/sbin/sshd", "-D",
		"-f", filepath.Join(n.Dir, "sshd_config"), "-E", filepath.Join(n.Dir, "sshd.log"))
	if err != nil {
		return fmt.Errorf("%s: start sshd: %w", n.Name, err)
	}
	// The placeholder goes only once the new sshd is in the namespaces
	// it keeps (nsenter opens them after it starts).
	if err := waitEntered(cmd.Process.Pid, holder.Process.Pid, "sshd", exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s: start sshd: %w: %s", n.Name, err, n.logTail())
	}
	n.mu.Lock()
	n.cmd, n.pid, n.exited, n.sshdDown = cmd, cmd.Process.Pid, exited, false
	n.mu.Unlock()
	_ = holder.Process.Kill()
	<-holderExited
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.waitSSH(ctx, n.HostKey); err != nil {
		return fmt.Errorf("%s: start sshd: %w", n.Name, err)
	}
	return nil
}

// spawn starts argv in the namespaces (network, mount, UTS) of process pid,
// as launch starts the node's first sshd: in its own process group, killed
// if the lab's owner dies, its output and its end appended to the node's
// start.log. The returned channel is closed once the process has been
// waited for.
func (n *Node) spawn(pid int, argv ...string) (*exec.Cmd, chan struct{}, error) {
	logf, err := os.OpenFile(filepath.Join(n.Dir, "start.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	args := append([]string{"-t", strconv.Itoa(pid), "-n", "-m", "-u", "--"}, argv...)
	cmd := exec.Command("nsenter", args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		if f, ferr := os.OpenFile(filepath.Join(n.Dir, "start.log"), os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
			fmt.Fprintf(f, "lab: %s (pid %d) ended: %v\n", argv[0], cmd.Process.Pid, err)
			f.Close()
		}
		close(exited)
	}()
	return cmd, exited, nil
}

// waitEntered waits until process pid runs comm in the mount namespace of
// process of (nsenter has entered it and executed the program). It fails
// at once when pid's exited is closed.
func waitEntered(pid, of int, comm string, exited <-chan struct{}) error {
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", of))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if ns == want && strings.TrimSpace(string(c)) == comm {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process %d (%s) exited", pid, comm)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d is not %s in the node's namespaces after 10s", pid, comm)
		}
	}
}

// sshdPIDs lists the live sshd processes in network namespace netns (a
// /proc/PID/ns/net link).
func sshdPIDs(netns string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err != nil || ns != netns {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && filepath.Base(exe) == "sshd" && !deadOrZombie(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// SSHDDown reports whether KillSSHD took the node's sshd down and
// StartSSHD has not started it again.
func (n *Node) SSHDDown() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sshdDown
}

// faultTable is the nftables table of DropTCP.
const faultTable = "fulab-fault"

// DropTCP makes the node's netfilter drop every TCP packet of ports
// first..last on its link, both ways: arriving for those ports and leaving
// from them, those of connections already established included, as a
// firewall rule added on the node mid-run would (dropping only one way
// would let a server on the node keep streaming until its send window
// fills). The rules sit in base chains of a table of their own (inet
// fulab-fault) on the prerouting and output hooks, so no accept in an input
// chain lets the packets through: fleetup's engine inserts its accept rule
// at the head of every input chain it finds. The node's loopback is not
// affected. Calling it again adds another range.
func (n *Node) DropTCP(first, last int) error {
	if first < 1 || last > 65535 || first > last {
		return fmt.Errorf("%s: drop tcp: bad port range %d-%d", n.Name, first, last)
	}
	rules := fmt.Sprintf(`table inet %[1]s {
  chain prerouting {
    type filter hook prerouting priority -300; policy accept;
    iifname "eth0" tcp dport %[2]d-%[3]d drop
  }
  chain output {
    type filter hook output priority -300; policy accept;
    oifname "eth0" tcp sport %[2]d-%[3]d drop
  }
}
`, faultTable, first, last)
	if _, _, err := n.run(context.Background(), strings.NewReader(rules), true, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("drop tcp: %w", err)
	}
	return nil
}

// UndropTCP removes every range DropTCP added.
func (n *Node) UndropTCP() error {
	_, _, err := n.run(context.Background(), nil, true, "nft", "delete", "table", "inet", faultTable)
	if err != nil && !strings.Contains(err.Error(), "No such file or directory") {
		return fmt.Errorf("undrop tcp: %w", err)
	}
	return nil
}

// Processes lists the node's processes (those in its network namespace)
// but its sshd listener (or KillSSHD's placeholder), as Snapshot does.
func (n *Node) Processes() ([]Process, error) {
	pid := n.PID()
	if pid == 0 {
		return nil, fmt.Errorf("%s: processes: node not running", n.Name)
	}
	ps, err := nodeProcesses(pid, newNameCache())
	if err != nil {
		return nil, fmt.Errorf("%s: processes: %w", n.Name, err)
	}
	return ps, nil
}

// Kill sends sig to every process of the node (as Processes lists them)
// that match accepts, and returns those it signalled.
func (n *Node) Kill(sig syscall.Signal, match func(Process) bool) ([]Process, error) {
	ps, err := n.Processes()
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, p := range ps {
		if !match(p) {
			continue
		}
		if err := syscall.Kill(p.PID, sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				continue // gone meanwhile
			}
			return out, fmt.Errorf("%s: kill %d: %w", n.Name, p.PID, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Marked lists the node's processes whose environment holds key=value,
// such as fleetup's FLEETUP_RUN=<run id>, which every process a run starts
// on a node inherits.
func (n *Node) Marked(key, value string) ([]Process, error) {
	ps, err := n.Processes()
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, p := range ps {
		if hasEnv(p.PID, key+"="+value) {
			out = append(out, p)
		}
	}
	return out, nil
}

// KillMarked sends sig to every process Marked(key, value) lists and
// returns them.
func (n *Node) KillMarked(sig syscall.Signal, key, value string) ([]Process, error) {
	return n.Kill(sig, func(p Process) bool { return hasEnv(p.PID, key+"="+value) })
}

// hasEnv reports whether process pid's environment holds the entry kv.
func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// HostPath is where the node's file path (as the node sees it: its
// private /tmp, /root, ...) can be read and written from the host, through
// /proc/PID/root of the node's anchor process. It is "" when the node does
// not run.
func (n *Node) HostPath(path string) string {
	pid := n.PID()
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf("/proc/%d/root%s", pid, filepath.Clean("/"+path))
}

// ShimDir is where Shim puts its programs on a node: first on the PATH that
// OpenSSH gives root's sessions, and empty on Debian.
const ShimDir = "/usr/local/sbin"

// Shim puts an executable named name holding script into ShimDir on the
// node, a tmpfs of the node's own (the host's directory is untouched), so
// that root's sessions on the node that run name by PATH run script: a slow
// fwupdtool, say ("#!/bin/sh\nsleep 3\nexec /usr/bin/fwupdtool \"$@\"\n").
func (n *Node) Shim(name, script string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("%s: shim: bad program name %q", n.Name, name)
	}
	mount := fmt.Sprintf("grep -q '^fulab-shim %[1]s ' /proc/self/mounts || mount -t tmpfs -o mode=0755 fulab-shim %[1]s", ShimDir)
	if _, err := n.Shell(context.Background(), mount); err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	path := ShimDir + "/" + name
	install := "cat > " + shellQuote(path) + " && chmod 0755 " + shellQuote(path)
	if _, _, err := n.run(context.Background(), strings.NewReader(script), true, "sh", "-c", install); err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	return nil
}

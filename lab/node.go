package lab

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Node is one running test node.
type Node struct {
	// Name is the node's host name, "nodeN".
	Name string
	// Index is N, the node's index in 1..MaxNodes that its addresses,
	// namespace and veth are named after (not its position in Lab.Nodes).
	Index int
	// Namespace is the network namespace, "fulab-N".
	Namespace string
	// Veth is the host side of the node's veth pair, "fulabN".
	Veth string
	// IPv4 (198.18.N.2) and HostIPv4 (198.18.N.1) are invalid (zero) for
	// an IPv6-only node.
	IPv4, HostIPv4 netip.Addr
	// IPv6 is fd42:5e:0:N::2, HostIPv6 fd42:5e:0:N::1.
	IPv6, HostIPv6 netip.Addr
	// HostKey is the host key the node's sshd presents now.
	HostKey ssh.PublicKey
	// Dir is the node's directory in the lab's: sshd config and log, host
	// key, and the node's fwupd and dpkg state.
	Dir string

	lab  *Lab
	lock *indexLock

	// cmd is the node's anchor process, whose namespaces are the node's:
	// its sshd listener, or, while KillSSHD has taken sshd down, a
	// placeholder (sshdDown). exited is closed once cmd was waited for.
	mu       sync.Mutex // guards cmd, pid, exited, sshdDown, reboot
	cmd      *exec.Cmd
	pid      int
	exited   chan struct{}
	sshdDown bool
	// reboot is set by EnableReboot (reboot.go).
	reboot *rebootState
}

func newNode(l *Lab, pos int, lk *indexLock, v6only bool) *Node {
	n := lk.index
	node := &Node{
		Name:      "node" + strconv.Itoa(n),
		Index:     n,
		Namespace: "fulab-" + strconv.Itoa(n),
		Veth:      "fulab" + strconv.Itoa(n),
		IPv6:      netip.MustParseAddr(fmt.Sprintf("fd42:5e:0:%d::2", n)),
		HostIPv6:  netip.MustParseAddr(fmt.Sprintf("fd42:5e:0:%d::1", n)),
		Dir:       filepath.Join(l.Dir, "node"+strconv.Itoa(n)),
		lab:       l,
		lock:      lk,
	}
	if !v6only {
		node.IPv4 = netip.AddrFrom4([4]byte{198, 18, byte(n), 2})
		node.HostIPv4 = netip.AddrFrom4([4]byte{198, 18, byte(n), 1})
	}
	return node
}

// Addr is the node's address for a URL or net.JoinHostPort-less dialing
// string: "198.18.N.2", or "[fd42:5e:0:N::2]" for an IPv6-only node.
func (n *Node) Addr() string {
	if n.IPv4.IsValid() {
		return n.IPv4.String()
	}
	return "[" + n.IPv6.String() + "]"
}

// Addrs are the node's addresses: IPv4 (when it has one), then IPv6.
func (n *Node) Addrs() []netip.Addr {
	if n.IPv4.IsValid() {
		return []netip.Addr{n.IPv4, n.IPv6}
	}
	return []netip.Addr{n.IPv6}
}

// PID is the process id of the node's sshd listener, whose namespaces are
// the node's (while KillSSHD has taken sshd down: of the placeholder that
// keeps them).
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pid
}

// Exec runs name with args inside the node (its network, mount and UTS
// namespaces, as root) and returns its combined output. A failure's error
// includes the output. The command is killed when ctx ends.
func (n *Node) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, _, err := n.run(ctx, nil, true, name, args...)
	return out, err
}

// Shell runs script with sh -c inside the node, like Exec.
func (n *Node) Shell(ctx context.Context, script string) ([]byte, error) {
	return n.Exec(ctx, "sh", "-c", script)
}

// run runs a command in the node. With combined, stdout holds both streams.
func (n *Node) run(ctx context.Context, stdin io.Reader, combined bool, name string, args ...string) (stdout, stderr []byte, err error) {
	pid := n.PID()
	if pid == 0 {
		return nil, nil, fmt.Errorf("%s: %s: node not running", n.Name, name)
	}
	argv := append([]string{"-t", strconv.Itoa(pid), "-n", "-m", "-u", "--", name}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.Stdin = stdin
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout = &outBuf
	if combined {
		cmd.Stderr = &outBuf
	} else {
		cmd.Stderr = &errBuf
	}
	err = cmd.Run()
	if err != nil {
		msg := outBuf.Bytes()
		if !combined {
			msg = errBuf.Bytes()
		}
		err = fmt.Errorf("%s: %s: %w: %s", n.Name, strings.Join(append([]string{name}, args...), " "), err, bytes.TrimSpace(msg))
	}
	return outBuf.Bytes(), errBuf.Bytes(), err
}

// LinkDown cuts the node off the network: its end of the veth goes down, so
// the host side loses carrier. Packets to the node are dropped (connections
// time out, later fail with "no route to host", as with a pulled cable),
// while the host keeps its routes to the node, so nothing leaks to the
// host's default route. (Taking the host end down would remove those
// routes.) Addresses survive on both ends.
func (n *Node) LinkDown() error {
	return hostRun(context.Background(), "ip", "-n", n.Namespace, "link", "set", "eth0", "down")
}

// LinkUp undoes LinkDown. It also forgets the host's failed neighbour
// entries for the node, so connecting works at once instead of failing
// with "no route to host" until they expire.
func (n *Node) LinkUp() error {
	ctx := context.Background()
	if err := hostRun(ctx, "ip", "-n", n.Namespace, "link", "set", "eth0", "up"); err != nil {
		return err
	}
	return hostRun(ctx, "ip", "neigh", "flush", "dev", n.Veth)
}

var rateRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$`)

// SetRate limits traffic from the host to the node (what the node
// downloads) to rate, a tc rate such as "20mbit" or "500kbit", with a token
// bucket filter on the host side of the veth. An empty rate removes the
// limit.
func (n *Node) SetRate(rate string) error {
	if rate == "" {
		err := hostRun(context.Background(), "tc", "qdisc", "del", "dev", n.Veth, "root")
		if err != nil && (strings.Contains(err.Error(), "No such file") || strings.Contains(err.Error(), "Cannot delete qdisc with handle of zero")) {
			return nil
		}
		return err
	}
	bytesPerSec, err := parseRate(rate)
	if err != nil {
		return fmt.Errorf("%s: set rate: %w", n.Name, err)
	}
	// The bucket must hold at least one tick's worth of traffic and one
	// GSO packet.
	burst := max(int64(bytesPerSec/100), 128<<10)
	return hostRun(context.Background(), "tc", "qdisc", "replace", "dev", n.Veth, "root", "tbf",
		"rate", rate, "burst", strconv.FormatInt(burst, 10), "latency", "500ms")
}

// parseRate parses a tc rate into bytes per second.
func parseRate(rate string) (float64, error) {
	m := rateRE.FindStringSubmatch(rate)
	if m == nil {
		return 0, fmt.Errorf("rate %q: want a number and a unit among bit, kbit, mbit, gbit, bps, kbps, mbps, gbps", rate)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q: not a positive number", rate)
	}
	mult := map[string]float64{
		"bit": 1.0 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
		"bps": 1, "kbps": 1e3, "mbps": 1e6, "gbps": 1e9,
	}[m[2]]
	return v * mult, nil
}

// RotateHostKey gives the node a new host key and makes its sshd (same
// process, re-executed by SIGHUP) present it. HostKey is updated; the
// lab's KnownHostsFile is not.
func (n *Node) RotateHostKey() error {
	if n.SSHDDown() {
		return fmt.Errorf("%s: rotate host key: sshd is down", n.Name)
	}
	key, err := n.writeHostKey()
	if err != nil {
		return fmt.Errorf("%s: rotate host key: %w", n.Name, err)
	}
	pid := n.PID()
	listening := n.listenLogLines()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("%s: rotate host key: signal sshd %d: %w", n.Name, pid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// sshd re-executes itself for every connection, so the old listener
	// already shows the new key; it closes its sockets only when it
	// restarts on SIGHUP. Wait for the restarted sshd to log that it
	// listens again on both addresses, then for the key on each.
	for n.listenLogLines() < listening+2 {
		select {
		case <-n.exited:
			return fmt.Errorf("%s: rotate host key: sshd exited: %s", n.Name, n.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s: rotate host key: sshd did not listen again: %s", n.Name, n.logTail())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := n.waitSSH(ctx, key); err != nil {
		return fmt.Errorf("%s: rotate host key: %w", n.Name, err)
	}
	n.HostKey = key
	return nil
}

func (n *Node) hostKeyPath() string { return filepath.Join(n.Dir, "ssh_host_ed25519_key") }

// writeHostKey makes a new ed25519 host key in the node's directory.
func (n *Node) writeHostKey() (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "root@"+n.Name)
	if err != nil {
		return nil, err
	}
	tmp := n.hostKeyPath() + ".new"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, n.hostKeyPath()); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

func (n *Node) sshdConfig() string {
	return fmt.Sprintf(`# sshd of lab node %[1]s
Port 22
ListenAddress 0.0.0.0
ListenAddress ::
HostKey %[2]s
PidFile %[3]s
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
UseDNS no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
AuthorizedKeysFile %[4]s/%%u
LogLevel VERBOSE
MaxStartups 200:30:300
MaxSessions 50
PrintMotd no
AcceptEnv LANG LC_*
`, n.Name, n.hostKeyPath(), filepath.Join(n.Dir, "sshd.pid"), n.lab.authorizedKeysDir())
}

// start prepares the node's files and namespace and starts its sshd.
func (n *Node) start(ctx context.Context, dpkg bool) error {
	if err := teardownIndex(n.Index); err != nil {
		return fmt.Errorf("%s: remove leftovers: %w", n.Name, err)
	}
	if err := n.prepareFiles(ctx, dpkg); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := n.prepareNetwork(ctx); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := n.launch(dpkg); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.waitSSH(wctx, n.HostKey); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

func (n *Node) prepareFiles(ctx context.Context, dpkg bool) error {
	if err := os.Mkdir(n.Dir, 0o755); err != nil {
		return err
	}
	key, err := n.writeHostKey()
	if err != nil {
		return fmt.Errorf("host key: %w", err)
	}
	n.HostKey = key
	if err := os.WriteFile(filepath.Join(n.Dir, "sshd_config"), []byte(n.sshdConfig()), 0o644); err != nil {
		return err
	}
	// fwupd: the host's configuration with the test devices on, and empty
	// state and cache, so each node keeps its own history.
	etc := filepath.Join(n.Dir, "etc-fwupd")
	if err := hostRun(ctx, "cp", "-a", "/etc/fwupd", etc); err != nil {
		return err
	}
	conf, err := os.ReadFile("/etc/fwupd/fwupd.conf")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "fwupd.conf"), []byte(enableTestDevices(string(conf))), 0o644); err != nil {
		return err
	}
	for _, d := range []string{"var-lib-fwupd", "var-cache-fwupd"} {
		if err := os.Mkdir(filepath.Join(n.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if dpkg {
		if err := hostRun(ctx, "cp", "-a", "/var/lib/dpkg", filepath.Join(n.Dir, "dpkg")); err != nil {
			return err
		}
	}
	netns := filepath.Join("/etc/netns", n.Namespace)
	if err := os.MkdirAll(netns, 0o755); err != nil {
		return err
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if n.IPv4.IsValid() {
		hosts += n.IPv4.String() + "\t" + n.Name + "\n"
	}
	hosts += n.IPv6.String() + "\t" + n.Name + "\n"
	files := map[string]string{"hosts": hosts, "resolv.conf": "", "hostname": n.Name + "\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(netns, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// enableTestDevices sets TestDevices=true in the [fwupd] section of a
// fwupd.conf.
func enableTestDevices(conf string) string {
	var out []string
	added := false
	for _, line := range strings.Split(conf, "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "TestDevices" {
			continue
		}
		out = append(out, line)
		if strings.TrimSpace(line) == "[fwupd]" && !added {
			out = append(out, "TestDevices=true")
			added = true
		}
	}
	if !added {
		out = append([]string{"[fwupd]", "TestDevices=true"}, out...)
	}
	return strings.Join(out, "\n")
}

func (n *Node) prepareNetwork(ctx context.Context) error {
	ns := n.Namespace
	steps := [][]string{
		{"ip", "netns", "add", ns},
		// Addresses must survive LinkDown, and be usable at once.
		{"ip", "netns", "exec", ns, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1"},
		{"ip", "link", "add", n.Veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
	}
	for _, s := range steps {
		if err := hostRun(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	for _, k := range []string{"keep_addr_on_down", "accept_dad"} {
		v := "1"
		if k == "accept_dad" {
			v = "0"
		}
		if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", n.Veth, k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s of %s: %w", k, n.Veth, err)
		}
	}
	var more [][]string
	if n.IPv4.IsValid() {
		more = append(more,
			[]string{"ip", "addr", "add", n.HostIPv4.String() + "/30", "dev", n.Veth},
			[]string{"ip", "-n", ns, "addr", "add", n.IPv4.String() + "/30", "dev", "eth0"})
	}
	more = append(more,
		[]string{"ip", "-6", "addr", "add", n.HostIPv6.String() + "/64", "dev", n.Veth, "nodad"},
		[]string{"ip", "-n", ns, "-6", "addr", "add", n.IPv6.String() + "/64", "dev", "eth0", "nodad"},
		[]string{"ip", "link", "set", n.Veth, "up"},
		[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
		[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
	)
	for _, s := range more {
		if err := hostRun(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// launch starts sshd in the node's namespaces. The process chain ip netns
// exec, unshare, sh, sshd replaces itself with exec at each step, so the
// started process is the sshd listener.
func (n *Node) launch(dpkg bool) error {
	var s strings.Builder
	s.WriteString("set -e\n")
	tmpfs := []struct{ dir, mode string }{
		{"/tmp", "1777"}, {"/var/tmp", "1777"}, {"/dev/shm", "1777"}, {"/run/lock", "1777"},
		{"/run/sudo", "0711"}, {"/var/lib/sudo", "0700"},
		{"/home", "0755"}, {"/root", "0700"}, {"/opt", "0755"},
	}
	for _, m := range tmpfs {
		fmt.Fprintf(&s, "if [ -d %[1]s ]; then mount -t tmpfs -o mode=%[2]s fulab %[1]s; fi\n", m.dir, m.mode)
	}
	binds := [][2]string{
		{filepath.Join(n.Dir, "etc-fwupd"), "/etc/fwupd"},
		{filepath.Join(n.Dir, "var-lib-fwupd"), "/var/lib/fwupd"},
		{filepath.Join(n.Dir, "var-cache-fwupd"), "/var/cache/fwupd"},
	}
	if dpkg {
		binds = append(binds, [2]string{filepath.Join(n.Dir, "dpkg"), "/var/lib/dpkg"})
	}
	for _, b := range binds {
		// fwupd makes /var/lib/fwupd and /var/cache/fwupd on its first
		// start only; on a fresh machine the mount points may not exist.
		if err := os.MkdirAll(b[1], 0o755); err != nil {
			return fmt.Errorf("mount point %s: %w", b[1], err)
		}
		fmt.Fprintf(&s, "mount --bind %s %s\n", shellQuote(b[0]), b[1])
	}
	for _, u := range Users {
		fmt.Fprintf(&s, "mkdir -m 0700 /home/%[1]s && chown %[1]s: /home/%[1]s\n", u)
	}
	fmt.Fprintf(&s, "hostname %s\n", n.Name)
	fmt.Fprintf(&s, "exec /usr/sbin/sshd -D -f %s -E %s\n",
		shellQuote(filepath.Join(n.Dir, "sshd_config")), shellQuote(filepath.Join(n.Dir, "sshd.log")))

	logf, err := os.OpenFile(filepath.Join(n.Dir, "start.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", n.Namespace,
		"unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", s.String())
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a terminal's ^C goes to the lab's owner, which
	// tears down. Pdeathsig: if the owner dies, so does the listener.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.pid, n.exited = cmd, cmd.Process.Pid, exited
	n.mu.Unlock()
	go func() {
		cmd.Wait()
		close(exited)
	}()
	return nil
}

// errProbe ends a probing SSH handshake once the host key is seen.
var errProbe = errors.New("lab: host key probe")

// waitSSH waits until the node's sshd presents want on every address.
func (n *Node) waitSSH(ctx context.Context, want ssh.PublicKey) error {
	for _, a := range n.Addrs() {
		addr := net.JoinHostPort(a.String(), "22")
		for {
			got, err := probeHostKey(ctx, addr)
			if err == nil && bytes.Equal(got.Marshal(), want.Marshal()) {
				break
			}
			select {
			case <-n.exited:
				return fmt.Errorf("sshd exited: %s", n.logTail())
			case <-ctx.Done():
				if err == nil {
					err = errors.New("host key differs from the one written")
				}
				return fmt.Errorf("wait for sshd on %s: %w (last: %v): %s", addr, ctx.Err(), err, n.logTail())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// probeHostKey does an SSH handshake with addr up to host key verification
// and returns the key offered.
func probeHostKey(ctx context.Context, addr string) (ssh.PublicKey, error) {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User:              "fleetup-lab-probe",
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			return errProbe
		},
	}
	_, _, _, err = ssh.NewClientConn(c, addr, cfg)
	if got != nil {
		return got, nil
	}
	return nil, err
}

// listenLogLines counts sshd's "Server listening on" lines in its log:
// two more after each (re)start, one per ListenAddress.
func (n *Node) listenLogLines() int {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "sshd.log"))
	return strings.Count(string(b), "Server listening on ")
}

func (n *Node) logTail() string {
	var parts []string
	for _, f := range []string{"start.log", "sshd.log"} {
		b, _ := os.ReadFile(filepath.Join(n.Dir, f))
		if len(b) > 1000 {
			b = b[len(b)-1000:]
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			parts = append(parts, f+": "+s)
		}
	}
	return strings.Join(parts, "; ")
}

// close kills everything in the node and removes its namespace, veth and
// /etc/netns entry, then releases its index.
func (n *Node) close() error {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	err := teardownIndex(n.Index)
	if exited != nil {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			err = errors.Join(err, fmt.Errorf("%s: sshd %d did not exit", n.Name, n.PID()))
		}
	}
	n.mu.Lock()
	n.pid = 0
	n.mu.Unlock()
	if err == nil {
		n.lock.release()
	}
	return err
}

// teardownIndex removes whatever exists of node index i: it kills the
// processes in its namespace, deletes its veth and namespace and its
// /etc/netns directory.
func teardownIndex(i int) error {
	ns := "fulab-" + strconv.Itoa(i)
	veth := "fulab" + strconv.Itoa(i)
	ctx := context.Background()
	var errs []error
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
		if err := killNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", veth)); err == nil {
		if err := hostRun(ctx, "ip", "link", "del", veth); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
		if err := hostRun(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(filepath.Join("/etc/netns", ns)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killNamespace kills every process in network namespace ns until none is
// left (processes may fork while being killed), then waits until each has
// finished dying (is gone, or a zombie waiting for its parent).
func killNamespace(ctx context.Context, ns string) error {
	killed := map[int]bool{}
	for attempt := 0; ; attempt++ {
		if attempt == 200 {
			return fmt.Errorf("processes left in %s after killing them 200 times", ns)
		}
		out, err := hostCmd(ctx, "ip", "netns", "pids", ns).Output()
		if err != nil {
			return fmt.Errorf("ip netns pids %s: %w", ns, err)
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
				killed[pid] = true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pid := range killed {
		for !deadOrZombie(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d of %s still exiting 10s after SIGKILL", pid, ns)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// deadOrZombie reports whether process pid is gone or a zombie.
func deadOrZombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || bytes.HasPrefix(stat[i+1:], []byte(" Z")) || bytes.HasPrefix(stat[i+1:], []byte(" X"))
}

// hostRun runs a command on the host; its error includes the output.
func hostRun(ctx context.Context, name string, args ...string) error {
	out, err := hostCmd(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// hostCmd makes a command for the host in its own process group, so that
// a signal to the lab owner's group (a terminal's ^C) does not interrupt
// the teardown it triggers.
func hostCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

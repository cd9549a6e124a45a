package firewalltest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup/proc"
)

// listenEnv makes a re-executed test binary act as the suite's TCP
// listener instead of running tests (see Main).
const listenEnv = "FLEETUP_FIREWALLTEST_LISTEN"

// greeting is what the listener writes to every connection, so that a
// successful dial is known to have reached it.
const greeting = "fleetup-firewalltest\n"

// maxNamespaces is how many fufw-<n> namespaces can exist at once: n is
// 0-15, for addresses 198.18.240+n.0/29 within 198.18.0.0/15.
const maxNamespaces = 16

// Main is what a test package that runs the suite calls from TestMain:
//
//	func TestMain(m *testing.M) { firewalltest.Main(m) }
//
// When the suite re-executes the test binary inside a namespace as its
// listener, Main serves instead of running tests; otherwise it runs the
// tests and exits with their status.
func Main(m *testing.M) {
	if os.Getenv(listenEnv) == "1" {
		if err := serve(); err != nil {
			fmt.Fprintln(os.Stderr, "firewalltest listener:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serve listens on an ephemeral TCP port on every address of both
// families, prints the port on standard output, and greets every
// connection until it is killed.
func serve() error {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		_, _ = io.WriteString(c, greeting)
		_ = c.Close()
	}
}

// Namespace is a network namespace fufw-<n> standing for a node, joined to
// the root namespace (the manager's side) by a veth pair. The host side has
// two addresses per family: Host, the manager, and Other, a stranger in
// the same subnet.
type Namespace struct {
	Name string
	// Runner runs commands inside the namespace.
	Runner *proc.Runner
	// Node4 and Node6 are the namespace's addresses.
	Node4, Node6 netip.Addr
	// Host4 and Host6 are the manager's addresses (host side, .1 / ::1).
	Host4, Host6 netip.Addr
	// Other4 and Other6 are a second host-side address (.3 / ::3).
	Other4, Other6 netip.Addr
}

// NewNamespace creates the first free namespace fufw-<n> (n 0-15) with a
// veth pair: host side fufw-<n>h with 198.18.240+n.1 and .3/29 and
// fd42:5e:0:f0XX::1 and ::3/64 (XX is n in hex), node side veth0 with .2
// and ::2, and loopback up. t.Cleanup kills what runs in it and deletes it.
// It skips (or fails, in CI) without root or ip.
func NewNamespace(t *testing.T) *Namespace {
	t.Helper()
	return newNamespace(t, "fufw", func(n int) (netip.Prefix, netip.Prefix) {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(240 + n), 0}), 29),
			netip.MustParsePrefix(fmt.Sprintf("fd42:5e:0:f0%02x::/64", n))
	})
}

// NewNamespaceIn is NewNamespace for a package that keeps to addresses of
// its own: namespace name-<n> (n 0-15; name at most 8 bytes) gets the n-th
// /29 of v4 (a /24) and the n-th /64 of v6 (a /56), with the same host,
// other and node addresses (.1, .3, .2 and ::1, ::3, ::2).
func NewNamespaceIn(t *testing.T, name string, v4, v6 netip.Prefix) *Namespace {
	t.Helper()
	if !v4.Addr().Is4() || v4.Bits() != 24 || !v6.Addr().Is6() || v6.Bits() != 56 || len(name) > 8 {
		t.Fatalf("NewNamespaceIn(%q, %s, %s): want a name of at most 8 bytes, an IPv4 /24 and an IPv6 /56", name, v4, v6)
	}
	return newNamespace(t, name, func(n int) (netip.Prefix, netip.Prefix) {
		a4 := v4.Masked().Addr().As4()
		a4[3] = byte(8 * n)
		a6 := v6.Masked().Addr().As16()
		a6[7] = byte(n)
		return netip.PrefixFrom(netip.AddrFrom4(a4), 29), netip.PrefixFrom(netip.AddrFrom16(a6), 64)
	})
}

// nth returns the address i above p's (masked) base address.
func nth(p netip.Prefix, i byte) netip.Addr {
	a := p.Masked().Addr()
	for range i {
		a = a.Next()
	}
	return a
}

// newNamespace creates the first free namespace name-<n> with the
// subnets nets(n) gives.
func newNamespace(t *testing.T, prefix string, nets func(n int) (v4, v6 netip.Prefix)) *Namespace {
	t.Helper()
	ctx := context.Background()
	var root proc.Runner
	n, name := -1, ""
	for i := range maxNamespaces {
		nm := fmt.Sprintf("%s-%d", prefix, i)
		if _, err := root.Output(ctx, "ip", "netns", "add", nm); err == nil {
			n, name = i, nm
			break
		}
	}
	if n < 0 {
		t.Fatalf("create namespace: all of %s-0 to %s-%d exist (left over from a killed run? delete them with ip netns del)", prefix, prefix, maxNamespaces-1)
	}
	hostIf := name + "h"
	t.Cleanup(func() {
		if out, err := root.Output(ctx, "ip", "netns", "pids", name); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_, _ = root.Output(ctx, "ip", "link", "del", hostIf)
		if _, err := root.Output(ctx, "ip", "netns", "del", name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	v4, v6 := nets(n)
	ns := &Namespace{
		Name:   name,
		Runner: &proc.Runner{Prefix: []string{"ip", "netns", "exec", name}},
		Host4:  nth(v4, 1),
		Node4:  nth(v4, 2),
		Other4: nth(v4, 3),
		Host6:  nth(v6, 1),
		Node6:  nth(v6, 2),
		Other6: nth(v6, 3),
	}
	steps := [][]string{
		{"ip", "link", "add", hostIf, "type", "veth", "peer", "name", "veth0", "netns", name},
		{"ip", "addr", "add", ns.Host4.String() + "/29", "dev", hostIf},
		{"ip", "addr", "add", ns.Other4.String() + "/29", "dev", hostIf},
		{"ip", "-6", "addr", "add", ns.Host6.String() + "/64", "dev", hostIf, "nodad"},
		{"ip", "-6", "addr", "add", ns.Other6.String() + "/64", "dev", hostIf, "nodad"},
		{"ip", "link", "set", hostIf, "up"},
		{"ip", "-n", name, "addr", "add", ns.Node4.String() + "/29", "dev", "veth0"},
		{"ip", "-n", name, "-6", "addr", "add", ns.Node6.String() + "/64", "dev", "veth0", "nodad"},
		{"ip", "-n", name, "link", "set", "veth0", "up"},
		{"ip", "-n", name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if _, err := root.Output(ctx, s[0], s[1:]...); err != nil {
			t.Fatalf("set up namespace %s: %v", name, err)
		}
	}
	return ns
}

// Listen starts the test binary inside the namespace as a TCP listener on
// every address and returns its port. The test binary's TestMain must call
// Main. t.Cleanup kills the listener by its PID.
func (ns *Namespace) Listen(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find test binary: %v", err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), listenEnv+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("listener pipe: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start listener in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // ip netns exec execs the binary: same PID
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("listener in %s did not report its port: %v", ns.Name, err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("listener in %s reported port %q: %v", ns.Name, line, err)
	}
	return port
}

// Dial connects from src (a host-side address) to the listener at
// dst:port within timeout and reads its greeting.
func Dial(src, dst netip.Addr, port int, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	c, err := d.Dial("tcp", netip.AddrPortFrom(dst, uint16(port)).String())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read greeting from %s: %w", c.RemoteAddr(), err)
	}
	if got != greeting {
		return fmt.Errorf("%s greeted %q, not the suite's listener", c.RemoteAddr(), got)
	}
	return nil
}

// IsTimeout reports whether err is a dial that timed out (dropped), as
// opposed to one refused or failing otherwise.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

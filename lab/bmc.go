package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/fleetup/fleetup/lab/bmcsim"
)

// A node's BMC: a Redfish simulator (package bmcsim) served from this
// process on sockets that live in the node's network namespace, so that the
// BMC has the node's addresses and the node's firewall (DropTCP) applies to
// it, and its own downloads leave from the node.

// ListenTCP listens on addr ("[fd42:5e:0:N::2]:443", "198.18.N.2:443", or
// ":443" for all of the node's addresses) inside the node's network
// namespace. The socket lives in the namespace and is served from this
// process; closing the listener closes it.
func (n *Node) ListenTCP(addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.inNetns(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", n.Name, addr, err)
	}
	return ln, nil
}

// DialContext dials addr from inside the node's network namespace, so that
// the node's routes and firewall rules (DropTCP) apply, as to a program on
// the node. addr must hold a literal IP address: a host name would be
// resolved, and the connection made, on threads outside the namespace.
func (n *Node) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s: %w", n.Name, addr, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return nil, fmt.Errorf("%s: dial %s: not a literal IP address", n.Name, addr)
	}
	var c net.Conn
	err = n.inNetns(func() error {
		// With one literal address the dialer makes its one socket on
		// this goroutine, hence this thread, hence in the namespace;
		// the connection keeps the namespace after the thread leaves.
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.Name, err)
	}
	return c, nil
}

// inNetns runs f on an OS thread of its own that has entered the node's
// network namespace. f must make its sockets on the calling goroutine and
// start no goroutines that make sockets. If the thread cannot return to
// the host's namespace, it stays locked and is discarded when the goroutine
// ends, so that nothing else ever runs in the node's namespace by mistake.
func (n *Node) inNetns(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := n.withNetns(f)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// withNetns enters the node's namespace on the locked current thread, runs
// f and returns to the thread's namespace. restored reports whether the
// thread is back where it was (or never left).
func (n *Node) withNetns(f func() error) (restored bool, err error) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return true, fmt.Errorf("open own network namespace: %w", err)
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/run/netns", n.Namespace))
	if err != nil {
		return true, fmt.Errorf("open network namespace %s: %w", n.Namespace, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("enter network namespace %s: %w", n.Namespace, err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		return false, errors.Join(ferr, fmt.Errorf("return from network namespace %s: %w", n.Namespace, err))
	}
	return true, ferr
}

// BMCPort is where StartBMC serves: HTTPS on 443, as BMCs do.
const BMCPort = 443

// StartBMC starts a Redfish BMC simulator on the node: on port 443 of its
// IPv4 and IPv6 addresses (IPv6 only on an IPv6-only node), its outgoing
// connections (ImageURI downloads) made from the node (opts.Dial is
// n.DialContext unless set). The caller must Close the BMC before the lab
// closes (with testing, register b.Close with t.Cleanup after lab.New, so
// that it runs first): the lab does not know about it, and a BMC left open
// keeps its sockets, and with them the node's old namespace, alive.
func (n *Node) StartBMC(opts bmcsim.Options) (*bmcsim.BMC, error) {
	if opts.Dial == nil {
		opts.Dial = n.DialContext
	}
	var lns []net.Listener
	for _, a := range n.Addrs() {
		ln, err := n.ListenTCP(net.JoinHostPort(a.String(), fmt.Sprint(BMCPort)))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("start bmc: %w", err)
		}
		lns = append(lns, ln)
	}
	b, err := bmcsim.StartMulti(opts, lns...)
	if err != nil {
		return nil, fmt.Errorf("%s: start bmc: %w", n.Name, err)
	}
	return b, nil
}

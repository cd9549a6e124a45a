package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/fleetup/fleetup/lab"
)

// floorRun is n bare SSH sessions from one Go process, all at once.
type floorRun struct {
	Wall   time.Duration
	Logins []time.Duration // per node: dial + handshake + key auth
}

// floor logs in to every node at once with the lab's key (host keys checked
// against the lab's known_hosts) and runs command in one session, with stdin
// as its input. With command "true" this is what any SSH-based tool pays at
// least; with the install by hand it is the job without any tool around it.
func (f *fleet) floor(ctx context.Context, nodes []*lab.Node, command string, stdin []byte) (*floorRun, error) {
	hk, err := knownhosts.New(f.lab.KnownHostsFile())
	if err != nil {
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(f.lab.Signer())},
		HostKeyCallback: hk,
		Timeout:         30 * time.Second,
	}
	r := &floorRun{Logins: make([]time.Duration, len(nodes))}
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = func() error {
				start := time.Now()
				var d net.Dialer
				conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(n.Addr(), "22"))
				if err != nil {
					return err
				}
				c, chans, reqs, err := ssh.NewClientConn(conn, net.JoinHostPort(n.Addr(), "22"), cfg)
				if err != nil {
					conn.Close()
					return err
				}
				client := ssh.NewClient(c, chans, reqs)
				defer client.Close()
				r.Logins[i] = time.Since(start)
				s, err := client.NewSession()
				if err != nil {
					return err
				}
				defer s.Close()
				s.Stdin = bytes.NewReader(stdin)
				var out bytes.Buffer
				s.Stdout, s.Stderr = &out, &out
				if err := s.Run(command); err != nil {
					return fmt.Errorf("%w: %s", err, truncate(lastLines(out.String(), 3), 500))
				}
				return nil
			}()
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", n.Name, errs[i])
			}
		}()
	}
	wg.Wait()
	r.Wall = time.Since(t0)
	return r, errors.Join(errs...)
}

// floorInstallCommand is the job done by hand in one SSH session: the cab
// arrives on stdin, is flashed with the arguments fleetup's fwupd installer
// uses, and removed.
func (f *fleet) floorInstallCommand() string {
	plugins := ""
	if f.plugins != "" {
		plugins = " --plugins " + f.plugins
	}
	return "cat > /tmp/fleetup-bench-floor.cab && NO_COLOR=1 LC_ALL=C fwupdtool install /tmp/fleetup-bench-floor.cab --no-reboot-check" +
		plugins + " >/dev/null; rc=$?; rm -f /tmp/fleetup-bench-floor.cab; exit $rc"
}

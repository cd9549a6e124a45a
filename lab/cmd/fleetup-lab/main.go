// Command fleetup-lab starts a lab of test nodes for manual experiments and
// tears it down on SIGINT or SIGTERM.
//
//	fleetup-lab up N [-6 POS,POS...] [-dpkg]
//
// It prints each node (name, addresses, host key), the client key file, the
// known_hosts file and the users' password, then blocks. Exit codes: 0 after
// a clean teardown, 1 when the lab failed to start or to tear down, 2 for a
// usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup/lab"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var errUsage = errors.New("usage: fleetup-lab up N [-6 POS,POS...] [-dpkg]")

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runUp(ctx, opts, stdout); err != nil {
		fmt.Fprintln(stderr, "fleetup-lab:", err)
		return 1
	}
	return 0
}

func parseArgs(args []string) (lab.Options, error) {
	if len(args) < 2 || args[0] != "up" {
		return lab.Options{}, errUsage
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return lab.Options{}, fmt.Errorf("node count %q: not a number\n%w", args[1], errUsage)
	}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	v6 := fs.String("6", "", "comma-separated node positions (0-based) without IPv4")
	dpkg := fs.Bool("dpkg", false, "give each node its own /var/lib/dpkg")
	if err := fs.Parse(args[2:]); err != nil {
		return lab.Options{}, err
	}
	opts := lab.Options{Nodes: n, Dpkg: *dpkg}
	if *v6 != "" {
		for _, p := range strings.Split(*v6, ",") {
			i, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return lab.Options{}, fmt.Errorf("-6 position %q: not a number", p)
			}
			opts.IPv6Only = append(opts.IPv6Only, i)
		}
	}
	return opts, opts.Validate()
}

// runUp starts the lab, prints it, waits for ctx to end and tears down.
func runUp(ctx context.Context, opts lab.Options, w io.Writer) error {
	l, err := lab.Start(ctx, opts)
	if err != nil {
		return err
	}
	for _, n := range l.Nodes {
		v4 := "-"
		if n.IPv4.IsValid() {
			v4 = n.IPv4.String()
		}
		fmt.Fprintf(w, "%-8s %-15s %-18s %s %s\n", n.Name, v4, n.IPv6, n.Namespace, ssh.FingerprintSHA256(n.HostKey))
	}
	fmt.Fprintf(w, "key file:    %s\n", l.KeyFile())
	fmt.Fprintf(w, "known_hosts: %s\n", l.KnownHostsFile())
	fmt.Fprintf(w, "users:       %s (password), %s (key), %s (sudo with password), %s (sudo NOPASSWD); root (key)\n",
		lab.UserPassword, lab.UserKey, lab.UserSudo, lab.UserSudoNoPass)
	fmt.Fprintf(w, "password:    %s\n", l.Password())
	fmt.Fprintf(w, "example:     ssh -i %s -o UserKnownHostsFile=%s %s@%s\n", l.KeyFile(), l.KnownHostsFile(), lab.UserKey, strings.Trim(l.Nodes[0].Addr(), "[]"))
	fmt.Fprintln(w, "up; SIGINT or SIGTERM tears down")
	<-ctx.Done()
	return l.Close()
}

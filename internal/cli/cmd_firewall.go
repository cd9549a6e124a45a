package cli

import (
	"context"
	"fmt"
	"sync"

	"github.com/fleetup/fleetup/esxi"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/target"
)

type firewallESXiOptions struct {
	nodeOptions
	HTTPPort  int
	HTTPSPort int
	Remove    bool
	File      string
	Esxcli    string
}

// runFirewall is "fleetup firewall SUBCOMMAND"; the one subcommand is esxi.
func runFirewall(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(env.Stdout, "usage: fleetup firewall esxi [--port P] [--ssl-port P] [--target HOST ... [--remove]]")
		fmt.Fprintln(env.Stdout, "  esxi  print, install or remove the ESXi firewall rule that lets hosts reach the manager's ports")
		if len(args) == 0 {
			return usagef("firewall needs a subcommand: esxi")
		}
		return nil
	}
	switch args[0] {
	case "esxi":
		return runFirewallESXi(ctx, env, args[1:])
	}
	return usagef("firewall: unknown subcommand %q (want esxi)", args[0])
}

// runFirewallESXi prints the ESXi rule file for the manager's HTTP and
// HTTPS ports, or, with --target, installs it on each host over SSH and
// refreshes the host's firewall; --remove takes it away again.
func runFirewallESXi(ctx context.Context, env *Env, args []string) error {
	var opts firewallESXiOptions
	fs := newFlags("firewall esxi", env)
	opts.register(fs)
	pf := registerPortFlags(fs)
	fs.BoolVar(&opts.Remove, "remove", false, "remove the rule from the --target hosts instead of installing it")
	fs.StringVar(&opts.File, "rule-file", esxi.RuleFile, "where the rule file goes on the hosts")
	fs.StringVar(&opts.Esxcli, "esxcli", esxi.Esxcli, "the esxcli program on the hosts")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("firewall esxi: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := pf.load(env, fs)
	if err != nil {
		return err
	}
	opts.HTTPPort, opts.HTTPSPort = cfg.HTTPPort.Value, cfg.HTTPSPort.Value
	xml, err := esxi.RuleXML(esxi.Services(opts.HTTPPort, opts.HTTPSPort))
	if err != nil {
		return usagef("%w", err)
	}
	ts, err := opts.targets(env)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Kind != target.KindSSH {
			return usagef("target %s: the ESXi firewall rule goes on an ESXi host over SSH, not on a %s node", t, t.Kind)
		}
	}
	if len(ts) == 0 {
		if opts.Remove {
			return usagef("--remove needs --target or --nodes")
		}
		_, err := env.Stdout.Write(xml)
		return err
	}
	signers, err := opts.signers()
	if err != nil {
		return err
	}
	eo := esxi.Options{File: opts.File, Esxcli: opts.Esxcli}
	out := newReporter(env.Stdout, opts.JSON)
	password := opts.password(ctx, env)
	var (
		mu     sync.Mutex
		failed int
	)
	orchestrator.Each(ctx, len(ts), opts.Parallel, func(i int) {
		t := ts[i]
		name := t.String()
		msg, err := func() (string, error) {
			conn, err := opts.dial(ctx, t, password, signers)
			if err != nil {
				return "", err
			}
			defer conn.Close()
			if opts.Remove {
				removed, err := esxi.Remove(ctx, conn, eo)
				if err != nil || !removed {
					return "no rule file " + opts.File + "; nothing to remove", err
				}
				return "removed " + opts.File + "; firewall refreshed", nil
			}
			if err := esxi.Install(ctx, conn, xml, eo); err != nil {
				return "", err
			}
			return fmt.Sprintf("installed %s (outbound tcp %d, %d); firewall refreshed", opts.File, opts.HTTPPort, opts.HTTPSPort), nil
		}()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			out.notice(name, "esxi firewall rule: "+err.Error())
			return
		}
		out.notice(name, msg)
	})
	if ctx.Err() != nil {
		return errCancelled
	}
	if failed > 0 {
		return &nodesError{failed: failed, total: len(ts)}
	}
	return nil
}

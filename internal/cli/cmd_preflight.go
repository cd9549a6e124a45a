package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/preflight"
	"github.com/fleetup/fleetup/target"
	"github.com/fleetup/fleetup/transport"
)

type preflightOptions struct {
	nodeOptions
	Kind       string
	HopTimeout time.Duration
	HTTPPort   int
	HTTPSPort  int
}

// runPreflight checks every hop a deploy will need between the manager and
// each target, in its own direction, and prints a table (or a JSON line per
// node) with the command that would open each hop that is not open. It
// changes nothing on the nodes. A hop that would stop a deploy makes the
// exit code ExitNodes.
func runPreflight(ctx context.Context, env *Env, args []string) error {
	var opts preflightOptions
	fs := newFlags("preflight", env)
	opts.register(fs)
	fs.StringVar(&opts.Kind, "kind", "linux", "node kind, which decides the ports to check: linux, windows, vmware or bmc")
	fs.DurationVar(&opts.HopTimeout, "hop-timeout", preflight.DefaultTimeout, "bound on each hop; a hop with no answer by then is filtered")
	pf := registerPortFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (targets go after --target)", fs.Arg(0))
	}
	kind, err := preflight.ParseKind(opts.Kind)
	if err != nil {
		return usagef("--kind: %w", err)
	}
	if opts.HopTimeout <= 0 {
		return usagef("--hop-timeout %v: must be positive", opts.HopTimeout)
	}
	cfg, err := pf.load(env, fs)
	if err != nil {
		return err
	}
	opts.HTTPPort, opts.HTTPSPort = cfg.HTTPPort.Value, cfg.HTTPSPort.Value
	opts.applyPorts(cfg)
	ts, err := opts.targets(env)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		return usagef("preflight needs --target or --nodes")
	}
	signers, err := opts.signers()
	if err != nil {
		return err
	}
	password := opts.password(ctx, env)
	reports := make([]*preflight.Report, len(ts))
	orchestrator.Each(ctx, len(ts), opts.Parallel, func(i int) {
		reports[i] = preflightNode(ctx, &opts, kind, ts[i], password, signers)
	})
	if ctx.Err() != nil {
		return errCancelled
	}
	printPreflight(env, opts.JSON, reports)
	failed := 0
	for _, r := range reports {
		if r.Problems() > 0 {
			failed++
		}
	}
	if failed > 0 {
		return &nodesError{failed: failed, total: len(reports), what: "have a hop that is not open (marked !)"}
	}
	return nil
}

// preflightNode checks one target. A node that SSH cannot reach (or a kind
// without SSH) still gets its manager-to-node hops checked.
func preflightNode(ctx context.Context, opts *preflightOptions, kind preflight.Kind, t target.Target, password func() ([]byte, error), signers []gossh.Signer) *preflight.Report {
	name := t.String()
	switch t.Kind {
	case target.KindBMC:
		kind = preflight.BMC
	case target.KindWindows:
		kind = preflight.Windows
	}
	popts := preflight.Options{
		Node:         name,
		Kind:         kind,
		Addr:         t.Host,
		ManagerPorts: []int{opts.HTTPPort, opts.HTTPSPort},
		EnginePort:   opts.EnginePort,
		BMCPort:      t.Port,
		Timeout:      opts.HopTimeout,
	}
	var conn transport.Conn
	var note string
	if kind == preflight.Linux || (kind == preflight.Windows && t.Kind != target.KindWindows) {
		c, err := opts.dial(ctx, t, password, signers)
		if err != nil {
			note = "ssh: " + err.Error()
		} else {
			defer c.Close()
			conn = c
			popts.Password = opts.sudoPassword(t, password)
		}
	}
	rep, err := preflight.Run(ctx, conn, popts)
	if rep == nil {
		rep = &preflight.Report{Node: name, Kind: kind, Addr: t.Host, FirewallKind: "unknown"}
		rep.Notes = append(rep.Notes, "preflight: "+err.Error())
		rep.Hops = append(rep.Hops, preflight.Hop{From: "manager", To: name, Status: preflight.Error, Detail: err.Error(), Problem: true})
	}
	if note != "" {
		rep.Notes = append([]string{note}, rep.Notes...)
	}
	if t.Kind == target.KindWindows {
		rep.Notes = append(rep.Notes, "a Windows node reached over SMB runs nothing for a preflight: its way back to the manager is tested by a deploy, whose engine tries the manager's https port as it starts; when it cannot reach it, the manager pushes the payloads over SMB instead and says so")
	}
	if kind == preflight.BMC {
		rep.Notes = append(rep.Notes, "a BMC's way back to the manager (its pull of the image from the manager's ports) cannot be tested from here: a deploy tries it, and pushes the image instead when the pull does not arrive")
	}
	return rep
}

func printPreflight(env *Env, asJSON bool, reports []*preflight.Report) {
	out := newReporter(env.Stdout, asJSON)
	if asJSON {
		for _, r := range reports {
			out.line(struct {
				Type string `json:"type"`
				*preflight.Report
			}{"preflight", r})
		}
		return
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tFIREWALL\tFROM\tTO\tPORT\tSTATUS\tTOOK\tPURPOSE")
	for _, r := range reports {
		for _, h := range r.Hops {
			status := h.Status
			if h.Problem {
				status += " !"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Node, r.FirewallKind, h.From, h.To, h.Port, status, h.Took.Round(time.Millisecond), h.Purpose)
		}
	}
	tw.Flush()
	for _, r := range reports {
		for _, n := range r.Notes {
			fmt.Fprintf(env.Stdout, "\n%s: %s\n", r.Node, n)
		}
		for _, h := range r.Hops {
			if h.Note != "" {
				fmt.Fprintf(env.Stdout, "\n%s: %s -> %s port %d: %s\n", r.Node, h.From, h.To, h.Port, h.Note)
			}
			if h.Status == preflight.Open {
				continue
			}
			fmt.Fprintf(env.Stdout, "\n%s: %s -> %s port %d: %s\n", r.Node, h.From, h.To, h.Port, h.Detail)
			if h.Fix != "" {
				fmt.Fprintf(env.Stdout, "  to open it, run on the %s: %s\n", h.FixOn, h.Fix)
			}
		}
	}
}

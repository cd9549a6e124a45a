package cli

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/managerfw"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/target"
	"github.com/fleetup/fleetup/wire"
)

type cleanupOptions struct {
	nodeOptions
	All   bool
	Runs  stringList
	Local bool
}

// runCleanup removes what interrupted runs left on nodes: it places a
// fresh engine on each node and has it sweep (engine directories,
// processes, firewall rules tagged fleetup:RUN), then says what it removed.
func runCleanup(ctx context.Context, env *Env, args []string) error {
	var opts cleanupOptions
	fs := newFlags("cleanup", env)
	opts.register(fs)
	fs.BoolVar(&opts.All, "all", false, "also stop engines that still run (another manager's live run included)")
	fs.Var(&opts.Runs, "run", "a run id whose leftovers go even if its engine still runs (repeatable)")
	fs.BoolVar(&opts.Local, "local", false, "remove the rules --open-firewall left in this machine's firewall by managers that died")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (targets go after --target)", fs.Arg(0))
	}
	ts, err := opts.targets(env)
	if err != nil {
		return err
	}
	if opts.Local {
		if len(ts) > 0 {
			return usagef("--local cleans this machine only; run the nodes' clean-up separately")
		}
		return cleanupLocal(ctx, env, &opts)
	}
	if len(ts) == 0 {
		return usagef("cleanup needs --target or --nodes (or --local for this machine's firewall)")
	}
	signers, err := opts.signers()
	if err != nil {
		return err
	}
	stateDir := opts.StateDir
	if stateDir == "" {
		stateDir = runstate.DefaultDir()
	}
	jr, err := runstate.Open(stateDir)
	if err != nil {
		return usagef("--state-dir: %w", err)
	}
	out := newReporter(env.Stdout, opts.JSON)
	password := opts.password(ctx, env)
	runID := "cleanup-" + newRunID()
	var mu sync.Mutex
	failed := 0
	var journalErrs []error // what the journal could not record
	orchestrator.Each(ctx, len(ts), opts.Parallel, func(i int) {
		t := ts[i]
		name := t.String()
		runs := append([]string(nil), opts.Runs...)
		recs, jerr := jr.ForNode(name)
		if jerr != nil {
			out.notice(name, "journal: "+jerr.Error())
		}
		for _, r := range recs {
			runs = append(runs, r.RunID)
		}
		if t.Kind == target.KindBMC {
			out.notice(name, "nothing to remove: nothing is placed on a BMC, and a Redfish session a killed run left ends at the BMC's own session timeout")
			return
		}
		rep, err := func() (*wire.CleanupReport, error) {
			if t.Kind == target.KindWindows {
				n := opts.nodes(ctx, []target.Target{t}, password, signers)[0]
				return n.Opener.(*manager.WindowsNode).SweepAll(ctx, name, runs, opts.All)
			}
			conn, err := opts.dial(ctx, t, password, signers)
			if err != nil {
				return nil, err
			}
			return agent.Sweep(ctx, name, conn, agent.RemoteOptions{
				RunID:    runID,
				Password: opts.sudoPassword(t, password),
				Engine:   func(goarch string) (string, error) { return agent.FindEngine(goarch, runtime.GOARCH) },
			}, runs, opts.All)
		}()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			out.notice(name, "clean-up failed: "+err.Error())
			return
		}
		for _, r := range recs {
			// ErrUnknownRun: the run's last node was cleaned (and
			// the run removed) by a concurrent clean-up already.
			if err := jr.MarkCleaned(r.RunID, name); err != nil && !errors.Is(err, runstate.ErrUnknownRun) {
				out.notice(name, "removed, but the journal still lists it: "+err.Error())
				journalErrs = append(journalErrs, err)
			}
		}
		if opts.JSON {
			out.line(struct {
				Type string `json:"type"`
				*wire.CleanupReport
			}{"cleanup", rep})
		} else if rep.Empty() {
			out.notice(name, "nothing to remove")
		} else {
			out.notice(name, "removed "+agent.Describe(rep))
		}
	})
	if ctx.Err() != nil {
		return errCancelled
	}
	if failed > 0 {
		return &nodesError{failed: failed, total: len(ts)}
	}
	if len(journalErrs) > 0 {
		return fmt.Errorf("journal %s: %w", stateDir, errors.Join(journalErrs...))
	}
	return nil
}

// cleanupLocal removes from this machine's firewall what --open-firewall
// runs whose manager died left there (with --all, live runs' rules too),
// and the FTP credentials files of dead runs, and says what it removed.
// Whether a run's manager died is runstate's rule (pid and start time) for
// both.
func cleanupLocal(ctx context.Context, env *Env, opts *cleanupOptions) error {
	out := newReporter(env.Stdout, opts.JSON)
	l := &managerfw.Local{JournalDir: opts.StateDir}
	removed, err := l.CleanupLocal(context.WithoutCancel(ctx), opts.All)
	dir := opts.StateDir
	if dir == "" {
		dir = runstate.DefaultDir()
	}
	creds, cerr := runstate.RemoveStaleFTPCredentials(dir)
	removed = append(removed, creds...)
	err = errors.Join(err, cerr)
	if opts.JSON {
		out.line(struct {
			Type    string   `json:"type"`
			Removed []string `json:"removed"`
		}{"cleanup-local", append([]string{}, removed...)})
	} else if len(removed) == 0 && err == nil {
		out.notice("", "local firewall: nothing to remove")
	}
	for _, r := range removed {
		if !opts.JSON {
			out.notice("", "local firewall: removed "+r)
		}
	}
	if err != nil {
		return fmt.Errorf("local firewall clean-up: %w", err)
	}
	return nil
}

package cli

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/engine"
	"github.com/fleetup/fleetup/journal"
	sshtr "github.com/fleetup/fleetup/transport/ssh"
)

type cleanupOptions struct {
	nodeOptions
	All  bool
	Runs stringList
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
	if err := parse(fs, args); err != nil {
		return err
	}
	ts, err := opts.targets(env)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		return usagef("cleanup needs --target or --nodes")
	}
	signers, err := opts.signers()
	if err != nil {
		return err
	}
	stateDir := opts.StateDir
	if stateDir == "" {
		stateDir = journal.DefaultDir()
	}
	jr, err := journal.Open(stateDir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	out := newReporter(env.Stdout, opts.JSON)
	password := opts.password(ctx, env)
	runID := "cleanup-" + newRunID()
	var mu sync.Mutex
	failed := 0
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := t.String()
			runs := append([]string(nil), opts.Runs...)
			recs, jerr := jr.ForNode(name)
			if jerr != nil {
				out.notice(name, "journal: "+jerr.Error())
			}
			for _, r := range recs {
				runs = append(runs, r.RunID)
			}
			rep, err := func() (*engine.CleanupReport, error) {
				conn, err := sshtr.Dial(ctx, t.Addr(), sshtr.Options{
					User: t.User, Password: password, Signers: signers, UseAgent: !opts.NoAgent,
					KnownHostsFile: opts.knownHosts(), AcceptNewHostKeys: opts.AcceptNewHostKeys, Timeout: opts.ConnectTimeout,
				})
				if err != nil {
					return nil, err
				}
				var pw func() ([]byte, error)
				if t.User != "root" {
					pw = (&remoteSetup{opts: &opts.nodeOptions, password: password}).sudoPassword()
				}
				return agent.Sweep(ctx, name, conn, agent.RemoteOptions{
					RunID:    runID,
					Password: pw,
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
				_ = jr.MarkCleaned(r.RunID, name)
			}
			if opts.JSON {
				out.line(struct {
					Type string `json:"type"`
					*engine.CleanupReport
				}{"cleanup", rep})
			} else if rep.Empty() {
				out.notice(name, "nothing to remove")
			} else {
				out.notice(name, "removed "+agent.Describe(rep))
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return errCancelled
	}
	if failed > 0 {
		return &nodesError{failed: failed, total: len(ts)}
	}
	return nil
}


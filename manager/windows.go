package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetup/fleetup/agent"
	"github.com/fleetup/fleetup/agent/windows"
	"github.com/fleetup/fleetup/pki"
	"github.com/fleetup/fleetup/transport/smb"
	"github.com/fleetup/fleetup/wire"
)

// WindowsNode opens a Windows node: an SMB session to its ADMIN$ share
// (NTLMv2, signed, encrypted on SMB 3), then the engine copied there, run
// as the run's temporary service and connected to (windows.NewRemote).
type WindowsNode struct {
	// Addr is the node's host:port (445 by default).
	Addr string
	// Domain and User log on; Password gives the password.
	Domain   string
	User     string
	Password func() ([]byte, error)
	// RequireEncryption refuses a node whose SMB session is not encrypted
	// (an SMB 2.x server): --smb-encrypt.
	RequireEncryption bool
	// MinDialect is the oldest SMB dialect accepted (SMB 2.1 when 0);
	// lowered only for a test stand-in that speaks SMB 2.0.2.
	MinDialect     smb.Dialect
	ConnectTimeout time.Duration
	// Engine returns the engine's Windows build for an architecture
	// (agent.FindWindowsEngine when nil).
	Engine             func(goarch string) (string, error)
	EnginePort         int
	EnginePortExplicit bool
	IdleTimeout        time.Duration
	// PushPayloads always sends the payloads over SMB (else only when the
	// node cannot reach the manager's depot).
	PushPayloads bool
}

// dial opens the SMB session.
func (w *WindowsNode) dial(ctx context.Context) (*smb.Session, error) {
	user := w.User
	if user == "" {
		user = "Administrator"
	}
	return smb.Dial(ctx, w.Addr, smb.Options{
		User:              user,
		Domain:            w.Domain,
		Password:          w.Password,
		RequireEncryption: w.RequireEncryption,
		MinDialect:        w.MinDialect,
		Timeout:           w.ConnectTimeout,
	})
}

// Open implements Opener. Leftovers of the runs the journal names for the
// node (their services and directories) are removed first.
func (w *WindowsNode) Open(ctx context.Context, name string, run *Env) (agent.Agent, error) {
	sess, err := w.dial(ctx)
	if err != nil {
		return nil, err
	}
	notice := func(msg string) { run.Notice(name, msg) }
	if runs := run.SweepRuns(name); len(runs) > 0 {
		rep, err := sweep(ctx, sess, runs, false)
		switch {
		case err != nil:
			notice("removing leftovers of an earlier run failed: " + err.Error())
		case !rep.Empty():
			notice("removed leftovers of an earlier run: " + agent.Describe(rep))
		}
	}
	rem, err := windows.NewRemote(ctx, name, sess, windows.RemoteOptions{
		RunID:              run.RunID,
		Node:               name,
		Engine:             w.Engine,
		CA:                 run.CA,
		Manager:            run.Manager,
		DepotPort:          run.DepotPort,
		EnginePort:         w.EnginePort,
		EnginePortExplicit: w.EnginePortExplicit,
		IdleTimeout:        w.IdleTimeout,
		PushPayloads:       w.PushPayloads,
		SweepRuns:          run.SweepRuns(name),
		Placed:             run.Placed(name),
		Removed:            run.Removed(name),
		Notice:             notice,
	})
	if err != nil {
		return nil, err
	}
	return rem, nil
}

// Sweep removes what the runs named left on the node (their services,
// directories; see windows.Sweep), as `fleetup cleanup` does.
func (w *WindowsNode) Sweep(ctx context.Context, name string, runs []string) (*wire.CleanupReport, error) {
	return w.SweepAll(ctx, name, runs, false)
}

// SweepAll is Sweep that, with all, also removes every run's directory
// and service found under C:\Windows\Temp (`fleetup cleanup --all`).
func (w *WindowsNode) SweepAll(ctx context.Context, name string, runs []string, all bool) (*wire.CleanupReport, error) {
	sess, err := w.dial(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := sweep(ctx, sess, runs, all)
	sess.Close()
	if rep != nil {
		rep.Node = name
	}
	// The firewall rules of runs whose engine died: only something
	// running on the node removes them. A fresh engine does, as it
	// starts (SweepRuns), and then removes itself.
	var left []string
	if rep != nil {
		kept := rep.Errors[:0]
		for _, e := range rep.Errors {
			found := false
			for _, r := range runs {
				if e == windows.RuleMayBeLeft(r) {
					left, found = append(left, r), true
				}
			}
			if !found {
				kept = append(kept, e)
			}
		}
		rep.Errors = kept
	}
	if len(left) > 0 {
		swept, serr := w.sweepRules(ctx, name, left)
		if serr != nil {
			// Said with the command that removes it by hand.
			for _, r := range left {
				rep.Errors = append(rep.Errors, windows.RuleMayBeLeft(r)+" ("+serr.Error()+")")
			}
		}
		rep.Merge(swept)
	}
	return rep, err
}

// sweepRules starts a fresh engine on the node for a clean-up run of its
// own (its own CA and certificates) with runs in its SweepRuns, which
// removes their firewall rules as it starts, and closes it again.
func (w *WindowsNode) sweepRules(ctx context.Context, name string, runs []string) (*wire.CleanupReport, error) {
	id := "cleanup-" + NewRunID()
	ca, err := pki.NewCA(id)
	if err != nil {
		return nil, err
	}
	mgr, err := ca.Issue(pki.ManagerName, nil)
	if err != nil {
		return nil, err
	}
	sess, err := w.dial(ctx)
	if err != nil {
		return nil, err
	}
	rem, err := windows.NewRemote(ctx, name, sess, windows.RemoteOptions{
		RunID: id, Node: name, Engine: w.Engine, CA: ca, Manager: mgr,
		EnginePort: w.EnginePort, EnginePortExplicit: w.EnginePortExplicit, IdleTimeout: w.IdleTimeout,
		SweepRuns: runs,
	})
	if err != nil {
		return nil, fmt.Errorf("start an engine to remove the firewall rules of %v: %w", runs, err)
	}
	swept := rem.Swept()
	if _, err := rem.Close(context.WithoutCancel(ctx)); err != nil {
		return swept, fmt.Errorf("the clean-up engine: %w", err)
	}
	return swept, nil
}

// sweep runs windows.Sweep on sess with a service manager of its own.
func sweep(ctx context.Context, sess *smb.Session, runs []string, all bool) (*wire.CleanupReport, error) {
	scm, err := sess.OpenSCM(ctx)
	if err != nil {
		rep, serr := windows.Sweep(ctx, sess, nil, runs, all)
		return rep, errors.Join(fmt.Errorf("the service manager: %w", err), serr)
	}
	defer scm.Close()
	return windows.Sweep(ctx, sess, scm, runs, all)
}

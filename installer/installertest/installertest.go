// Package installertest is the shared suite every installer.Installer
// passes. Each installer's test builds an Env on the machine the test runs
// on (a real fwupdtool with fwupd's test device, a real dpkg on a
// temporary root, a real rpm on a temporary database, a real shell) and
// calls Run, which probes, installs a good payload, fails on a bad one,
// reinstalls with the rewrite option, and cancels an install that is under
// way, checking that no process carrying the runner's marker survives.
//
// Whether to install at all (update, rewrite, downgrade) is decided by
// analysis, elsewhere; the suite does not test that.
package installertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/proc"
)

// Case is a component with its payload.
type Case struct {
	Component *fleetup.Component
	Path      string
	// Before is the version Probe reports before any install ("" none).
	Before string
	// ErrContains is text that a failing install's error must contain.
	ErrContains string
	// Ready is text the install prints once it is well under way (the
	// slow case); the suite cancels when it appears.
	Ready string
}

// Env is what one installer's test gives the suite.
type Env struct {
	Installer installer.Installer
	// Marker is the marker of the Runner the installers were built on.
	Marker string
	// Inventory collects the node's inventory now.
	Inventory func(ctx context.Context) *fleetup.Inventory
	// Good installs; Good.Component.Version is installed afterwards.
	Good Case
	// Bad is applicable but fails to install (a corrupt payload).
	Bad Case
	// WrongTarget does not apply to this node.
	WrongTarget *fleetup.Component
	// Slow runs until cancelled, printing Slow.Ready first. It is
	// installed with SlowInstaller, or Installer when that is nil.
	Slow          Case
	SlowInstaller installer.Installer
	// NoReadBack, when set, says why the installed version cannot be read
	// back after an install; the suite then relies on Verify.
	NoReadBack string
	// Verify, when set, checks that the good install really happened.
	Verify func(t *testing.T)
}

// installTimeout bounds every install, so a broken installer fails the
// test instead of hanging it.
const installTimeout = 3 * time.Minute

// Run runs the suite. Its subtests depend on each other and run in order.
func Run(t *testing.T, env Env) {
	ctx := context.Background()
	in := env.Installer
	t.Cleanup(func() {
		if pids, _ := proc.KillMarked(env.Marker, 2*time.Second); len(pids) > 0 {
			t.Errorf("killed processes left with marker %s: %v", env.Marker, pids)
		}
	})

	if in.Kind() != env.Good.Component.Kind {
		t.Fatalf("installer kind %q, good component kind %q", in.Kind(), env.Good.Component.Kind)
	}

	t.Run("ProbeWrongTarget", func(t *testing.T) {
		p, err := in.Probe(ctx, env.WrongTarget, env.Inventory(ctx))
		if err != nil {
			t.Fatal(err)
		}
		if p.Applicable || p.Reason == "" || p.ComponentID != env.WrongTarget.ID {
			t.Errorf("Probe = %+v, want not applicable with a reason", p)
		}
	})

	t.Run("ProbeBefore", func(t *testing.T) {
		probeWant(t, in, env.Inventory(ctx), env.Good.Component, env.Good.Before)
	})

	t.Run("InstallBad", func(t *testing.T) {
		var log bytes.Buffer
		o, err := install(t, in, env.Bad, installer.Options{Log: &log})
		if err == nil {
			t.Fatalf("install of %s succeeded, want an error", env.Bad.Path)
		}
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), env.Bad.ErrContains) {
			t.Errorf("error %q does not contain %q", err, env.Bad.ErrContains)
		}
		checkOutput(t, o, log.String())
		noneMarked(t, env.Marker)
		if env.NoReadBack == "" {
			probeWant(t, in, env.Inventory(ctx), env.Good.Component, env.Good.Before)
		}
	})

	t.Run("InstallGood", func(t *testing.T) {
		var log bytes.Buffer
		o, err := install(t, in, env.Good, installer.Options{Log: &log})
		if err != nil {
			t.Fatalf("install: %v\noutput:\n%s", err, log.String())
		}
		checkOutput(t, o, log.String())
		if o.RebootNeeded != env.Good.Component.Reboot {
			t.Errorf("RebootNeeded = %v, component's Reboot %v", o.RebootNeeded, env.Good.Component.Reboot)
		}
		noneMarked(t, env.Marker)
		if env.NoReadBack == "" {
			probeWant(t, in, env.Inventory(ctx), env.Good.Component, env.Good.Component.Version)
		} else {
			t.Logf("version not read back: %s", env.NoReadBack)
		}
		if env.Verify != nil {
			env.Verify(t)
		}
	})

	t.Run("Rewrite", func(t *testing.T) {
		o, err := install(t, in, env.Good, installer.Options{Rewrite: true})
		if err != nil {
			t.Fatalf("reinstall with Rewrite: %v\noutput:\n%s", err, o.Output)
		}
		noneMarked(t, env.Marker)
		if env.NoReadBack == "" {
			probeWant(t, in, env.Inventory(ctx), env.Good.Component, env.Good.Component.Version)
		}
	})

	t.Run("CancelledBeforeStart", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := in.Install(cctx, env.Good.Component, env.Good.Path, installer.Options{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Install with a cancelled context: %v, want context.Canceled", err)
		}
		noneMarked(t, env.Marker)
	})

	t.Run("CancelMidInstall", func(t *testing.T) {
		slow := env.SlowInstaller
		if slow == nil {
			slow = in
		}
		cctx, cancel := context.WithTimeout(ctx, installTimeout)
		defer cancel()
		w := &watch{want: env.Slow.Ready, ready: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			_, err := slow.Install(cctx, env.Slow.Component, env.Slow.Path, installer.Options{Log: w})
			done <- err
		}()
		var err error
		select {
		case <-w.ready:
			select {
			case err := <-done:
				t.Fatalf("slow install ended as soon as it printed %q: %v\noutput:\n%s", env.Slow.Ready, err, w.String())
			default:
			}
			if pids, _ := proc.Marked(env.Marker); len(pids) == 0 {
				t.Errorf("install printed %q but no process carries marker %s", env.Slow.Ready, env.Marker)
			}
			cancel()
			err = <-done
		case err = <-done:
			t.Fatalf("slow install ended before printing %q: %v\noutput:\n%s", env.Slow.Ready, err, w.String())
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled install returned %v, want context.Canceled", err)
		}
		noneMarked(t, env.Marker)
	})
}

func install(t *testing.T, in installer.Installer, c Case, opts installer.Options) (installer.Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	return in.Install(ctx, c.Component, c.Path, opts)
}

func probeWant(t *testing.T, in installer.Installer, inv *fleetup.Inventory, c *fleetup.Component, want string) {
	t.Helper()
	p, err := in.Probe(context.Background(), c, inv)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Applicable || p.Installed != want || p.Reason == "" || p.ComponentID != c.ID {
		t.Errorf("Probe = %+v, want applicable, installed %q, with a reason", p, want)
	}
}

// checkOutput checks that Outcome.Output is the tail of what reached the
// log, at most installer.OutputTail bytes.
func checkOutput(t *testing.T, o installer.Outcome, log string) {
	t.Helper()
	if len(o.Output) > installer.OutputTail {
		t.Errorf("Output has %d bytes, more than %d", len(o.Output), installer.OutputTail)
	}
	if !strings.HasSuffix(log, o.Output) {
		t.Errorf("Output %q is not the tail of the log %q", o.Output, log)
	}
}

// noneMarked fails t when processes carrying marker remain. Killed
// processes take a moment to go, so it waits for them (not a timing
// assertion: a process that stays is the failure).
func noneMarked(t *testing.T, marker string) {
	t.Helper()
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if pids, err = proc.Marked(marker); err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			return
		}
	}
	var desc []string
	for _, pid := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		desc = append(desc, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	t.Errorf("processes with marker %s remain: %s", marker, strings.Join(desc, "; "))
}

// watch is a log that closes ready once want has been written to it.
type watch struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	ready chan struct{}
	done  bool
}

func (w *watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.ready)
	}
	return len(p), nil
}

func (w *watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

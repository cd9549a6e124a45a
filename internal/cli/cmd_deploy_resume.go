package cli

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/target"
)

// resumeConflicts are the deploy flags that would change what a resumed
// run does: with --resume the run's own options hold (the run history),
// and giving one of these is refused, naming it. Everything else may be
// given: the credentials (which the history never holds), --parallel,
// timeouts of the manager's own, its ports, --json, --state-dir, and an
// HP SUM input file for its passwords (PWD=), whose targets must then be
// the run's and whose options must not change it (checkResume).
var resumeConflicts = []string{
	"target", "nodes", "user", "bmc-user",
	"baseline", "dry-run", "downgrade", "rewrite", "on-failed-dependency",
	"canary", "max-failures", "health-command", "health-timeout",
	"fwupd-plugins", "tunnel", "engine-port",
	"reboot", "reboot-always", "reboot-delay", "reboot-message", "reboot-timeout",
}

// registerResume adds deploy's --resume.
func (o *deployOptions) registerResume(fs *flag.FlagSet) {
	fs.StringVar(&o.Resume, "resume", "", "resume run RUN (its id, or latest): the nodes it ended complete or reboot-needed are not touched again, the others are worked on with its options; give the credentials again")
}

// loadResume, with --resume, reads the run to resume from the run
// history and takes its options into o. It refuses a flag that would
// change them, a run the history does not hold, one still running, and a
// dry run. Without --resume it returns nil.
func (o *deployOptions) loadResume() (*runstate.RunRecord, error) {
	if o.Resume == "" {
		return nil, nil
	}
	for _, f := range resumeConflicts {
		if o.setFlags[f] {
			return nil, usagef("--%s cannot be used with --resume: the resumed run does what run %s did, on its nodes, with its baseline and options", f, o.Resume)
		}
	}
	rec, err := manager.LoadResume(o.StateDir, o.Resume)
	if err != nil {
		if errors.Is(err, runstate.ErrRunNotRecorded) {
			return nil, usagef("--resume %s: %w (fleetup deploy records its runs in --state-dir; give the one the run used)", o.Resume, err)
		}
		return nil, usagef("--resume %s: %w", o.Resume, err)
	}
	ro := rec.Options
	o.Baseline = ro.Baseline
	o.DryRun, o.Downgrade, o.Rewrite = ro.DryRun, ro.Downgrade, ro.Rewrite
	if ro.OnFailedDependency != "" {
		o.OnFailedDependency = ro.OnFailedDependency
	}
	o.Canary = ro.Canary
	o.maxFailures = nil
	if ro.MaxFailures != "" {
		l, err := orchestrator.ParseFailureLimit(ro.MaxFailures)
		if err != nil {
			return nil, usagef("--resume %s: its --max-failures: %w", rec.RunID, err)
		}
		o.maxFailures = &l
	}
	o.HealthCommand = ro.HealthCommand
	if ro.HealthTimeout > 0 {
		o.HealthTimeout = ro.HealthTimeout
	}
	o.FwupdPlugins = strings.Join(ro.FwupdPlugins, ",")
	o.Tunnel = ro.Tunnel
	if ro.EnginePort != 0 {
		o.EnginePort, o.EnginePortExplicit = ro.EnginePort, true
	}
	if ro.Parallel > 0 && !o.setFlags["parallel"] {
		o.Parallel = ro.Parallel
	}
	o.Reboot, o.RebootAlways = false, false
	if r := ro.Reboot; r != nil {
		o.Reboot, o.RebootAlways, o.RebootMessage = r.Enabled, r.Always, r.Message
		if r.Delay > 0 {
			o.RebootDelay = r.Delay
		}
		if r.Timeout > 0 {
			o.RebootTimeout = r.Timeout
		}
	}
	return rec, nil
}

// runTargets are the run's targets: those the user named, or, for a
// resume, the resumed run's, as it recorded them (user, port, server). An
// input file given with --resume, for its passwords, must name exactly
// the run's targets.
func (o *deployOptions) runTargets(env *Env, rec *runstate.RunRecord) ([]target.Target, error) {
	named, err := o.targets(env) // with --resume only an input file's
	if err != nil || rec == nil {
		return named, err
	}
	if o.InputFile != "" {
		if err := sameTargets(rec, named); err != nil {
			return nil, usagef("--resume %s: --inputfile %s: %w", rec.RunID, o.InputFile, err)
		}
	}
	var ts []target.Target
	for _, rt := range rec.Options.Targets {
		t, err := target.Parse(rt.Target)
		if err != nil {
			return nil, usagef("--resume %s: its target %q: %w", rec.RunID, rt.Target, err)
		}
		if err := o.complete(&t); err != nil {
			return nil, err
		}
		t.Server = rt.Server
		ts = append(ts, t)
	}
	return ts, nil
}

// sameTargets returns nil when named are the targets of rec's run, or
// an error naming those that are not and those missing.
func sameTargets(rec *runstate.RunRecord, named []target.Target) error {
	want := map[string]bool{}
	for _, rt := range rec.Options.Targets {
		want[rt.Target] = true
	}
	var extra, missing []string
	got := map[string]bool{}
	for _, t := range named {
		got[t.String()] = true
		if !want[t.String()] {
			extra = append(extra, t.String())
		}
	}
	for _, rt := range rec.Options.Targets {
		if !got[rt.Target] {
			missing = append(missing, rt.Target)
		}
	}
	var parts []string
	if len(extra) > 0 {
		parts = append(parts, "names "+strings.Join(extra, ", ")+", not of the run")
	}
	if len(missing) > 0 {
		parts = append(parts, "does not name "+strings.Join(missing, ", "))
	}
	if len(parts) == 0 {
		return nil
	}
	return errors.New(strings.Join(parts, "; ") + ": a resume works on the run's nodes, the input file only gives their passwords")
}

// checkResume refuses a resume whose baseline is no longer what the
// resumed run deployed, and one whose input file's options (SOURCEPATH,
// DRYRUN, DOWNGRADE, REWRITE, the reboot keys) would change what it does.
func (o *deployOptions) checkResume(rec *runstate.RunRecord, comps []*fleetup.Component) error {
	if rec == nil {
		return nil
	}
	ro := rec.Options
	then := o.history(nil, nil)
	var diffs []string
	differ := func(what string, now, was any) {
		if now != was {
			diffs = append(diffs, fmt.Sprintf("%s %v, the run's %v", what, now, was))
		}
	}
	differ("baseline (SOURCEPATH)", then.Baseline, ro.Baseline)
	differ("dry run (DRYRUN)", then.DryRun, ro.DryRun)
	differ("downgrade (DOWNGRADE)", then.Downgrade, ro.Downgrade)
	differ("rewrite (REWRITE)", then.Rewrite, ro.Rewrite)
	var nowReboot, wasReboot runstate.RebootRecord
	if then.Reboot != nil {
		nowReboot = *then.Reboot
	}
	if ro.Reboot != nil {
		wasReboot = *ro.Reboot
	}
	differ("reboot (REBOOTALLOWED, REBOOTALWAYS, REBOOTDELAY, REBOOTMESSAGE)", fmt.Sprintf("%+v", nowReboot), fmt.Sprintf("%+v", wasReboot))
	if len(diffs) > 0 {
		return usagef("--resume %s: --inputfile %s would change what the run does: %s", rec.RunID, o.InputFile, strings.Join(diffs, "; "))
	}
	if err := manager.BaselineChanged(rec, comps); err != nil {
		return usagef("--resume %s: %w", rec.RunID, err)
	}
	return nil
}

// history are the options of a deploy as the run history records them,
// to repeat the run: never a password or any other credential. Nil for
// an inventory, which is not recorded.
func (o *deployOptions) history(ts []target.Target, comps []*fleetup.Component) *runstate.RunOptions {
	if o.inventory {
		return nil
	}
	dir, err := filepath.Abs(o.Baseline)
	if err != nil {
		dir = o.Baseline
	}
	ro := &runstate.RunOptions{
		Baseline:           dir,
		Components:         manager.ComponentRefs(comps),
		DryRun:             o.DryRun,
		Downgrade:          o.Downgrade,
		Rewrite:            o.Rewrite,
		OnFailedDependency: o.OnFailedDependency,
		Canary:             o.Canary,
		HealthCommand:      o.HealthCommand,
		HealthTimeout:      o.HealthTimeout,
		Parallel:           o.Parallel,
		FwupdPlugins:       o.plugins(),
		Tunnel:             o.Tunnel,
	}
	if o.maxFailures != nil {
		ro.MaxFailures = o.maxFailures.String()
	}
	if o.EnginePortExplicit {
		ro.EnginePort = o.EnginePort
	}
	if r := o.rebootOptions(); r.Enabled || r.Always {
		ro.Reboot = &runstate.RebootRecord{Enabled: r.Enabled, Always: r.Always, Delay: r.Delay, Message: r.Message, Timeout: r.Timeout}
	}
	for _, t := range serverOrder(ts) {
		ro.Targets = append(ro.Targets, runstate.RunTarget{Target: t.String(), Server: t.Server})
	}
	return ro
}

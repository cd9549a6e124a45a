package windows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/fleetup/fleetup/wire"
)

// Sweep removes what the runs named left on a Windows node: each run's
// service fleetup-<run> (stopped, which has a live engine clean up after
// itself, firewall rule included, then deleted) and its directory
// C:\Windows\Temp\fleetup-<run>. With all, every run whose directory is
// under C:\Windows\Temp is swept too. A run whose engine died without
// cleaning up may leave its firewall rule "fleetup:<run>": nothing on the
// node can remove it without a program running there, so the report's
// Errors say so, with the command that removes it. svc may be nil (the
// service manager refused): then services are said, not removed.
func Sweep(ctx context.Context, files Files, svc Services, runs []string, all bool) (*wire.CleanupReport, error) {
	rep := &wire.CleanupReport{}
	var errs []error
	set := map[string]bool{}
	for _, r := range runs {
		set[r] = true
	}
	if all {
		list, err := files.ReadDir(ctx, TempDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s\\%s: %w", WindowsDir, TempDir, err))
		}
		for _, fi := range list {
			if fi.IsDir() && strings.HasPrefix(fi.Name(), wire.DirPrefix) {
				set[strings.TrimPrefix(fi.Name(), wire.DirPrefix)] = true
			}
		}
	}
	var ids []string
	for r := range set {
		if r != "" && !strings.ContainsAny(r, `\/:*?"<>|`) && r != "." && r != ".." {
			ids = append(ids, r)
		}
	}
	sort.Strings(ids)
	for _, run := range ids {
		name := ServiceName(run)
		serviceLeft := false
		if svc != nil {
			existed, err := stopAndDelete(ctx, svc, name)
			if err != nil {
				errs = append(errs, err)
			} else if existed {
				rep.Processes = append(rep.Processes, "service "+name)
				serviceLeft = true
			}
		} else {
			errs = append(errs, fmt.Errorf("the service %s, if any, was not removed: no service manager", name))
		}
		dir := ShareDir(run)
		// A stopped engine's report says what it removed (its firewall
		// rule among it).
		engineReported := false
		if b, err := files.ReadFile(ctx, dir+`\`+CleanupFile, maxCleanupSize); err == nil {
			var r wire.CleanupReport
			if json.Unmarshal(b, &r) == nil {
				rep.Merge(&r)
				engineReported = true
			}
		}
		existed, err := files.Exists(ctx, dir)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("check %s: %w", NodeDir(run), err))
		case existed:
			if err := files.RemoveAll(ctx, dir, removeWait); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", NodeDir(run), err))
			} else {
				rep.Files = append(rep.Files, NodeDir(run))
			}
		}
		if (existed || serviceLeft) && !engineReported {
			rep.Errors = append(rep.Errors, RuleMayBeLeft(run))
		}
	}
	return rep, errors.Join(errs...)
}

// RuleMayBeLeft is what Sweep says of a run whose engine did not report
// its own clean-up: its firewall rule may still be on the node. A fresh
// engine started with the run in its SweepRuns removes it.
func RuleMayBeLeft(run string) string {
	return fmt.Sprintf("the firewall rule of run %s may be left if its engine died: remove it on the node with `netsh advfirewall firewall delete rule name=\"fleetup:%s\"`", run, run)
}

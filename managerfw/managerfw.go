// Package managerfw opens the manager's own ports (its web server's HTTP
// and HTTPS ports, FTP and its passive range when on) in the firewall of
// the machine the manager runs on, for any source address of IPv4 and
// IPv6, and closes them again: fleetup's --open-firewall (HP SUM's
// open_firewall, Linux only).
//
// It drives whichever firewall the machine uses: firewalld through
// firewall-cmd when "firewall-cmd --state" says it is running (runtime
// changes only, never --permanent), otherwise the iptables and nftables
// backends of package firewall that have input filtering in place. A
// machine whose firewall filters nothing gets no rule.
//
// The contract: after Open and Close (or, when the manager died, after
// CleanupLocal) the machine's ruleset is exactly what it was before, as
// printed by iptables-save, ip6tables-save and nft list ruleset (counters
// aside); rules and ports that were not fleetup's are never touched (a
// firewalld port that was already open is left alone, and not closed).
// The iptables and nftables rules carry the comment Tag(runID); what a run
// opened is also written, before any rule is made, to a state file
// localfw/RUNID.json under /run/fleetup (the same for every manager on the
// machine, whatever its journal directory) together with the manager's
// pid and start time, so that CleanupLocal can tell the rules of a manager
// that died from those of one that runs and can undo firewalld ports,
// which carry no comment. The state files, their atomic writes and the
// liveness rule are package runstate's.
//
// Open does not catch signals: the caller closes the Opened it got when it
// exits, also when SIGINT or SIGTERM cancelled its context, with a context
// that is not cancelled (context.WithoutCancel).
package managerfw

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/runstate"
)

// tagRun is what a manager's tag puts between firewall.TagPrefix and the
// run id, so that a node engine running on the manager's own machine for
// the same run (tag "fleetup:RUN", removed by prefix) never removes the
// manager's rules.
const tagRun = "mgr-"

// Tag returns the comment of the rules the manager of run runID adds:
// "fleetup:mgr-RUNID".
func Tag(runID string) string { return firewall.TagPrefix + tagRun + runID }

// Local is the firewall of the machine the manager runs on. The zero value
// is the real machine, with the default state and journal directories.
type Local struct {
	// Runner runs the firewall tools; nil for the local machine as is.
	// Tests set its Prefix to run inside a network namespace.
	Runner *proc.Runner
	// StateDir is where state files go, in its subdirectory localfw
	// (DefaultStateDir when empty).
	StateDir string
	// JournalDir is the journal whose live runs CleanupLocal leaves alone
	// besides those with a state file (runstate.DefaultDir() when empty):
	// a local node engine's rules have no state file.
	JournalDir string
	// Cmd runs firewall-cmd; Runner when nil. Tests give a fake.
	Cmd Commander

	// all replaces firewall.All in tests that fake firewall-cmd.
	all func() []firewall.Backend
}

// Opened is what one Open made. Close undoes it.
type Opened struct {
	l         *Local
	runID     string
	tag       string
	ports     []int
	firewalld []FirewalldPort
	state     *runstate.FirewallState // what the state file says
	rules     []string
}

// Open opens ports for TCP from any source of IPv4 and IPv6 in the local
// firewall for run runID (letters, digits, '.', '_', '-'), with the
// zero Local.
func Open(ctx context.Context, runID string, ports []int) (*Opened, error) {
	return (&Local{}).Open(ctx, runID, ports)
}

// CleanupLocal removes, with the zero Local, what managers that died left
// open; see Local.CleanupLocal.
func CleanupLocal(ctx context.Context, all bool) ([]string, error) {
	return (&Local{}).CleanupLocal(ctx, all)
}

func (l *Local) runner() *proc.Runner {
	if l.Runner != nil {
		return l.Runner
	}
	return &proc.Runner{}
}

func (l *Local) backends() []firewall.Backend {
	if l.all != nil {
		return l.all()
	}
	return firewall.All(l.runner())
}

func (l *Local) cmd() Commander {
	if l.Cmd != nil {
		return l.Cmd
	}
	return l.runner()
}

// DefaultStateDir holds the state files of every manager on this machine
// that opened its firewall, whatever journal directory each run uses, so
// that CleanupLocal sees all of them. It is under /run: the state goes
// when the rules do, at reboot.
const DefaultStateDir = runstate.DefaultRunDir

func (l *Local) stateDir() string { return runstate.FirewallDir(l.StateDir) }

// checkPorts refuses ports outside 1-65535 and returns them sorted
// without duplicates.
func checkPorts(ports []int) ([]int, error) {
	if len(ports) == 0 {
		return nil, errors.New("open firewall: no ports")
	}
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("open firewall: port %d out of range 1-65535", p)
		}
	}
	out := slices.Clone(ports)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Open opens ports (each for TCP, from any source of both families) in the
// machine's firewall, tagged Tag(runID), and returns what it opened. It
// writes the state file first. When any part fails it undoes the rest and
// returns the error: the firewall is then as it was.
func (l *Local) Open(ctx context.Context, runID string, ports []int) (*Opened, error) {
	tag := Tag(runID)
	if runID == "" || runID[0] == '.' || runID[0] == '-' {
		return nil, fmt.Errorf("open firewall: run id %q: must start with a letter or digit", runID)
	}
	if err := (firewall.Rule{Tag: tag, Port: 1, Source: firewall.AnyIPv4, AnySource: true}).Validate(); err != nil {
		return nil, fmt.Errorf("open firewall: run id %q: %w", runID, err)
	}
	ports, err := checkPorts(ports)
	if err != nil {
		return nil, err
	}
	o := &Opened{l: l, runID: runID, tag: tag, ports: ports, state: newState(runID, tag, ports)}
	if err := writeState(l.stateDir(), o.state, nil); err != nil {
		return nil, fmt.Errorf("open firewall: %w", err)
	}
	fail := func(err error) (*Opened, error) {
		if _, cerr := o.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", cerr))
		}
		return nil, fmt.Errorf("open firewall: %w", err)
	}
	if fw := newFirewalld(l.cmd()); fw.running(ctx) {
		added, err := fw.open(ctx, ports, func(p FirewalldPort) error {
			o.firewalld = append(o.firewalld, p)
			return writeState(l.stateDir(), o.state, o.firewalld)
		})
		o.rules = append(o.rules, describeAll(added)...)
		if err != nil {
			return fail(err)
		}
		return o, nil
	}
	backends, err := firewall.Detect(ctx, l.runner())
	if err != nil {
		return fail(err)
	}
	for _, b := range backends {
		for _, p := range ports {
			for _, src := range []firewall.Rule{
				{Tag: tag, Port: p, Source: firewall.AnyIPv4, AnySource: true},
				{Tag: tag, Port: p, Source: firewall.AnyIPv6, AnySource: true},
			} {
				if err := b.Allow(ctx, src); err != nil {
					return fail(fmt.Errorf("%s: %w", b.Name(), err))
				}
			}
		}
		listed, err := b.List(ctx, tag)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", b.Name(), err))
		}
		o.rules = append(o.rules, listed...)
	}
	return o, nil
}

// Tag returns the comment of the opened rules.
func (o *Opened) Tag() string { return o.tag }

// Ports returns the ports opened, sorted.
func (o *Opened) Ports() []int { return slices.Clone(o.ports) }

// Rules describes, one line each, the rules Open added: none when the
// firewall filters nothing.
func (o *Opened) Rules() []string { return slices.Clone(o.rules) }

// Close removes every rule Open added (from every iptables and nftables
// backend present, by tag, and the firewalld ports Open added), then the
// state file, and returns a description of each rule it removed. After a
// failure the state file stays, for CleanupLocal. Closing again removes
// nothing more.
func (o *Opened) Close(ctx context.Context) ([]string, error) {
	removed, errs := o.l.remove(ctx, o.tag, o.firewalld)
	o.firewalld = nil
	if errs != nil {
		return removed, fmt.Errorf("close firewall: %w", errs)
	}
	if err := removeState(o.l.stateDir(), o.runID); err != nil {
		return removed, fmt.Errorf("close firewall: %w", err)
	}
	return removed, nil
}

// remove takes away the rules tagged tag and the firewalld ports fw.
func (l *Local) remove(ctx context.Context, tag string, fw []FirewalldPort) ([]string, error) {
	var (
		removed []string
		errs    []error
	)
	// Ports added at runtime went with the firewalld that had them.
	if fwd := newFirewalld(l.cmd()); len(fw) > 0 && fwd.running(ctx) {
		gone, err := fwd.close(ctx, fw)
		removed = append(removed, describeAll(gone)...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, b := range l.backends() {
		gone, err := b.Remove(ctx, tag)
		removed = append(removed, gone...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
		}
	}
	return removed, errors.Join(errs...)
}

// tagPattern finds fleetup tags in a backend's rule descriptions, which
// quote each rule's comment.
var tagPattern = regexp.MustCompile(regexp.QuoteMeta(firewall.TagPrefix) + `[A-Za-z0-9._-]+`)

// runOfTag returns the run id of a tag: "fleetup:mgr-RUN" (a manager's) and
// "fleetup:RUN" (a node engine's on this machine) are both run RUN's.
func runOfTag(tag string) string {
	id := strings.TrimPrefix(tag, firewall.TagPrefix)
	return strings.TrimPrefix(id, tagRun)
}

// CleanupLocal removes from the local firewall what runs whose manager no
// longer runs left there: every rule tagged with firewall.TagPrefix (the
// manager's, Tag(run), and a local node engine's, "fleetup:RUN") whose run
// has neither a state file of a live manager nor a journal entry of a live
// manager, and the firewalld ports their state files list. With all it
// removes every fleetup rule, live runs' included. It returns a description
// of each rule it removed, and removes the state files of the runs it
// cleaned. A run whose state file cannot be read or parsed is named in the
// error and, but with all, taken for live: whether its manager runs is
// unknown. A rule whose tag is a prefix of a live run's tag is left, since
// removing it would take the live run's rules too, and reported in the
// error.
func (l *Local) CleanupLocal(ctx context.Context, all bool) ([]string, error) {
	var errs []error
	states, err := readStates(l.stateDir())
	if err != nil {
		errs = append(errs, err)
	}
	live := map[string]bool{}
	if !all {
		for _, s := range states {
			if s.Liveness.Alive {
				live[s.RunID] = true
			}
		}
		// A run whose state file cannot be read (named in errs) may have a
		// live manager: its rules stay until the file is fixed or --all.
		for _, id := range unreadableRuns(l.stateDir(), states) {
			live[id] = true
		}
		dir := l.JournalDir
		if dir == "" {
			dir = runstate.DefaultDir()
		}
		if _, err := os.Stat(dir); err == nil {
			jr, err := runstate.Open(dir)
			if err != nil {
				errs = append(errs, err)
			} else {
				runs, err := jr.Pending()
				if err != nil {
					errs = append(errs, err)
				}
				for _, r := range runs {
					if r.Alive {
						live[r.RunID] = true
					}
				}
			}
		}
	}
	var removed []string
	// Firewalld ports and state files of dead runs.
	for _, s := range states {
		if live[s.RunID] {
			continue
		}
		gone, err := l.remove(ctx, s.Tag, firewalldPorts(s))
		removed = append(removed, gone...)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", s.RunID, err))
			continue
		}
		if err := removeState(l.stateDir(), s.RunID); err != nil {
			errs = append(errs, err)
		}
	}
	// Tagged rules of dead runs that no state file names (a local node
	// engine's, or a state file lost).
	var tags, keep []string
	for _, b := range l.backends() {
		listed, err := b.List(ctx, firewall.TagPrefix)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
			continue
		}
		for _, d := range listed {
			for _, tag := range tagPattern.FindAllString(d, -1) {
				if live[runOfTag(tag)] {
					keep = append(keep, tag)
				} else {
					tags = append(tags, tag)
				}
			}
		}
	}
	slices.Sort(tags)
	for _, tag := range slices.Compact(tags) {
		if i := slices.IndexFunc(keep, func(k string) bool { return strings.HasPrefix(k, tag) }); i >= 0 {
			errs = append(errs, fmt.Errorf("rules tagged %s left: removing them would remove the live run's %s too", tag, keep[i]))
			continue
		}
		gone, err := l.remove(ctx, tag, nil)
		removed = append(removed, gone...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("clean up local firewall: %w", errors.Join(errs...))
	}
	return removed, nil
}

//go:build !windows

package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/wire"
)

// SweepOptions choose what a sweep removes.
type SweepOptions struct {
	// Runs are run ids whose leftovers go even if their engine still runs
	// (the manager's journal says the run is over).
	Runs []string
	// All removes every fleetup leftover, live engines included.
	All bool
	// Keep is a directory never touched (the sweeping engine's own).
	Keep string
	// Roots are the directories searched for engine directories; the
	// usual temporary and home directories when empty.
	Roots []string

	// dirsOnly limits the sweep to the directories under Roots and their
	// engines: no marked processes, no firewall rules. Tests set it, so
	// that they never reach what other runs on the machine own.
	dirsOnly bool
}

// DefaultRoots are where the manager may have placed an engine directory.
func DefaultRoots() []string {
	roots := []string{os.TempDir(), "/tmp", "/var/tmp", "/dev/shm", "/root"}
	homes, _ := filepath.Glob("/home/*")
	roots = append(roots, homes...)
	seen := map[string]bool{}
	var out []string
	for _, r := range roots {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// dirPattern is an engine directory's name: "fleetup-<run>.XXXXXX" (mktemp).
var dirPattern = regexp.MustCompile(`^` + wire.DirPrefix + `(.+)\.[A-Za-z0-9]{6}$`)

// MakeDir makes a fresh private directory (0700) for run under parent,
// named as the manager's scouting names them, so a sweep recognises it.
func MakeDir(parent, run string) (string, error) {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for i := 0; i < 100; i++ {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		for j := range b {
			b[j] = letters[int(b[j])%len(letters)]
		}
		dir := filepath.Join(parent, wire.DirPrefix+run+"."+string(b[:]))
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			return dir, nil
		}
		if !os.IsExist(err) {
			return "", err
		}
	}
	return "", fmt.Errorf("no free directory name under %s", parent)
}

// RunIDFromDir returns the run id in an engine directory name, or "" when
// the name is not exactly what the manager makes: a sweep never touches a
// directory whose name it did not make.
func RunIDFromDir(dir string) string {
	m := dirPattern.FindStringSubmatch(filepath.Base(dir))
	if m == nil || !ValidRunID(m[1]) {
		return ""
	}
	return m[1]
}

// Sweep removes what earlier runs left on this node: engine directories,
// engines and the processes their installs started, and firewall rules
// tagged with their run ids. A live engine of another run is left alone
// unless its run is named in opts.Runs or opts.All is set. It must run as
// root to see and stop everything.
//
// Engine directories may sit where others can write (/tmp, a login
// user's home), so nothing read from one is trusted blindly. A directory
// is considered only when it is a real directory (never a symbolic link)
// named as the manager names them and owned by root or by the sweeper's
// own user; one owned by anyone else is left alone and its run counted as
// live. Its state file is read only when it is a regular file (not a
// link) of root or of the sweeper. The PID it names is signalled only
// when that process is the run's engine (see checkEngine); any other
// process it names is reported in Errors and left alone.
func Sweep(ctx context.Context, opts SweepOptions) *wire.CleanupReport {
	rep := &wire.CleanupReport{}
	named := map[string]bool{}
	for _, r := range opts.Runs {
		named[r] = true
	}
	roots := opts.Roots
	if len(roots) == 0 {
		roots = DefaultRoots()
	}
	euid := os.Geteuid()
	dead := map[string]bool{}
	live := map[string]bool{}
	for _, root := range roots {
		dirs, _ := filepath.Glob(filepath.Join(root, wire.DirPrefix+"*"))
		for _, dir := range dirs {
			if opts.Keep != "" && sameDir(dir, opts.Keep) {
				continue
			}
			fi, err := os.Lstat(dir)
			if err != nil || !fi.IsDir() {
				continue // gone, a file, or a symbolic link: never followed
			}
			run := RunIDFromDir(dir)
			if run == "" {
				continue
			}
			if uid, ok := ownerOf(fi); !ok || (uid != 0 && uid != euid) {
				// Not made by root nor by us: nothing in it is ours to
				// act on, and the run may well be alive.
				if !named[run] && !opts.All {
					live[run] = true
				}
				continue
			}
			stateFile := filepath.Join(dir, StateFile)
			st, err := readState(stateFile, euid)
			var refused *refusedState
			if errors.As(err, &refused) {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s is %s; ignored", stateFile, refused.why))
			}
			var eng *os.Process
			if err == nil && st.PID > 0 {
				var why string
				eng, why = checkEngine(st.PID, dir, run, st)
				if why != "" {
					rep.Errors = append(rep.Errors, fmt.Sprintf("pid %d named by %s is not that run's engine (%s); left alone", st.PID, stateFile, why))
				}
			}
			if err != nil && time.Since(fi.ModTime()) < 10*time.Minute && !named[run] && !opts.All {
				// No state yet: an engine of another manager may be
				// starting right now.
				live[run] = true
				continue
			}
			if eng != nil && !named[run] && !opts.All {
				eng.Release()
				live[run] = true
				continue
			}
			if eng != nil {
				stopEngine(eng, 10*time.Second)
				eng.Release()
				rep.Processes = append(rep.Processes, fmt.Sprintf("engine pid %d of run %s", st.PID, run))
			}
			dead[run] = true
			if _, err := os.Lstat(dir); err == nil {
				// RemoveAll does not follow symbolic links inside dir.
				if err := os.RemoveAll(dir); err != nil {
					rep.Errors = append(rep.Errors, fmt.Sprintf("remove %s: %v", dir, err))
				} else {
					rep.Files = append(rep.Files, dir)
				}
			}
		}
	}
	if opts.dirsOnly {
		return rep
	}
	for r := range named {
		dead[r] = true
	}
	// Processes an install started that outlived their engine.
	if all, err := proc.Marked("*"); err == nil {
		for _, pid := range all {
			run := markerOf(pid)
			if !ValidRunID(run) || live[run] && !opts.All {
				// Only run ids are a run's marker (the engine refuses
				// any other); a process marked otherwise is not ours.
				continue
			}
			// A marked process of a run with no live engine (or any,
			// with All): its engine is gone, or to go.
			dead[run] = true
		}
	}
	for run := range dead {
		if run == "" {
			continue
		}
		killed, _ := killMarked(run, 3*time.Second)
		for _, k := range killed {
			rep.Processes = append(rep.Processes, k+" of run "+run)
		}
	}
	runner := &proc.Runner{}
	for _, b := range firewall.All(runner) {
		if opts.All {
			removed, err := b.Remove(ctx, firewall.TagPrefix)
			rep.Firewall = append(rep.Firewall, removed...)
			if err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			}
			continue
		}
		for run := range dead {
			removed, err := b.Remove(ctx, firewall.TagPrefix+run)
			rep.Firewall = append(rep.Firewall, removed...)
			if err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			}
		}
	}
	return rep
}

func sameDir(a, b string) bool {
	ca, err1 := filepath.EvalSymlinks(a)
	cb, err2 := filepath.EvalSymlinks(b)
	if err1 != nil || err2 != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return ca == cb
}

// ownerOf is the uid owning the file fi describes.
func ownerOf(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// maxStateSize bounds a state file: the engine writes a few hundred bytes.
const maxStateSize = 64 << 10

// refusedState is a state file readState will not read, for a reason
// worth reporting: someone other than root or the sweeper could have put
// it there.
type refusedState struct{ why string }

func (e *refusedState) Error() string { return "state file refused: " + e.why }

// readState reads the state file at path without following a symbolic
// link (O_NOFOLLOW) or blocking on a FIFO, and only when it is a regular
// file owned by root or by euid (else a *refusedState). A missing or
// half-written file is a plain error: the engine may be writing it.
func readState(path string, euid int) (State, error) {
	var st State
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return st, &refusedState{"a symbolic link"}
		}
		return st, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return st, err
	}
	if !fi.Mode().IsRegular() {
		return st, &refusedState{"not a regular file"}
	}
	if uid, ok := ownerOf(fi); !ok || (uid != 0 && uid != euid) {
		return st, &refusedState{fmt.Sprintf("owned by uid %d, neither root nor the sweeper", uid)}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return st, err
	}
	if len(b) > maxStateSize {
		return st, &refusedState{"larger than an engine writes"}
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, err
	}
	return st, nil
}

// startSlack allows for the rounding of the boot time (whole seconds) in
// a process's start time.
const startSlack = 2 * time.Second

// checkEngine decides whether pid, named by the state file of run's
// directory dir, is that run's engine, and returns a handle on it
// (pidfd-backed, so a signal through it can never reach a process that
// took the PID over later) when it is. It is when all of these hold:
//
//   - its executable (/proc/PID/exe) is the engine binary in dir itself,
//     or that file deleted;
//   - it runs as the sweeper's user (real and effective uid);
//   - it started no later than the state file's Started (give or take
//     startSlack): the engine writes the file after it starts, so a
//     process that took over a dead engine's PID started after it;
//   - it carries no run marker of another run (the engine itself is
//     started without one: sudo resets the environment and the run id
//     comes on its standard input, so the marker cannot be required).
//
// It returns nil and "" when pid is no process at all, and nil and the
// reason when pid is some other process.
func checkEngine(pid int, dir, run string, st State) (*os.Process, string) {
	if st.RunID != "" && st.RunID != run {
		return nil, fmt.Sprintf("the state file is of run %q", st.RunID)
	}
	// The handle first, then the checks: if the process we check is the
	// one the handle holds, signals go to it; if that one has ended
	// meanwhile, they go nowhere.
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil, ""
	}
	ok := false
	defer func() {
		if !ok {
			p.Release()
		}
	}()
	procDir := fmt.Sprintf("/proc/%d", pid)
	exe, err := os.Readlink(procDir + "/exe")
	if err != nil {
		if _, serr := os.Stat(procDir); errors.Is(serr, fs.ErrNotExist) {
			return nil, "" // gone
		}
		return nil, fmt.Sprintf("its executable cannot be read: %v", err)
	}
	want := filepath.Join(dir, wire.BinaryName)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		want = filepath.Join(real, wire.BinaryName)
	}
	if exe != want && exe != want+" (deleted)" {
		return nil, fmt.Sprintf("it runs %s, not %s", exe, want)
	}
	ruid, euid, err := procUIDs(pid)
	if err != nil {
		return nil, fmt.Sprintf("its user cannot be read: %v", err)
	}
	if me := os.Geteuid(); ruid != me || euid != me {
		return nil, fmt.Sprintf("it runs as uid %d (effective %d), not as the sweeper's %d", ruid, euid, me)
	}
	started, err := procStart(pid)
	if err != nil {
		return nil, fmt.Sprintf("its start time cannot be read: %v", err)
	}
	if st.Started.IsZero() {
		return nil, "the state file has no start time to check it against"
	}
	if started.After(st.Started.Add(startSlack)) {
		return nil, fmt.Sprintf("it started at %s, after the run's engine wrote its state at %s", started.Format(time.RFC3339), st.Started.Format(time.RFC3339))
	}
	if m := markerOf(pid); m != "" && m != run {
		return nil, fmt.Sprintf("it belongs to run %s", m)
	}
	ok = true
	return p, ""
}

// procUIDs returns the real and effective uid of pid.
func procUIDs(pid int) (ruid, euid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) < 2 {
				break
			}
			r, err1 := strconv.Atoi(f[0])
			e, err2 := strconv.Atoi(f[1])
			if err1 != nil || err2 != nil {
				break
			}
			return r, e, nil
		}
	}
	return 0, 0, errors.New("no Uid line in its status")
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's start time: 100 on
// every Linux architecture's user ABI.
const clockTicks = 100

// procStart is when pid started, from its start time in clock ticks since
// boot (/proc/PID/stat, field 22) and the boot time (/proc/stat btime).
func procStart(pid int) (time.Time, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, err
	}
	// The command name, field 2, is in parentheses and may hold anything;
	// the fields after its last ")" start with field 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return time.Time{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return time.Time{}, errors.New("malformed stat")
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("start time: %w", err)
	}
	boot, err := bootTime()
	if err != nil {
		return time.Time{}, err
	}
	return boot.Add(time.Duration(ticks) * (time.Second / clockTicks)), nil
}

func bootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("btime: %w", err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, errors.New("no btime in /proc/stat")
}

func markerOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return ""
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, proc.MarkerVar+"="); ok {
			return v
		}
	}
	return ""
}

// stopEngine asks the engine p to end (SIGTERM: an engine cleans up after
// itself), then kills it when it has not gone after grace. p is a pidfd
// handle: the signals reach that process or none.
func stopEngine(p *os.Process, grace time.Duration) {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return // gone already
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if p.Signal(syscall.Signal(0)) != nil || exited(p.Pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = p.Signal(syscall.SIGKILL)
}

// exited reports whether pid has ended (a zombie whose parent has not
// reaped it yet counts: it runs no more).
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

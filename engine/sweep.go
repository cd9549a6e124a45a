package engine

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/fleetup/fleetup/wire"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/firewall"
	"github.com/fleetup/fleetup/proc"
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

// runIDPattern is the shape of a run id: UTC date and time and six hex
// digits, as the manager makes them ("20261121-140501-a1b2c3"), or the same
// after "cleanup-" for the runs of `fleetup cleanup`.
var runIDPattern = regexp.MustCompile(`^(cleanup-)?[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$`)

// ValidRunID reports whether id has the shape of a run id.
func ValidRunID(id string) bool { return runIDPattern.MatchString(id) }

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
				continue
			}
			run := RunIDFromDir(dir)
			if run == "" {
				continue
			}
			var st State
			b, err := os.ReadFile(filepath.Join(dir, StateFile))
			if err == nil {
				_ = json.Unmarshal(b, &st)
			}
			alive := st.PID > 0 && engineAlive(st.PID)
			if err != nil && time.Since(fi.ModTime()) < 10*time.Minute && !named[run] && !opts.All {
				// No state yet: an engine of another manager may be
				// starting right now.
				live[run] = true
				continue
			}
			if alive && !named[run] && !opts.All {
				live[run] = true
				continue
			}
			if alive {
				stopPID(st.PID, 10*time.Second)
				rep.Processes = append(rep.Processes, fmt.Sprintf("engine pid %d of run %s", st.PID, run))
			}
			dead[run] = true
			if _, err := os.Stat(dir); err == nil {
				if err := os.RemoveAll(dir); err != nil {
					rep.Errors = append(rep.Errors, fmt.Sprintf("remove %s: %v", dir, err))
				} else {
					rep.Files = append(rep.Files, dir)
				}
			}
		}
	}
	for r := range named {
		dead[r] = true
	}
	// Processes an install started that outlived their engine.
	if all, err := proc.Marked("*"); err == nil {
		for _, pid := range all {
			run := markerOf(pid)
			if run == "" || live[run] && !opts.All {
				continue
			}
			if !dead[run] && !opts.All {
				// A marked process with no directory: its engine is gone.
				dead[run] = true
			}
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

// engineAlive reports whether pid is a running fleetup engine.
func engineAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), wire.BinaryName)
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

// stopPID asks pid to end (SIGTERM: an engine cleans up after itself), then
// kills it when it has not gone after grace.
func stopPID(pid int, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil || !engineAlive(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

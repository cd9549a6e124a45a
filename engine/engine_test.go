//go:build !windows

package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/wire"
)

func TestRunIDFromDir(t *testing.T) {
	tests := []struct{ dir, want string }{
		{"/tmp/fleetup-20261121-140501-a1b2c3.Ab12Cd", "20261121-140501-a1b2c3"},
		{"/home/u/fleetup-cleanup-20261121-140501-a1b2c3.xYz123", "cleanup-20261121-140501-a1b2c3"},
		{"/tmp/fleetup-20261121-140501-a1b2c3", ""},          // no mktemp suffix
		{"/tmp/fleetup-notes.backup", ""},                    // a user's own directory
		{"/tmp/fleetup-20261121-140501-A1B2C3.Ab12Cd", ""},   // upper-case hex is not ours
		{"/tmp/other-20261121-140501-a1b2c3.Ab12Cd", ""},     // another prefix
		{"/tmp/fleetup-20261121-140501-a1b2c3.Ab12Cd/x", ""}, // a file inside
	}
	for _, tt := range tests {
		if got := RunIDFromDir(tt.dir); got != tt.want {
			t.Errorf("RunIDFromDir(%q) = %q, want %q", tt.dir, got, tt.want)
		}
	}
}

// fakeInstaller records what it was asked to install.
type fakeInstaller struct{ installed []string }

func (f *fakeInstaller) Kind() fleetup.Kind { return fleetup.KindScript }
func (f *fakeInstaller) Probe(ctx context.Context, c *fleetup.Component, inv *fleetup.Inventory) (fleetup.Probe, error) {
	for _, id := range f.installed {
		if id == c.ID {
			return fleetup.Probe{Applicable: true, Installed: c.Version}, nil
		}
	}
	return fleetup.Probe{Applicable: true}, nil
}
func (f *fakeInstaller) Install(ctx context.Context, c *fleetup.Component, path string, opts installer.Options) (installer.Outcome, error) {
	f.installed = append(f.installed, c.ID)
	return installer.Outcome{}, nil
}

func component(t *testing.T, dir, id, content string) fleetup.Component {
	path := filepath.Join(dir, id+".sh")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	return fleetup.Component{ID: id, Version: "1.0", Kind: fleetup.KindScript, File: id + ".sh", Path: path, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
}

func TestServiceRefusesChangedPayload(t *testing.T) {
	dir := t.TempDir()
	fi := &fakeInstaller{}
	svc := &Service{Installers: map[fleetup.Kind]installer.Installer{fleetup.KindScript: fi}, Fetcher: FileFetcher{}, WorkDir: filepath.Join(dir, "work")}
	good := component(t, dir, "good", "echo good\n")
	bad := component(t, dir, "bad", "echo bad\n")
	if err := os.WriteFile(bad.Path, []byte("echo BAD\n"), 0o644); err != nil { // same size, other bytes
		t.Fatal(err)
	}
	res := svc.Install(context.Background(), wire.InstallRequest{Items: []wire.InstallItem{{Component: bad}, {Component: good}}}, func(fleetup.Event) {})
	if res[0].Phase != fleetup.PhaseFailed || res[1].Phase != fleetup.PhaseInstalled {
		t.Fatalf("phases %s, %s; want failed, installed", res[0].Phase, res[1].Phase)
	}
	if len(fi.installed) != 1 || fi.installed[0] != "good" {
		t.Errorf("installer was asked for %v; the changed payload must never reach it", fi.installed)
	}
	if res[1].After != "1.0" {
		t.Errorf("version read back %q, want 1.0", res[1].After)
	}
	entries, _ := os.ReadDir(svc.WorkDir)
	if len(entries) != 0 {
		t.Errorf("payloads left in the work dir: %v", entries)
	}
}

// The installer opens the payload by path: a file swapped or changed
// after its hash was checked must never reach it.
func TestServiceRefusesPayloadSwappedAfterVerification(t *testing.T) {
	tests := []struct {
		name     string
		root     bool
		swap     func(t *testing.T, path string)
		errorHas string
	}{
		{name: "replaced by a file with the same bytes", swap: func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "no longer the file that was written"},
		{name: "replaced by a symbolic link", swap: func(t *testing.T, path string) {
			other := filepath.Join(t.TempDir(), "other")
			data, _ := os.ReadFile(path)
			if err := os.WriteFile(other, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, path); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "symbolic link"},
		{name: "appended to", swap: func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteString("rm -rf /\n")
			f.Close()
		}, errorHas: "changed after verification"},
		{name: "made writable by others", swap: func(t *testing.T, path string) {
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "lets others in"},
		{name: "given to another user", root: true, swap: func(t *testing.T, path string) {
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "owned by uid 65534"},
		{name: "payload directory replaced", swap: func(t *testing.T, path string) {
			dir := filepath.Dir(path)
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(dir+".old", filepath.Base(path)))
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "payload directory "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			dir := t.TempDir()
			fi := &fakeInstaller{}
			svc := &Service{Installers: map[fleetup.Kind]installer.Installer{fleetup.KindScript: fi}, Fetcher: FileFetcher{}, WorkDir: filepath.Join(dir, "work")}
			swapped := false
			svc.afterVerify = func(path string) { tt.swap(t, path); swapped = true }
			c := component(t, dir, "x", "echo good\n")
			res := svc.Install(context.Background(), wire.InstallRequest{Items: []wire.InstallItem{{Component: c}}}, func(fleetup.Event) {})
			if !swapped {
				t.Fatal("the test hook was not called")
			}
			if len(fi.installed) != 0 || res[0].Phase != fleetup.PhaseFailed {
				t.Fatalf("phase %s, installer asked for %v: the swapped payload must be refused", res[0].Phase, fi.installed)
			}
			if !strings.Contains(res[0].Error, "refused before install") || !strings.Contains(res[0].Error, tt.errorHas) {
				t.Errorf("error %q, want one saying %q", res[0].Error, tt.errorHas)
			}
		})
	}
}

// The payload directory is the service's own: made 0700 by it, or, when
// it exists, exactly that; never a link, nor anyone else's.
func TestServiceWorkDir(t *testing.T) {
	tests := []struct {
		name     string
		root     bool
		setup    func(t *testing.T, work string)
		errorHas string
	}{
		{name: "made by the service", setup: func(t *testing.T, work string) {}},
		{name: "existing private directory", setup: func(t *testing.T, work string) {
			if err := os.Mkdir(work, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "symbolic link to a directory", setup: func(t *testing.T, work string) {
			if err := os.Symlink(t.TempDir(), work); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "symbolic link"},
		{name: "open to others", setup: func(t *testing.T, work string) {
			if err := os.Mkdir(work, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(work, 0o755); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "mode 0755"},
		{name: "another user's", root: true, setup: func(t *testing.T, work string) {
			if err := os.Mkdir(work, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(work, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "owned by uid 65534"},
		{name: "a file", setup: func(t *testing.T, work string) {
			if err := os.WriteFile(work, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, errorHas: "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			dir := t.TempDir()
			work := filepath.Join(dir, "work")
			tt.setup(t, work)
			fi := &fakeInstaller{}
			svc := &Service{Installers: map[fleetup.Kind]installer.Installer{fleetup.KindScript: fi}, Fetcher: FileFetcher{}, WorkDir: work}
			c := component(t, dir, "x", "echo good\n")
			res := svc.Install(context.Background(), wire.InstallRequest{Items: []wire.InstallItem{{Component: c}}}, func(fleetup.Event) {})
			if tt.errorHas == "" {
				if res[0].Phase != fleetup.PhaseInstalled {
					t.Fatalf("phase %s: %s", res[0].Phase, res[0].Error)
				}
				st, err := os.Lstat(work)
				if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
					t.Errorf("work dir %v, %v; want a directory with mode 0700", st, err)
				}
				return
			}
			if len(fi.installed) != 0 || !strings.Contains(res[0].Error, tt.errorHas) {
				t.Errorf("installed %v, error %q; want refused with %q", fi.installed, res[0].Error, tt.errorHas)
			}
		})
	}
}

func TestServiceCancelSkipsTheRest(t *testing.T) {
	dir := t.TempDir()
	fi := &fakeInstaller{}
	svc := &Service{Installers: map[fleetup.Kind]installer.Installer{fleetup.KindScript: fi}, Fetcher: FileFetcher{}, WorkDir: filepath.Join(dir, "work")}
	a, b := component(t, dir, "a", "a\n"), component(t, dir, "b", "b\n")
	res := svc.Install(context.Background(), wire.InstallRequest{Items: []wire.InstallItem{{Component: a}, {Component: b}}}, func(ev fleetup.Event) {
		if ev.Component == "a" && ev.Phase == fleetup.PhaseInstall {
			svc.Cancel()
		}
	})
	if res[0].Phase != fleetup.PhaseInstalled || res[1].Phase != fleetup.PhaseSkipped {
		t.Errorf("phases %s, %s; want installed (it had started), skipped", res[0].Phase, res[1].Phase)
	}
}

// runDir makes an engine directory of run under root holding a state file
// with pid and started.
func runDir(t *testing.T, root, run string, pid int, started time.Time) string {
	t.Helper()
	d := filepath.Join(root, wire.DirPrefix+run+".Ab12Cd")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	writeState(t, d, run, pid, started)
	return d
}

func writeState(t *testing.T, dir, run string, pid int, started time.Time) {
	t.Helper()
	b, _ := json.Marshal(State{RunID: run, PID: pid, Started: started})
	if err := os.WriteFile(filepath.Join(dir, StateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// child is a process a test started; done is closed when it has exited.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// killed reports whether the process has ended (waiting a little: a
// signal takes a moment).
func (c *child) killed() bool {
	select {
	case <-c.done:
		return true
	case <-time.After(200 * time.Millisecond):
		return false
	}
}

// start runs exe with args (argv[0] set to the engine's name, so that its
// command line looks like an engine's), reaped in the background and
// killed at the end of the test.
func start(t *testing.T, exe string, env []string, cred *syscall.Credential) *child {
	t.Helper()
	cmd := exec.Command(exe, "60")
	cmd.Args[0] = wire.BinaryName
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-c.done })
	return c
}

// engineCopy copies the sleep binary to dir as the engine binary: a
// process running it is, by /proc/PID/exe, that directory's engine.
func engineCopy(t *testing.T, dir string) string {
	t.Helper()
	src, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, wire.BinaryName)
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// sweep runs Sweep over root only, leaving the machine's marked processes
// and firewall alone.
func sweep(root string, runs ...string) *wire.CleanupReport {
	return Sweep(context.Background(), SweepOptions{Roots: []string{root}, Runs: runs, dirsOnly: true})
}

func TestSweepRemovesOnlyDeadRuns(t *testing.T) {
	root := t.TempDir()
	const liveRun = "20260101-000000-a11fe0"
	alive := filepath.Join(root, wire.DirPrefix+liveRun+".Ab12Cd")
	if err := os.Mkdir(alive, 0o700); err != nil {
		t.Fatal(err)
	}
	// A live engine: a process running the engine binary of its own
	// directory. Start returns after the exec, so the sweep sees the
	// binary, never the test's own.
	live := start(t, engineCopy(t, alive), nil, nil)
	writeState(t, alive, liveRun, live.pid(), time.Now())
	dead := runDir(t, root, "20260101-000000-dead00", 1<<22+1, time.Now()) // above any pid_max
	mine := filepath.Join(root, "fleetup-notes.backup")
	if err := os.MkdirAll(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	rep := sweep(root)
	for _, d := range []string{alive, mine} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: it belongs to a live run or is not ours", d)
		}
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead run's directory %s is still there", dead)
	}
	if len(rep.Files) != 1 || rep.Files[0] != dead {
		t.Errorf("report files %v, want [%s]", rep.Files, dead)
	}
	if len(rep.Errors) != 0 || live.killed() {
		t.Errorf("errors %v, engine killed %v: the live engine is an engine", rep.Errors, live.killed())
	}
	// Naming the live run removes it too, engine first.
	rep = sweep(root, liveRun)
	if _, err := os.Stat(alive); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("named run's directory %s is still there: %+v", alive, rep)
	}
	if len(rep.Processes) == 0 || !live.killed() {
		t.Errorf("the named run's engine was not stopped: %+v", rep)
	}
}

// A state file may name any PID (a login user can write one where the
// manager placed an engine, or the engine's PID was reused after it died):
// the sweep signals only the run's own engine.
func TestSweepLeavesOtherProcessesAlone(t *testing.T) {
	const run = "20260101-000000-0b0b0b"
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	otherRoot := t.TempDir()
	otherDir := runDir(t, otherRoot, "20260101-000000-07e700", 0, time.Now())
	otherEngine := engineCopy(t, otherDir)
	tests := []struct {
		name string
		// proc starts the process the state file names, in dir.
		proc    func(t *testing.T, dir string) *child
		started func() time.Time
		why     string
	}{
		{
			name:    "another program with the engine's name",
			proc:    func(t *testing.T, dir string) *child { return start(t, sleep, nil, nil) },
			started: time.Now,
			why:     "it runs " + sleep,
		},
		{
			name:    "another run's engine binary",
			proc:    func(t *testing.T, dir string) *child { return start(t, otherEngine, nil, nil) },
			started: time.Now,
			why:     "it runs " + otherEngine,
		},
		{
			name:    "started after the state was written",
			proc:    func(t *testing.T, dir string) *child { return start(t, engineCopy(t, dir), nil, nil) },
			started: func() time.Time { return time.Now().Add(-time.Hour) },
			why:     "after the run's engine wrote its state",
		},
		{
			name:    "no start time in the state",
			proc:    func(t *testing.T, dir string) *child { return start(t, engineCopy(t, dir), nil, nil) },
			started: func() time.Time { return time.Time{} },
			why:     "no start time",
		},
		{
			name: "marked with another run",
			proc: func(t *testing.T, dir string) *child {
				return start(t, engineCopy(t, dir), []string{"FLEETUP_RUN=20260101-000000-0the00"}, nil)
			},
			started: time.Now,
			why:     "belongs to run 20260101-000000-0the00",
		},
		{
			name: "another user's process",
			proc: func(t *testing.T, dir string) *child {
				if os.Geteuid() != 0 {
					t.Skip("needs root to start a process as another user")
				}
				// The other user must reach the binary.
				for d := dir; d != "/"; d = filepath.Dir(d) {
					if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir() {
						if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
							t.Fatal(err)
						}
					}
				}
				return start(t, engineCopy(t, dir), nil, &syscall.Credential{Uid: 65534, Gid: 65534})
			},
			started: time.Now,
			why:     "runs as uid 65534",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, wire.DirPrefix+run+".Ab12Cd")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			c := tt.proc(t, dir)
			writeState(t, dir, run, c.pid(), tt.started())
			// Named: the old sweep would have stopped anything whose
			// command line has the engine's name.
			rep := sweep(root, run)
			if c.killed() {
				t.Fatalf("pid %d was killed: %+v", c.pid(), rep)
			}
			if len(rep.Processes) != 0 {
				t.Errorf("processes %v reported stopped", rep.Processes)
			}
			want := fmt.Sprintf("pid %d named by %s is not that run's engine", c.pid(), filepath.Join(dir, StateFile))
			if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], want) || !strings.Contains(rep.Errors[0], "left alone") {
				t.Fatalf("errors %q, want one with %q", rep.Errors, want)
			}
			if !strings.Contains(rep.Errors[0], tt.why) {
				t.Errorf("error %q does not say %q", rep.Errors[0], tt.why)
			}
			// The run is over (named): its directory goes, the process
			// stays.
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the named run's directory is still there")
			}
		})
	}
}

// The engine's binary deleted (its directory half removed) is still the
// engine.
func TestSweepStopsEngineWithDeletedBinary(t *testing.T) {
	const run = "20260101-000000-de1e7e"
	root := t.TempDir()
	dir := filepath.Join(root, wire.DirPrefix+run+".Ab12Cd")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	exe := engineCopy(t, dir)
	c := start(t, exe, nil, nil)
	writeState(t, dir, run, c.pid(), time.Now())
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	rep := sweep(root, run)
	if !c.killed() || len(rep.Errors) != 0 {
		t.Errorf("engine killed %v, errors %v", c.killed(), rep.Errors)
	}
}

// Symbolic links are never followed: not a linked directory, not a linked
// state file; and a directory of another user is not touched.
func TestSweepSymlinksAndOwners(t *testing.T) {
	const run = "20260101-000000-11111c"
	root := t.TempDir()
	elsewhere := t.TempDir()
	// A real engine directory elsewhere, reached through a link that is
	// named as an engine directory.
	target := filepath.Join(elsewhere, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	eng := start(t, engineCopy(t, target), nil, nil)
	writeState(t, target, run, eng.pid(), time.Now())
	link := filepath.Join(root, wire.DirPrefix+run+".Ab12Cd")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// A directory whose state file is a link to the real state.
	const run2 = "20260101-000000-22222c"
	dir2 := filepath.Join(root, wire.DirPrefix+run2+".Ab12Cd")
	if err := os.Mkdir(dir2, 0o700); err != nil {
		t.Fatal(err)
	}
	eng2 := start(t, engineCopy(t, dir2), nil, nil)
	real2 := filepath.Join(elsewhere, "state.json")
	b, _ := json.Marshal(State{RunID: run2, PID: eng2.pid(), Started: time.Now()})
	if err := os.WriteFile(real2, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real2, filepath.Join(dir2, StateFile)); err != nil {
		t.Fatal(err)
	}
	rep := sweep(root, run, run2)
	if eng.killed() || eng2.killed() {
		t.Errorf("killed: through the linked directory %v, through the linked state file %v", eng.killed(), eng2.killed())
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("the link was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, StateFile)); err != nil {
		t.Errorf("the link's target was emptied: %v", err)
	}
	if _, err := os.Stat(real2); err != nil {
		t.Errorf("the state link's target was removed: %v", err)
	}
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "symbolic link") {
		t.Errorf("errors %q, want one about the linked state file", rep.Errors)
	}

	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	const run3 = "20260101-000000-33333c"
	dir3 := runDir(t, root, run3, 1<<22+1, time.Now())
	if err := os.Chown(dir3, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	rep = sweep(root, run3)
	if _, err := os.Stat(dir3); err != nil {
		t.Errorf("another user's directory was removed: %+v", rep)
	}
	// A state file of another user's making in our directory is ignored.
	const run4 = "20260101-000000-44444c"
	dir4 := filepath.Join(root, wire.DirPrefix+run4+".Ab12Cd")
	if err := os.Mkdir(dir4, 0o700); err != nil {
		t.Fatal(err)
	}
	eng4 := start(t, engineCopy(t, dir4), nil, nil)
	writeState(t, dir4, run4, eng4.pid(), time.Now())
	if err := os.Chown(filepath.Join(dir4, StateFile), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	rep = sweep(root, run4)
	if eng4.killed() {
		t.Errorf("the engine named by another user's state file was killed")
	}
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "owned by uid 65534") {
		t.Errorf("errors %q, want one about the state file's owner", rep.Errors)
	}
}

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/internal/testbaseline"
	"github.com/fleetup/fleetup/lab"
)

// fleet is the lab and everything the fleet benchmarks share.
type fleet struct {
	lab      *lab.Lab
	work     string // temporary directory, removed at the end
	bin      string // work/bin: fleetup, fleetup-engine (and fleetup-prof)
	baseline string // directory holding the one cab
	cab      string // the cab's path
	cabData  []byte
	plugins  string
	// cpu accounts the nodes' CPU; nil where it cannot.
	cpu *nodeCPU
}

// nodeCPUSince is the nodes' CPU since t0, a reading of f.nodeCPUNow.
func (f *fleet) nodeCPUSince(t0 time.Duration) time.Duration {
	if f.cpu == nil {
		return 0
	}
	return f.cpu.since(t0)
}

// nodeCPUNow reads the nodes' CPU so far (0 without the cgroup).
func (f *fleet) nodeCPUNow() time.Duration {
	if f.cpu == nil {
		return 0
	}
	t, _ := f.cpu.used()
	return t
}

// buildBinaries builds fleetup and fleetup-engine as scripts/demo.sh
// does for shipping (static, stripped), next to each other so fleetup finds
// its engine, and the profiling wrapper when asked.
func buildBinaries(ctx context.Context, dir string, withProf bool) error {
	builds := []struct{ out, pkg string }{
		{"fleetup", "./cmd/fleetup"},
		{"fleetup-engine", "./cmd/fleetup-engine"},
	}
	if withProf {
		builds = append(builds, struct{ out, pkg string }{"fleetup-prof", "./bench/fleetupprof"})
	}
	for _, bd := range builds {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, bd.out), bd.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s (run bench from the repository root): %w\n%s", bd.pkg, err, out)
		}
	}
	return nil
}

// newFleet builds the binaries and the baseline and starts a lab of n
// nodes. The caller must close it.
func (b *bench) newFleet(ctx context.Context, n int) (_ *fleet, err error) {
	work, err := os.MkdirTemp("", "fleetup-bench-")
	if err != nil {
		return nil, err
	}
	f := &fleet{work: work, bin: filepath.Join(work, "bin"), baseline: filepath.Join(work, "baseline"), plugins: b.cfg.Plugins}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if err := os.MkdirAll(f.bin, 0o755); err != nil {
		return f, err
	}
	if err := os.MkdirAll(f.baseline, 0o755); err != nil {
		return f, err
	}
	b.logf("building fleetup and fleetup-engine")
	if err := buildBinaries(ctx, f.bin, b.cfg.CPUProfile != ""); err != nil {
		return f, err
	}
	// A cab for fwupd's test device, as the integration tests flash it.
	f.cabData, err = testbaseline.FirmwareCab(testbaseline.Firmware{
		ID: "org.fleetup.bench.webcam", Version: "1.2.5", GUID: testbaseline.FakeDeviceGUID,
		Payload: bytes.Repeat([]byte("fleetup bench firmware\n"), 64),
	})
	if err != nil {
		return f, err
	}
	f.cab = filepath.Join(f.baseline, "webcam-1.2.5.cab")
	if err := os.WriteFile(f.cab, f.cabData, 0o644); err != nil {
		return f, err
	}
	b.logf("starting a lab of %d nodes", n)
	t0 := time.Now()
	f.lab, err = lab.Start(ctx, lab.Options{Nodes: n})
	if err != nil {
		return f, err
	}
	b.logf("lab up in %s", time.Since(t0).Round(time.Millisecond))
	var pids []int
	for _, n := range f.lab.Nodes {
		pids = append(pids, n.PID())
	}
	if f.cpu, err = newNodeCPU(pids); err != nil {
		b.logf("no CPU accounting of the nodes: %v", err)
		f.cpu, err = nil, nil
	}
	return f, nil
}

func (f *fleet) close() error {
	var err error
	if f.lab != nil {
		err = f.lab.Close()
	}
	if f.cpu != nil {
		err = errors.Join(err, f.cpu.close())
	}
	return errors.Join(err, os.RemoveAll(f.work))
}

// reset puts every node back where each timed run starts: no gpg-agent
// left by an earlier fwupdtool (fleetup stops the ones its installs start,
// a plain fwupdtool leaves them). It is not timed.
func (f *fleet) reset(ctx context.Context, nodes []*lab.Node) {
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = n.Exec(ctx, "gpgconf", "--homedir", "/var/lib/fwupd/gnupg", "--kill", "gpg-agent")
		}()
	}
	wg.Wait()
}

// event is one --json line of fleetup.
type event struct {
	Type         string    `json:"type"`
	Time         time.Time `json:"time"`
	Node         string    `json:"node"`
	State        string    `json:"state"`
	Component    string    `json:"component"`
	Phase        string    `json:"phase"`
	Message      string    `json:"message"`
	Error        string    `json:"error"`
	CleanupError string    `json:"cleanup_error"`
}

// fleetupRun is one fleetup invocation measured.
type fleetupRun struct {
	Wall     time.Duration
	MaxRSS   int64         // bytes, the process's peak (ru_maxrss = VmHWM at exit)
	CPU      time.Duration // user+system of the fleetup process
	Started  time.Time
	Exited   time.Time
	Events   []event
	Results  []event
	ExitCode int
	Stderr   string
}

// runFleetup runs bin/fleetup with args plus --json and a fresh state dir,
// and times it from exec to exit.
func (f *fleet) runFleetup(ctx context.Context, binary string, env []string, args ...string) (*fleetupRun, error) {
	state, err := os.MkdirTemp(f.work, "state-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(state)
	args = append(args, "--json", "--state-dir", state)
	cmd := exec.CommandContext(ctx, filepath.Join(f.bin, binary), args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "FLEETUP_PASSWORD=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 3 * time.Minute // fleetup cleans up the nodes after a cancel
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r := &fleetupRun{}
	r.Started = time.Now()
	err = cmd.Run()
	r.Exited = time.Now()
	r.Wall = r.Exited.Sub(r.Started)
	r.Stderr = stderr.String()
	if ps := cmd.ProcessState; ps != nil {
		r.ExitCode = ps.ExitCode()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.MaxRSS = ru.Maxrss * 1024
		}
		r.CPU = ps.UserTime() + ps.SystemTime()
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ev event
		if jerr := json.Unmarshal(sc.Bytes(), &ev); jerr != nil {
			return r, fmt.Errorf("fleetup printed a line that is not JSON: %q", truncate(sc.Text(), 200))
		}
		switch ev.Type {
		case "event":
			r.Events = append(r.Events, ev)
		case "result":
			r.Results = append(r.Results, ev)
		}
	}
	if err != nil {
		return r, fmt.Errorf("fleetup %s: %w: %s", args[0], err, truncate(lastLines(r.Stderr, 5)+r.failedResults(), 2000))
	}
	if msg := r.failedResults(); msg != "" {
		return r, fmt.Errorf("fleetup %s: %s", args[0], msg)
	}
	return r, nil
}

func (r *fleetupRun) failedResults() string {
	var b strings.Builder
	for _, res := range r.Results {
		if res.State != "complete" || res.CleanupError != "" {
			fmt.Fprintf(&b, " %s: %s %s %s;", res.Node, res.State, res.Error, res.CleanupError)
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// Phases of a node's run, measured between fleetup's events.
const (
	phConnect   = "SSH + scout + engine upload + start + TLS" // scouting → inventory
	phInventory = "inventory"                                 // inventory → analysis
	phAnalysis  = "analysis (probe)"                          // analysis → deploy
	phDownload  = "payload download + verify"                 // deploy → component install
	phInstall   = "fwupdtool install"                         // component install → installed
	phCleanup   = "clean-up (engine, files, processes)"       // cleanup → end state
)

var phaseOrder = []string{phConnect, phInventory, phAnalysis, phDownload, phInstall, phCleanup}

// phases returns, for each phase, every node's time in it.
func (r *fleetupRun) phases() map[string][]time.Duration {
	type marks map[string]time.Time
	per := map[string]marks{}
	for _, ev := range r.Events {
		if ev.Node == "" {
			continue
		}
		m := per[ev.Node]
		if m == nil {
			m = marks{}
			per[ev.Node] = m
		}
		key := ev.State
		if ev.Component != "" {
			if ev.Phase == "" {
				continue
			}
			key = "component-" + ev.Phase
		}
		if _, seen := m[key]; !seen {
			m[key] = ev.Time
		}
	}
	out := map[string][]time.Duration{}
	span := func(name string, m marks, from string, to ...string) {
		a, ok := m[from]
		if !ok {
			return
		}
		for _, t := range to {
			if z, ok := m[t]; ok {
				out[name] = append(out[name], z.Sub(a))
				return
			}
		}
	}
	for _, m := range per {
		span(phConnect, m, "scouting", "inventory")
		span(phInventory, m, "inventory", "analysis", "cleanup")
		span(phAnalysis, m, "analysis", "deploy", "cleanup")
		span(phDownload, m, "deploy", "component-install")
		span(phInstall, m, "component-install", "component-installed", "component-failed")
		span(phCleanup, m, "cleanup", "complete", "failed", "reboot-needed", "cancelled")
	}
	return out
}

// managerOverhead is the time before the first node is worked on (process
// start, CA, depot) and after the last node ended (exit).
func (r *fleetupRun) managerOverhead() (before, after time.Duration) {
	var first, last time.Time
	for _, ev := range r.Events {
		if ev.State == "scouting" && (first.IsZero() || ev.Time.Before(first)) {
			first = ev.Time
		}
		if ev.Time.After(last) {
			last = ev.Time
		}
	}
	if first.IsZero() {
		return 0, 0
	}
	return first.Sub(r.Started), r.Exited.Sub(last)
}

func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func (f *fleet) targetArgs(nodes []*lab.Node) []string {
	var args []string
	for _, n := range nodes {
		args = append(args, "--target", "root@"+n.Addr())
	}
	args = append(args, "--identity", f.lab.KeyFile(), "--known-hosts", f.lab.KnownHostsFile(), "--no-agent",
		"--parallel", strconv.Itoa(len(nodes)))
	if f.plugins != "" {
		args = append(args, "--fwupd-plugins", f.plugins)
	}
	return args
}

// fleetupDeploy flashes the cab on nodes with the full engine cycle.
func (f *fleet) fleetupDeploy(ctx context.Context, binary string, env []string, nodes []*lab.Node) (*fleetupRun, error) {
	args := append([]string{"deploy", "--baseline", f.baseline}, f.targetArgs(nodes)...)
	r, err := f.runFleetup(ctx, binary, env, args...)
	if err != nil {
		return r, err
	}
	installed := 0
	for _, ev := range r.Events {
		if ev.Phase == "installed" {
			installed++
		}
	}
	if installed != len(nodes) {
		return r, fmt.Errorf("fleetup deploy: %d of %d nodes report the firmware installed", installed, len(nodes))
	}
	return r, nil
}

// fleetupInventory inventories nodes.
func (f *fleet) fleetupInventory(ctx context.Context, nodes []*lab.Node) (*fleetupRun, error) {
	args := append([]string{"inventory"}, f.targetArgs(nodes)...)
	return f.runFleetup(ctx, "fleetup", nil, args...)
}

// engineSizes are the bytes fleetup sends each node for its engine, and
// what they would be gzip-compressed.
func (f *fleet) engineSizes() (raw, gz int64, err error) {
	data, err := os.ReadFile(filepath.Join(f.bin, "fleetup-engine"))
	if err != nil {
		return 0, 0, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if _, err := zw.Write(data); err != nil {
		return 0, 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, 0, err
	}
	return int64(len(data)), int64(buf.Len()), nil
}

// cpuBusy returns the machine's busy CPU time so far (all cores), from
// /proc/stat.
func cpuBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

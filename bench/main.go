// Command bench measures fleetup where users compare it with other tools,
// side by side in one run, on the same lab nodes, alternating the
// contenders round by round:
//
//  1. fan-out deploy of fwupd's test-device firmware to N nodes: the real
//     fleetup binary against ansible-playbook (forks = N, pipelining,
//     ControlPersist);
//  2. inventory of the same nodes: fleetup inventory against ansible -m setup;
//  3. the floor: N bare SSH key logins running true from one Go process
//     (and the same logins doing the install by hand), and where fleetup's
//     time goes beyond it, from its --json event times;
//  4. serving: 50 clients downloading one large component at once from the
//     manager's depot (HTTP with a token, HTTPS with a client certificate)
//     against nginx serving the same file over the same protocol;
//  5. scale without sockets: 10,000 simulated nodes through the real
//     orchestrator: wall time and peak memory;
//  6. what one node costs: engine bytes, engine start-to-ready, manager
//     memory per concurrent node.
//
// Every figure that has a peer is a ratio measured in the same run; with
// several rounds each figure is the median with its spread (min–max). The
// table goes to stdout and, with -out, to a Markdown file. Run as root, from
// the repository root (it builds ./cmd/fleetup and ./cmd/fleetup-engine):
//
//	go run ./bench                      # defaults: -nodes 20,50 -rounds 3
//	go run ./bench -nodes 5,10 -rounds 1 -only deploy,floor
//
// It needs what the lab needs (see package lab), ansible-core and nginx.
// Everything it starts (lab nodes, nginx, the depot, ssh control masters)
// is stopped before it exits, also on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the benchmark's command line.
type config struct {
	Nodes        []int
	Rounds       int
	Only         map[string]bool
	Out          string
	ServeClients int
	ServeMiB     int
	SimNodes     int
	Plugins      string
	CPUProfile   string
	Perf         bool
	Verbose      bool
}

var sections = []string{"deploy", "inventory", "floor", "serve", "sim", "cost"}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-child" {
		os.Exit(runChild(os.Args[2], os.Args[3:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.String("nodes", "20,50", "fleet sizes for the fan-out deploy, comma-separated (the largest also runs inventory and the cost figures)")
	rounds := fs.Int("rounds", 3, "rounds; each figure is the median with min–max")
	only := fs.String("only", strings.Join(sections, ","), "sections to run: "+strings.Join(sections, ","))
	out := fs.String("out", "bench/RESULTS.md", "Markdown file for the results table (empty: stdout only)")
	clients := fs.Int("serve-clients", 50, "concurrent downloads in the serving benchmark")
	mib := fs.Int("serve-mib", 256, "size of the served component in MiB")
	sim := fs.Int("sim-nodes", 10000, "simulated nodes through the orchestrator")
	plugins := fs.String("fwupd-plugins", "test", "fwupd plugins both contenders load on the nodes (empty: all)")
	perf := fs.Bool("perf", false, "after the rounds, run one more deploy and inventory of each contender at the largest N under `perf record -a` and report the machine's CPU by program (needs linux-perf)")
	prof := fs.String("cpuprofile", "", "after the rounds, run one more fleetup deploy at the largest N with a CPU profile written to this file")
	verbose := fs.Bool("v", false, "log every run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c := &config{Rounds: *rounds, Out: *out, ServeClients: *clients, ServeMiB: *mib, SimNodes: *sim,
		Plugins: *plugins, CPUProfile: *prof, Perf: *perf, Verbose: *verbose, Only: map[string]bool{}}
	for _, s := range strings.Split(*nodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 250 {
			return nil, fmt.Errorf("-nodes %q: %q is not a node count 1..250", *nodes, s)
		}
		c.Nodes = append(c.Nodes, n)
	}
	slices.Sort(c.Nodes)
	c.Nodes = slices.Compact(c.Nodes)
	for _, s := range strings.Split(*only, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(sections, s) {
			return nil, fmt.Errorf("-only %q: unknown section %q (have %s)", *only, s, strings.Join(sections, ","))
		}
		c.Only[s] = true
	}
	if c.Rounds < 1 {
		return nil, fmt.Errorf("-rounds %d: at least 1", c.Rounds)
	}
	if c.ServeClients < 1 || c.ServeMiB < 1 || c.SimNodes < 1 {
		return nil, errors.New("-serve-clients, -serve-mib and -sim-nodes must be at least 1")
	}
	return c, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "bench:", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg, log: stderr, start: time.Now(), loadStart: loadAvg()}
	err = b.run(ctx)
	tbl := b.table()
	fmt.Fprintln(stdout, tbl)
	if cfg.Out != "" && len(b.rows) > 0 {
		if werr := b.writeResults(cfg.Out, tbl); werr != nil {
			fmt.Fprintln(stderr, "bench:", werr)
			err = errors.Join(err, werr)
		} else {
			fmt.Fprintln(stderr, "bench: wrote", cfg.Out)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	return 0
}

// bench is one benchmark run.
type bench struct {
	cfg   *config
	log   io.Writer
	start time.Time
	// loadStart is the load average when the run began.
	loadStart string
	rows      []row
	notes     []string
	// problems are runs that failed; they are listed under the table.
	problems []string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "bench %6.1fs  %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.problems = append(b.problems, msg)
	b.logf("PROBLEM: %s", msg)
}

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

func (b *bench) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (lab nodes, nginx on loopback)")
	}
	b.logf("machine: %s", machine())
	var errs []error
	if b.cfg.Only["deploy"] || b.cfg.Only["inventory"] || b.cfg.Only["floor"] || b.cfg.Only["cost"] {
		if err := b.runFleet(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if ctx.Err() == nil && b.cfg.Only["serve"] {
		if err := b.runServe(ctx); err != nil {
			errs = append(errs, fmt.Errorf("serve: %w", err))
		}
	}
	if ctx.Err() == nil && b.cfg.Only["sim"] {
		if err := b.runSim(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sim: %w", err))
		}
	}
	b.logf("done in %s", time.Since(b.start).Round(time.Second))
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// machine describes the machine for the results.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(string(data)); len(f) > 1 {
			if kb, err := strconv.Atoi(f[1]); err == nil {
				mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	kernel := ""
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(data))
	}
	return fmt.Sprintf("%d × %s%s%s, %s", runtime.NumCPU(), model, mem, kernel, runtime.Version())
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/lab"
)

// perfRecorder samples every CPU of the machine with perf while it runs.
type perfRecorder struct {
	cmd  *exec.Cmd
	file string
	done chan error
}

// startPerf starts `perf record -a` into dir (Debian linux-perf).
func startPerf(dir, name string) (*perfRecorder, error) {
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("perf not found (apt-get install linux-perf): %w", err)
	}
	p := &perfRecorder{file: filepath.Join(dir, name+".perf.data"), done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "record", "-a", "-F", "499", "-q", "-o", p.file)
	var out strings.Builder
	p.cmd.Stdout, p.cmd.Stderr = &out, &out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait() }()
	time.Sleep(300 * time.Millisecond) // perf opens its events
	select {
	case err := <-p.done:
		return nil, fmt.Errorf("perf record exited: %v: %s", err, out.String())
	default:
	}
	return p, nil
}

// programShare is one program's share of the machine's busy CPU.
type programShare struct {
	Comm  string
	Share float64 // of the busy samples, 0..1
}

// stop ends the recording and returns the busy CPU by program (comm),
// largest first; the idle task is left out.
func (p *perfRecorder) stop() ([]programShare, error) {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return nil, errors.New("perf record did not stop on SIGINT; killed")
	}
	defer os.Remove(p.file)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "perf", "report", "-i", p.file, "--sort", "comm", "--stdio", "-q", "-F", "sample,comm").Output()
	if err != nil {
		return nil, fmt.Errorf("perf report: %w", err)
	}
	return parsePerfComm(string(out)), nil
}

// parsePerfComm parses `perf report --sort comm -F sample,comm` lines
// ("  1234  fwupdtool") into shares of the non-idle samples.
func parsePerfComm(out string) []programShare {
	counts := map[string]float64{}
	var total float64
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		comm := strings.Join(f[1:], " ")
		if comm == "swapper" {
			continue
		}
		counts[normComm(comm)] += n
		total += n
	}
	var shares []programShare
	for c, n := range counts {
		shares = append(shares, programShare{Comm: c, Share: n / total})
	}
	slices.SortFunc(shares, func(a, b programShare) int {
		switch {
		case a.Share > b.Share:
			return -1
		case a.Share < b.Share:
			return 1
		}
		return strings.Compare(a.Comm, b.Comm)
	})
	return shares
}

// normComm folds thread and helper names into the program they belong to.
func normComm(c string) string {
	switch {
	case strings.HasPrefix(c, "kworker"), strings.HasPrefix(c, "ksoftirqd"), strings.HasPrefix(c, "rcu"), strings.HasPrefix(c, "migration"):
		return "kernel threads"
	case strings.HasPrefix(c, "sshd"):
		return "sshd"
	case strings.HasPrefix(c, "ansible"):
		return "ansible"
	case strings.HasPrefix(c, "iptables"), strings.HasPrefix(c, "ip6tables"), c == "nft":
		return "iptables/nft"
	case c == "gpg", c == "gpg-agent", c == "gpgconf", c == "gpgsm":
		return "gpg"
	case c == "sh", c == "bash", c == "dash":
		return "sh/bash"
	case strings.HasPrefix(c, "fleetup-engine"):
		return "fleetup-engine"
	case strings.HasPrefix(c, "fleetup"):
		return "fleetup"
	case strings.HasPrefix(c, "python"):
		return "python3"
	}
	return c
}

// formatShares prints the largest shares as CPU seconds: "fwupdtool 8.1 s (38%)".
func formatShares(shares []programShare, busy float64, top int) string {
	var parts []string
	rest := 0.0
	for i, s := range shares {
		if i >= top {
			rest += s.Share
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s (%.0f%%)", s.Comm, seconds(s.Share*busy), s.Share*100))
	}
	if rest > 0 {
		parts = append(parts, fmt.Sprintf("other %s (%.0f%%)", seconds(rest*busy), rest*100))
	}
	return strings.Join(parts, "; ")
}

// perfSplit runs one more deploy and inventory of each contender at the
// largest size under perf and adds where the machine's CPU went, by program.
func (b *bench) perfSplit(ctx context.Context, f *fleet, nodes []*lab.Node) {
	measure := func(name string, run func() error) string {
		if ctx.Err() != nil {
			return ""
		}
		f.reset(ctx, nodes)
		time.Sleep(500 * time.Millisecond)
		p, err := startPerf(f.work, strings.ReplaceAll(name, " ", "-"))
		if err != nil {
			b.problem("perf: %v", err)
			return ""
		}
		c0 := cpuBusy()
		t0 := time.Now()
		err = run()
		wall := time.Since(t0)
		busy := (cpuBusy() - c0).Seconds()
		shares, perr := p.stop()
		if err = errors.Join(err, perr); err != nil {
			b.problem("perf run of %s: %v", name, err)
			return ""
		}
		split := formatShares(shares, busy, 8)
		b.logf("perf %s N=%d: %s wall, %s busy CPU: %s", name, len(nodes), seconds(wall.Seconds()), seconds(busy), split)
		return fmt.Sprintf("%s wall, %s CPU: %s", seconds(wall.Seconds()), seconds(busy), split)
	}
	for _, pair := range []struct {
		section, what, peer string
		ours, theirs        func() error
	}{
		{"1", "deploy", "ansible-playbook",
			func() error { _, err := f.fleetupDeploy(ctx, "fleetup", nil, nodes); return err },
			func() error { _, err := f.ansible(ctx, nodes, true); return err }},
		{"2", "inventory", "ansible -m setup",
			func() error { _, err := f.fleetupInventory(ctx, nodes); return err },
			func() error { _, err := f.ansible(ctx, nodes, false); return err }},
	} {
		ours := measure("fleetup "+pair.what, pair.ours)
		theirs := measure(pair.peer, pair.theirs)
		if ours == "" && theirs == "" {
			continue
		}
		b.add(row{Section: pair.section, Measure: fmt.Sprintf("… machine CPU by program during the %s, N=%d (one extra run each under `perf record -a`)", pair.what, len(nodes)),
			Fleetup: ours, Peer: pair.peer + ": " + theirs})
	}
}

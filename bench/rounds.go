package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetup/fleetup/lab"
)

// sizeResults are the rounds at one fleet size.
type sizeResults struct {
	n                                int
	fleetup, ansible                 sample // deploy wall, s
	fleetupMachineCPU, ansMachineCPU sample // machine-wide busy CPU during the run, s
	fleetupProcCPU, ansProcCPU       sample // the tool's own processes, s
	floor, floorInstall              sample // bare SSH, s
	login                            sample // median single login within the floor run, s
	phases                           map[string]sample
	startup, exit                    sample // manager before the first node / after the last
	maxRSS                           sample // bytes
	ready                            sample // engine start-to-ready, median over nodes, s
	invFleetup, invAnsible           sample
	invFleetupCPU, invAnsibleCPU     sample
	invFleetupMachine, invAnsMachine sample
	invPhases                        map[string]sample
	// CPU per node: on the nodes (their cgroup) plus the tool's own, s.
	nodeFleetup, nodeAnsible, nodeFloor, nodeFloorInstall sample
	toolFleetup, toolAnsible                              sample
	invNodeFleetup, invNodeAnsible                        sample
	invToolFleetup, invToolAnsible                        sample
}

// runFleet runs sections 1, 2, 3 and 6 on one lab of the largest size.
func (b *bench) runFleet(ctx context.Context) (err error) {
	maxN := b.cfg.Nodes[len(b.cfg.Nodes)-1]
	f, err := b.newFleet(ctx, maxN)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	defer func() {
		b.logf("tearing the lab down")
		if cerr := f.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("tear down the lab: %w", cerr))
		}
	}()
	res := map[int]*sizeResults{}
	for _, n := range b.cfg.Nodes {
		res[n] = &sizeResults{n: n, phases: map[string]sample{}, invPhases: map[string]sample{}}
	}
	for round := range b.cfg.Rounds {
		for _, n := range b.cfg.Nodes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.fleetRound(ctx, f, round, f.lab.Nodes[:n], res[n], n == maxN)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if b.cfg.CPUProfile != "" {
		b.profile(ctx, f, f.lab.Nodes[:maxN])
	}
	if b.cfg.Perf {
		b.perfSplit(ctx, f, f.lab.Nodes[:maxN])
	}
	b.fleetRows(f, res)
	plugins := "all plugins"
	if b.cfg.Plugins != "" {
		plugins = "--plugins " + b.cfg.Plugins
	}
	b.note("Fleet: %d lab nodes (network namespaces with their own sshd, root with the lab's ed25519 key, host keys checked against the lab's known_hosts by every contender); fwupdtool with %s for every contender; the N-node runs use the first N nodes. Before each timed run every node's gpg-agent (started by an earlier fwupdtool) is stopped, untimed.", maxN, plugins)
	b.note("Ansible: ansible-core %s, forks = N, pipelining on, ControlMaster auto with ControlPersist 60s in a fresh control directory per run (masters closed after the run, untimed), gathering explicit, interpreter /usr/bin/python3; the deploy playbook is copy → command fwupdtool install (same arguments and environment as fleetup's installer) → file absent.", ansibleVersion())
	return nil
}

// fleetRound is one round at one size: the contenders alternate who goes
// first from round to round.
func (b *bench) fleetRound(ctx context.Context, f *fleet, round int, nodes []*lab.Node, r *sizeResults, largest bool) {
	n := len(nodes)
	timed := func(what string, fn func() error) {
		if ctx.Err() != nil {
			return
		}
		f.reset(ctx, nodes)
		time.Sleep(500 * time.Millisecond) // let the reset's processes go
		if err := fn(); err != nil {
			b.problem("round %d, %s, N=%d: %v", round+1, what, n, err)
		}
	}
	deployFleetup := func() error {
		c0, n0 := cpuBusy(), f.nodeCPUNow()
		run, err := f.fleetupDeploy(ctx, "fleetup", nil, nodes)
		if err != nil {
			return err
		}
		r.nodeFleetup = append(r.nodeFleetup, f.nodeCPUSince(n0).Seconds()/float64(n))
		r.toolFleetup = append(r.toolFleetup, run.CPU.Seconds()/float64(n))
		r.fleetup = append(r.fleetup, run.Wall.Seconds())
		r.fleetupMachineCPU = append(r.fleetupMachineCPU, (cpuBusy() - c0).Seconds())
		r.fleetupProcCPU = append(r.fleetupProcCPU, run.CPU.Seconds())
		ph := run.phases()
		for _, name := range phaseOrder {
			if ds := ph[name]; len(ds) > 0 {
				r.phases[name] = append(r.phases[name], medianDur(ds).Seconds())
			}
		}
		before, after := run.managerOverhead()
		r.startup = append(r.startup, before.Seconds())
		r.exit = append(r.exit, after.Seconds())
		r.maxRSS = append(r.maxRSS, float64(run.MaxRSS))
		r.ready = append(r.ready, medianDur(ph[phConnect]).Seconds())
		b.logf("round %d N=%d fleetup deploy   %s (fleetup CPU %s, machine CPU %s, peak RSS %s)", round+1, n,
			seconds(run.Wall.Seconds()), seconds(run.CPU.Seconds()), seconds(r.fleetupMachineCPU[len(r.fleetupMachineCPU)-1]), mib(float64(run.MaxRSS)))
		return nil
	}
	deployAnsible := func() error {
		c0, n0 := cpuBusy(), f.nodeCPUNow()
		run, err := f.ansible(ctx, nodes, true)
		if err != nil {
			return err
		}
		r.nodeAnsible = append(r.nodeAnsible, f.nodeCPUSince(n0).Seconds()/float64(n))
		r.toolAnsible = append(r.toolAnsible, run.CPU.Seconds()/float64(n))
		r.ansible = append(r.ansible, run.Wall.Seconds())
		r.ansMachineCPU = append(r.ansMachineCPU, (cpuBusy() - c0).Seconds())
		r.ansProcCPU = append(r.ansProcCPU, run.CPU.Seconds())
		b.logf("round %d N=%d ansible deploy   %s (ansible CPU %s)", round+1, n, seconds(run.Wall.Seconds()), seconds(run.CPU.Seconds()))
		return nil
	}
	floor := func() error {
		n0 := f.nodeCPUNow()
		run, err := f.floor(ctx, nodes, "true", nil)
		if err != nil {
			return err
		}
		r.nodeFloor = append(r.nodeFloor, f.nodeCPUSince(n0).Seconds()/float64(n))
		r.floor = append(r.floor, run.Wall.Seconds())
		r.login = append(r.login, medianDur(run.Logins).Seconds())
		b.logf("round %d N=%d bare SSH true    %s", round+1, n, seconds(run.Wall.Seconds()))
		return nil
	}
	floorInstall := func() error {
		n0 := f.nodeCPUNow()
		run, err := f.floor(ctx, nodes, f.floorInstallCommand(), f.cabData)
		if err != nil {
			return err
		}
		r.nodeFloorInstall = append(r.nodeFloorInstall, f.nodeCPUSince(n0).Seconds()/float64(n))
		r.floorInstall = append(r.floorInstall, run.Wall.Seconds())
		b.logf("round %d N=%d bare SSH install %s", round+1, n, seconds(run.Wall.Seconds()))
		return nil
	}
	invFleetup := func() error {
		c0, n0 := cpuBusy(), f.nodeCPUNow()
		run, err := f.fleetupInventory(ctx, nodes)
		if err != nil {
			return err
		}
		r.invNodeFleetup = append(r.invNodeFleetup, f.nodeCPUSince(n0).Seconds()/float64(n))
		r.invToolFleetup = append(r.invToolFleetup, run.CPU.Seconds()/float64(n))
		r.invFleetup = append(r.invFleetup, run.Wall.Seconds())
		r.invFleetupCPU = append(r.invFleetupCPU, run.CPU.Seconds())
		r.invFleetupMachine = append(r.invFleetupMachine, (cpuBusy() - c0).Seconds())
		ph := run.phases()
		for _, name := range []string{phConnect, phInventory, phCleanup} {
			if ds := ph[name]; len(ds) > 0 {
				r.invPhases[name] = append(r.invPhases[name], medianDur(ds).Seconds())
			}
		}
		b.logf("round %d N=%d fleetup inventory %s", round+1, n, seconds(run.Wall.Seconds()))
		return nil
	}
	invAnsible := func() error {
		c0, n0 := cpuBusy(), f.nodeCPUNow()
		run, err := f.ansible(ctx, nodes, false)
		if err != nil {
			return err
		}
		r.invNodeAnsible = append(r.invNodeAnsible, f.nodeCPUSince(n0).Seconds()/float64(n))
		r.invToolAnsible = append(r.invToolAnsible, run.CPU.Seconds()/float64(n))
		r.invAnsible = append(r.invAnsible, run.Wall.Seconds())
		r.invAnsibleCPU = append(r.invAnsibleCPU, run.CPU.Seconds())
		r.invAnsMachine = append(r.invAnsMachine, (cpuBusy() - c0).Seconds())
		b.logf("round %d N=%d ansible setup     %s", round+1, n, seconds(run.Wall.Seconds()))
		return nil
	}
	type step struct {
		what string
		fn   func() error
		on   bool
	}
	deploy := b.cfg.Only["deploy"] || b.cfg.Only["floor"] || b.cfg.Only["cost"]
	steps := [][2]step{
		{{"fleetup deploy", deployFleetup, deploy}, {"ansible deploy", deployAnsible, b.cfg.Only["deploy"]}},
		{{"bare SSH true", floor, b.cfg.Only["floor"]}, {"bare SSH install", floorInstall, b.cfg.Only["floor"]}},
	}
	if largest {
		steps = append(steps, [2]step{{"fleetup inventory", invFleetup, b.cfg.Only["inventory"]}, {"ansible setup", invAnsible, b.cfg.Only["inventory"]}})
	}
	for _, pair := range steps {
		order := []step{pair[0], pair[1]}
		if round%2 == 1 {
			order = []step{pair[1], pair[0]}
		}
		for _, s := range order {
			if s.on {
				timed(s.what, s.fn)
			}
		}
	}
}

// profile runs one more deploy with fleetup under a CPU profile.
func (b *bench) profile(ctx context.Context, f *fleet, nodes []*lab.Node) {
	path, err := filepath.Abs(b.cfg.CPUProfile)
	if err != nil {
		b.problem("cpu profile: %v", err)
		return
	}
	f.reset(ctx, nodes)
	run, err := f.fleetupDeploy(ctx, "fleetup-prof", []string{"FLEETUP_BENCH_CPUPROFILE=" + path}, nodes)
	if err != nil {
		b.problem("profiled deploy: %v", err)
		return
	}
	b.logf("profiled deploy N=%d: %s, fleetup CPU %s; profile in %s (go tool pprof -top %s)", len(nodes),
		seconds(run.Wall.Seconds()), seconds(run.CPU.Seconds()), path, path)
	b.note("A CPU profile of fleetup deploying to %d nodes (%s wall, %s of fleetup CPU) is in %s.", len(nodes),
		seconds(run.Wall.Seconds()), seconds(run.CPU.Seconds()), b.cfg.CPUProfile)
}

// fleetRows turns the rounds into table rows.
func (b *bench) fleetRows(f *fleet, res map[int]*sizeResults) {
	maxN := b.cfg.Nodes[len(b.cfg.Nodes)-1]
	if b.cfg.Only["deploy"] {
		for _, n := range b.cfg.Nodes {
			r := res[n]
			ratio := r.fleetup.ratios(r.ansible)
			b.add(row{Section: "1", Measure: fmt.Sprintf("Fan-out deploy of a fwupd cab, N=%d (wall, engine cycle and clean-up included)", n),
				Fleetup: r.fleetup.format(seconds), Peer: "ansible-playbook: " + r.ansible.format(seconds),
				Ratio: ratio.format(times), Goal: "≤ 0.20×", Met: goal(ratio.median(), 0.20, false)})
			mr := r.fleetupMachineCPU.ratios(r.ansMachineCPU)
			b.add(row{Section: "1", Measure: fmt.Sprintf("… machine CPU during the deploy, N=%d (all processes: tool, sshd, engine, fwupdtool)", n),
				Fleetup: r.fleetupMachineCPU.format(seconds), Peer: "ansible-playbook: " + r.ansMachineCPU.format(seconds),
				Ratio: mr.format(times)})
			pr := r.fleetupProcCPU.ratios(r.ansProcCPU)
			b.add(row{Section: "1", Measure: fmt.Sprintf("… the tool's own CPU, N=%d (fleetup process; ansible with its forks and ssh)", n),
				Fleetup: r.fleetupProcCPU.format(seconds), Peer: "ansible-playbook: " + r.ansProcCPU.format(seconds),
				Ratio: pr.format(times)})
			b.cpuPerNodeRow("1", n, r.nodeFleetup, r.toolFleetup, "ansible-playbook", r.nodeAnsible, r.toolAnsible)
		}
	}
	if b.cfg.Only["inventory"] {
		r := res[maxN]
		ratio := r.invFleetup.ratios(r.invAnsible)
		b.add(row{Section: "2", Measure: fmt.Sprintf("Inventory, N=%d (wall)", maxN),
			Fleetup: r.invFleetup.format(seconds), Peer: "ansible -m setup: " + r.invAnsible.format(seconds),
			Ratio: ratio.format(times), Goal: "≤ 0.10×", Met: goal(ratio.median(), 0.10, false)})
		mr := r.invFleetupMachine.ratios(r.invAnsMachine)
		b.add(row{Section: "2", Measure: fmt.Sprintf("… machine CPU during the inventory, N=%d", maxN),
			Fleetup: r.invFleetupMachine.format(seconds), Peer: "ansible -m setup: " + r.invAnsMachine.format(seconds),
			Ratio: mr.format(times)})
		b.cpuPerNodeRow("2", maxN, r.invNodeFleetup, r.invToolFleetup, "ansible -m setup", r.invNodeAnsible, r.invToolAnsible)
		var parts []string
		for _, name := range []string{phConnect, phInventory, phCleanup} {
			if s := r.invPhases[name]; len(s) > 0 {
				parts = append(parts, name+" "+s.format(seconds))
			}
		}
		b.add(row{Section: "2", Measure: fmt.Sprintf("… where fleetup's inventory time goes, N=%d (per node, median over nodes)", maxN),
			Fleetup: strings.Join(parts, "; ")})
	}
	if b.cfg.Only["floor"] {
		for _, n := range b.cfg.Nodes {
			r := res[n]
			ratio := r.fleetup.ratios(r.floor)
			b.add(row{Section: "3", Measure: fmt.Sprintf("Fan-out deploy against the floor, N=%d: bare SSH key logins running `true`, one Go process", n),
				Fleetup: r.fleetup.format(seconds), Peer: "bare SSH: " + r.floor.format(seconds) + "; one login " + r.login.format(seconds),
				Ratio: ratio.format(times), Goal: "≤ 3×", Met: goal(ratio.median(), 3, false)})
			ir := r.fleetup.ratios(r.floorInstall)
			b.add(row{Section: "3", Measure: fmt.Sprintf("… against bare SSH doing the job by hand, N=%d (cab on stdin, fwupdtool install, rm)", n),
				Fleetup: r.fleetup.format(seconds), Peer: "bare SSH + install: " + r.floorInstall.format(seconds),
				Ratio: ir.format(times)})
			if len(r.nodeFleetup) > 0 && len(r.nodeFloor) > 0 {
				b.add(row{Section: "3", Measure: fmt.Sprintf("… CPU on the nodes per node, N=%d (everything under each node's sshd)", n),
					Fleetup: r.nodeFleetup.format(seconds), Peer: "bare SSH: " + r.nodeFloor.format(seconds) + "; bare SSH + install: " + r.nodeFloorInstall.format(seconds),
					Ratio: r.nodeFleetup.ratios(r.nodeFloor).format(times) + " (÷ bare SSH + install: " + r.nodeFleetup.ratios(r.nodeFloorInstall).format(times) + ")"})
			}
		}
		r := res[maxN]
		if len(r.phases) > 0 {
			var parts []string
			for _, name := range phaseOrder {
				if s := r.phases[name]; len(s) > 0 {
					parts = append(parts, name+" "+s.format(seconds))
				}
			}
			parts = append(parts, "manager start to first node "+r.startup.format(seconds), "last node to exit "+r.exit.format(seconds))
			b.add(row{Section: "3", Measure: fmt.Sprintf("… where fleetup's deploy time goes, N=%d (per node, median over nodes; from --json event times)", maxN),
				Fleetup: strings.Join(parts, "; ")})
		}
	}
	if r := res[maxN]; len(r.nodeFleetup) > 0 && len(r.nodeFloorInstall) > 0 {
		b.note("Where the rest goes (CPU per node on the nodes, N=%d, medians): fleetup %s against %s for a bare SSH login running `true` and %s for a login that installs the cab by hand. "+
			"The difference is what the engine cycle adds to a login and a flash: the engine's upload (SFTP, 8 requests in flight) and start (a 7 MiB static Go program), its TLS session, "+
			"the inventory the analysis needs (a second fwupdtool start for get-devices, dpkg's status file), one nft listing for the firewall, and the clean-up; fwupdtool starts "+
			"(over a hundred shared libraries each) and sshd's per-connection work (privilege separation, PAM with its motd scripts) are the largest parts, `-perf` splits them by program.",
			maxN, seconds(r.nodeFleetup.median()), seconds(r.nodeFloor.median()), seconds(r.nodeFloorInstall.median()))
	}
	if b.cfg.Only["cost"] {
		raw, gz, err := f.engineSizes()
		if err != nil {
			b.problem("engine size: %v", err)
		} else {
			b.add(row{Section: "6", Measure: "Engine bytes sent per node (static, stripped: -trimpath -ldflags='-s -w')",
				Fleetup: mib(float64(raw)), Goal: "≤ 8 MiB", Met: goal(float64(raw), 8<<20, false)})
			b.add(row{Section: "6", Measure: "… gzip-compressed (reference)", Fleetup: mib(float64(gz))})
			b.note("The engine goes uncompressed: on the lab's nodes (2026-12-01) receiving it over SFTP with 8 requests in flight cost sshd about 30 ms of CPU per node, and `gzip -dc` of the compressed engine on the node about 45 ms, so compressing would cost the nodes more than it saves (on slow links it would pay).")
		}
		r := res[maxN]
		b.add(row{Section: "6", Measure: fmt.Sprintf("Engine start-to-ready, N=%d (scouting → inventory: SSH, scout, upload, start, TLS; median over nodes)", maxN),
			Fleetup: r.ready.format(seconds), Peer: "one bare SSH login: " + r.login.format(seconds)})
		perNode := make(sample, len(r.maxRSS))
		for i, v := range r.maxRSS {
			perNode[i] = v / float64(maxN)
		}
		b.add(row{Section: "6", Measure: fmt.Sprintf("Manager peak RSS ÷ concurrent nodes, N=%d (VmHWM of the fleetup process at exit)", maxN),
			Fleetup: perNode.format(kib) + " (peak " + r.maxRSS.format(mib) + ")"})
	}
}

// cpuPerNodeRow adds the CPU one node costs each contender: on the nodes
// (their cgroup: sshd, sessions, engine or python, fwupdtool) plus the
// tool's own process, divided by the nodes; other work on the machine is
// not in it. Without the nodes' cgroup it adds nothing.
func (b *bench) cpuPerNodeRow(section string, n int, nodes, tool sample, peer string, peerNodes, peerTool sample) {
	if len(nodes) == 0 || len(nodes) != len(tool) || len(peerNodes) != len(peerTool) || nodes[0] == 0 {
		return
	}
	sum := func(a, b sample) sample {
		out := make(sample, len(a))
		for i := range a {
			out[i] = a[i] + b[i]
		}
		return out
	}
	ours, theirs := sum(nodes, tool), sum(peerNodes, peerTool)
	b.add(row{Section: section, Measure: fmt.Sprintf("… CPU per node, N=%d: on the nodes (everything under each node's sshd) + the tool's own process; the rest of the machine left out", n),
		Fleetup: fmt.Sprintf("%s (nodes %s + tool %s)", ours.format(seconds), nodes.format(seconds), tool.format(seconds)),
		Peer:    fmt.Sprintf("%s: %s (nodes %s + tool %s)", peer, theirs.format(seconds), peerNodes.format(seconds), peerTool.format(seconds)),
		Ratio:   ours.ratios(theirs).format(times)})
}

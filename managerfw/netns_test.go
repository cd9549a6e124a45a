package managerfw_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fleetup/fleetup/firewall/firewalltest"
	"github.com/fleetup/fleetup/internal/testenv"
	"github.com/fleetup/fleetup/managerfw"
	"github.com/fleetup/fleetup/proc"
)

// childEnv makes the re-executed test binary a manager: it opens the
// firewall of namespace $NS for run $RUN and port $PORT, prints "opened",
// and closes it when SIGTERM or SIGINT arrives (or dies with SIGKILL,
// leaving it open).
const childEnv = "FLEETUP_MANAGERFW_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := child(); err != nil {
			fmt.Fprintln(os.Stderr, "managerfw child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	firewalltest.Main(m)
}

func child() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	port, err := strconv.Atoi(os.Getenv("PORT"))
	if err != nil {
		return err
	}
	l := &managerfw.Local{Runner: nsRunner(os.Getenv("NS")), StateDir: os.Getenv("STATE")}
	o, err := l.Open(ctx, os.Getenv("RUN"), []int{port})
	if err != nil {
		return err
	}
	fmt.Println("opened")
	<-ctx.Done()
	_, err = o.Close(context.WithoutCancel(ctx))
	return err
}

func nsRunner(ns string) *proc.Runner {
	return &proc.Runner{Prefix: []string{"ip", "netns", "exec", ns}}
}

// startChild starts a manager for run in ns and waits until it opened
// port. t.Cleanup kills it when it still runs.
func startChild(t *testing.T, ns *firewalltest.Namespace, state, run string, port int) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "NS="+ns.Name, "STATE="+state, "RUN="+run, "PORT="+strconv.Itoa(port))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "opened\n" {
		t.Fatalf("manager child for run %s: read %q, %v; want \"opened\"", run, line, err)
	}
	return cmd
}

const (
	blockedWait = 300 * time.Millisecond
	openWait    = 10 * time.Second
)

// setup is a machine whose firewall drops every new connection but
// loopback's (and IPv6 neighbour discovery), in one tool's terms.
type setup struct {
	name  string
	block string // nft script, or iptables command lines
}

var setups = []setup{
	{"nftables", `
table inet mgrtest {
	chain input {
		type filter hook input priority 0; policy drop;
		iif lo accept
		ct state established,related accept
		meta l4proto ipv6-icmp accept
	}
}
`},
	{"iptables", `iptables -w -A INPUT -i lo -j ACCEPT
iptables -w -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -w -P INPUT DROP
ip6tables -w -A INPUT -i lo -j ACCEPT
ip6tables -w -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
ip6tables -w -A INPUT -p ipv6-icmp -j ACCEPT
ip6tables -w -P INPUT DROP`},
}

type machine struct {
	ns    *firewalltest.Namespace
	local *managerfw.Local
}

func newMachine(t *testing.T, s setup) *machine {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "ip", "nft", "iptables", "ip6tables", "iptables-save", "ip6tables-save")
	ctx := context.Background()
	ns := firewalltest.NewNamespaceIn(t, "fumfw", netip.MustParsePrefix("198.18.230.0/24"), netip.MustParsePrefix("fd42:5e:0:e600::/56"))
	if s.name == "nftables" {
		if _, err := ns.Runner.Run(ctx, strings.NewReader(s.block), "nft", "-f", "-"); err != nil {
			t.Fatalf("block: %v", err)
		}
	} else {
		for _, l := range strings.Split(s.block, "\n") {
			f := strings.Fields(l)
			if _, err := ns.Runner.Output(ctx, f[0], f[1:]...); err != nil {
				t.Fatalf("block: %s: %v", l, err)
			}
		}
	}
	return &machine{ns: ns, local: &managerfw.Local{Runner: ns.Runner, StateDir: t.TempDir()}}
}

// dump prints the namespace's whole ruleset in every tool's terms.
func (m *machine) dump(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"nft", "list", "ruleset"}, {"iptables-save"}, {"ip6tables-save"}} {
		out, err := m.ns.Runner.Output(context.Background(), argv[0], argv[1:]...)
		if err != nil {
			t.Fatalf("%s: %v", argv[0], err)
		}
		fmt.Fprintf(&b, "== %s\n%s", argv[0], out)
	}
	return firewalltest.StripCounters(b.String())
}

// sources are the host-side addresses a client connects from: the
// manager's neighbour and a second one, in both families.
func (m *machine) sources() [][2]netip.Addr {
	return [][2]netip.Addr{
		{m.ns.Host4, m.ns.Node4}, {m.ns.Other4, m.ns.Node4},
		{m.ns.Host6, m.ns.Node6}, {m.ns.Other6, m.ns.Node6},
	}
}

func (m *machine) wantOpen(t *testing.T, port int) {
	t.Helper()
	for _, s := range m.sources() {
		if err := firewalltest.Dial(s[0], s[1], port, openWait); err != nil {
			t.Fatalf("connect from %s to %s port %d: %v, want it to connect", s[0], s[1], port, err)
		}
	}
}

func (m *machine) wantBlocked(t *testing.T, port int) {
	t.Helper()
	for _, s := range m.sources() {
		err := firewalltest.Dial(s[0], s[1], port, blockedWait)
		if err == nil || !firewalltest.IsTimeout(err) {
			t.Fatalf("connect from %s to %s port %d: %v, want a time-out (dropped)", s[0], s[1], port, err)
		}
	}
}

func (m *machine) stateFiles(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(m.local.StateDir, "localfw", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	return names
}

func TestOpenClose(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			m := newMachine(t, s)
			port, other := m.ns.Listen(t), m.ns.Listen(t)
			m.wantBlocked(t, port)
			before := m.dump(t)

			o, err := m.local.Open(ctx, "run1", []int{port})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if len(o.Rules()) == 0 {
				t.Errorf("Open reported no rules on a machine that filters")
			}
			for _, r := range o.Rules() {
				if !strings.Contains(r, managerfw.Tag("run1")) {
					t.Errorf("rule %q does not carry the tag %s", r, managerfw.Tag("run1"))
				}
			}
			if diff := cmp.Diff([]string{"run1.json"}, m.stateFiles(t)); diff != "" {
				t.Errorf("state files while open (-want +got):\n%s", diff)
			}
			m.wantOpen(t, port)
			m.wantBlocked(t, other) // only the ports asked for

			removed, err := o.Close(ctx)
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
			if diff := cmp.Diff(o.Rules(), removed); diff != "" {
				t.Errorf("Close removed other rules than Open made (-open +close):\n%s", diff)
			}
			if diff := cmp.Diff(before, m.dump(t)); diff != "" {
				t.Errorf("ruleset after Close differs from before Open (-before +after):\n%s", diff)
			}
			if got := m.stateFiles(t); len(got) != 0 {
				t.Errorf("state files after Close: %q", got)
			}
			m.wantBlocked(t, port)
			if again, err := o.Close(ctx); err != nil || len(again) != 0 {
				t.Errorf("second Close = %q, %v; want nothing", again, err)
			}
		})
	}
}

// TestSignalCloses: a manager that gets SIGTERM closes what it opened.
func TestSignalCloses(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			m := newMachine(t, s)
			port := m.ns.Listen(t)
			before := m.dump(t)
			cmd := startChild(t, m.ns, m.local.StateDir, "run2", port)
			m.wantOpen(t, port)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("manager after SIGTERM: %v", err)
			}
			if diff := cmp.Diff(before, m.dump(t)); diff != "" {
				t.Errorf("ruleset after SIGTERM differs from before (-before +after):\n%s", diff)
			}
			if got := m.stateFiles(t); len(got) != 0 {
				t.Errorf("state files after SIGTERM: %q", got)
			}
			m.wantBlocked(t, port)
		})
	}
}

// TestCrashCleanup: a manager killed with SIGKILL leaves its rules;
// CleanupLocal removes them and keeps a live manager's, --all those too.
func TestCrashCleanup(t *testing.T) {
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			m := newMachine(t, s)
			deadPort, livePort := m.ns.Listen(t), m.ns.Listen(t)
			before := m.dump(t)

			live, err := m.local.Open(ctx, "live", []int{livePort})
			if err != nil {
				t.Fatalf("Open live: %v", err)
			}
			cmd := startChild(t, m.ns, m.local.StateDir, "dead", deadPort)
			m.wantOpen(t, deadPort)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			m.wantOpen(t, deadPort) // the crash left it open

			removed, err := m.local.CleanupLocal(ctx, false)
			if err != nil {
				t.Fatalf("CleanupLocal: %v", err)
			}
			if len(removed) == 0 {
				t.Fatalf("CleanupLocal removed nothing")
			}
			for _, r := range removed {
				if !strings.Contains(r, managerfw.Tag("dead")) {
					t.Errorf("CleanupLocal removed %q, not the dead run's", r)
				}
			}
			m.wantBlocked(t, deadPort)
			m.wantOpen(t, livePort)
			if diff := cmp.Diff([]string{"live.json"}, m.stateFiles(t)); diff != "" {
				t.Errorf("state files after CleanupLocal (-want +got):\n%s", diff)
			}

			removed, err = m.local.CleanupLocal(ctx, true)
			if err != nil {
				t.Fatalf("CleanupLocal all: %v", err)
			}
			if diff := cmp.Diff(live.Rules(), removed); diff != "" {
				t.Errorf("CleanupLocal all removed (-live run's +removed):\n%s", diff)
			}
			if diff := cmp.Diff(before, m.dump(t)); diff != "" {
				t.Errorf("ruleset after clean-up differs from before (-before +after):\n%s", diff)
			}
			if got := m.stateFiles(t); len(got) != 0 {
				t.Errorf("state files after CleanupLocal all: %q", got)
			}
		})
	}
}

func TestOpenBadInput(t *testing.T) {
	l := &managerfw.Local{Runner: &proc.Runner{Prefix: []string{"false"}}, StateDir: t.TempDir()}
	for _, tc := range []struct {
		name, run string
		ports     []int
		want      string
	}{
		{"no ports", "r1", nil, "no ports"},
		{"port 0", "r1", []int{63001, 0}, "port 0 out of range"},
		{"port 65536", "r1", []int{65536}, "port 65536 out of range"},
		{"bad run id", "r 1", []int{63001}, `run id "r 1"`},
		{"empty run id", "", []int{63001}, `run id ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Open(context.Background(), tc.run, tc.ports)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q, %v) = %v, want an error containing %q", tc.run, tc.ports, err, tc.want)
			}
		})
	}
}

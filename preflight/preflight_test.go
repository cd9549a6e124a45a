package preflight

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFirewall(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.1.1")
	v6 := netip.MustParseAddr("fd42:5e:0:1::1")
	tests := []struct {
		name    string
		in      []byte
		kind    string
		allowIn []string // for v4, port 62286
		in6     []string // for v6, port 62286
		out     []string // for v4, port 63001
	}{
		{
			name: "nft and iptables together",
			in:   readTestdata(t, "mixed.txt"),
			kind: "nft+iptables",
			allowIn: []string{
				"nft insert rule inet pf input ip saddr 198.18.1.1 tcp dport 62286 accept",
				"iptables -I INPUT -s 198.18.1.1 -p tcp --dport 62286 -j ACCEPT",
			},
			in6: []string{
				"nft insert rule inet pf input ip6 saddr fd42:5e:0:1::1 tcp dport 62286 accept",
				"ip6tables -I INPUT -s fd42:5e:0:1::1 -p tcp --dport 62286 -j ACCEPT",
			},
			out: []string{"nft insert rule inet out o ip daddr 198.18.1.1 tcp dport 63001 accept"},
		},
		{
			name: "nothing filters",
			in:   readTestdata(t, "none.txt"),
			kind: "none",
		},
		{
			name:    "firewalld",
			in:      []byte("@@fleetup firewalld 0\nrunning\n@@fleetup nft 127\nsh: nft: not found\n@@fleetup iptables 127\n\n@@fleetup ip6tables 127\n\n"),
			kind:    "firewalld",
			allowIn: []string{"firewall-cmd --add-rich-rule='rule family=ipv4 source address=198.18.1.1 port port=62286 protocol=tcp accept'"},
			in6:     []string{"firewall-cmd --add-rich-rule='rule family=ipv6 source address=fd42:5e:0:1::1 port port=62286 protocol=tcp accept'"},
		},
		{
			name:    "iptables drop policy, legacy flavour, no nft",
			in:      []byte("@@fleetup firewalld 127\n\n@@fleetup nft 127\n\n@@fleetup iptables 0\n*filter\n:INPUT DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp --dport 63001 -j DROP\nCOMMIT\n@@fleetup ip6tables 0\n\n"),
			kind:    "iptables",
			allowIn: []string{"iptables -I INPUT -s 198.18.1.1 -p tcp --dport 62286 -j ACCEPT"},
			out:     []string{"iptables -I OUTPUT -d 198.18.1.1 -p tcp --dport 63001 -j ACCEPT"},
		},
		{
			name: "firewalld not running",
			in:   []byte("@@fleetup firewalld 252\nnot running\n@@fleetup nft 0\n\n"),
			kind: "none",
		},
		{
			name: "no permission",
			in:   []byte("@@fleetup firewalld 127\n\n@@fleetup nft 1\nError: Operation not permitted\n@@fleetup iptables 4\niptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied\n"),
			kind: "unknown",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := parseFirewall(tc.in)
			if got := f.kind(); got != tc.kind {
				t.Fatalf("kind() = %q, want %q (err %v)", got, tc.kind, f.err)
			}
			if f.err != nil {
				return
			}
			if d := cmp.Diff(tc.allowIn, f.allowIn(v4, 62286)); d != "" {
				t.Errorf("allowIn(v4) (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.in6, f.allowIn(v6, 62286)); d != "" {
				t.Errorf("allowIn(v6) (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.out, f.allowOut(v4, 63001)); d != "" {
				t.Errorf("allowOut(v4) (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseFirewallErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "empty"},
		{"text before header", "hello\n@@fleetup nft 0\n", "before any header"},
		{"header without status", "@@fleetup nft\n", "want tool and status"},
		{"status not a number", "@@fleetup nft x\n", `status "x"`},
		{"bad nft JSON", "@@fleetup nft 0\n{\"nftables\": [\n", "nft JSON ruleset"},
		{"bad save line", "@@fleetup iptables 0\n*filter\nbogus\n", `line 2: unexpected "bogus"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := parseFirewall([]byte(tc.in))
			if f.err == nil || !strings.Contains(f.err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", f.err, tc.want)
			}
		})
	}
}

func TestParseDial(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    dialResult
		wantErr string
	}{
		{name: "open", in: "@@fleetup rc=0 start=1000 end=3000\n\n", want: dialResult{took: 2000}},
		{name: "timed out", in: "@@fleetup rc=124 start=1000 end=1000001000\n\n", want: dialResult{rc: 124, took: time.Second}},
		{
			name: "refused",
			in:   "@@fleetup rc=1 start=5 end=9\nbash: connect: Connection refused\nbash: line 1: /dev/tcp/198.18.1.1/63001: Connection refused\n",
			want: dialResult{rc: 1, took: 4, msg: "connect: Connection refused"},
		},
		{name: "busybox date", in: "@@fleetup rc=0 start=%N end=%N\n", want: dialResult{}},
		{name: "no bash", in: "@@fleetup missing bash\n", want: dialResult{missing: "bash"}},
		{name: "garbage", in: "Welcome to node1\n", wantErr: "unexpected output"},
		{name: "no status", in: "@@fleetup start=1 end=2\n", wantErr: "no exit status"},
		{name: "status out of range", in: "@@fleetup rc=300\n", wantErr: "not 0-255"},
		{name: "unknown field", in: "@@fleetup rc=0 x=1\n", wantErr: "unknown field"},
		{name: "missing nothing", in: "@@fleetup missing \n", wantErr: "names no program"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDial([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(dialResult{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"": Linux, "linux": Linux, "Windows": Windows, "vmware": VMware, "bmc": BMC} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKind("solaris"); err == nil || !strings.Contains(err.Error(), `"solaris"`) {
		t.Errorf("ParseKind(solaris) err = %v, want one naming the kind", err)
	}
	if d := cmp.Diff([]int{22, 445, 443, 1234}, PortsFor(Windows, 1234)); d != "" {
		t.Errorf("PortsFor(Windows) (-want +got):\n%s", d)
	}
}

// TestRunWithoutConn checks the manager-to-node hops alone, against
// loopback: an open port, and a refused one.
func TestRunWithoutConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	open := ln.Addr().(*net.TCPAddr).Port
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	for _, tc := range []struct {
		port   int
		status string
	}{{open, Open}, {refused, Refused}} {
		t.Run(strconv.Itoa(tc.port), func(t *testing.T) {
			rep, err := Run(context.Background(), nil, Options{Node: "n1", Addr: "127.0.0.1", EnginePort: tc.port, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			h := rep.Hops[1]
			if h.Port != tc.port || h.Status != tc.status || h.From != "manager" || h.To != "n1" {
				t.Errorf("engine hop = %+v, want port %d %s", h, tc.port, tc.status)
			}
			if len(rep.Hops) != 2 || len(rep.Notes) == 0 || rep.FirewallKind != "unknown" {
				t.Errorf("report = %+v, want 2 hops, a note about the missing SSH connection, firewall unknown", rep)
			}
		})
	}
}

func TestRunBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no address", Options{}, "no node address"},
		{"bad kind", Options{Addr: "127.0.0.1", Kind: "mainframe"}, `"mainframe"`},
		{"bad port", Options{Addr: "127.0.0.1", ManagerPorts: []int{70000}}, "port 70000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Run(context.Background(), nil, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestListenManagerShared checks that concurrent Runs share the manager's
// listeners: the port stays open until the last one releases it.
func TestListenManagerShared(t *testing.T) {
	probe, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	dial := func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	rel1 := listenManager(context.Background(), []int{port})
	rel2 := listenManager(context.Background(), []int{port})
	rel1()
	if err := dial(); err != nil {
		t.Fatalf("after the first release: %v, want the port still open", err)
	}
	rel2()
	if err := dial(); err == nil {
		t.Fatal("after the last release the port is still open")
	}
}

func FuzzParseDial(f *testing.F) {
	f.Add([]byte("@@fleetup rc=1 start=5 end=9\nbash: connect: Connection refused\n"))
	f.Add([]byte("@@fleetup missing bash\n"))
	f.Add([]byte("@@fleetup rc=124 start=%N end=%N\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseDial(b)
		if err == nil && (r.rc < 0 || r.rc > 255 || r.took < 0) {
			t.Errorf("parseDial(%q) = %+v", b, r)
		}
	})
}

func FuzzParseFirewall(f *testing.F) {
	f.Add(readTestdata(f, "mixed.txt"))
	f.Add(readTestdata(f, "none.txt"))
	f.Add([]byte("@@fleetup firewalld 0\nrunning\n"))
	f.Add([]byte("@@fleetup iptables 0\n*filter\n:INPUT DROP [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"))
	v4 := netip.MustParseAddr("198.18.1.1")
	f.Fuzz(func(t *testing.T, b []byte) {
		fw := parseFirewall(b)
		if fw.err != nil {
			return
		}
		_ = fw.kind()
		for _, c := range append(fw.allowIn(v4, 22), fw.allowOut(v4, 22)...) {
			ok := false
			for _, p := range []string{"nft insert rule ", "iptables -I ", "ip6tables -I ", "firewall-cmd "} {
				ok = ok || strings.HasPrefix(c, p)
			}
			if !ok {
				t.Errorf("command %q is not an insert of an accept rule", c)
			}
		}
	})
}

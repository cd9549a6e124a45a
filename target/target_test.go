package target

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     Target
		str      string // String(); in when empty
		addr     string
		errorHas string
	}{
		{name: "name", in: "node1", want: Target{Kind: KindSSH, Host: "node1"}, addr: "node1:22"},
		{name: "name upper case", in: "Node1.Lab", want: Target{Kind: KindSSH, Host: "node1.lab"}, str: "node1.lab", addr: "node1.lab:22"},
		{name: "user and port", in: "root@node1:2222", want: Target{Kind: KindSSH, User: "root", Host: "node1", Port: 2222}, addr: "node1:2222"},
		{name: "ipv4", in: "198.18.1.2", want: Target{Kind: KindSSH, Host: "198.18.1.2"}, addr: "198.18.1.2:22"},
		{name: "ipv4 port", in: "198.18.1.2:22", want: Target{Kind: KindSSH, Host: "198.18.1.2", Port: 22}, addr: "198.18.1.2:22"},
		{name: "ipv6 brackets", in: "[fd42:5e:0:1::2]", want: Target{Kind: KindSSH, Host: "fd42:5e:0:1::2"}, addr: "[fd42:5e:0:1::2]:22"},
		{name: "ipv6 port", in: "admin@[fd42:5e:0:1::2]:2200", want: Target{Kind: KindSSH, User: "admin", Host: "fd42:5e:0:1::2", Port: 2200}, addr: "[fd42:5e:0:1::2]:2200"},
		{name: "bare ipv6", in: "fd42:5e:0:1:0:0:0:2", want: Target{Kind: KindSSH, Host: "fd42:5e:0:1::2"}, str: "[fd42:5e:0:1::2]", addr: "[fd42:5e:0:1::2]:22"},
		{name: "link-local zone", in: "[fe80::1%eth0]:22", want: Target{Kind: KindSSH, Host: "fe80::1%eth0", Port: 22}, addr: "[fe80::1%eth0]:22"},
		{name: "trailing dot", in: "node1.lab.", want: Target{Kind: KindSSH, Host: "node1.lab"}, str: "node1.lab", addr: "node1.lab:22"},
		{name: "spaces trimmed", in: "  node1 ", want: Target{Kind: KindSSH, Host: "node1"}, str: "node1", addr: "node1:22"},
		{name: "ssh scheme", in: "ssh://root@node1:2222", want: Target{Kind: KindSSH, User: "root", Host: "node1", Port: 2222}, str: "root@node1:2222", addr: "node1:2222"},
		{name: "ssh scheme upper case", in: "SSH://Node1/", want: Target{Kind: KindSSH, Host: "node1"}, str: "node1", addr: "node1:22"},
		{name: "ssh scheme ipv6", in: "ssh://[fd42:5e:0:1::2]:2200", want: Target{Kind: KindSSH, Host: "fd42:5e:0:1::2", Port: 2200}, str: "[fd42:5e:0:1::2]:2200", addr: "[fd42:5e:0:1::2]:2200"},
		{name: "bmc", in: "bmc://admin@198.18.2.2", want: Target{Kind: KindBMC, User: "admin", Host: "198.18.2.2"}, addr: "198.18.2.2:443"},
		{name: "bmc name and port", in: "bmc://bmc1.lab:8443", want: Target{Kind: KindBMC, Host: "bmc1.lab", Port: 8443}, addr: "bmc1.lab:8443"},
		{name: "bmc port 443", in: "bmc://bmc1:443", want: Target{Kind: KindBMC, Host: "bmc1", Port: 443}, addr: "bmc1:443"},
		{name: "bmc upper case", in: "BMC://Admin@BMC1.Lab", want: Target{Kind: KindBMC, User: "Admin", Host: "bmc1.lab"}, str: "bmc://Admin@bmc1.lab", addr: "bmc1.lab:443"},
		{name: "bmc slash", in: "bmc://bmc1/", want: Target{Kind: KindBMC, Host: "bmc1"}, str: "bmc://bmc1", addr: "bmc1:443"},
		{name: "bmc ipv6", in: "bmc://[fd42:5e:0:2::2]", want: Target{Kind: KindBMC, Host: "fd42:5e:0:2::2"}, addr: "[fd42:5e:0:2::2]:443"},
		{name: "bmc ipv6 port", in: "bmc://admin@[FD42:5E:0:2:0::2]:8443/", want: Target{Kind: KindBMC, User: "admin", Host: "fd42:5e:0:2::2", Port: 8443}, str: "bmc://admin@[fd42:5e:0:2::2]:8443", addr: "[fd42:5e:0:2::2]:8443"},
		{name: "bmc link-local zone", in: "bmc://[fe80::1%eth0]", want: Target{Kind: KindBMC, Host: "fe80::1%eth0"}, addr: "[fe80::1%eth0]:443"},

		{name: "password in target", in: "admin:Sekr3t@198.18.1.2", errorHas: "admin:…@198.18.1.2"},
		{name: "empty", in: "", errorHas: "empty target"},
		{name: "empty host", in: "root@", errorHas: "empty host"},
		{name: "empty host with port", in: ":22", errorHas: "empty host"},
		{name: "empty user", in: "@node1", errorHas: "empty user"},
		{name: "port 0", in: "node1:0", errorHas: "port 0 out of range"},
		{name: "port 65536", in: "node1:65536", errorHas: "port 65536 out of range"},
		{name: "port not numeric", in: "node1:ssh", errorHas: `port "ssh" is not a number`},
		{name: "port signed", in: "node1:+22", errorHas: "not a number"},
		{name: "empty port", in: "node1:", errorHas: "empty port"},
		{name: "missing ]", in: "[fd42::1", errorHas: "unbalanced brackets"},
		{name: "missing [", in: "fd42::1]:22", errorHas: "unbalanced brackets"},
		{name: "junk after ]", in: "[fd42::1]x", errorHas: "after ']'"},
		{name: "ipv4 in brackets", in: "[198.18.1.2]:22", errorHas: "only for IPv6"},
		{name: "bad ipv6", in: "[fd42::1::2]", errorHas: "not a valid IPv6"},
		{name: "zone not link-local", in: "[fd42::1%eth0]", errorHas: "not a link-local"},
		{name: "empty zone", in: "[fe80::1%]", errorHas: "empty zone"},
		{name: "bad ipv4", in: "198.18.1.256", errorHas: "not a valid IPv4"},
		{name: "label dash", in: "-node1", errorHas: "starts or ends with '-'"},
		{name: "empty label", in: "node1..lab", errorHas: "empty label"},
		{name: "underscore", in: "node_1", errorHas: "not allowed in host names"},
		{name: "long label", in: strings.Repeat("a", 64) + ".lab", errorHas: "longer than 63"},
		{name: "user with space", in: "ro ot@node1", errorHas: "not allowed in a user name"},

		{name: "windows", in: "windows://admin@win1", want: Target{Kind: KindWindows, User: "admin", Host: "win1"}, addr: "win1:445"},
		{name: "windows upper case", in: "WINDOWS://Win1", want: Target{Kind: KindWindows, Host: "win1"}, str: "windows://win1", addr: "win1:445"},
		{name: "windows domain", in: `windows://LAB\Administrator@198.18.3.2`, want: Target{Kind: KindWindows, Domain: "LAB", User: "Administrator", Host: "198.18.3.2"}, addr: "198.18.3.2:445"},
		{name: "windows domain with semicolon", in: "windows://lab.example;admin@win1:4445", want: Target{Kind: KindWindows, Domain: "lab.example", User: "admin", Host: "win1", Port: 4445}, str: `windows://lab.example\admin@win1:4445`, addr: "win1:4445"},
		{name: "windows ipv6", in: "windows://admin@[fd42:5e:0:3::2]", want: Target{Kind: KindWindows, User: "admin", Host: "fd42:5e:0:3::2"}, addr: "[fd42:5e:0:3::2]:445"},
		{name: "windows ipv6 port", in: `windows://LAB\admin@[fd42:5e:0:3::2]:445/`, want: Target{Kind: KindWindows, Domain: "LAB", User: "admin", Host: "fd42:5e:0:3::2", Port: 445}, str: `windows://LAB\admin@[fd42:5e:0:3::2]:445`, addr: "[fd42:5e:0:3::2]:445"},
		{name: "windows empty domain", in: "windows://;admin@win1", errorHas: "empty domain"},
		{name: "windows bad domain", in: "windows://LA_B%;admin@win1", errorHas: "not allowed in a domain name"},
		{name: "windows two domains", in: "windows://A;B;admin@win1", errorHas: "one domain only"},
		{name: "windows empty user after domain", in: "windows://LAB;@win1", errorHas: "empty user"},
		{name: "windows bare ipv6", in: "windows://fd42::2", errorHas: "must be in brackets: windows://[fd42::2]"},
		{name: "windows path", in: "windows://win1/C$", errorHas: `a path ("/C$") is not taken: want windows://`},
		{name: "windows password", in: "windows://LAB;admin:Sekr3t@win1", errorHas: "windows://LAB;admin:…@win1"},
		{name: "unknown scheme", in: "https://bmc1", errorHas: `unknown scheme "https" (known: ssh://, bmc://, windows://, or none for ssh)`},
		{name: "empty scheme", in: "://node1", errorHas: `empty scheme before "://"`},
		{name: "not a scheme", in: "root@node1://x", errorHas: `"root@node1" before "://" is not a scheme`},
		{name: "bmc path", in: "bmc://bmc1/redfish/v1", errorHas: `a path ("/redfish/v1") is not taken: want bmc://[user@]host[:port]`},
		{name: "bmc query", in: "bmc://bmc1/?insecure=1", errorHas: `a query ("?insecure=1") is not taken`},
		{name: "bmc query without path", in: "bmc://bmc1?x", errorHas: `a query ("?x") is not taken`},
		{name: "bmc fragment", in: "bmc://bmc1#x", errorHas: `a fragment ("#x") is not taken`},
		{name: "ssh path", in: "ssh://node1/home", errorHas: `a path ("/home") is not taken: want ssh://`},
		{name: "bmc bare ipv6", in: "bmc://fd42::1", errorHas: "must be in brackets: bmc://[fd42::1]"},
		{name: "bmc empty", in: "bmc://", errorHas: "empty host"},
		{name: "bmc empty with slash", in: "bmc:///", errorHas: "empty host"},
		{name: "bmc empty host", in: "bmc://admin@", errorHas: "empty host"},
		{name: "bmc empty user", in: "bmc://@bmc1", errorHas: "empty user"},
		{name: "bmc port 0", in: "bmc://bmc1:0", errorHas: "port 0 out of range"},
		{name: "bmc empty port", in: "bmc://bmc1:", errorHas: "empty port"},
		{name: "bmc ipv4 in brackets", in: "bmc://[198.18.2.2]", errorHas: "only for IPv6"},
		{name: "bmc bad host", in: "bmc://bmc_1", errorHas: "not allowed in host names"},
		{name: "bmc password", in: "bmc://admin:Sekr3t@bmc1", errorHas: "bmc://admin:…@bmc1"},
		{name: "ssh password", in: "ssh://root:Sekr3t@node1:22", errorHas: "ssh://root:…@node1:22"},
		{name: "password with @", in: "bmc://admin:Sekr3t@x@bmc1", errorHas: "bmc://admin:…@bmc1"},
		{name: "password before a scheme", in: "admin:Sekr3t@bmc://bmc1", errorHas: "admin:…@bmc://bmc1"},
		{name: "password with a path", in: "bmc://admin:Sekr3t/x@bmc1", errorHas: "bmc://admin:…@bmc1"},
		{name: "password in unknown scheme", in: "https://admin:Sekr3t@bmc1", errorHas: "https://admin:…@bmc1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.errorHas)
				}
				if !strings.Contains(err.Error(), "target \""+tt.in) && tt.in != "" && !strings.Contains(tt.in, ":Sekr3t") {
					t.Errorf("error %q does not name the input", err)
				}
				if strings.Contains(err.Error(), "Sekr3t") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, diff)
			}
			str := tt.str
			if str == "" {
				str = tt.in
			}
			if got.String() != str {
				t.Errorf("String() = %q, want %q", got.String(), str)
			}
			if got.Addr() != tt.addr {
				t.Errorf("Addr() = %q, want %q", got.Addr(), tt.addr)
			}
		})
	}
}

func TestKind(t *testing.T) {
	for k, want := range map[Kind]int{KindSSH: 22, KindBMC: 443, KindWindows: 445, "": 22, "winrm": 0} {
		if got := k.DefaultPort(); got != want {
			t.Errorf("Kind(%q).DefaultPort() = %d, want %d", k, got, want)
		}
	}
	// A Target built without a kind is an ssh one, as before kinds.
	bare := Target{User: "root", Host: "node1"}
	if bare.String() != "root@node1" || bare.Addr() != "node1:22" {
		t.Errorf("Target without a kind: String() = %q, Addr() = %q", bare.String(), bare.Addr())
	}
	if bare.id() != (Target{Kind: KindSSH, Host: "node1", Port: 22}).id() {
		t.Error("a Target without a kind and an ssh one are not the same node")
	}
	// Server is not part of String().
	withServer := Target{Kind: KindBMC, Host: "bmc1", Server: "node1"}
	if withServer.String() != "bmc://bmc1" {
		t.Errorf("String() = %q", withServer.String())
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []Target
		errorHas []string
		errorNot []string // never in the error (passwords)
	}{
		{
			name: "comments and blanks",
			in:   "# fleet\n\nnode1\n  root@node2:2222  # db\n[fd42:5e:0:1::2]\n",
			want: []Target{{Kind: KindSSH, Host: "node1"}, {Kind: KindSSH, User: "root", Host: "node2", Port: 2222}, {Kind: KindSSH, Host: "fd42:5e:0:1::2"}},
		},
		{name: "crlf", in: "node1\r\nnode2\r\n", want: []Target{{Kind: KindSSH, Host: "node1"}, {Kind: KindSSH, Host: "node2"}}},
		{name: "bad lines all reported", in: "node1\nnode1:0\n\n[::1\n", errorHas: []string{"nodes.txt:2: target \"node1:0\"", "nodes.txt:4: target \"[::1\""}},
		{name: "duplicate", in: "node1\nroot@node1:22\n", errorHas: []string{"nodes.txt:2: duplicate target node1:22 (first on line 1)"}},
		{name: "empty", in: "# nothing\n", errorHas: []string{"nodes.txt: no targets"}},
		{name: "long line", in: strings.Repeat("a", maxLine+10), errorHas: []string{"nodes.txt:1: line longer than"}},
		{
			name: "servers",
			in:   "root@198.18.1.2  bmc://admin@198.18.2.2\nnode3\nbmc://bmc4 \t node4:2222 # two\nbmc://[fd42:5e:0:2::5]\n",
			want: []Target{
				{Kind: KindSSH, User: "root", Host: "198.18.1.2", Server: "root@198.18.1.2"},
				{Kind: KindBMC, User: "admin", Host: "198.18.2.2", Server: "root@198.18.1.2"},
				{Kind: KindSSH, Host: "node3"},
				{Kind: KindBMC, Host: "bmc4", Server: "bmc://bmc4"},
				{Kind: KindSSH, Host: "node4", Port: 2222, Server: "bmc://bmc4"},
				{Kind: KindBMC, Host: "fd42:5e:0:2::5"},
			},
		},
		{
			name: "server written with ssh://",
			in:   "ssh://Root@Node1 bmc://bmc1\n",
			want: []Target{{Kind: KindSSH, User: "Root", Host: "node1", Server: "Root@node1"}, {Kind: KindBMC, Host: "bmc1", Server: "Root@node1"}},
		},
		{
			name: "same address of two kinds",
			in:   "node1:443\nbmc://node1\n",
			want: []Target{{Kind: KindSSH, Host: "node1", Port: 443}, {Kind: KindBMC, Host: "node1"}},
		},
		{name: "two ssh on a line", in: "node1 root@node2\n", errorHas: []string{"nodes.txt:1: two ssh targets on one line: node1 and root@node2"}},
		{name: "ssh and ssh://", in: "node1\tssh://node2\n", errorHas: []string{"nodes.txt:1: two ssh targets on one line: node1 and node2"}},
		{name: "two bmc on a line", in: "node1\nnode2 bmc://b1 bmc://admin@b2:8443\n", errorHas: []string{"nodes.txt:2: two bmc targets on one line: bmc://b1 and bmc://admin@b2:8443"}},
		{name: "duplicate bmc", in: "node1 bmc://b1\nbmc://admin@B1:443/\n", errorHas: []string{"nodes.txt:2: duplicate target bmc://b1:443 (first on line 1)"}},
		{name: "duplicate in a server", in: "node1\nbmc://b2 root@node1:22\n", errorHas: []string{"nodes.txt:2: duplicate target node1:22 (first on line 1)"}},
		{name: "every duplicate of a line", in: "node1 bmc://b1\nnode1 bmc://b1\n", errorHas: []string{"nodes.txt:2: duplicate target node1:22 (first on line 1)", "nodes.txt:2: duplicate target bmc://b1:443 (first on line 1)"}},
		{name: "bad target in a server", in: "node1 bmc://b1/redfish/v1\n", errorHas: []string{`nodes.txt:1: target "bmc://b1/redfish/v1": a path`}},
		{name: "every bad target of a line", in: "node1:0 bmc://b1:0\n", errorHas: []string{`nodes.txt:1: target "node1:0"`, `nodes.txt:1: target "bmc://b1:0"`}},
		{name: "two windows on a line", in: "windows://w1 windows://w2\n", errorHas: []string{"nodes.txt:1: two windows targets on one line: windows://w1 and windows://w2"}},
		{name: "duplicate windows", in: "windows://w1\nwindows://admin@W1:445\n", errorHas: []string{"nodes.txt:2: duplicate target windows://w1:445 (first on line 1)"}},
		{name: "unknown scheme in a server", in: "node1 redfish://b1\n", errorHas: []string{`unknown scheme "redfish"`}},
		{
			name:     "password in a server",
			in:       "node1 bmc://admin:Zq9VerySecret@b1\n",
			errorHas: []string{`nodes.txt:1: target "bmc://admin:…@b1": a password`},
			errorNot: []string{"Zq9VerySecret"},
		},
		{
			name:     "password with a space",
			in:       "admin:Zq9 VerySecret@node1\n",
			errorHas: []string{"nodes.txt:1: not a list of targets (not shown: it may hold user:password@host"},
			errorNot: []string{"Zq9", "VerySecret"},
		},
		{
			name:     "numeric password with a space",
			in:       "admin:1234 5678@node1\n",
			errorHas: []string{"nodes.txt:1: not a list of targets (not shown"},
			errorNot: []string{"1234", "5678"},
		},
		{
			name:     "password with an @ and a space",
			in:       "admin:Zq9@Very Secret@node1\n",
			errorHas: []string{"nodes.txt:1: not a list of targets (not shown"},
			errorNot: []string{"Zq9", "Very", "Secret"},
		},
		{
			name:     "password and a bad target",
			in:       "admin:Zq9VerySecret@node1 node2:0\n",
			errorHas: []string{`nodes.txt:1: target "admin:…@node1": a password`, `nodes.txt:1: target "node2:0": port 0 out of range`},
			errorNot: []string{"Zq9VerySecret"},
		},
		{
			name:     "bmc password with spaces",
			in:       "bmc://admin:Zq9 Very Secret@b1 node1\n",
			errorHas: []string{"nodes.txt:1: not a list of targets (not shown"},
			errorNot: []string{"Zq9", "Very", "Secret"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseList(strings.NewReader(tt.in), "nodes.txt")
			if len(tt.errorHas) > 0 {
				if err == nil {
					t.Fatalf("ParseList = %v, want an error", got)
				}
				for _, s := range tt.errorHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				for _, s := range tt.errorNot {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q shows %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseHPSUMInputFile(t *testing.T) {
	f, err := os.Open("testdata/input.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseHPSUMInput(f, "input.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := &InputFile{
		Groups: []TargetGroup{
			{Line: 6, Targets: []Target{{Kind: KindSSH, Host: "198.18.1.2"}, {Kind: KindSSH, Host: "node2.lab", Port: 2222}}, User: "root", Password: Secret("s3cret pass")},
			{Line: 13, Targets: []Target{{Kind: KindSSH, User: "admin", Host: "fd42:5e:0:3::2"}}, UseCurrentCredential: true},
		},
		Options:  map[string]string{"SILENT": "YES", "ON_FAILED_DEPENDENCY": "Omit_Component"},
		Warnings: []string{`input.txt:4: unknown key "MYSTERY" ignored`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseHPSUMInputServers(t *testing.T) {
	f, err := os.Open("testdata/input-servers.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ParseHPSUMInput(f, "input-servers.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := &InputFile{
		Groups: []TargetGroup{
			{
				Line: 3,
				Targets: []Target{
					{Kind: KindBMC, Host: "10.0.0.5"},
					{Kind: KindBMC, User: "admin", Host: "10.0.0.6", Port: 8443},
					{Kind: KindSSH, User: "root", Host: "10.0.0.7"},
					{Kind: KindBMC, Host: "bmc8.lab", Server: "bmc://bmc8.lab"},
					{Kind: KindSSH, Host: "node8.lab", Server: "bmc://bmc8.lab"},
				},
				User:     "admin",
				Password: Secret("bmc pass"),
			},
			{
				Line: 13,
				Targets: []Target{
					{Kind: KindSSH, User: "root", Host: "198.18.1.2", Server: "root@198.18.1.2"},
					{Kind: KindBMC, User: "admin", Host: "198.18.2.2", Server: "root@198.18.1.2"},
					{Kind: KindBMC, Host: "fd42:5e:0:2::3"},
					{Kind: KindSSH, Host: "node9"},
				},
				UseCurrentCredential: true,
			},
		},
		Options: map[string]string{"SILENT": "YES"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseHPSUMInputErrors(t *testing.T) {
	const pw = "Zq9-VerySecret"
	tests := []struct {
		name     string
		in       string
		errorHas string
	}{
		{name: "no section", in: "SILENT=YES\n", errorHas: "in.txt: no [TARGETS] section"},
		{name: "not closed", in: "[TARGETS]\nHOST=n1\n", errorHas: "in.txt:1: [TARGETS] section not closed with [END]"},
		{name: "end without targets", in: "[END]\n", errorHas: "in.txt:1: [END] without [TARGETS]"},
		{name: "nested", in: "[TARGETS]\nHOST=n1\n[TARGETS]\nHOST=n2\n[END]\n", errorHas: "in.txt:3: [TARGETS] inside the [TARGETS] section opened on line 1"},
		{name: "no host", in: "[TARGETS]\nUID=root\n[END]\n", errorHas: "in.txt:1: [TARGETS] section has no HOST="},
		{name: "bad host", in: "[TARGETS]\nHOST=n1:99999\n[END]\n", errorHas: "in.txt:2: HOST: target \"n1:99999\": port 99999 out of range"},
		{name: "duplicate host", in: "[TARGETS]\nHOST=n1\n[END]\n[TARGETS]\nHOST=n1:22\n[END]\n", errorHas: "in.txt:5: duplicate target n1:22 (first on line 2)"},
		{name: "host outside", in: "HOST=n1\n", errorHas: "in.txt:1: HOST= outside a [TARGETS]"},
		{name: "pwd twice", in: "[TARGETS]\nHOST=n1\nUID=root\nPWD=" + pw + "\nPWD=" + pw + "x\n[END]\n", errorHas: "in.txt:5: PWD given twice in one [TARGETS] section (first on line 4)"},
		{name: "pwd without uid", in: "[TARGETS]\nHOST=n1\nPWD=" + pw + "\n[END]\n", errorHas: "PWD= but no UID="},
		{name: "current and uid", in: "[TARGETS]\nHOST=n1\nUID=root\nUSECURRENTCREDENTIAL=YES\n[END]\n", errorHas: "use one or the other"},
		{name: "bad yes/no", in: "[TARGETS]\nHOST=n1\nUSECURRENTCREDENTIAL=maybe\n[END]\n", errorHas: `USECURRENTCREDENTIAL="maybe": want YES or NO`},
		{name: "unknown key in section", in: "[TARGETS]\nHOST=n1\nPORT=1\n[END]\n", errorHas: `in.txt:3: unknown key "PORT" in a [TARGETS] section`},
		{name: "no equals in section", in: "[TARGETS]\nHOST=n1\n" + pw + "\n[END]\n", errorHas: "in.txt:3: expected KEY=VALUE"},
		{name: "empty password", in: "[TARGETS]\nHOST=n1\nUID=a\nPWD=\n[END]\n", errorHas: "in.txt:4: empty PWD="},
		{name: "unknown section", in: "[OPTIONS]\n", errorHas: "in.txt:1: unknown section [OPTIONS]"},
		{name: "malformed header", in: "[TARGETS\n", errorHas: "in.txt:1: malformed section header"},

		{name: "type after host", in: "[TARGETS]\nHOST=n1\nUID=root\nTYPE=bmc\n[END]\n", errorHas: "in.txt:4: TYPE= after HOST= (line 2): TYPE= sets the kind of every HOST= of the section, so it goes before the first"},
		{name: "type after a bad host", in: "[TARGETS]\nHOST=n1:0\nTYPE=bmc\n[END]\n", errorHas: "in.txt:3: TYPE= after HOST= (line 2)"},
		{name: "type unknown", in: "[TARGETS]\nTYPE=redfish\nHOST=n1\n[END]\n", errorHas: `in.txt:2: TYPE="redfish": unknown kind (want ssh, bmc or windows)`},
		{name: "type empty", in: "[TARGETS]\nTYPE=\nHOST=n1\n[END]\n", errorHas: `in.txt:2: TYPE="": unknown kind (want ssh, bmc or windows)`},
		{name: "type twice", in: "[TARGETS]\nTYPE=bmc\nTYPE=bmc\nHOST=n1\n[END]\n", errorHas: "in.txt:3: TYPE given twice in one [TARGETS] section (first on line 2)"},
		{name: "type outside", in: "TYPE=bmc\n[TARGETS]\nHOST=n1\n[END]\n", errorHas: "in.txt:1: TYPE= outside a [TARGETS] ... [END] section"},
		{name: "type of one section only", in: "[TARGETS]\nTYPE=bmc\nHOST=n1\n[END]\n[TARGETS]\nHOST=n1\nHOST=bmc://n1\n[END]\n", errorHas: "in.txt:7: duplicate target bmc://n1:443 (first on line 3)"},
		{name: "two ssh in a host", in: "[TARGETS]\nHOST=n1 root@n2\n[END]\n", errorHas: "in.txt:2: HOST: two ssh targets on one line: n1 and root@n2"},
		{name: "two bmc in a bmc section", in: "[TARGETS]\nTYPE=bmc\nHOST=b1 bmc://b2\n[END]\n", errorHas: "in.txt:3: HOST: two bmc targets on one line: bmc://b1 and bmc://b2"},
		{name: "duplicate in a server", in: "[TARGETS]\nHOST=bmc://b1\nHOST=n1 bmc://b1\n[END]\n", errorHas: "in.txt:3: duplicate target bmc://b1:443 (first on line 2)"},
		{name: "host with a path", in: "[TARGETS]\nHOST=bmc://b1/redfish/v1\n[END]\n", errorHas: `in.txt:2: HOST: target "bmc://b1/redfish/v1": a path`},
		{name: "host unknown scheme", in: "[TARGETS]\nHOST=https://b1\n[END]\n", errorHas: `in.txt:2: HOST: target "https://b1": unknown scheme "https"`},
		{name: "host empty", in: "[TARGETS]\nHOST=\n[END]\n", errorHas: `in.txt:2: HOST: target "": empty target`},
		{name: "host password", in: "[TARGETS]\nHOST=bmc://admin:" + pw + "@b1\n[END]\n", errorHas: `in.txt:2: HOST: target "bmc://admin:…@b1": a password`},
		{name: "host password with a space", in: "[TARGETS]\nHOST=admin:Zq9 VerySecret@b1\n[END]\n", errorHas: "in.txt:2: HOST: not a list of targets (not shown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHPSUMInput(strings.NewReader(tt.in), "in.txt")
			if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
				t.Fatalf("error = %v, want %q", err, tt.errorHas)
			}
			if strings.Contains(err.Error(), "VerySecret") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestSecretNotPrinted(t *testing.T) {
	g := TargetGroup{User: "root", Password: Secret("VerySecret")}
	for _, s := range []string{fmt.Sprintf("%v", g), fmt.Sprintf("%+v", g), fmt.Sprintf("%#v", g), fmt.Sprintf("%s", g.Password), fmt.Sprintf("%x", g.Password)} {
		if strings.Contains(s, "VerySecret") || strings.Contains(s, "56657279") {
			t.Errorf("formatted group reveals the password: %s", s)
		}
	}
	g.Password.Zero()
	if string(g.Password) != strings.Repeat("\x00", 10) {
		t.Error("Zero did not clear the password")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"node1", "root@node1:22", "[fd42::1]:22", "fd42::1", "[fe80::1%eth0]", "198.18.1.2", "a@b@c", "[", "]:", "n:0",
		"ssh://root@node1:2222", "SSH://node1/", "bmc://admin@198.18.2.2", "bmc://[fd42:5e:0:2::2]:8443/", "BMC://B1.lab",
		"bmc://[fe80::1%eth0]", "bmc://fd42::1", "bmc://b1/redfish", "bmc://b1?x#y", "windows://w1", `windows://LAB\admin@[fd42::2]:445`, "windows://d;u@w", `windows://\u@w`, "https://b1", "://x",
		"bmc://admin:pw@b1", "a:b@bmc://c", "x://", "bmc://@", "bmc:///",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			return
		}
		if got.Host == "" || got.Port < 0 || got.Port > 65535 || got.Kind.DefaultPort() == 0 || got.Server != "" {
			t.Fatalf("Parse(%q) = %+v", s, got)
		}
		// What Parse accepts, String writes back in a form Parse reads the same.
		again, err := Parse(got.String())
		if err != nil || again != got {
			t.Fatalf("Parse(%q) = %+v; Parse(String()=%q) = %+v, %v", s, got, got.String(), again, err)
		}
	})
}

func FuzzParseList(f *testing.F) {
	f.Add("node1\n# c\nroot@node2:2222\n")
	f.Add("node1\nnode1\n")
	f.Add("[::1]:22 # x\n\n")
	f.Add("root@198.18.1.2  bmc://admin@198.18.2.2\nnode3\n")
	f.Add("bmc://b1 n1\nbmc://b1:443\n")
	f.Add("n1 n2\tbmc://b\n")
	f.Add("admin:p w@n1\n")
	f.Add("windows://LAB\\admin@w1 bmc://b1\nwindows://[fd42::2]:445\n")
	f.Add("windows://d;u@w1 root@n1\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseList(strings.NewReader(s), "f")
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatal("no error and no targets")
		}
		checkTargets(t, got)
	})
}

func FuzzParseHPSUMInput(f *testing.F) {
	data, err := os.ReadFile("testdata/input.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(data))
	f.Add("[TARGETS]\nHOST=n1\nUID=root\nPWD=x\n[END]\n")
	f.Add("[TARGETS]\n[TARGETS]\n[END]\n[END]\n")
	data, err = os.ReadFile("testdata/input-servers.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(data))
	f.Add("[TARGETS]\nTYPE=bmc\nHOST=b1 ssh://n1\n[END]\n")
	f.Add("[TARGETS]\nHOST=n1\nTYPE=bmc\n[END]\n")
	f.Add("[TARGETS]\nTYPE=windows\nHOST=w1 bmc://b1\nUID=LAB\\Administrator\nPWD=x\n[END]\n")
	f.Add("TYPE=ssh\n[TARGETS]\nHOST=\"n1  bmc://b1\"\n[END]\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseHPSUMInput(strings.NewReader(s), "f")
		if err != nil {
			return
		}
		if len(got.Groups) == 0 {
			t.Fatal("no error and no groups")
		}
		var all []Target
		for _, g := range got.Groups {
			if len(g.Targets) == 0 {
				t.Fatal("group without targets")
			}
			all = append(all, g.Targets...)
		}
		checkTargets(t, all)
	})
}

// checkTargets checks what a file parser returned: kinds set, no
// duplicates, and servers in runs that start with the target they are
// named after, each with at most one target of a kind.
func checkTargets(t *testing.T, ts []Target) {
	t.Helper()
	seen := map[string]bool{}
	var kinds map[Kind]bool
	for i, tg := range ts {
		if tg.Kind.DefaultPort() == 0 {
			t.Fatalf("target %d %+v has no kind", i, tg)
		}
		if seen[tg.id()] {
			t.Fatalf("duplicate %s", tg.id())
		}
		seen[tg.id()] = true
		switch {
		case tg.Server == "":
		case i == 0 || ts[i-1].Server != tg.Server:
			if tg.String() != tg.Server {
				t.Fatalf("target %d %s starts server %q", i, tg, tg.Server)
			}
			kinds = map[Kind]bool{tg.Kind: true}
		default:
			if kinds[tg.Kind] {
				t.Fatalf("server %q has two %s targets", tg.Server, tg.Kind)
			}
			kinds[tg.Kind] = true
		}
	}
}

// FuzzPasswordNotShown checks that no error shows a piece of a password
// given in a target (user:password@host), even one with white space, '@'
// or ':' in it, which a nodes file line splits into several targets. Every
// character of the password is followed by a marker, so that any piece of
// it that an error shows brings a marker along.
func FuzzPasswordNotShown(f *testing.F) {
	for _, seed := range [][3]string{
		{"admin", "secret", "node1"},
		{"admin", "pass word", "node1"},
		{"admin", "p@ss word", "node1"},
		{"bmc://admin", "12 34", "bmc1 node1"},
		{"ssh://root", "a:b c@d", "node1:22"},
		{"root", " x ", " node1"},
		{"admin", "p/x?y", "[fd42::1]:2"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	const marker = "Zq9x"
	f.Fuzz(func(t *testing.T, user, pw, host string) {
		if user == "" || pw == "" || strings.ContainsAny(user, ":@#\r\n \t\v\f\u0085\u00a0") || strings.ContainsAny(host, "@#\r\n") ||
			strings.ContainsAny(pw, "#\r\n") || strings.Contains(user+host, "Zq9") {
			return
		}
		var marked strings.Builder
		for _, r := range pw {
			marked.WriteRune(r)
			marked.WriteString(marker)
		}
		line := user + ":" + marked.String() + "@" + host
		if _, err := Parse(line); err == nil {
			t.Fatalf("Parse(%q) took a password", line)
		} else if strings.Contains(err.Error(), marker) {
			t.Fatalf("Parse(%q): error shows the password: %v", line, err)
		}
		if _, err := ParseList(strings.NewReader(line+"\n"), "nodes.txt"); err != nil && strings.Contains(err.Error(), marker) {
			t.Fatalf("ParseList(%q): error shows the password: %v", line, err)
		}
		in := "[TARGETS]\nHOST=" + line + "\n[END]\n"
		if _, err := ParseHPSUMInput(strings.NewReader(in), "in.txt"); err != nil && strings.Contains(err.Error(), marker) {
			t.Fatalf("ParseHPSUMInput(%q): error shows the password: %v", in, err)
		}
	})
}

func TestWindowsTargets(t *testing.T) {
	in := "[TARGETS]\nTYPE=Windows\nHOST=w1 \nHOST=[fd42:5e:0:3::2]\nUID=LAB\\Administrator\n[END]\n[TARGETS]\nHOST=windows://w2 root@n2\n[END]\n"
	f, err := ParseHPSUMInput(strings.NewReader(in), "in.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := []Target{}
	for _, g := range f.Groups {
		got = append(got, g.Targets...)
	}
	want := []Target{
		{Kind: KindWindows, Host: "w1"},
		{Kind: KindWindows, Host: "fd42:5e:0:3::2"},
		{Kind: KindWindows, Host: "w2", Server: "windows://w2"},
		{Kind: KindSSH, User: "root", Host: "n2", Server: "windows://w2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("targets (-want +got):\n%s", diff)
	}
	if f.Groups[0].User != `LAB\Administrator` {
		t.Fatalf("UID %q", f.Groups[0].User)
	}
	// A section's UID= with a domain is the account of its targets.
	w := f.Groups[0].Targets[0]
	w.User = f.Groups[0].User
	if d, u := w.Account(); d != "LAB" || u != "Administrator" {
		t.Fatalf("Account() = %q, %q", d, u)
	}
	if d, u := (Target{Kind: KindWindows, Domain: "D", User: "u"}).Account(); d != "D" || u != "u" {
		t.Fatalf("Account() = %q, %q", d, u)
	}
	if d, u := (Target{Kind: KindWindows, User: "D;u"}).Account(); d != "D" || u != "u" {
		t.Fatalf("Account() = %q, %q", d, u)
	}
}

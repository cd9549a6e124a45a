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
		{name: "name", in: "node1", want: Target{Host: "node1"}, addr: "node1:22"},
		{name: "name upper case", in: "Node1.Lab", want: Target{Host: "node1.lab"}, str: "node1.lab", addr: "node1.lab:22"},
		{name: "user and port", in: "root@node1:2222", want: Target{User: "root", Host: "node1", Port: 2222}, addr: "node1:2222"},
		{name: "ipv4", in: "198.18.1.2", want: Target{Host: "198.18.1.2"}, addr: "198.18.1.2:22"},
		{name: "ipv4 port", in: "198.18.1.2:22", want: Target{Host: "198.18.1.2", Port: 22}, addr: "198.18.1.2:22"},
		{name: "ipv6 brackets", in: "[fd42:5e:0:1::2]", want: Target{Host: "fd42:5e:0:1::2"}, addr: "[fd42:5e:0:1::2]:22"},
		{name: "ipv6 port", in: "admin@[fd42:5e:0:1::2]:2200", want: Target{User: "admin", Host: "fd42:5e:0:1::2", Port: 2200}, addr: "[fd42:5e:0:1::2]:2200"},
		{name: "bare ipv6", in: "fd42:5e:0:1:0:0:0:2", want: Target{Host: "fd42:5e:0:1::2"}, str: "[fd42:5e:0:1::2]", addr: "[fd42:5e:0:1::2]:22"},
		{name: "link-local zone", in: "[fe80::1%eth0]:22", want: Target{Host: "fe80::1%eth0", Port: 22}, addr: "[fe80::1%eth0]:22"},
		{name: "trailing dot", in: "node1.lab.", want: Target{Host: "node1.lab"}, str: "node1.lab", addr: "node1.lab:22"},
		{name: "spaces trimmed", in: "  node1 ", want: Target{Host: "node1"}, str: "node1", addr: "node1:22"},

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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.errorHas)
				}
				if !strings.Contains(err.Error(), "target \""+tt.in) && tt.in != "" && !strings.Contains(tt.in, ":Sekr3t@") {
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

func TestParseList(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []Target
		errorHas []string
	}{
		{
			name: "comments and blanks",
			in:   "# fleet\n\nnode1\n  root@node2:2222  # db\n[fd42:5e:0:1::2]\n",
			want: []Target{{Host: "node1"}, {User: "root", Host: "node2", Port: 2222}, {Host: "fd42:5e:0:1::2"}},
		},
		{name: "crlf", in: "node1\r\nnode2\r\n", want: []Target{{Host: "node1"}, {Host: "node2"}}},
		{name: "bad lines all reported", in: "node1\nnode1:0\n\n[::1\n", errorHas: []string{"nodes.txt:2: target \"node1:0\"", "nodes.txt:4: target \"[::1\""}},
		{name: "duplicate", in: "node1\nroot@node1:22\n", errorHas: []string{"nodes.txt:2: duplicate target node1:22 (first on line 1)"}},
		{name: "empty", in: "# nothing\n", errorHas: []string{"nodes.txt: no targets"}},
		{name: "long line", in: strings.Repeat("a", maxLine+10), errorHas: []string{"nodes.txt:1: line longer than"}},
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
			{Line: 6, Targets: []Target{{Host: "198.18.1.2"}, {Host: "node2.lab", Port: 2222}}, User: "root", Password: Secret("s3cret pass")},
			{Line: 13, Targets: []Target{{User: "admin", Host: "fd42:5e:0:3::2"}}, UseCurrentCredential: true},
		},
		Options:  map[string]string{"SILENT": "YES", "ON_FAILED_DEPENDENCY": "Omit_Component"},
		Warnings: []string{`input.txt:4: unknown key "MYSTERY" ignored`},
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
	for _, s := range []string{"node1", "root@node1:22", "[fd42::1]:22", "fd42::1", "[fe80::1%eth0]", "198.18.1.2", "a@b@c", "[", "]:", "n:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			return
		}
		if got.Host == "" || got.Port < 0 || got.Port > 65535 {
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
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseList(strings.NewReader(s), "f")
		if err == nil && len(got) == 0 {
			t.Fatal("no error and no targets")
		}
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
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseHPSUMInput(strings.NewReader(s), "f")
		if err != nil {
			return
		}
		if len(got.Groups) == 0 {
			t.Fatal("no error and no groups")
		}
		for _, g := range got.Groups {
			if len(g.Targets) == 0 {
				t.Fatal("group without targets")
			}
		}
	})
}

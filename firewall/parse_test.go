package firewall

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseSave(t *testing.T) {
	tab, err := parseSave(readTestdata(t, "iptables-save.txt"), "filter")
	if err != nil {
		t.Fatal(err)
	}
	wantPolicies := map[string]string{"INPUT": "DROP", "FORWARD": "ACCEPT", "OUTPUT": "ACCEPT", "fleetup-user": "-"}
	if diff := cmp.Diff(wantPolicies, tab.Policies); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	wantRules := []saveRule{
		{
			Chain:    "INPUT",
			Spec:     strings.Fields("-s 198.18.240.1/32 -p tcp -m tcp --dport 62286 -m comment --comment fleetup:run1 -j ACCEPT"),
			Comments: []string{"fleetup:run1"},
			Line:     `-A INPUT -s 198.18.240.1/32 -p tcp -m tcp --dport 62286 -m comment --comment "fleetup:run1" -j ACCEPT`,
		},
		{
			Chain: "INPUT",
			Spec:  strings.Fields("-p tcp -m tcp --dport 22 -j ACCEPT"),
			Line:  `-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT`,
		},
		{
			Chain:    "INPUT",
			Spec:     []string{"-m", "comment", "--comment", `admin: keep "this" one`, "-j", "fleetup-user"},
			Comments: []string{`admin: keep "this" one`},
			Line:     `-A INPUT -m comment --comment "admin: keep \"this\" one" -j fleetup-user`,
		},
		{
			Chain:    "fleetup-user",
			Spec:     strings.Fields("-s 198.18.240.1/32 -p tcp -m tcp --dport 62287 -m comment --comment fleetup:run2 -j ACCEPT"),
			Comments: []string{"fleetup:run2"},
			Line:     `-A fleetup-user -s 198.18.240.1/32 -p tcp -m tcp --dport 62287 -m comment --comment "fleetup:run2" -j ACCEPT`,
		},
	}
	if diff := cmp.Diff(wantRules, tab.Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if !tab.filters() {
		t.Errorf("filters() = false for a DROP policy")
	}
	var tagged []string
	for _, r := range tab.Rules {
		if r.hasTag("fleetup:run") {
			tagged = append(tagged, r.Chain)
		}
	}
	if diff := cmp.Diff([]string{"INPUT", "fleetup-user"}, tagged); diff != "" {
		t.Errorf("tagged rules' chains (-want +got):\n%s", diff)
	}
}

func TestParseSaveCases(t *testing.T) {
	tests := []struct {
		name, in    string
		wantFilters bool
		wantRules   int
		wantErr     string
	}{
		{name: "empty output", in: "", wantFilters: false},
		{name: "accept policy no rules", in: "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"},
		{name: "drop policy", in: "*filter\n:INPUT DROP [12:345]\nCOMMIT\n", wantFilters: true},
		{name: "rule in INPUT", in: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n", wantFilters: true, wantRules: 1},
		{name: "rule in user chain only", in: "*filter\n:INPUT ACCEPT [0:0]\n:x - [0:0]\n-A x -j DROP\nCOMMIT\n", wantRules: 1},
		{name: "other tables skipped", in: "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"},
		{name: "unquoted comment", in: "*filter\n-A INPUT -m comment --comment fleetup:a -j ACCEPT\nCOMMIT\n", wantFilters: true, wantRules: 1},
		{name: "unterminated quote", in: "*filter\n-A INPUT -m comment --comment \"x -j ACCEPT\nCOMMIT\n", wantErr: `line 2 "-A INPUT -m comment --comment \"x -j ACCEPT": unterminated quote`},
		{name: "trailing backslash", in: "*filter\n-A INPUT -j ACCEPT \\\nCOMMIT\n", wantErr: "ends in a backslash"},
		{name: "comment without value", in: "*filter\n-A INPUT -m comment --comment\nCOMMIT\n", wantErr: "--comment without a value"},
		{name: "rule outside table", in: "-A INPUT -j ACCEPT\n", wantErr: "line 1 \"-A INPUT -j ACCEPT\": rule outside a table"},
		{name: "missing commit", in: "*filter\n:INPUT DROP [0:0]\n", wantErr: `table "filter" has no COMMIT`},
		{name: "table twice", in: "*filter\nCOMMIT\n*filter\n:INPUT DROP [0:0]\nCOMMIT\n*filter\n-A INPUT -j DROP\nCOMMIT\n", wantErr: "appears twice"},
		{name: "unknown line", in: "*filter\n-I INPUT -j ACCEPT\nCOMMIT\n", wantErr: "unknown line"},
		{name: "bad chain line", in: "*filter\n:INPUT\nCOMMIT\n", wantErr: "want \":CHAIN POLICY"},
		{name: "duplicate chain", in: "*filter\n:INPUT DROP\n:INPUT ACCEPT\nCOMMIT\n", wantErr: `chain "INPUT" declared twice`},
		{name: "nested table", in: "*filter\n*nat\nCOMMIT\n", wantErr: "table starts before COMMIT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := parseSave([]byte(tc.in), "filter")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tab.filters(); got != tc.wantFilters {
				t.Errorf("filters() = %v, want %v", got, tc.wantFilters)
			}
			if len(tab.Rules) != tc.wantRules {
				t.Errorf("%d rules, want %d", len(tab.Rules), tc.wantRules)
			}
		})
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"plain", "-A INPUT -j ACCEPT", []string{"-A", "INPUT", "-j", "ACCEPT"}},
		{"blanks", "  -A\tINPUT  ", []string{"-A", "INPUT"}},
		{"quoted", `--comment "a b"`, []string{"--comment", "a b"}},
		{"escaped quote", `--comment "a \"b\" \\c"`, []string{"--comment", `a "b" \c`}},
		{"empty quoted", `--comment ""`, []string{"--comment", ""}},
		{"joined", `x"y z"w`, []string{"xy zw"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitArgs(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseSave(f *testing.F) {
	f.Add(readTestdata(f, "iptables-save.txt"))
	f.Add(readTestdata(f, "ip6tables-save.txt"))
	f.Add([]byte("*filter\n:INPUT DROP [0:0]\n-A INPUT -m comment --comment \"a\\\"b\" -j ACCEPT\nCOMMIT\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := parseSave(data, "filter")
		if err != nil {
			if tab != nil {
				t.Fatalf("table and error both returned")
			}
			return
		}
		for _, r := range tab.Rules {
			// Each rule's chain and spec are its own line's arguments.
			args, err := splitArgs(r.Line)
			if err != nil || len(args) < 2 || args[0] != "-A" || args[1] != r.Chain || !cmp.Equal(args[2:], r.Spec, cmpopts.EquateEmpty()) {
				t.Fatalf("rule %+v does not match its line (%q, %v)", r, args, err)
			}
		}
		_ = tab.filters()
	})
}

func TestParseNFT(t *testing.T) {
	rs, err := parseNFT(readTestdata(t, "nft-mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	owned := rs.iptablesOwned()
	wantOwned := map[tableKey]bool{{"ip", "filter"}: true, {"ip6", "filter"}: true, {"ip", "nat"}: true}
	if diff := cmp.Diff(wantOwned, owned, cmp.AllowUnexported(tableKey{})); diff != "" {
		t.Errorf("iptables-nft tables (-want +got):\n%s", diff)
	}
	var chains []string
	for _, c := range rs.inputChains() {
		chains = append(chains, c.Family+" "+c.Table+" "+c.Name)
	}
	// ip6 other's in6 accepts by policy and has no rules; the forward
	// chain is not on the input hook; ip filter INPUT is iptables-nft's.
	if diff := cmp.Diff([]string{"inet fw input", "ip mangle input"}, chains); diff != "" {
		t.Errorf("input chains (-want +got):\n%s", diff)
	}
	var tagged []string
	for _, r := range rs.tagged(TagPrefix) {
		tagged = append(tagged, describe(r))
	}
	want := []string{
		`nftables: inet fw input handle 7 comment "fleetup:run1"`,
		`nftables: inet fw helper handle 8 comment "fleetup:run2"`,
	}
	if diff := cmp.Diff(want, tagged); diff != "" {
		t.Errorf("tagged rules (-want +got):\n%s", diff)
	}
	if got := rs.tagged("fleetup:run2"); len(got) != 1 || got[0].Handle != 8 {
		t.Errorf("tagged(fleetup:run2) = %+v, want handle 8 only", got)
	}
}

func TestParseNFTCases(t *testing.T) {
	tests := []struct {
		name, in   string
		wantChains int
		wantErr    string
	}{
		{name: "empty", in: ""},
		{name: "metainfo only", in: `{"nftables": [{"metainfo": {"version": "1.0.6"}}]}`},
		{name: "drop policy", in: `{"nftables": [{"table": {"family": "inet", "name": "t"}}, {"chain": {"family": "inet", "table": "t", "name": "c", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}]}`, wantChains: 1},
		{name: "accept policy no rules", in: `{"nftables": [{"chain": {"family": "ip", "table": "t", "name": "c", "type": "filter", "hook": "input", "policy": "accept"}}]}`},
		{name: "netdev ignored", in: `{"nftables": [{"chain": {"family": "netdev", "table": "t", "name": "c", "type": "filter", "hook": "input", "policy": "drop"}}]}`},
		{name: "xt rule marks table", in: `{"nftables": [{"table": {"family": "ip", "name": "t"}}, {"chain": {"family": "ip", "table": "t", "name": "c", "type": "filter", "hook": "input", "policy": "drop"}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 3, "expr": [{"xt": {"type": "match", "name": "comment"}}]}}]}`},
		{name: "iptables-nft table without rules", in: `{"nftables": [{"table": {"family": "ip6", "name": "filter"}}, {"chain": {"family": "ip6", "table": "filter", "name": "INPUT", "type": "filter", "hook": "input", "policy": "drop"}}]}`},
		{name: "native filter table with lower-case chain", in: `{"nftables": [{"table": {"family": "ip", "name": "filter"}}, {"chain": {"family": "ip", "table": "filter", "name": "input", "type": "filter", "hook": "input", "policy": "drop"}}]}`, wantChains: 1},
		{name: "not JSON", in: "table inet t {}", wantErr: "parse nft JSON ruleset"},
		{name: "rule without handle", in: `{"nftables": [{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": []}}]}`, wantErr: "object 0: rule without family, table, chain or handle"},
		{name: "chain without name", in: `{"nftables": [{"chain": {"family": "ip", "table": "t"}}]}`, wantErr: "object 0: chain without"},
		{name: "table without name", in: `{"nftables": [{"table": {"family": "ip"}}]}`, wantErr: "object 0: table without"},
		{name: "wrong type", in: `{"nftables": [{"rule": {"family": 4}}]}`, wantErr: "parse nft JSON ruleset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := parseNFT([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(rs.inputChains()); got != tc.wantChains {
				t.Errorf("%d input chains, want %d", got, tc.wantChains)
			}
		})
	}
}

func FuzzParseNFT(f *testing.F) {
	f.Add(readTestdata(f, "nft-mixed.json"))
	f.Add([]byte(`{"nftables": [{"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 1, "comment": "fleetup:x", "expr": [{"accept": null}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := parseNFT(data)
		if err != nil {
			return
		}
		owned := rs.iptablesOwned()
		for _, c := range rs.inputChains() {
			if c.Hook != "input" || owned[tableKey{c.Family, c.Table}] {
				t.Fatalf("input chain %+v", c)
			}
		}
		for _, r := range rs.tagged(TagPrefix) {
			if !strings.HasPrefix(r.Comment, TagPrefix) || r.Handle == 0 {
				t.Fatalf("tagged rule %+v", r)
			}
		}
	})
}

func TestRuleValidate(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.240.1")
	tests := []struct {
		name    string
		rule    Rule
		wantErr string
	}{
		{name: "ipv4", rule: Rule{Tag: "fleetup:run-1.a_B", Port: 62286, Source: v4}},
		{name: "ipv6", rule: Rule{Tag: "fleetup:r", Port: 1, Source: netip.MustParseAddr("fd42:5e::1")}},
		{name: "mapped", rule: Rule{Tag: "fleetup:r", Port: 65535, Source: netip.MustParseAddr("::ffff:198.18.240.1")}},
		{name: "no prefix", rule: Rule{Tag: "run1", Port: 1, Source: v4}, wantErr: `tag "run1" does not start with "fleetup:"`},
		{name: "no run id", rule: Rule{Tag: "fleetup:", Port: 1, Source: v4}, wantErr: `tag "fleetup:" has no run id`},
		{name: "quote", rule: Rule{Tag: `fleetup:a"b`, Port: 1, Source: v4}, wantErr: `has character '"'`},
		{name: "space", rule: Rule{Tag: "fleetup:a b", Port: 1, Source: v4}, wantErr: `has character ' '`},
		{name: "too long", rule: Rule{Tag: TagPrefix + strings.Repeat("a", 120), Port: 1, Source: v4}, wantErr: "longer than 127 bytes"},
		{name: "port 0", rule: Rule{Tag: "fleetup:r", Port: 0, Source: v4}, wantErr: "port 0 out of range"},
		{name: "port 65536", rule: Rule{Tag: "fleetup:r", Port: 65536, Source: v4}, wantErr: "port 65536 out of range"},
		{name: "no source", rule: Rule{Tag: "fleetup:r", Port: 1}, wantErr: "no source address"},
		{name: "unspecified", rule: Rule{Tag: "fleetup:r", Port: 1, Source: netip.IPv4Unspecified()}, wantErr: "0.0.0.0 is not a unicast address"},
		{name: "any ipv4", rule: Rule{Tag: "fleetup:r", Port: 1, Source: AnyIPv4, AnySource: true}},
		{name: "any ipv6", rule: Rule{Tag: "fleetup:r", Port: 1, Source: AnyIPv6, AnySource: true}},
		{name: "any without family", rule: Rule{Tag: "fleetup:r", Port: 1, AnySource: true}, wantErr: "no source address"},
		{name: "any with a source", rule: Rule{Tag: "fleetup:r", Port: 1, Source: v4, AnySource: true}, wantErr: "any-source rule with the specific source 198.18.240.1"},
		{name: "zone", rule: Rule{Tag: "fleetup:r", Port: 1, Source: netip.MustParseAddr("fe80::1%eth0")}, wantErr: "has a zone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRule) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalidRule containing %q", err, tc.wantErr)
			}
		})
	}
}

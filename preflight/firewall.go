package preflight

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/transport"
)

// firewallScript prints, for each firewall tool, a header line
// "@@fleetup TOOL STATUS" (STATUS the tool's exit status, 127 when it is
// missing) followed by what it printed. It only reads.
const firewallScript = `PATH=/usr/sbin:/sbin:/usr/bin:/bin:$PATH
out=$(firewall-cmd --state 2>&1); printf '@@fleetup firewalld %s\n%s\n' "$?" "$out"
out=$(nft -j list ruleset 2>&1); printf '@@fleetup nft %s\n%s\n' "$?" "$out"
out=$(iptables-save -t filter 2>&1); printf '@@fleetup iptables %s\n%s\n' "$?" "$out"
out=$(ip6tables-save -t filter 2>&1); printf '@@fleetup ip6tables %s\n%s\n' "$?" "$out"
`

// place is one chain that filters: an nft base chain (family, table,
// chain), iptables' or ip6tables' INPUT or OUTPUT chain (tool only).
type place struct {
	tool                 string // "nft", "iptables" or "ip6tables"
	family, table, chain string // nft only
}

// firewallState is what a machine's firewall filters.
type firewallState struct {
	firewalld bool
	in, out   []place
	err       error // the firewall could not be read
}

func (f *firewallState) kind() string {
	if f == nil || f.err != nil {
		return "unknown"
	}
	if f.firewalld {
		return "firewalld"
	}
	var nft, ipt bool
	for _, p := range append(append([]place{}, f.in...), f.out...) {
		if p.tool == "nft" {
			nft = true
		} else {
			ipt = true
		}
	}
	switch {
	case nft && ipt:
		return "nft+iptables"
	case nft:
		return "nft"
	case ipt:
		return "iptables"
	}
	return "none"
}

func (f *firewallState) filtersOutput() bool {
	return f != nil && f.err == nil && len(f.out) > 0
}

// allowIn returns the commands that accept TCP from src to port on the
// machine's input, one for each chain that filters src's family.
func (f *firewallState) allowIn(src netip.Addr, port int) []string {
	if f.firewalld {
		fam := "ipv4"
		if src.Is6() {
			fam = "ipv6"
		}
		return []string{fmt.Sprintf("firewall-cmd --add-rich-rule='rule family=%s source address=%s port port=%d protocol=tcp accept'", fam, src, port)}
	}
	return commands(f.in, src, port, "saddr", "-s", "INPUT")
}

// allowOut returns the commands that accept TCP to dst:port on the
// machine's output.
func (f *firewallState) allowOut(dst netip.Addr, port int) []string {
	cmds := commands(f.out, dst, port, "daddr", "-d", "OUTPUT")
	if f.firewalld && len(cmds) == 0 {
		return nil
	}
	return cmds
}

func commands(places []place, addr netip.Addr, port int, nftDir, iptFlag, chain string) []string {
	if !addr.IsValid() {
		return nil
	}
	addr = addr.Unmap()
	var out []string
	for _, p := range places {
		switch {
		case p.tool == "nft" && (p.family == "inet" || p.family == "ip" && addr.Is4() || p.family == "ip6" && addr.Is6()):
			match := "ip"
			if addr.Is6() {
				match = "ip6"
			}
			out = append(out, fmt.Sprintf("nft insert rule %s %s %s %s %s %s tcp dport %d accept",
				p.family, transport.ShellQuote(p.table), transport.ShellQuote(p.chain), match, nftDir, addr, port))
		case p.tool == "iptables" && addr.Is4() || p.tool == "ip6tables" && addr.Is6():
			out = append(out, fmt.Sprintf("%s -I %s %s %s -p tcp --dport %d -j ACCEPT", p.tool, chain, iptFlag, addr, port))
		}
	}
	return out
}

// readFirewall reads the node's firewall over conn, as root: directly, or
// through sudo (answered with password when it is set).
func readFirewall(ctx context.Context, conn transport.Conn, password func() ([]byte, error)) *firewallState {
	cmd := "sh -c " + transport.ShellQuote(firewallScript)
	var stdin *bytes.Reader
	if conn.User() != "root" {
		if password != nil {
			pw, err := password()
			if err != nil {
				return &firewallState{err: fmt.Errorf("sudo password: %w", err)}
			}
			stdin = bytes.NewReader(append(pw, '\n'))
			clear(pw)
			cmd = "sudo -S -p '' -- " + cmd
		} else {
			cmd = "sudo -n -- " + cmd
		}
	}
	var out bytes.Buffer
	var err error
	if stdin != nil {
		err = conn.Run(ctx, cmd, stdin, &out, nil)
	} else {
		err = conn.Run(ctx, cmd, nil, &out, nil)
	}
	if err != nil {
		if conn.User() != "root" {
			return &firewallState{err: fmt.Errorf("reading it needs root; sudo as %s: %w", conn.User(), err)}
		}
		return &firewallState{err: err}
	}
	return parseFirewall(out.Bytes())
}

// readManagerFirewall reads the firewall of the machine preflight runs on.
func readManagerFirewall(ctx context.Context) *firewallState {
	var r proc.Runner
	name, args := "sh", []string{"-c", firewallScript}
	if os.Geteuid() != 0 {
		name, args = "sudo", append([]string{"-n", "--", "sh"}, args...)
	}
	res, err := r.Run(ctx, nil, name, args...)
	if err != nil {
		return &firewallState{err: fmt.Errorf("read the manager's firewall: %w", err)}
	}
	return parseFirewall(res.Stdout)
}

// parseFirewall reads firewallScript's output. A tool that is missing is
// no error; one that failed (no permission) makes the state unknown.
func parseFirewall(out []byte) *firewallState {
	sections, err := splitSections(out)
	if err != nil {
		return &firewallState{err: err}
	}
	f := &firewallState{}
	var errs []error
	for _, s := range sections {
		if s.status == 127 {
			continue // not installed
		}
		switch s.tool {
		case "firewalld":
			f.firewalld = s.status == 0 && strings.TrimSpace(string(s.body)) == "running"
			continue
		}
		if s.status != 0 {
			errs = append(errs, fmt.Errorf("%s: exit status %d: %s", s.tool, s.status, firstLine(s.body)))
			continue
		}
		switch s.tool {
		case "nft":
			in, out, err := parseNFT(s.body)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			f.in, f.out = append(f.in, in...), append(f.out, out...)
		case "iptables", "ip6tables":
			in, out, err := parseSave(s.body)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s-save: %w", s.tool, err))
				continue
			}
			if in {
				f.in = append(f.in, place{tool: s.tool})
			}
			if out {
				f.out = append(f.out, place{tool: s.tool})
			}
		}
	}
	if f.firewalld {
		f.in = nil // firewalld's own tables are opened with firewall-cmd
		var keep []place
		for _, p := range f.out {
			if p.table != "firewalld" {
				keep = append(keep, p)
			}
		}
		f.out = keep
	}
	f.err = errors.Join(errs...)
	return f
}

type section struct {
	tool   string
	status int
	body   []byte
}

func splitSections(out []byte) ([]section, error) {
	var secs []section
	for i, line := range bytes.SplitAfter(out, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("@@fleetup ")); ok {
			f := strings.Fields(string(rest))
			if len(f) != 2 {
				return nil, fmt.Errorf("firewall report line %d: header %q: want tool and status", i+1, bytes.TrimSpace(line))
			}
			st, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, fmt.Errorf("firewall report line %d: status %q: %w", i+1, f[1], err)
			}
			secs = append(secs, section{tool: f[0], status: st})
			continue
		}
		if len(secs) == 0 {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			return nil, fmt.Errorf("firewall report line %d: %q before any header", i+1, bytes.TrimSpace(line))
		}
		secs[len(secs)-1].body = append(secs[len(secs)-1].body, line...)
	}
	if len(secs) == 0 {
		return nil, errors.New("firewall report: empty")
	}
	return secs, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// iptables-nft's table and built-in chain names: tables that only have
// these belong to iptables (read with iptables-save), not to native nft.
var (
	xtTable = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}
	xtChain = map[string]bool{"INPUT": true, "FORWARD": true, "OUTPUT": true, "PREROUTING": true, "POSTROUTING": true}
)

// parseNFT reads "nft -j list ruleset" and returns the native base chains
// of type filter on the input and output hooks (families inet, ip, ip6)
// that filter: a drop policy or any rule.
func parseNFT(data []byte) (in, out []place, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, nil
	}
	var doc struct {
		Nftables []struct {
			Chain *struct {
				Family, Table, Name, Type, Hook, Policy string
			}
			Rule *struct {
				Family, Table, Chain string
				Expr                 []map[string]json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("nft JSON ruleset: %w", err)
	}
	type key struct{ family, table string }
	rules := map[place]int{}
	iptOwned := map[key]bool{}
	nonXT := map[key]bool{}
	for _, o := range doc.Nftables {
		if c := o.Chain; c != nil && c.Hook != "" && !xtChain[c.Name] {
			nonXT[key{c.Family, c.Table}] = true
		}
		if r := o.Rule; r != nil {
			rules[place{"nft", r.Family, r.Table, r.Chain}]++
			for _, e := range r.Expr {
				if _, ok := e["xt"]; ok {
					iptOwned[key{r.Family, r.Table}] = true
				}
			}
		}
	}
	for _, o := range doc.Nftables {
		c := o.Chain
		if c == nil || c.Type != "filter" || (c.Hook != "input" && c.Hook != "output") {
			continue
		}
		k := key{c.Family, c.Table}
		if c.Family != "inet" && c.Family != "ip" && c.Family != "ip6" {
			continue
		}
		if iptOwned[k] || c.Family != "inet" && xtTable[c.Table] && !nonXT[k] {
			continue // iptables-nft's: read with iptables-save
		}
		p := place{"nft", c.Family, c.Table, c.Name}
		if c.Policy != "drop" && rules[p] == 0 {
			continue
		}
		if c.Hook == "input" {
			in = append(in, p)
		} else {
			out = append(out, p)
		}
	}
	return in, out, nil
}

// parseSave reads "iptables-save -t filter" and reports whether its INPUT
// and OUTPUT chains filter: a policy other than ACCEPT, or any rule.
func parseSave(data []byte) (in, out bool, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	table := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line == "COMMIT":
		case line[0] == '*':
			table = line[1:]
		case table != "filter":
		case line[0] == ':':
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return false, false, fmt.Errorf("line %d: chain %q without policy", n, line)
			}
			if f[1] != "ACCEPT" && f[1] != "-" {
				in = in || f[0] == "INPUT"
				out = out || f[0] == "OUTPUT"
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 {
				return false, false, fmt.Errorf("line %d: rule %q without chain", n, line)
			}
			in = in || f[1] == "INPUT"
			out = out || f[1] == "OUTPUT"
		default:
			return false, false, fmt.Errorf("line %d: unexpected %q", n, line)
		}
	}
	return in, out, sc.Err()
}

// nodeListens says whether something listens on the node's TCP port:
// "listening", "none", or "unknown" (no ss, no connection).
func nodeListens(ctx context.Context, conn transport.Conn, port int, timeout time.Duration) string {
	if conn == nil {
		return "unknown"
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second) // the command's round trip too
	defer cancel()
	var out bytes.Buffer
	cmd := fmt.Sprintf(`PATH=/usr/sbin:/sbin:$PATH; command -v ss >/dev/null 2>&1 || { echo unknown; exit 0; }; l=$(ss -Hltn 'sport = :%d' 2>/dev/null) || { echo unknown; exit 0; }; if [ -n "$l" ]; then echo listening; else echo none; fi`, port)
	if err := conn.Run(ctx, cmd, nil, &out, nil); err != nil {
		return "unknown"
	}
	switch s := strings.TrimSpace(out.String()); s {
	case "listening", "none":
		return s
	}
	return "unknown"
}

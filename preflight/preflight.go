// Package preflight checks, before a deploy, every network path the deploy
// will need to one node, each in its own direction, and says for every path
// that is not open what would open it.
//
// Run tests the manager-to-node hops (SSH, the engine's port, and the ports
// the node's kind needs: PortsFor) by dialling them from the manager, and
// the node-to-manager hops (the manager's web server ports, 63001 and 63002
// by default) by connecting from the node itself over the SSH connection,
// with bash's /dev/tcp inside timeout, toward the manager's address as the
// node sees it (the SSH connection's LocalAddr). While it runs it listens on
// the manager's ports itself, since nothing normally does during a
// preflight; a port another process already listens on (a running fleetup)
// is tested as it is. Each hop is open, refused (the other side answered
// with a reset) or filtered (no answer within Options.Timeout, or
// unreachable), or error when it could not be tested, and is bounded in time
// by Options.Timeout.
//
// Run reads the node's firewall over SSH (as root, or with sudo) to name it
// (firewalld, nft for native nftables tables, iptables, none) and, for each
// hop that is not open, gives the exact command that would let it through,
// and on which machine it is to be run (Hop.FixOn): the node's input for a
// manager-to-node hop; for a node-to-manager hop the node's output when the
// node filters its output, else the manager's input. Run changes nothing on
// the node or the manager: it only reads and connects.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// Kind is the kind of node, which decides the ports a deploy needs to it.
type Kind string

// The node kinds.
const (
	Linux   Kind = "linux"
	Windows Kind = "windows"
	VMware  Kind = "vmware"
	BMC     Kind = "bmc"
)

// ParseKind returns the Kind named s ("" is Linux).
func ParseKind(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(s)); k {
	case "":
		return Linux, nil
	case Linux, Windows, VMware, BMC:
		return k, nil
	}
	return "", fmt.Errorf("node kind %q: want linux, windows, vmware or bmc", s)
}

// Defaults.
const (
	DefaultEnginePort = 62286
	DefaultHTTPPort   = 63001
	DefaultHTTPSPort  = 63002
	DefaultTimeout    = 3 * time.Second
)

// Hop statuses.
const (
	Open     = "open"
	Refused  = "refused"
	Filtered = "filtered"
	Error    = "error"
)

// Where a Fix is to be run.
const (
	OnNode    = "node"
	OnManager = "manager"
)

// Options says which node to check and how.
type Options struct {
	// Node names the node in the report.
	Node string
	// Kind decides the manager-to-node ports (PortsFor); Linux when empty.
	Kind Kind
	// Addr is the node's address (host only) the manager dials; the host
	// of the connection's RemoteAddr when empty.
	Addr string
	// ManagerAddr is the manager's address as the node sees it; the host
	// of the connection's LocalAddr when empty.
	ManagerAddr string
	// ManagerPorts are the manager's web server ports the node must reach;
	// 63001 and 63002 when empty.
	ManagerPorts []int
	// EnginePort is where the engine will listen on the node; 62286 when 0.
	EnginePort int
	// BMCPort is a BMC's Redfish port; 443 when 0.
	BMCPort int
	// Timeout bounds each hop; DefaultTimeout when 0.
	Timeout time.Duration
	// Password answers sudo when the SSH user is not root and sudo wants a
	// password (reading the firewall needs root). Nil: sudo -n.
	Password func() ([]byte, error)
}

// Report is what Run found for one node.
type Report struct {
	Node        string `json:"node"`
	Kind        Kind   `json:"kind"`
	Addr        string `json:"addr"`                   // the node's address the manager dialled
	ManagerAddr string `json:"manager_addr,omitempty"` // the manager's address as the node sees it
	Hops        []Hop  `json:"hops"`
	// FirewallKind is the node's firewall: "firewalld", "nft", "iptables",
	// "nft+iptables", "none", or "unknown" when it could not be read.
	FirewallKind string `json:"firewall_kind"`
	// Notes are what the user should know about the check itself (no SSH
	// connection, firewall unreadable, bash missing).
	Notes []string `json:"notes,omitempty"`
}

// Hop is one network path, tested in its own direction.
type Hop struct {
	From    string        `json:"from"` // "manager" or the node's name
	To      string        `json:"to"`
	Port    int           `json:"port"`
	Purpose string        `json:"purpose"`
	Status  string        `json:"status"`  // Open, Refused, Filtered or Error
	Took    time.Duration `json:"took_ns"` // how long the attempt took
	// Fix is the command that would let the hop through, to be run on
	// FixOn (OnNode or OnManager); several commands are joined by " && ".
	Fix   string `json:"fix,omitempty"`
	FixOn string `json:"fix_on,omitempty"`
	// Detail explains the status in a sentence.
	Detail string `json:"detail,omitempty"`
	// Note is what else the user should know of the hop, e.g. that
	// another process holds the manager's port.
	Note string `json:"note,omitempty"`
	// Problem says the hop would stop a deploy. A refused engine port
	// with nothing listening is no problem (the engine listens there
	// during a deploy), nor is an optional port.
	Problem bool `json:"problem"`
}

// Problems counts the hops of r that would stop a deploy.
func (r *Report) Problems() int {
	n := 0
	for _, h := range r.Hops {
		if h.Problem {
			n++
		}
	}
	return n
}

// target is one manager-to-node port of a node kind.
type target struct {
	port     int
	purpose  string
	optional bool
}

// PortsFor returns the manager-to-node ports a deploy to a node of kind k
// needs (SPEC S5), the engine's among them for kinds that run it.
func PortsFor(k Kind, enginePort int) []int {
	var out []int
	for _, t := range targets(k, enginePort) {
		out = append(out, t.port)
	}
	return out
}

func targets(k Kind, enginePort int) []target {
	ssh := target{22, "ssh: inventory, engine upload, node-side checks", false}
	engine := target{enginePort, "engine API: the manager's calls to the engine", false}
	switch k {
	case Windows:
		ssh.optional = true
		ssh.purpose = "ssh, when the Windows node runs OpenSSH (optional)"
		return []target{ssh, {445, "ADMIN$ share (SMB): engine upload, service manager, payloads when the node cannot reach the manager", false},
			{443, "HP SUM's secure data port (fleetup's engine uses the engine port: optional)", true}, engine}
	case VMware:
		return []target{{443, "secure data port", false}, {5989, "WBEM discovery of the ESXi/vSphere host", false}}
	case BMC:
		return []target{{443, "secure data port (BMC web interface, Redfish)", false}}
	}
	return []target{ssh, engine}
}

func managerPurpose(port int) string {
	switch port {
	case DefaultHTTPPort:
		return "manager http: downloads and status posts from the node"
	case DefaultHTTPSPort:
		return "manager https: downloads and status posts from the node"
	}
	return "manager web server: downloads and status posts from the node"
}

// Run checks every hop between the manager and one node; see the package
// comment. conn may be nil (no SSH connection: a node kind without SSH, or
// SSH failed); then only the manager-to-node hops are tested, toward
// opts.Addr, and the report says so in Notes. The error is for unusable
// options only; what the hops found is in the Report.
func Run(ctx context.Context, conn transport.Conn, opts Options) (*Report, error) {
	opts, err := opts.withDefaults(conn)
	if err != nil {
		return nil, err
	}
	rep := &Report{Node: opts.Node, Kind: opts.Kind, Addr: opts.Addr, FirewallKind: "unknown"}
	if conn != nil {
		rep.ManagerAddr = opts.ManagerAddr
	}
	tgts := targets(opts.Kind, opts.EnginePort)
	if opts.Kind == BMC && opts.BMCPort != 0 {
		tgts[0].port = opts.BMCPort
	}
	rep.Hops = make([]Hop, len(tgts))
	var wg sync.WaitGroup
	for i, t := range tgts {
		rep.Hops[i] = Hop{From: "manager", To: opts.Node, Port: t.port, Purpose: t.purpose}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialNode(ctx, &rep.Hops[i], opts.Addr, opts.Timeout)
		}()
	}
	var (
		back []Hop
		fw   *firewallState
	)
	if conn == nil {
		rep.Notes = append(rep.Notes, "no SSH connection to the node: the node-to-manager hops and its firewall were not checked")
	} else {
		release := listenManager(ctx, opts.ManagerPorts)
		defer release()
		back = make([]Hop, len(opts.ManagerPorts))
		for i, p := range opts.ManagerPorts {
			back[i] = Hop{From: opts.Node, To: "manager", Port: p, Purpose: managerPurpose(p)}
			wg.Add(1)
			go func() {
				defer wg.Done()
				dialFromNode(ctx, conn, &back[i], opts.ManagerAddr, opts.Timeout)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fw = readFirewall(ctx, conn, opts.Password)
		}()
	}
	wg.Wait()
	if fw != nil {
		rep.FirewallKind = fw.kind()
		if fw.err != nil {
			rep.Notes = append(rep.Notes, "the node's firewall could not be read: "+fw.err.Error())
		}
	}
	for i := range rep.Hops {
		explainToNode(ctx, conn, &rep.Hops[i], fw, opts)
	}
	var mgr *firewallState
	for i := range back {
		h := &back[i]
		if h.Status == Error && strings.Contains(h.Detail, "bash") && !slices.Contains(rep.Notes, h.Detail) {
			rep.Notes = append(rep.Notes, h.Detail)
		}
		if h.Status != Open && h.Status != Error && mgr == nil && !fw.filtersOutput() {
			mgr = readManagerFirewall(ctx)
		}
		explainToManager(h, fw, mgr, opts)
		if who := heldBy(h.Port); who != "" {
			h.Note = fmt.Sprintf("port %d on the manager is held by %s, which answered instead of fleetup: a deploy moves a default port to the next free one, and stops when the port was chosen (--port, --ssl-port)", h.Port, who)
		}
	}
	rep.Hops = append(rep.Hops, back...)
	return rep, ctx.Err()
}

func (o Options) withDefaults(conn transport.Conn) (Options, error) {
	if o.Kind == "" {
		o.Kind = Linux
	}
	if _, err := ParseKind(string(o.Kind)); err != nil {
		return o, err
	}
	if o.EnginePort == 0 {
		o.EnginePort = DefaultEnginePort
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if len(o.ManagerPorts) == 0 {
		o.ManagerPorts = []int{DefaultHTTPPort, DefaultHTTPSPort}
	}
	for _, p := range append([]int{o.EnginePort}, o.ManagerPorts...) {
		if p < 1 || p > 65535 {
			return o, fmt.Errorf("preflight: port %d out of range 1-65535", p)
		}
	}
	if o.Addr == "" && conn != nil {
		o.Addr = hostOf(conn.RemoteAddr())
	}
	if o.Addr == "" {
		return o, errors.New("preflight: no node address (Options.Addr) and no connection to take it from")
	}
	o.Addr = strings.Trim(o.Addr, "[]")
	if o.ManagerAddr == "" && conn != nil {
		o.ManagerAddr = hostOf(conn.LocalAddr())
	}
	if conn != nil && o.ManagerAddr == "" {
		return o, errors.New("preflight: the connection does not say the manager's address (Options.ManagerAddr)")
	}
	o.ManagerAddr = strings.Trim(o.ManagerAddr, "[]")
	if o.Node == "" {
		o.Node = o.Addr
	}
	return o, nil
}

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// dialNode tests a manager-to-node hop.
func dialNode(ctx context.Context, h *Hop, addr string, timeout time.Duration) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	start := time.Now()
	status, err := wire.Dial(net.JoinHostPort(addr, strconv.Itoa(h.Port)), timeout)
	h.Took = time.Since(start)
	h.Status = status
	if err != nil {
		h.Detail = err.Error()
	}
}

// explainToNode fills in a manager-to-node hop's Detail, Fix and Problem.
func explainToNode(ctx context.Context, conn transport.Conn, h *Hop, fw *firewallState, opts Options) {
	optional := false
	for _, t := range targets(opts.Kind, opts.EnginePort) {
		if t.port == h.Port {
			optional = t.optional
		}
	}
	src, _ := netip.ParseAddr(opts.ManagerAddr)
	switch h.Status {
	case Open:
		h.Detail = "open"
		return
	case Refused:
		listening := nodeListens(ctx, conn, h.Port, opts.Timeout)
		switch {
		case listening == "none" && h.Port == opts.EnginePort:
			h.Detail = "refused — nothing listens yet; the engine will listen there during a deploy"
			return
		case listening == "none":
			h.Detail = fmt.Sprintf("refused — nothing listens on the node at port %d", h.Port)
			h.Problem = !optional
			return
		case listening == "listening":
			h.Detail = fmt.Sprintf("refused although the node listens on port %d: its firewall rejects the connection", h.Port)
		default:
			h.Detail = "refused: nothing listens there, or a firewall rejects the connection (" + h.Detail + ")"
		}
	case Filtered:
		h.Detail = "filtered: no answer (" + h.Detail + ")"
	}
	h.Problem = !optional
	if opts.Kind == Windows && conn == nil {
		// A Windows node reached over SMB: its firewall is not read, but
		// its command is known.
		if !src.IsValid() {
			src = localAddrToward(opts.Addr)
		}
		h.Fix, h.FixOn = NetshAllow(src, h.Port), OnNode
		h.Detail += "; where the Windows firewall filters it, the command below (at an administrator's prompt) opens it"
		return
	}
	if fw == nil || fw.err != nil {
		h.Detail += "; the node's firewall is unknown"
		return
	}
	if !src.IsValid() {
		// Without SSH the manager's address is the one it dials from.
		src = localAddrToward(opts.Addr)
	}
	if cmds := fw.allowIn(src, h.Port); len(cmds) > 0 {
		h.Fix, h.FixOn = strings.Join(cmds, " && "), OnNode
		h.Detail += "; the node's " + fw.kind() + " firewall filters its input"
		return
	}
	h.Detail += "; the node's own firewall does not filter it: something between the manager and the node does"
}

// explainToManager fills in a node-to-manager hop's Detail, Fix and
// Problem. fw is the node's firewall, mgr the manager's (nil when not read).
func explainToManager(h *Hop, fw, mgr *firewallState, opts Options) {
	switch h.Status {
	case Open:
		return
	case Error:
		h.Problem = true
		return
	}
	h.Problem = true
	if opts.Kind == Linux {
		defer func() {
			h.Detail += ". fleetup deploy still reaches this node: it carries the node's downloads and status posts through the SSH connection (as with --tunnel)"
		}()
	}
	dst, _ := netip.ParseAddr(opts.ManagerAddr)
	if fw != nil && fw.err == nil {
		if cmds := fw.allowOut(dst, h.Port); len(cmds) > 0 {
			h.Fix, h.FixOn = strings.Join(cmds, " && "), OnNode
			h.Detail += "; the node's " + fw.kind() + " firewall filters its output (OUTPUT): open it on the node"
			return
		}
	}
	if mgr == nil || mgr.err != nil {
		h.Detail += "; the manager's firewall is unknown"
		return
	}
	src, _ := netip.ParseAddr(opts.Addr)
	if cmds := mgr.allowIn(src, h.Port); len(cmds) > 0 {
		h.Fix, h.FixOn = strings.Join(cmds, " && "), OnManager
		h.Detail += "; the manager's " + mgr.kind() + " firewall filters its input: open it on the manager"
		return
	}
	h.Detail += "; neither the node's output nor the manager's input is filtered: something between them is"
}

// localAddrToward returns the local address the manager uses toward host.
func localAddrToward(host string) netip.Addr {
	c, err := net.Dial("udp", net.JoinHostPort(host, "9"))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	ap, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// NetshAllow is the Windows firewall command that admits src to tcp port
// on the node.
func NetshAllow(src netip.Addr, port int) string {
	remote := "any"
	if src.IsValid() {
		remote = src.Unmap().String()
	}
	return fmt.Sprintf(`netsh advfirewall firewall add rule name="fleetup %d" dir=in action=allow protocol=TCP localport=%d remoteip=%s`, port, port, remote)
}

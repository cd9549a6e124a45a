package config

// NodeKind is a kind of node as the port table sorts them.
type NodeKind string

const (
	NodeLinux   NodeKind = "linux"
	NodeWindows NodeKind = "windows"
	NodeVMware  NodeKind = "vmware" // ESXi / vSphere hosts
	NodeBMC     NodeKind = "bmc"    // iLO and other baseboard management controllers
	NodeSwitch  NodeKind = "switch" // network and SAN switches
)

// NodeKinds are every kind, in the port table's order.
var NodeKinds = []NodeKind{NodeLinux, NodeWindows, NodeVMware, NodeBMC, NodeSwitch}

// Direction is which way a connection is opened, seen from the manager.
type Direction string

const (
	// ToNode: the manager connects to the node.
	ToNode Direction = "to node"
	// FromNode: the node connects to the manager.
	FromNode Direction = "from node"
	// Both: either side connects to the other (nodes fetch firmware and
	// post status to the manager's web server; the manager talks to it).
	Both Direction = "both"
	// Local: the port is used on one host only and crosses no firewall
	// (e.g. traffic carried inside an SSH connection).
	Local Direction = "local"
)

// PortRow is one line of the port table: a port a node kind needs open.
type PortRow struct {
	Kind      NodeKind  `json:"kind"`
	Port      int       `json:"port"`
	Protocol  string    `json:"protocol"` // "tcp" or "udp"
	Direction Direction `json:"direction"`
	// Key is the setting that chose the port (KeyPort, ...), empty for
	// fixed ports.
	Key     string `json:"key,omitempty"`
	Purpose string `json:"purpose"`
}

// PortTable lists the ports each node kind needs for c (SPEC S5), in
// NodeKinds order: the fixed ports (22, 443, 445, 137-139, 5989) and the
// configured ones (the manager's http and https ports, the engine port,
// and the FTP port with its passive data ports only while FTP is on).
// Linux nodes need no 443: fleetup reaches them over SSH and the engine
// port.
func PortTable(c *Config) []PortRow {
	ssh := func(k NodeKind, purpose string) PortRow {
		return PortRow{Kind: k, Port: 22, Protocol: "tcp", Direction: ToNode, Purpose: purpose}
	}
	secure := func(k NodeKind) PortRow {
		return PortRow{Kind: k, Port: 443, Protocol: "tcp", Direction: ToNode, Purpose: "secure data port used to transfer information"}
	}
	engine := func(k NodeKind) PortRow {
		return PortRow{Kind: k, Port: c.EnginePort.Value, Protocol: "tcp", Direction: ToNode, Key: KeyEnginePort,
			Purpose: "manager to the engine on the node, mutual TLS" + moves(c.EnginePort)}
	}
	web := func(k NodeKind, who string) []PortRow {
		return []PortRow{
			{Kind: k, Port: c.HTTPPort.Value, Protocol: "tcp", Direction: Both, Key: KeyPort,
				Purpose: "manager's web server, http: " + who + moves(c.HTTPPort)},
			{Kind: k, Port: c.HTTPSPort.Value, Protocol: "tcp", Direction: Both, Key: KeySSLPort,
				Purpose: "manager's web server, https: " + who + moves(c.HTTPSPort)},
		}
	}
	const status = "nodes fetch components and post status"
	var rows []PortRow
	rows = append(rows,
		ssh(NodeLinux, "SSH: inventory, engine upload and start"),
		engine(NodeLinux),
	)
	rows = append(rows, web(NodeLinux, status)...)
	rows = append(rows,
		ssh(NodeWindows, "SSH, for node inventory"),
		PortRow{Kind: NodeWindows, Port: 137, Protocol: "udp", Direction: ToNode, Purpose: "NetBIOS name service for the ADMIN$ share (only with NetBIOS naming)"},
		PortRow{Kind: NodeWindows, Port: 138, Protocol: "udp", Direction: ToNode, Purpose: "NetBIOS datagram service for the ADMIN$ share"},
		PortRow{Kind: NodeWindows, Port: 139, Protocol: "tcp", Direction: ToNode, Purpose: "NetBIOS session service for the ADMIN$ share"},
		secure(NodeWindows),
		PortRow{Kind: NodeWindows, Port: 445, Protocol: "tcp", Direction: ToNode, Purpose: "SMB: the remote ADMIN$ share, where the engine service is copied"},
		engine(NodeWindows),
	)
	rows = append(rows, web(NodeWindows, status)...)
	rows = append(rows,
		secure(NodeVMware),
		PortRow{Kind: NodeVMware, Port: 5989, Protocol: "tcp", Direction: ToNode, Purpose: "WBEM (CIM-XML over https): discovery and inventory of ESXi / vSphere hosts"},
	)
	rows = append(rows, web(NodeVMware, "the host pulls firmware, through an ESXi outbound rule")...)
	rows = append(rows, secure(NodeBMC))
	rows = append(rows, web(NodeBMC, "the BMC pulls firmware")...)
	rows = append(rows, secure(NodeSwitch))
	if c.FTPEnabled() {
		rows = append(rows, PortRow{Kind: NodeSwitch, Port: c.FTPPort.Value, Protocol: "tcp", Direction: FromNode, Key: KeyFTPPort,
			Purpose: "manager's FTP server: the switch fetches firmware"})
		for p := FTPRangeFirst; p <= FTPRangeLast; p++ {
			if p != c.FTPPort.Value {
				rows = append(rows, PortRow{Kind: NodeSwitch, Port: p, Protocol: "tcp", Direction: FromNode,
					Purpose: "manager's FTP server: passive data connection"})
			}
		}
	}
	return rows
}

// moves notes that a default port moves when taken.
func moves(s Setting[int]) string {
	if s.Explicit() {
		return ""
	}
	return "; default, moves when taken"
}

// Package wire is the protocol between the manager and the engine it places
// on a node: the start-up handshake on the engine's standard streams
// (Hello, Config, Ready, the clean-up report), the engine's TLS API
// (inventory, probe, install with its event stream, cancel) and the
// manager's client of that API. Both sides import it; it imports nothing of
// either, so the manager builds for every OS it runs on (Linux, Windows,
// macOS) while the node side stays Linux (and, later, Windows) code.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/fleetup/fleetup"
)

// DefaultPort is where the engine listens unless told otherwise (HP SUM's
// 62286, SPEC S8). A taken default port moves to the next free one.
const DefaultPort = 62286

// The lines of the start-up handshake on the engine's standard streams. The
// engine prints Hello on stdout as soon as it runs (with serve --dial, then
// one line of JSON StartLine with Dial: whether the node reached the
// manager's address); the manager then writes one line of JSON Config to its
// stdin; the engine answers with one line of JSON Ready (or Failed) on
// stdout. The sudo password, when sudo asks for it,
// is written only after SudoPrompt appears on stderr, so it never reaches the
// engine.
const (
	Hello      = "FLEETUP-ENGINE-HELLO v1"
	SudoPrompt = "FLEETUP-SUDO-PROMPT:"
	// BinaryName is the engine's file name on the node.
	BinaryName = "fleetup-engine"
	// DirPrefix starts the name of every directory fleetup makes on a node.
	DirPrefix = "fleetup-"
)

// Duration is a time.Duration that encodes as a Go duration string.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Config is what the manager hands the engine at start, over the SSH
// session's stdin. It holds the engine's private key: it is never written to
// disk on either side.
type Config struct {
	RunID string `json:"run_id"`
	Node  string `json:"node"`
	// Port is the port to listen on (DefaultPort when 0); when it is taken
	// and PortExplicit is false the next free port is used.
	Port         int  `json:"port"`
	PortExplicit bool `json:"port_explicit,omitempty"`
	// Listen is the address to bind ("" for every address, both families).
	Listen string `json:"listen,omitempty"`
	// CertPEM/KeyPEM are the engine's certificate and key; CAPEM is the
	// run's CA, the only one the engine trusts.
	CertPEM []byte `json:"cert_pem"`
	KeyPEM  []byte `json:"key_pem"`
	CAPEM   []byte `json:"ca_pem"`
	// ManagerAddr is the manager's address as the node sees it; the
	// firewall rule the engine may add admits this address only.
	ManagerAddr string `json:"manager_addr,omitempty"`
	// OpenFirewall lets the engine add a rule for its port when the node's
	// firewall filters input.
	OpenFirewall bool `json:"open_firewall,omitempty"`
	// DepotURL is the manager's web server, e.g. "https://[fd42:5e:0:3::1]:63002".
	DepotURL string `json:"depot_url,omitempty"`
	// IdleTimeout ends the engine (with full clean-up) when the manager has
	// not been heard from for that long.
	IdleTimeout  Duration `json:"idle_timeout,omitempty"`
	FwupdPlugins []string `json:"fwupd_plugins,omitempty"`
	// SweepRuns are earlier runs whose leftovers on this node go even if
	// their engine still runs: the manager's journal says they are over.
	SweepRuns []string `json:"sweep_runs,omitempty"`
}

// Ready is the engine's answer to its Config.
type Ready struct {
	Port int    `json:"port"`
	PID  int    `json:"pid"`
	Dir  string `json:"dir"`
	// PortMoved says the default port was taken.
	PortMoved string `json:"port_moved,omitempty"`
	// Firewall lists the rules the engine added.
	Firewall []string `json:"firewall,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// ProbeRequest asks which of the components apply and what is installed.
type ProbeRequest struct {
	Components []fleetup.Component `json:"components"`
}

// InstallItem is one component to install, with the decision that led to it.
type InstallItem struct {
	Component fleetup.Component `json:"component"`
	Action    fleetup.Action    `json:"action"`
	// Installed is the version the probe found, for the report.
	Installed string `json:"installed,omitempty"`
}

// InstallRequest installs Items in order.
type InstallRequest struct {
	Items     []InstallItem `json:"items"`
	Downgrade bool          `json:"downgrade,omitempty"`
	Rewrite   bool          `json:"rewrite,omitempty"`
}

// InstallLine is one line of the install response stream: events while the
// work goes on, then exactly one line with Results (or Error).
type InstallLine struct {
	Event   *fleetup.Event            `json:"event,omitempty"`
	Results []fleetup.ComponentResult `json:"results,omitempty"`
	Done    bool                      `json:"done,omitempty"`
	Error   string                    `json:"error,omitempty"`
}

// CleanupReport says what the engine (or a sweep) removed from the node.
type CleanupReport struct {
	Node      string   `json:"node,omitempty"`
	Processes []string `json:"processes,omitempty"`
	Firewall  []string `json:"firewall,omitempty"`
	Files     []string `json:"files,omitempty"`
	// Sessions are the sessions on the node that were ended (a BMC's
	// Redfish session).
	Sessions []string `json:"sessions,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

// Empty reports whether nothing was removed and nothing failed.
func (r *CleanupReport) Empty() bool {
	return len(r.Processes) == 0 && len(r.Firewall) == 0 && len(r.Files) == 0 && len(r.Sessions) == 0 && len(r.Errors) == 0
}

// Merge adds o's entries to r.
func (r *CleanupReport) Merge(o *CleanupReport) {
	if o == nil {
		return
	}
	r.Processes = append(r.Processes, o.Processes...)
	r.Firewall = append(r.Firewall, o.Firewall...)
	r.Files = append(r.Files, o.Files...)
	r.Sessions = append(r.Sessions, o.Sessions...)
	r.Errors = append(r.Errors, o.Errors...)
}

// StartLine is the first line of the engine's answer after its Config, and
// CleanupLine its last line before it exits. With serve --dial, a line with
// Dial comes first, between Hello and the Config.
type StartLine struct {
	Dial    *DialResult    `json:"dial,omitempty"`
	Ready   *Ready         `json:"ready,omitempty"`
	Swept   *CleanupReport `json:"swept,omitempty"`
	Cleanup *CleanupReport `json:"cleanup,omitempty"`
}

// DialResult is how the node's attempt to reach an address ended: Status
// is "open", "refused" or "filtered" (see Dial), Error the reason when it
// is not open.
type DialResult struct {
	Addr   string `json:"addr"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Dial tries a TCP connection to addr and classifies the outcome: "open",
// "refused" (the host answered with a reset) or "filtered" (no answer in
// time, or unreachable).
func Dial(addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err == nil {
		c.Close()
		return "open", nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "refused", err
	}
	return "filtered", err
}

// DepotServerName is the TLS server name an engine of runID sends when it
// connects to the manager's web server: the manager's certificate of the
// run is valid for it, and a manager serving several runs on one port
// (`fleetup serve`) picks the run's certificate and CA by it. It is a DNS
// name under "fleetup-manager", made of runID's letters, digits and
// hyphens.
func DepotServerName(runID string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(runID) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() == 61 {
			break
		}
	}
	return "r-" + strings.Trim(b.String(), "-") + ".fleetup-manager"
}

package engine

import (
	"strings"

	"github.com/fleetup/fleetup/wire"
)

// The Windows engine's directory, C:\Windows\Temp\fleetup-<RUNID>\ (see
// docs of the service subcommand, runService), holds these files. The
// manager writes the exe, the config, the certificate and pushed payloads;
// the engine writes the rest. Every file either side polls for is written
// as NAME.tmp and then renamed to NAME, so a reader never sees half a file.
const (
	WinExeFile     = "fleetup-engine.exe"
	WinConfigFile  = "config.json"  // wire.Config, CertPEM and KeyPEM empty
	WinCSRFile     = "engine.csr"   // PEM CERTIFICATE REQUEST, CN = Config.Node
	WinCertFile    = "engine.crt"   // PEM CERTIFICATE for the request, signed by the run's CA
	WinReadyFile   = "ready.json"   // wire.Ready, once the engine listens (or failed to)
	WinCleanupFile = "cleanup.json" // wire.CleanupReport after a service stop that the API's shutdown did not report
	WinPushedDir   = "payloads"     // payloads\<sha256>, pushed over SMB when the node cannot reach the depot
	WinLogFile     = "engine.log"
)

// WinDirName is the name of run's engine directory under C:\Windows\Temp.
func WinDirName(runID string) string { return wire.DirPrefix + runID }

// ServiceName is the Windows service of run's engine: "fleetup-" followed by
// the run id lowercased, every character outside [a-z0-9-] replaced by "-"
// (the rule of wire.DepotServerName).
func ServiceName(runID string) string {
	var b strings.Builder
	b.WriteString("fleetup-")
	for _, r := range strings.ToLower(runID) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// ServiceDisplayName is the display name of run's Windows service.
func ServiceDisplayName(runID string) string { return "fleetup engine (run " + runID + ")" }

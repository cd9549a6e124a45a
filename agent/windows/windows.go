// Package windows starts the engine on a Windows node for a run and takes
// it back afterwards: over the node's ADMIN$ share (Files) it makes the
// engine's directory C:\Windows\Temp\fleetup-<RUNID>, copies the engine's
// Windows build and its configuration there, has the node's service
// manager (Services) run it as the temporary service fleetup-<run>, signs
// the certificate request the engine wrote with the run's CA and writes
// the certificate back, and waits for the engine's ready.json. The
// manager then controls the engine over mutual TLS as on Linux
// (agent.Control); at the end the Session stops and deletes the service,
// removes the directory and checks that both are gone.
//
// The engine's private key is made by the engine in memory and never
// written to the node nor sent over the network; the certificate request
// and the certificate cross the signed (on SMB 3, encrypted) SMB session.
// The files of the directory and their protocol are the engine's
// (engine/windir.go): every file either side polls for is written as
// NAME.tmp and then renamed.
package windows

import (
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fleetup/fleetup/transport/smb"
	"github.com/fleetup/fleetup/wire"
)

// The engine directory's files (the same names as engine/windir.go's,
// which a test checks: this package must not import the engine).
const (
	ExeFile     = "fleetup-engine.exe"
	ConfigFile  = "config.json"
	CSRFile     = "engine.csr"
	CertFile    = "engine.crt"
	ReadyFile   = "ready.json"
	CleanupFile = "cleanup.json"
	PushedDir   = "payloads"
)

// Where the engine's directory is: C:\Windows\Temp, which ADMIN$ shares as
// Temp.
const (
	WindowsDir = `C:\Windows`
	TempDir    = `Temp`
)

// DirName is the name of run's directory under C:\Windows\Temp.
func DirName(runID string) string { return wire.DirPrefix + runID }

// ShareDir is run's directory as a path on ADMIN$.
func ShareDir(runID string) string { return TempDir + `\` + DirName(runID) }

// NodeDir is run's directory as the node sees it.
func NodeDir(runID string) string { return WindowsDir + `\` + ShareDir(runID) }

// ServiceName is run's service: "fleetup-" and the run id lowercased,
// every character outside [a-z0-9-] replaced by "-" (the engine's
// ServiceName).
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

// ServiceDisplayName is run's service's display name.
func ServiceDisplayName(runID string) string { return "fleetup engine (run " + runID + ")" }

// BinaryPath is the command line of run's service.
func BinaryPath(runID string) string {
	dir := NodeDir(runID)
	return `"` + dir + `\` + ExeFile + `" service --dir "` + dir + `"`
}

// Files is the node's ADMIN$ share as the launcher uses it; paths are
// relative to the share. *smb.Session is one.
type Files interface {
	MkdirAll(ctx context.Context, dir string) error
	// WriteFile and WriteFileFrom write NAME.tmp and rename it to NAME.
	WriteFile(ctx context.Context, name string, data []byte) error
	WriteFileFrom(ctx context.Context, name string, r io.Reader) error
	// ReadFile reads at most max bytes; a missing file is an error
	// satisfying errors.Is(err, os.ErrNotExist).
	ReadFile(ctx context.Context, name string, max int64) ([]byte, error)
	Exists(ctx context.Context, name string) (bool, error)
	ReadDir(ctx context.Context, dir string) ([]os.FileInfo, error)
	// RemoveAll retries for up to wait while a file is in use.
	RemoveAll(ctx context.Context, path string, wait time.Duration) error
}

// Services is the node's service manager. *smb.SCM is one. A service that
// does not exist is an error satisfying errors.Is(err, smb.ErrNoService).
type Services interface {
	CreateService(ctx context.Context, cfg smb.ServiceConfig) error
	StartService(ctx context.Context, name string) error
	QueryServiceStatus(ctx context.Context, name string) (uint32, error)
	StopService(ctx context.Context, name string) (uint32, error)
	DeleteService(ctx context.Context, name string) error
	Close() error
}

var (
	_ Files    = (*smb.Session)(nil)
	_ Services = (*smb.SCM)(nil)
)

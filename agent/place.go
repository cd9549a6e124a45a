package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/fleetup/fleetup/transport"
	"github.com/fleetup/fleetup/wire"
)

// Scouting errors the orchestrator and the CLI tell apart.
var (
	ErrNoExecDir    = errors.New("no directory on the node where a program may be run")
	ErrSudoPassword = errors.New("sudo on the node needs a password")
	ErrSudoRejected = errors.New("sudo on the node rejected the password")
	ErrNoSudo       = errors.New("the user may not use sudo on the node")
	// ErrEngineChanged is an engine whose SHA-256 on the node is not the
	// one the manager copied: something on the node replaced it before it
	// could run. It is never run.
	ErrEngineChanged = errors.New("the engine on the node is not the one the manager copied")
)

// scoutScript finds the node's architecture and makes the run's private
// directory (mode 0700, by mktemp) in the first candidate where programs
// may be executed; it says why it skipped the others, and names the
// directory it made (in $found). %s is the directory's name prefix.
const scoutScript = `set -u
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
echo "arch=$(uname -m)"
found=
for d in "${TMPDIR:-/tmp}" /tmp /var/tmp /dev/shm "$HOME"; do
  [ -d "$d" ] || { echo "skip=$d: no such directory"; continue; }
  dir=$(mktemp -d "$d/%s.XXXXXX" 2>/dev/null) || { echo "skip=$d: cannot create a directory there"; continue; }
  printf '#!/bin/sh\nexit 0\n' > "$dir/probe" && chmod 700 "$dir/probe" || { rm -rf "$dir"; echo "skip=$d: cannot write"; continue; }
  if "$dir/probe" 2>/dev/null; then rm -f "$dir/probe"; found=$dir; break; fi
  rm -rf "$dir"; echo "skip=$d: mounted noexec"
done
[ -n "$found" ] || { echo nodir; exit 0; }
echo "dir=$found"
`

// scoutTrap goes before scoutScript where the scout's session goes on to
// run the engine: a session that ends before the engine runs (link cut,
// sshd killed, the manager gone) removes the directory it made. The exec
// of the engine drops the trap.
const scoutTrap = `trap 'if [ -n "${found:-}" ]; then rm -rf "$found"; fi' EXIT HUP PIPE TERM INT
`

// scoutLimit bounds what a scout may say: a node that floods the pipe is
// refused, not buffered.
const (
	scoutMaxLines = 64
	scoutMaxLine  = 4096
)

// errScoutCutShort is a scout that ended before it said where it made
// the run's directory, or that there is none.
var errScoutCutShort = errors.New("scout: the session ended before the scout finished")

// scoutReport is what the scout said: the node's architecture, the
// directory it made, and why it skipped the other candidates.
type scoutReport struct {
	Arch  string
	Dir   string
	Skips []string
}

// dirName is the shape of a run directory mktemp made: the prefix, the run
// id, a dot and six characters.
var dirName = regexp.MustCompile(`^` + regexp.QuoteMeta(wire.DirPrefix) + `([A-Za-z0-9-]+)\.[A-Za-z0-9]{6}$`)

// runDir checks that dir, as a node reported it, is a directory of run
// runID: absolute, clean, and named as scouting names them. The manager
// never removes or uses a path a node reported without this check.
func runDir(dir, runID string) error {
	if dir == "" || !path.IsAbs(dir) || path.Clean(dir) != dir || strings.ContainsAny(dir, "\x00\n\r\\'\"`$") {
		return fmt.Errorf("the node reported %q as the run's directory: not a clean absolute path", dir)
	}
	m := dirName.FindStringSubmatch(path.Base(dir))
	if m == nil || m[1] != runID {
		return fmt.Errorf("the node reported %q as the run's directory: not a directory of run %s", dir, runID)
	}
	return nil
}

// parseScout reads the scout's lines (up to and including dir=).
func parseScout(lines []string, runID string) (scoutReport, error) {
	var rep scoutReport
	nodir := false
	if len(lines) > scoutMaxLines {
		return rep, fmt.Errorf("scout: the node said %d lines, more than %d", len(lines), scoutMaxLines)
	}
	for _, l := range lines {
		if len(l) > scoutMaxLine {
			return scoutReport{}, fmt.Errorf("scout: a line of %d bytes from the node", len(l))
		}
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "arch":
			rep.Arch = v
		case "dir":
			if err := runDir(v, runID); err != nil {
				return scoutReport{}, fmt.Errorf("scout: %w", err)
			}
			rep.Dir = v
		case "skip":
			rep.Skips = append(rep.Skips, v)
		case "nodir":
			nodir = true
		}
	}
	if rep.Dir == "" {
		if rep.Arch == "" {
			return rep, errors.New("scout: the node did not run the scouting script (no arch= line)")
		}
		if !nodir {
			return rep, errScoutCutShort
		}
		return rep, fmt.Errorf("%w (%s)", ErrNoExecDir, strings.Join(rep.Skips, "; "))
	}
	return rep, nil
}

// goarchOf maps uname -m to the engine build's GOARCH.
func goarchOf(arch string) (string, error) {
	goarch, ok := map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[arch]
	if !ok {
		return "", fmt.Errorf("scout: node architecture %q has no engine build", arch)
	}
	return goarch, nil
}

// placeEngine copies the engine binary bin into dir on the node and
// returns its SHA-256, which the node checks before it runs it.
func placeEngine(ctx context.Context, conn transport.Conn, dir, bin string) (string, error) {
	f, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("engine binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if err := conn.WriteFile(ctx, dir+"/"+wire.BinaryName, 0o700, io.TeeReader(f, h)); err != nil {
		return "", fmt.Errorf("copy engine to %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

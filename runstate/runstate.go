// Package runstate keeps, on the manager's disk, the state of fleetup
// runs that must outlive the manager's process, so that what a killed or
// crashed run left behind can be found and removed (by `fleetup cleanup`,
// `fleetup cleanup --local`, or the next run), and never what a live run
// still uses.
//
// What lives where:
//
//   - The journal, in the state directory (--state-dir, DefaultDir:
//     /var/lib/fleetup for root): RUNID.json per run that touches remote
//     nodes, with the manager's pid and start time and the latest state of
//     every node (placed, cleaned, cleanup-failed), and its lock file
//     RUNID.lock. See Journal.
//   - The run history, in the same directory: runs/RUNID.json per deploy
//     run, kept after the run, with its options (never a credential) and
//     each node's outcome as it ended, for `fleetup deploy --resume`. See
//     History.
//   - The FTP credentials of a run that serves switches (--ftp-port), in
//     the same directory: ftp-RUNID.credentials, "key=value" lines with
//     the user, the password, the port and the serving manager's pid and
//     start time, for the switches' administrator to read; removed when
//     the run ends. See WriteFTPCredentials.
//   - The firewall state of a run with --open-firewall, under
//     DefaultRunDir (/run/fleetup), which every manager on the machine
//     shares whatever its state directory, in FirewallDir:
//     localfw/RUNID.json, what the run opened in this machine's firewall
//     and its manager's pid and start time, with its lock file
//     localfw/RUNID.lock. It is under /run because the firewall's runtime
//     rules go at reboot too. See WriteFirewallState.
//
// All of them follow the same rules:
//
//   - Liveness: an owner is the pid and start time of the manager
//     (Owner); Owner.Check is the one decision whether it still runs. A
//     pid reused by another process, fleetup or not, is dead.
//   - Every write is atomic and durable: a temporary file in the same
//     directory (hidden, ".NAME.tmp-*"), fsync'd, renamed over the file,
//     and the directory fsync'd. A crash leaves the old content or the
//     new, never part of one; temporary files are ignored by readers and
//     removed after an hour.
//   - Files are mode 0600, directories 0700. Windows has no modes: there
//     the files get the ACL of the directory they are in (the default,
//     under %LOCALAPPDATA%, is the user's own).
//   - A file that cannot be read or parsed is reported by name in the
//     error; the files that could be read are returned all the same.
//     Nothing is skipped silently.
//   - Run ids are letters, digits, '.', '_' and '-', starting with a
//     letter or digit, so that every name above is a plain file name.
//
// The package builds for Linux, macOS and Windows: locks are flock(2) on
// Unix and LockFileEx on Windows; start times come from /proc/PID/stat on
// Linux, sysctl kern.proc.pid on macOS and GetProcessTimes on Windows.
// Elsewhere start times are unknown, and an existing pid is taken for its
// owner.
package runstate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
)

// DefaultDir returns the state directory: $FLEETUP_STATE_DIR if set, else
// /var/lib/fleetup for root, else $XDG_STATE_HOME/fleetup, else
// %LOCALAPPDATA%\fleetup on Windows, else ~/.local/state/fleetup.
func DefaultDir() string {
	if d := os.Getenv("FLEETUP_STATE_DIR"); d != "" {
		return d
	}
	if runtime.GOOS != "windows" && os.Geteuid() == 0 {
		return "/var/lib/fleetup"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "fleetup")
	}
	if d := os.Getenv("LOCALAPPDATA"); runtime.GOOS == "windows" && d != "" {
		return filepath.Join(d, "fleetup")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "fleetup-state-"+strconv.Itoa(os.Geteuid()))
	}
	return filepath.Join(home, ".local", "state", "fleetup")
}

// DefaultRunDir is where the state of this machine's own firewall goes
// (FirewallDir), the same for every manager on the machine.
const DefaultRunDir = "/run/fleetup"

// FirewallDir returns the directory of the firewall state files under
// runDir (DefaultRunDir when empty).
func FirewallDir(runDir string) string {
	if runDir == "" {
		runDir = DefaultRunDir
	}
	return filepath.Join(runDir, "localfw")
}

// ValidRunID accepts ids that are safe as file names: letters, digits,
// '.', '_' and '-', starting with a letter or digit, at most 128
// characters.
func ValidRunID(id string) error {
	if id == "" {
		return errors.New("empty run id")
	}
	if len(id) > 128 {
		return fmt.Errorf("run id %.20q... longer than 128 characters", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return fmt.Errorf("run id %q: only letters, digits, '.', '_' and '-' allowed, starting with a letter or digit", id)
		}
	}
	return nil
}

package engine

import (
	"fmt"
	"io"
)

// Main is the Windows engine program: `fleetup-engine service --dir DIR`
// (run by the service control manager as the run's temporary service; see
// runService), `fleetup-engine dial HOST:PORT [TIMEOUT]` and
// `fleetup-engine version`. It returns the exit code. The Linux engine's
// serve and sweep do not exist on Windows: there the manager starts the
// engine over SMB and the service manager, and finds what a killed run
// left through SMB too.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: fleetup-engine service|dial|version")
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, Version)
		return 0
	case "dial":
		return runDial(args[1:], stdout, stderr)
	case "service":
		return runService(args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "fleetup-engine: unknown command %q\n", args[0])
		return 2
	}
}

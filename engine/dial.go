package engine

import (
	"fmt"
	"io"
	"time"

	"github.com/fleetup/fleetup/wire"
)

// runDial is `fleetup-engine dial HOST:PORT [TIMEOUT]`: can this node open a
// TCP connection there? It prints open, refused or filtered; exit 0 only
// for open.
func runDial(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: fleetup-engine dial HOST:PORT [TIMEOUT]")
		return 2
	}
	timeout := 3 * time.Second
	if len(args) > 1 {
		if d, err := time.ParseDuration(args[1]); err == nil {
			timeout = d
		}
	}
	status, err := wire.Dial(args[0], timeout)
	if err != nil {
		fmt.Fprintf(stdout, "%s: %v\n", status, err)
	} else {
		fmt.Fprintln(stdout, status)
	}
	if status != "open" {
		return 1
	}
	return 0
}

// Command fleetup-engine is the small program fleetup copies to a node for
// the duration of a run. See package engine.
package main

import (
	"os"

	"github.com/fleetup/fleetup/engine"
)

func main() { os.Exit(engine.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

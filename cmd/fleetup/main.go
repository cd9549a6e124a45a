// Command fleetup brings nodes up to a baseline of firmware, driver and
// software components. See the README, or `fleetup help`.
package main

import (
	"os"

	"github.com/fleetup/fleetup/internal/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// Command fleetupprof is fleetup with a CPU profile: when
// FLEETUP_BENCH_CPUPROFILE names a file, the whole run is profiled into it
// (stopped before exit). The benchmark builds it next to fleetup-engine and
// runs it in place of fleetup for one profiled deploy (bench -cpuprofile).
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/fleetup/fleetup/internal/cli"
)

func main() {
	path := os.Getenv("FLEETUP_BENCH_CPUPROFILE")
	if path == "" {
		os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetupprof:", err)
		os.Exit(1)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "fleetupprof:", err)
		os.Exit(1)
	}
	code := cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetupprof:", err)
	}
	os.Exit(code)
}

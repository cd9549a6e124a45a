// Command mkshim writes bcryptprimitives.dll for Wine (package bcryptshim):
//
//	go run ./lab/winsim/bcryptshim/mkshim -o DIR/bcryptprimitives.dll
//
// With -prefix it installs the DLL into a Wine prefix's system32 instead.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fleetup/fleetup/lab/winsim/bcryptshim"
)

func main() {
	out := flag.String("o", bcryptshim.Name, "the file to write")
	prefix := flag.String("prefix", "", "install into this Wine prefix's system32 instead of writing -o")
	flag.Parse()
	var err error
	if *prefix != "" {
		err = bcryptshim.Install(*prefix)
	} else {
		err = bcryptshim.WriteFile(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkshim:", err)
		os.Exit(1)
	}
}

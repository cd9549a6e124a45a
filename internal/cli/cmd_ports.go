package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/fleetup/fleetup/config"
)

// runPorts prints the ports each kind of node needs open for the current
// configuration (the port flags, environment and --config file as
// runConfig reads them): port, protocol, direction and purpose.
func runPorts(ctx context.Context, env *Env, args []string) error {
	c, asJSON, err := loadPortCommand("ports", env, args)
	if err != nil {
		return err
	}
	rows := config.PortTable(c)
	if asJSON {
		return printIndentedJSON(env, rows)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE KIND\tPORT\tPROTOCOL\tDIRECTION\tPURPOSE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Kind, r.Port, r.Protocol, r.Direction, r.Purpose)
	}
	if !c.FTPEnabled() {
		fmt.Fprintln(tw, "switch\t-\ttcp\tfrom node\tFTP for switch firmware: off (--ftp-port turns it on)")
	}
	return tw.Flush()
}

package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/fleetup/fleetup/config"
)

// portFlags are the port configuration flags that config, ports, deploy,
// inventory and preflight share: --config FILE and one flag per setting
// (--port, --ssl-port, --engine-port, --ftp-port, --open-firewall). The
// values themselves stay in the flag set; load reads those the user set.
type portFlags struct {
	file string
}

// registerPortFlags defines the port configuration flags on fs. A setting's
// flag that fs already has (nodeOptions' --engine-port) is left as it is
// and read by name, so the two can be registered in either order.
func registerPortFlags(fs *flag.FlagSet) *portFlags {
	p := &portFlags{}
	fs.StringVar(&p.file, "config", "", "ini file of port settings, fleetup's own or an hpsum.ini (port=, ssl_port=, engine_port=, ftp_port=, open_firewall=)")
	portFlag := func(name, usage string) {
		if fs.Lookup(name) == nil {
			fs.String(name, "", usage)
		}
	}
	portFlag("port", fmt.Sprintf("the manager's HTTP port (default %d, moved when taken; env FLEETUP_PORT)", config.DefaultHTTPPort))
	portFlag("ssl-port", fmt.Sprintf("the manager's HTTPS port (default %d, moved when taken; env FLEETUP_SSL_PORT)", config.DefaultHTTPSPort))
	portFlag("engine-port", fmt.Sprintf("port the engine listens on at the node (default %d, moved when taken; env FLEETUP_ENGINE_PORT)", config.DefaultEnginePort))
	portFlag("ftp-port", fmt.Sprintf("serve switch firmware over FTP on this port: %d or %d-%d (default off; env FLEETUP_FTP_PORT)", config.FTPStandardPort, config.FTPRangeFirst, config.FTPRangeLast))
	if fs.Lookup("open-firewall") == nil {
		fs.Bool("open-firewall", false, "open the manager's HTTP, HTTPS and FTP ports in this machine's firewall while the run lasts; needs root (env FLEETUP_OPEN_FIREWALL)")
	}
	return p
}

// load merges the port flags the user set on fs (fs.Visit) with the
// environment, the --config file and the defaults. Bad values are usage
// errors naming the flag, variable or FILE:LINE; ignored ini keys are
// warned about on env.Stderr.
func (p *portFlags) load(env *Env, fs *flag.FlagSet) (*config.Config, error) {
	names := config.FlagNames()
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if slices.Contains(names, f.Name) {
			set[f.Name] = f.Value.String()
		}
	})
	c, err := config.Load(config.LoadOptions{Flags: set, Env: os.LookupEnv, File: p.file})
	if err != nil {
		return nil, &usageError{err}
	}
	for _, w := range c.Warnings {
		fmt.Fprintf(env.Stderr, "fleetup: warning: %s\n", w)
	}
	return c, nil
}

// runConfig prints every effective port setting and where it came from:
// a flag, the environment, an ini file line, or the default. HP SUM's
// spellings (/port 80 /ssl_port 443) are accepted.
func runConfig(ctx context.Context, env *Env, args []string) error {
	c, asJSON, err := loadPortCommand("config", env, args)
	if err != nil {
		return err
	}
	if asJSON {
		return printIndentedJSON(env, c)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, it := range c.Items() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Key, it.Value, it.Source)
	}
	return tw.Flush()
}

// loadPortCommand parses the flags of a command that only reads the port
// configuration (config, ports): --json, the port flags, and HP SUM's
// spellings of them.
func loadPortCommand(name string, env *Env, args []string) (c *config.Config, asJSON bool, err error) {
	fs := newFlags(name, env)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	pf := registerPortFlags(fs)
	if err := parse(fs, args); err != nil {
		return nil, false, err
	}
	if fs.NArg() > 0 {
		return nil, false, usagef("unexpected argument %q", fs.Arg(0))
	}
	c, err = pf.load(env, fs)
	return c, asJSON, err
}

// printIndentedJSON writes v to env.Stdout as indented JSON.
func printIndentedJSON(env *Env, v any) error {
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

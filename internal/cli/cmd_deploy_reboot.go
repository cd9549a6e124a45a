package cli

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetup/fleetup/orchestrator"
)

// registerReboot adds deploy's reboot flags (HP SUM's /r, /reboot_always,
// /reboot_delay, /reboot_message; the input file's REBOOTALLOWED,
// REBOOTALWAYS, REBOOTDELAY, REBOOTMESSAGE).
func (o *deployOptions) registerReboot(fs *flag.FlagSet) {
	o.RebootDelay = orchestrator.DefaultRebootDelay
	fs.BoolVar(&o.Reboot, "reboot", false, "reboot a node whose installed components need it, after its last one, wait for it to come back and confirm each version")
	fs.BoolVar(&o.RebootAlways, "reboot-always", false, "reboot every node after a deploy that installed something, needed or not")
	fs.Func("reboot-delay", "time between warning the node's logged-in users and the reboot: seconds or a duration, 15s to 3600s (default 60s)", func(s string) error {
		d, err := parseRebootDelay(s)
		if err != nil {
			return err
		}
		o.RebootDelay = d
		return nil
	})
	fs.StringVar(&o.RebootMessage, "reboot-message", "", "the message shown to the node's logged-in users before the reboot")
	fs.DurationVar(&o.RebootTimeout, "reboot-timeout", orchestrator.DefaultRebootTimeout, "how long to wait for a rebooted node to answer again (SSH, same host key, new boot id)")
}

// parseRebootDelay reads a reboot delay: a number of seconds, as HP SUM's
// /reboot_delay takes it, or a duration ("90s", "2m"), within HP SUM's
// bounds of 15 to 3600 seconds.
func parseRebootDelay(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if n, err := strconv.Atoi(s); err == nil {
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%q: want seconds (15 to 3600) or a duration", s)
	}
	if d < orchestrator.MinRebootDelay || d > orchestrator.MaxRebootDelay {
		return 0, fmt.Errorf("%v: must be between %v and %v", d, orchestrator.MinRebootDelay, orchestrator.MaxRebootDelay)
	}
	return d, nil
}

// validateReboot checks the reboot flags that parsing does not.
func (o *deployOptions) validateReboot() error {
	if o.RebootTimeout <= 0 {
		return usagef("--reboot-timeout %v: must be positive", o.RebootTimeout)
	}
	return nil
}

// rebootOptions are the orchestrator's reboot options from the flags and
// the input file.
func (o *deployOptions) rebootOptions() orchestrator.RebootOptions {
	return orchestrator.RebootOptions{
		Enabled: o.Reboot,
		Always:  o.RebootAlways,
		Delay:   o.RebootDelay,
		Message: o.RebootMessage,
		Timeout: o.RebootTimeout,
	}
}

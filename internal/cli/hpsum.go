package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/orchestrator"
)

// hpsumOption is one of HP SUM's slash options: the fleetup flag it
// becomes ("" when it has none) and whether it takes a value. refuse, when
// set, is why fleetup does not take it.
type hpsumOption struct {
	flag   string
	value  bool
	refuse string
	// also are flags added after flag (/report is also a dry run).
	also []string
}

// hpsumOptions are HP SUM's command-line options other than the port ones
// (package config has those), by lower-case name. Options that fleetup
// cannot honour are refused with the reason rather than dropped: a script
// that asks for a reboot or for firmware only must not get something else.
var hpsumOptions = map[string]hpsumOption{
	"target":    {flag: "--target", value: true},
	"user":      {flag: "--user", value: true},
	"inputfile": {flag: "--inputfile", value: true},
	"dryrun":    {flag: "--dry-run"},
	"g":         {flag: "--downgrade"},
	"downgrade": {flag: "--downgrade"},
	"e":         {flag: "--rewrite"},
	"rewrite":   {flag: "--rewrite"},
	// fleetup never asks questions: silent is what it always is.
	"s":      {},
	"silent": {},

	"passwd":               {value: true, refuse: "it puts the password on the command line, where every user of the machine can read it; give it with --password-file FILE or the FLEETUP_PASSWORD environment variable"},
	"r":                    {flag: "--reboot"},
	"reboot":               {flag: "--reboot"},
	"reboot_always":        {flag: "--reboot-always"},
	"reboot_message":       {flag: "--reboot-message", value: true},
	"reboot_delay":         {flag: "--reboot-delay", value: true}, // seconds, as --reboot-delay takes them too
	"romonly":              {refuse: "fleetup has no firmware-only selection yet: put only firmware components in the baseline"},
	"softwareonly":         {refuse: "fleetup has no software-only selection yet: put only software components in the baseline"},
	"use_latest":           {refuse: "a fleetup baseline holds one version of each component"},
	"on_failed_dependency": {flag: "--on-failed-dependency", value: true},
	// HP SUM's reports: /report analyses without deploying and reports
	// what a deploy would do; /logdir is where they go.
	"logdir":           {flag: "--report-dir", value: true},
	"report":           {flag: "--report=deploy", also: []string{"--dry-run"}},
	"inventory_report": {flag: "--report=inventory"},
	"firmware_report":  {flag: "--report=firmware"},
}

// translateHPSUM rewrites HP SUM's slash options in args into fleetup's
// flags, so that existing scripts keep working: "/target 198.18.1.2
// /dryrun /port 80" becomes "--target 198.18.1.2 --dry-run --port 80"
// (names in any case; "/port=80" becomes "--port=80"). An HP SUM option
// that fleetup cannot honour is an error saying why. Every other word is
// left alone: paths such as "/tmp/x", the value after an option that takes
// one, and everything after "--". A fleetup flag's value that is itself
// spelled like an HP SUM option must be joined to it ("--baseline=/s").
func translateHPSUM(args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		w := args[i]
		if w == "--" {
			out = append(out, args[i:]...)
			break
		}
		if len(w) < 2 || w[0] != '/' {
			out = append(out, w)
			continue
		}
		// "/port=80", and "/user:admin" as HP SUM on Windows writes it.
		name, value, hasValue := strings.Cut(w[1:], "=")
		if n, v, ok := strings.Cut(w[1:], ":"); !hasValue && ok {
			name, value, hasValue = n, v, true
		}
		o, ok := hpsumOptions[strings.ToLower(name)]
		if !ok {
			flag, v, port := config.HPSUMOption(name)
			if !port {
				out = append(out, w)
				continue
			}
			o = hpsumOption{flag: flag, value: v}
		}
		if o.refuse != "" {
			return nil, usagef("HP SUM's /%s is not taken: %s", strings.ToLower(name), o.refuse)
		}
		if o.value && !hasValue && i+1 >= len(args) {
			return nil, usagef("HP SUM's /%s needs a value", strings.ToLower(name))
		}
		if o.flag == "" {
			continue
		}
		switch {
		case hasValue:
			out = append(out, o.flag+"="+value)
		case o.value:
			i++
			out = append(out, o.flag, args[i])
		default:
			out = append(out, o.flag)
		}
		out = append(out, o.also...)
	}
	return out, nil
}

// hpsumHelp is the usage text's paragraph on HP SUM's spellings.
func hpsumHelp() string {
	return fmt.Sprintf("HP SUM's options work too: /target /user /inputfile /dryrun /g /e /s /on_failed_dependency /r /reboot_always /reboot_delay /reboot_message /report /inventory_report /firmware_report /logdir and /port /ssl_port /ftp_port /open_firewall (e.g. /port %d).", config.DefaultHTTPPort)
}

// applyInputOptions applies the options of an HP SUM input file (the keys
// outside its [TARGETS] sections) to a deploy: DRYRUN, DOWNGRADE and
// REWRITE set what their flags set, SOURCEPATH names the baseline. Options
// fleetup cannot honour are refused when they ask for something (YES),
// the port options are refused with where to set them instead, and
// options that change nothing here are accepted with a warning where the
// user could expect an effect.
func applyInputOptions(env *Env, opts *deployOptions) error {
	in := opts.input
	if in == nil {
		return nil
	}
	name := opts.InputFile
	for _, w := range in.Warnings {
		fmt.Fprintf(env.Stderr, "fleetup: warning: %s\n", w)
	}
	keys := make([]string, 0, len(in.Options))
	for k := range in.Options {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		v := in.Options[k]
		yes, isBool := parseYesNo(v)
		refuseYes := func(why string) {
			if !isBool {
				errs = append(errs, fmt.Errorf("%s: %s=%q: want YES or NO", name, k, v))
			} else if yes {
				errs = append(errs, fmt.Errorf("%s: %s=YES is not taken: %s", name, k, why))
			}
		}
		switch k {
		case "DRYRUN", "DOWNGRADE", "REWRITE":
			if !isBool {
				errs = append(errs, fmt.Errorf("%s: %s=%q: want YES or NO", name, k, v))
				continue
			}
			// A flag on the command line wins over the file.
			o := map[string]struct {
				flag  string
				field *bool
			}{
				"DRYRUN":    {"dry-run", &opts.DryRun},
				"DOWNGRADE": {"downgrade", &opts.Downgrade},
				"REWRITE":   {"rewrite", &opts.Rewrite},
			}[k]
			if !opts.setFlags[o.flag] {
				*o.field = yes
			}
		case "SOURCEPATH":
			switch {
			case opts.Baseline == "":
				opts.Baseline = v
			case filepath.Clean(opts.Baseline) != filepath.Clean(v):
				errs = append(errs, fmt.Errorf("%s: SOURCEPATH=%s and --baseline %s name different baselines", name, v, opts.Baseline))
			}
		case "ON_FAILED_DEPENDENCY":
			p, err := orchestrator.ParseDependencyPolicy(v)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: ON_FAILED_DEPENDENCY=%q: %w", name, v, err))
			case !opts.setFlags["on-failed-dependency"]:
				opts.OnFailedDependency = string(p)
			}
		case "PORT", "SSL_PORT", "FTP_PORT", "OPEN_FIREWALL":
			errs = append(errs, fmt.Errorf("%s: %s= is not read from an input file: set %s= in an ini file given with --config (an hpsum.ini works as is), or use --%s",
				name, k, strings.ToLower(k), strings.ReplaceAll(strings.ToLower(k), "_", "-")))
		case "REBOOTALLOWED", "REBOOTALWAYS":
			if !isBool {
				errs = append(errs, fmt.Errorf("%s: %s=%q: want YES or NO", name, k, v))
				continue
			}
			flag, field := "reboot", &opts.Reboot
			if k == "REBOOTALWAYS" {
				flag, field = "reboot-always", &opts.RebootAlways
			}
			if !opts.setFlags[flag] {
				*field = yes
			}
		case "REBOOTMESSAGE":
			if !opts.setFlags["reboot-message"] {
				opts.RebootMessage = v
			}
		case "REBOOTDELAY":
			d, err := parseRebootDelay(v)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: REBOOTDELAY=%q: %w", name, v, err))
			case !opts.setFlags["reboot-delay"]:
				opts.RebootDelay = d
			}
		case "ROMONLY", "SOFTWAREONLY":
			refuseYes("fleetup has no firmware-only or software-only selection yet: put only those components in the baseline")
		case "FORCEALL", "FORCEFIRMWARE", "FORCEROM", "FORCESOFTWARE":
			refuseYes("say what to force with --rewrite (reinstall the same version) and --downgrade")
		case "LOGDIR", "REPORTDIR", "REPORT", "INVENTORY_REPORT", "FIRMWARE_REPORT":
			fmt.Fprintf(env.Stderr, "fleetup: warning: %s: %s= ignored: fleetup writes its report to standard output (--json for JSON lines)\n", name, k)
		default:
			// SILENT, IGNOREERRORS, IGNOREWARN, SKIPTARGET: fleetup never
			// asks and always goes on with the other nodes.
			// USELATEST: one version per component.
		}
	}
	if len(errs) > 0 {
		return &usageError{errors.Join(errs...)}
	}
	return nil
}

// parseYesNo reads an input file's YES or NO (any case; also TRUE/FALSE,
// 1/0).
func parseYesNo(v string) (yes, ok bool) {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "YES", "TRUE", "1", "ON":
		return true, true
	case "NO", "FALSE", "0", "OFF":
		return false, true
	}
	return false, false
}

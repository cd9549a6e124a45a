// Package config holds fleetup's port configuration: the manager's web
// server ports (http 63001, https 63002), the engine's port on the nodes
// (62286), the FTP port for switches (off unless set) and open_firewall
// (off). Values come from, in order of precedence, command-line flags, the
// environment (FLEETUP_PORT, ...), an ini file (fleetup's own, or an
// existing hpsum.ini read as is) and the defaults. Load merges them and
// Validate refuses bad values; every value carries the Source it came
// from, so that errors name the flag, variable or FILE:LINE to fix and the
// rest of fleetup knows which ports the user chose: a default port that is
// taken may move to the next free one, a chosen one never moves.
//
// HP SUM's own spellings keep working: HPSUMOption maps "/port 80
// /ssl_port 443" to fleetup's flags (the command line translates them),
// and hpsum.ini's port=, ssl_port=, ftp_port= and open_firewall= keys are
// read from any section.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The defaults, as HP SUM's (SPEC S5, S8).
const (
	DefaultHTTPPort   = 63001
	DefaultHTTPSPort  = 63002
	DefaultEnginePort = 62286
)

// FTP ports HP SUM allows (SPEC S5): 21, or one of 63006-63010.
const (
	FTPStandardPort = 21
	FTPRangeFirst   = 63006
	FTPRangeLast    = 63010
)

// Keys name the settings: they are the ini keys, and ValidationError.Key.
const (
	KeyPort         = "port"
	KeySSLPort      = "ssl_port"
	KeyEnginePort   = "engine_port"
	KeyFTPPort      = "ftp_port"
	KeyOpenFirewall = "open_firewall"
)

// SourceKind says where a value came from.
type SourceKind string

const (
	KindDefault SourceKind = "default"
	KindFlag    SourceKind = "flag"
	KindEnv     SourceKind = "env"
	KindINI     SourceKind = "ini"
)

// Source is where a value came from. Name is the flag as typed ("--port"),
// the environment variable ("FLEETUP_PORT") or "FILE:LINE" of an ini file;
// it is empty for defaults.
type Source struct {
	Kind SourceKind `json:"kind"`
	Name string     `json:"name,omitempty"`
}

// String is "flag --port", "env FLEETUP_PORT", "ini FILE:LINE" or
// "default".
func (s Source) String() string {
	if s.Name == "" {
		return string(s.Kind)
	}
	return string(s.Kind) + " " + s.Name
}

// Explicit reports whether the user chose the value (anything but a
// default).
func (s Source) Explicit() bool { return s.Kind != KindDefault && s.Kind != "" }

// Setting is one value and where it came from.
type Setting[T int | bool] struct {
	Value  T      `json:"value"`
	Source Source `json:"source"`
}

// Explicit reports whether the user chose the value. A default port that
// is taken may move to the next free one; an explicit one never moves.
func (s Setting[T]) Explicit() bool { return s.Source.Explicit() }

// Config is the effective port configuration.
type Config struct {
	// HTTPPort and HTTPSPort are the manager's web server (port=,
	// ssl_port=).
	HTTPPort  Setting[int] `json:"port"`
	HTTPSPort Setting[int] `json:"ssl_port"`
	// EnginePort is what the engine listens on at each node (engine_port=).
	EnginePort Setting[int] `json:"engine_port"`
	// FTPPort serves switch firmware (ftp_port=); zero while FTP is off,
	// which it is unless set.
	FTPPort Setting[int] `json:"ftp_port"`
	// OpenFirewall opens the manager's http, https and FTP ports in the
	// firewall of the machine it runs on while a run lasts
	// (open_firewall=, Linux). The engine opens its own port on a node.
	OpenFirewall Setting[bool] `json:"open_firewall"`
	// File is the ini file read, if any.
	File string `json:"file,omitempty"`
	// Warnings name what Load ignored: unknown ini keys ("FILE:LINE:
	// unknown key ..."), keys given twice.
	Warnings []string `json:"warnings,omitempty"`
}

// FTPEnabled reports whether the FTP server for switches is on.
func (c *Config) FTPEnabled() bool { return c.FTPPort.Value != 0 }

// Default returns the defaults: 63001, 63002, engine 62286, FTP off,
// open_firewall off.
func Default() *Config {
	d := Source{Kind: KindDefault}
	return &Config{
		HTTPPort:     Setting[int]{DefaultHTTPPort, d},
		HTTPSPort:    Setting[int]{DefaultHTTPSPort, d},
		EnginePort:   Setting[int]{DefaultEnginePort, d},
		FTPPort:      Setting[int]{0, d},
		OpenFirewall: Setting[bool]{false, d},
	}
}

// setting describes one key: its spellings and where it lives in Config.
type setting struct {
	key  string // ini key
	flag string // flag name, without dashes
	env  string
	what string // for messages: "http port"
	port func(*Config) *Setting[int]
}

var settings = []setting{
	{KeyPort, "port", "FLEETUP_PORT", "http port", func(c *Config) *Setting[int] { return &c.HTTPPort }},
	{KeySSLPort, "ssl-port", "FLEETUP_SSL_PORT", "https port", func(c *Config) *Setting[int] { return &c.HTTPSPort }},
	{KeyEnginePort, "engine-port", "FLEETUP_ENGINE_PORT", "engine port", func(c *Config) *Setting[int] { return &c.EnginePort }},
	{KeyFTPPort, "ftp-port", "FLEETUP_FTP_PORT", "FTP port", func(c *Config) *Setting[int] { return &c.FTPPort }},
	{KeyOpenFirewall, "open-firewall", "FLEETUP_OPEN_FIREWALL", "open_firewall", nil},
}

// FlagNames are the flags Load's LoadOptions.Flags may hold, without
// dashes, in display order.
func FlagNames() []string {
	names := make([]string, len(settings))
	for i, s := range settings {
		names[i] = s.flag
	}
	return names
}

// Item is one line of a configuration listing.
type Item struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source Source `json:"source"`
}

// Items lists every setting in a fixed order, values formatted as an ini
// file would hold them ("off" for a disabled FTP port).
func (c *Config) Items() []Item {
	var items []Item
	for _, s := range settings {
		if s.port == nil {
			items = append(items, Item{s.key, strconv.FormatBool(c.OpenFirewall.Value), c.OpenFirewall.Source})
			continue
		}
		p := s.port(c)
		v := strconv.Itoa(p.Value)
		if s.key == KeyFTPPort && !c.FTPEnabled() {
			v = "off"
		}
		items = append(items, Item{s.key, v, p.Source})
	}
	return items
}

// ValidationError is a value refused: Key is the setting (KeyPort, ...),
// Value the text given, Source where it was given.
type ValidationError struct {
	Key    string
	Value  string
	Source Source
	Reason string
}

// Error names the value the way the user wrote it: "FILE:LINE: port
// "70000": ...", "--port "70000": ...", "FLEETUP_PORT "70000": ...".
func (e *ValidationError) Error() string {
	switch e.Source.Kind {
	case KindINI:
		return fmt.Sprintf("%s: %s %q: %s", e.Source.Name, e.Key, e.Value, e.Reason)
	case KindFlag, KindEnv:
		return fmt.Sprintf("%s %q: %s", e.Source.Name, e.Value, e.Reason)
	}
	return fmt.Sprintf("%s %q (%s): %s", e.Key, e.Value, e.Source, e.Reason)
}

// LoadOptions are Load's inputs.
type LoadOptions struct {
	// Flags are the flags the user set explicitly (flag.FlagSet.Visit), by
	// name without dashes ("port", "ssl-port", "ftp-port", "engine-port",
	// "open-firewall") with their values as text.
	Flags map[string]string
	// Env looks up an environment variable (os.LookupEnv); nil reads no
	// environment. A variable set to "" counts as unset.
	Env func(string) (string, bool)
	// File is an ini file to read ("" for none): fleetup's own or an
	// hpsum.ini.
	File string
}

// Load builds the configuration: defaults, overridden by File, by the
// environment, then by Flags. Every value given is checked, even one that
// a later source overrides, and every problem is reported (joined
// *ValidationError, or the ini file's syntax errors); then the merged
// configuration is validated. The Config's Warnings name ignored ini keys.
func Load(opts LoadOptions) (*Config, error) {
	c := Default()
	var errs []error
	if opts.File != "" {
		ini, err := ReadINIFile(opts.File)
		if err != nil {
			return nil, err
		}
		c.File = opts.File
		first := map[string]int{}
		for _, e := range ini.Entries {
			key := canonicalKey(e.Key)
			s, ok := lookup(func(s setting) bool { return s.key == key })
			if !ok {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: unknown key %q ignored", opts.File, e.Line, e.Key))
				continue
			}
			if line, ok := first[key]; ok {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: %s set again (first on line %d); line %d counts", opts.File, e.Line, key, line, e.Line))
			} else {
				first[key] = e.Line
			}
			errs = c.set(s, e.Value, Source{KindINI, fmt.Sprintf("%s:%d", opts.File, e.Line)}, errs)
		}
	}
	if opts.Env != nil {
		for _, s := range settings {
			if v, ok := opts.Env(s.env); ok && v != "" {
				errs = c.set(s, v, Source{KindEnv, s.env}, errs)
			}
		}
	}
	names := make([]string, 0, len(opts.Flags))
	for name := range opts.Flags {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		flag := strings.TrimLeft(name, "-")
		s, ok := lookup(func(s setting) bool { return s.flag == flag })
		if !ok {
			errs = append(errs, fmt.Errorf("--%s is not a port configuration flag", flag))
			continue
		}
		errs = c.set(s, opts.Flags[name], Source{KindFlag, "--" + flag}, errs)
	}
	if len(errs) == 0 {
		errs = c.validate()
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// ReadINIFile parses the ini file at path; errors name it.
func ReadINIFile(path string) (*INI, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	return ParseINI(f, path)
}

func lookup(match func(setting) bool) (setting, bool) {
	for _, s := range settings {
		if match(s) {
			return s, true
		}
	}
	return setting{}, false
}

// canonicalKey folds an ini key's case and spelling: "SSL_PORT",
// "ssl-port" and "Ssl_Port" are all "ssl_port".
func canonicalKey(k string) string {
	return strings.ReplaceAll(strings.ToLower(k), "-", "_")
}

// set parses v for s and stores it with src; a bad value is appended to
// errs and stored nowhere.
func (c *Config) set(s setting, v string, src Source, errs []error) []error {
	bad := func(reason string) []error {
		return append(errs, &ValidationError{Key: s.key, Value: v, Source: src, Reason: reason})
	}
	if s.port == nil {
		b, ok := parseBool(v)
		if !ok {
			return bad("not a yes/no value (yes, no, true, false, on, off, 1, 0)")
		}
		c.OpenFirewall = Setting[bool]{b, src}
		return errs
	}
	if s.key == KeyFTPPort {
		// "off" turns FTP off again, e.g. a flag over an ini file that
		// turns it on. 0 stays an invalid port.
		if strings.EqualFold(strings.TrimSpace(v), "off") {
			*s.port(c) = Setting[int]{0, src}
			return errs
		}
	}
	n, reason := parsePort(v)
	if reason == "" {
		reason = checkPort(s.key, n)
	}
	if reason != "" {
		return bad(reason)
	}
	*s.port(c) = Setting[int]{n, src}
	return errs
}

func parseBool(v string) (b, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "y", "on":
		return true, true
	case "0", "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

// parsePort reads decimal digits; the reason is empty when v is a number.
func parsePort(v string) (int, string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, "empty: want a port number (1-65535)"
	}
	for _, r := range v {
		if r < '0' || r > '9' {
			return 0, "not a number: want a port number (1-65535)"
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n > 65535 {
		return 0, "not a port: above 65535"
	}
	return n, ""
}

// checkPort refuses what no key may hold, and FTP ports HP SUM does not
// allow.
func checkPort(key string, n int) string {
	switch {
	case n == 0 && key == KeyFTPPort:
		return "not a port: 0 (off turns FTP off)"
	case n == 0:
		return "not a port: 0"
	case n < 0:
		return "not a port: below 1"
	case n > 65535:
		return "not a port: above 65535"
	case key == KeyFTPPort && n != FTPStandardPort && (n < FTPRangeFirst || n > FTPRangeLast):
		return fmt.Sprintf("not an FTP port: want %d or %d-%d", FTPStandardPort, FTPRangeFirst, FTPRangeLast)
	}
	return ""
}

// Validate checks the effective values: each port in 1-65535, the FTP port
// (when on) 21 or 63006-63010, and no port used for two things. Problems
// are *ValidationError, joined.
func (c *Config) Validate() error { return errors.Join(c.validate()...) }

func (c *Config) validate() []error {
	var errs []error
	type used struct {
		s setting
		p Setting[int]
	}
	var ports []used
	for _, s := range settings {
		if s.port == nil {
			continue
		}
		p := *s.port(c)
		if s.key == KeyFTPPort && !c.FTPEnabled() {
			continue
		}
		if reason := checkPort(s.key, p.Value); reason != "" {
			errs = append(errs, &ValidationError{Key: s.key, Value: strconv.Itoa(p.Value), Source: p.Source, Reason: reason})
			continue
		}
		if s.key != KeyFTPPort && c.FTPEnabled() && p.Value >= FTPRangeFirst && p.Value <= FTPRangeLast {
			errs = append(errs, &ValidationError{Key: s.key, Value: strconv.Itoa(p.Value), Source: p.Source,
				Reason: fmt.Sprintf("inside FTP's passive ports %d-%d, which are on (ftp_port %d, %s)", FTPRangeFirst, FTPRangeLast, c.FTPPort.Value, c.FTPPort.Source)})
			continue
		}
		for _, u := range ports {
			if u.p.Value == p.Value {
				errs = append(errs, &ValidationError{
					Key: s.key, Value: strconv.Itoa(p.Value), Source: p.Source,
					Reason: fmt.Sprintf("also the %s (%s, %s): the two must differ", u.s.what, u.s.key, u.p.Source),
				})
				break
			}
		}
		ports = append(ports, used{s, p})
	}
	return errs
}

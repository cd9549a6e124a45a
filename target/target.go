// Package target parses the nodes a run is aimed at: one target on the
// command line ("[user@]host[:port]"), a nodes file or standard input with
// one target per line, and HP SUM's input file format ([TARGETS] ... [END]
// sections with HOST=, UID= and PWD=). Every error names the input and,
// for files, the file and line; a password is never part of an error.
package target

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the port a Target without one is reached on (SSH).
const DefaultPort = 22

// Target is one node to reach.
type Target struct {
	User string // empty: the run's default user
	Host string // host name (lower case), IPv4 or IPv6 address (no brackets)
	Port int    // 0: DefaultPort
}

// String formats t as Parse reads it: "[user@]host[:port]", IPv6
// addresses in brackets.
func (t Target) String() string {
	var b strings.Builder
	if t.User != "" {
		b.WriteString(t.User + "@")
	}
	if strings.Contains(t.Host, ":") {
		b.WriteString("[" + t.Host + "]")
	} else {
		b.WriteString(t.Host)
	}
	if t.Port != 0 {
		b.WriteString(":" + strconv.Itoa(t.Port))
	}
	return b.String()
}

// Addr is "host:port" for dialling (brackets for IPv6), with DefaultPort
// when t has no port.
func (t Target) Addr() string {
	p := t.Port
	if p == 0 {
		p = DefaultPort
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(p))
}

// ParseError is a target that could not be parsed.
type ParseError struct {
	Input  string
	Reason string
}

func (e *ParseError) Error() string { return fmt.Sprintf("target %q: %s", e.Input, e.Reason) }

// Parse reads "[user@]host[:port]", where host is an IPv4 address, an
// IPv6 address in brackets (with an optional port) or bare (without), or a
// host name of RFC 1123 labels. A zone ("%eth0") is allowed only on a
// link-local IPv6 address.
func Parse(s string) (Target, error) {
	in := s
	fail := func(format string, a ...any) (Target, error) {
		return Target{}, &ParseError{Input: in, Reason: fmt.Sprintf(format, a...)}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return fail("empty target")
	}
	var t Target
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		if u, _, isPassword := strings.Cut(s[:i], ":"); isPassword {
			// user:password@host: the password must not be repeated in
			// the error, nor anywhere else.
			in = u + ":…@" + s[i+1:]
			return fail("a password in the target (user:password@host) is not taken: give it with --password-file or FLEETUP_PASSWORD")
		}
		t.User, s = s[:i], s[i+1:]
		if err := checkUser(t.User); err != "" {
			return fail("%s", err)
		}
	}
	var host, port string
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return fail("unbalanced brackets: missing ']'")
		}
		host, s = s[1:end], s[end+1:]
		if strings.ContainsAny(host, "[]") || strings.ContainsAny(s, "[]") {
			return fail("unbalanced brackets")
		}
		if s != "" {
			if s[0] != ':' {
				return fail("unexpected %q after ']' (want :port)", s)
			}
			port = s[1:]
			if port == "" {
				return fail("empty port after ':'")
			}
		}
		if host == "" {
			return fail("empty host")
		}
		if !strings.Contains(host, ":") {
			return fail("brackets are only for IPv6 addresses, not %q", host)
		}
	case strings.ContainsAny(s, "[]"):
		return fail("unbalanced brackets: missing '['")
	case strings.Count(s, ":") == 1:
		i := strings.IndexByte(s, ':')
		host, port = s[:i], s[i+1:]
		if port == "" {
			return fail("empty port after ':'")
		}
	default:
		host = s // a name, IPv4 address or bare IPv6 address
	}
	if host == "" {
		return fail("empty host")
	}
	if port != "" {
		p, err := parsePort(port)
		if err != "" {
			return fail("%s", err)
		}
		t.Port = p
	}
	h, err := checkHost(host)
	if err != "" {
		return fail("%s", err)
	}
	t.Host = h
	return t, nil
}

func parsePort(s string) (int, string) {
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Sprintf("port %q is not a number", s)
		}
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Sprintf("port %s out of range 1-65535", s)
	}
	return p, ""
}

func checkUser(u string) string {
	if u == "" {
		return "empty user before '@'"
	}
	if len(u) > 256 {
		return "user name longer than 256 characters"
	}
	for _, r := range u {
		if r <= ' ' || r == 0x7f || strings.ContainsRune("@:/[]#", r) {
			return fmt.Sprintf("user %q has a character not allowed in a user name (%q)", u, r)
		}
	}
	return ""
}

// checkHost validates host and returns it in canonical form.
func checkHost(host string) (string, string) {
	if strings.Contains(host, ":") { // IPv6
		addr, zone, _ := strings.Cut(host, "%")
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "", fmt.Sprintf("%q is not a valid IPv6 address", host)
		}
		if strings.Contains(host, "%") {
			if zone == "" {
				return "", fmt.Sprintf("empty zone in %q", host)
			}
			if !ip.IsLinkLocalUnicast() {
				return "", fmt.Sprintf("zone %q given for %s, which is not a link-local (fe80::/10) address", zone, addr)
			}
			for _, r := range zone {
				if !(r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
					return "", fmt.Sprintf("bad zone %q in %q", zone, host)
				}
			}
			return ip.String() + "%" + zone, ""
		}
		return ip.String(), ""
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		return ip.String(), ""
	}
	name := strings.TrimSuffix(host, ".")
	if name == "" {
		return "", "empty host"
	}
	if len(name) > 253 {
		return "", fmt.Sprintf("host name %.20q... is longer than 253 characters", host)
	}
	numeric := true
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return "", fmt.Sprintf("host name %q has an empty label", host)
		}
		if len(label) > 63 {
			return "", fmt.Sprintf("host name %q has a label longer than 63 characters", host)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Sprintf("host name %q has a label that starts or ends with '-'", host)
		}
		for _, r := range label {
			switch {
			case r >= '0' && r <= '9':
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-':
				numeric = false
			default:
				return "", fmt.Sprintf("host name %q has a character not allowed in host names (%q)", host, r)
			}
		}
	}
	if numeric {
		return "", fmt.Sprintf("%q is not a valid IPv4 address", host)
	}
	return strings.ToLower(name), ""
}

// errTooMany caps how many line errors a file reports.
const maxErrors = 20

// errorList collects per-line errors.
type errorList struct {
	errs []error
}

func (l *errorList) add(name string, line int, err error) {
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, fmt.Errorf("%s:%d: %w", name, line, err))
	} else if len(l.errs) == maxErrors {
		l.errs = append(l.errs, fmt.Errorf("%s: more errors not shown", name))
	}
}

func (l *errorList) err() error { return errors.Join(l.errs...) }

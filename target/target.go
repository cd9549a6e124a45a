// Package target parses the nodes a run is aimed at: one target on the
// command line, a nodes file or standard input with one server per line,
// and HP SUM's input file format ([TARGETS] ... [END] sections with HOST=,
// UID= and PWD=).
//
// A target names how a node is reached (its Kind) and where:
//
//	[user@]host[:port]          a Linux/POSIX node over SSH (port 22)
//	ssh://[user@]host[:port]    the same, spelled as a URL
//	bmc://[user@]host[:port]    a BMC over Redfish/HTTPS (port 443)
//	windows://[DOMAIN\]user@host[:port]
//	                            a Windows node over SMB (port 445); the
//	                            domain may also be written DOMAIN;user
//
// A line of a nodes file (or an input file's HOST= value) may name several
// targets separated by white space: one server reached at several
// addresses, at most one of each kind, e.g. its OS over SSH and its BMC.
// Every error names the input and, for files, the file and line; a
// password is never part of an error.
package target

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Kind is how a node is reached.
type Kind string

const (
	KindSSH Kind = "ssh" // a Linux/POSIX node over SSH (the default; port 22)
	KindBMC Kind = "bmc" // a BMC over Redfish/HTTPS (port 443)
	// KindWindows is a Windows node over SMB (ADMIN$ and the service
	// manager; port 445).
	KindWindows Kind = "windows"
)

// DefaultPort is the port a target of kind k is reached on when it names
// none: 22 for KindSSH, 443 for KindBMC, 445 for KindWindows. The empty Kind (a Target built by
// hand) is KindSSH; a kind this package does not know has no default (0).
func (k Kind) DefaultPort() int {
	switch k {
	case KindSSH, "":
		return 22
	case KindBMC:
		return 443
	case KindWindows:
		return 445
	}
	return 0
}

// isSSH reports whether k is KindSSH, which a Target built by hand (Kind
// empty) also is.
func (k Kind) isSSH() bool { return k == KindSSH || k == "" }

// knownSchemes is for errors that list what Parse reads.
const knownSchemes = "ssh://, bmc://, windows://, or none for ssh"

// kindOfScheme maps a URL scheme (lower case) to its Kind; the message is
// why a scheme is not taken.
func kindOfScheme(scheme string) (Kind, string) {
	switch scheme {
	case "ssh":
		return KindSSH, ""
	case "bmc":
		return KindBMC, ""
	case "windows":
		return KindWindows, ""
	case "":
		return "", fmt.Sprintf("empty scheme before \"://\" (known: %s)", knownSchemes)
	}
	return "", fmt.Sprintf("unknown scheme %q (known: %s)", scheme, knownSchemes)
}

// Target is one node to reach.
type Target struct {
	Kind Kind   // never empty after Parse (KindSSH when no scheme); empty is KindSSH
	User string // empty: the run's default user
	// Domain is a Windows account's domain (KindWindows only; empty: the
	// node's local account).
	Domain string
	Host   string // host name (lower case), IPv4 or IPv6 address (no brackets)
	Port   int    // 0: the kind's default (Kind.DefaultPort)
	// Server names the server this target is one address of, when a line
	// (or an input file's HOST=) gave several targets: the first target of
	// the line as written (its String()). Empty for a lone target.
	Server string
}

// String formats t as Parse reads it: "[user@]host[:port]" for KindSSH
// (no scheme, so that what fleetup has always printed stays),
// "bmc://[user@]host[:port]" for KindBMC and
// "windows://[DOMAIN\]user@host[:port]" for KindWindows, IPv6 addresses in
// brackets. It does not show Server.
func (t Target) String() string {
	var b strings.Builder
	if !t.Kind.isSSH() {
		b.WriteString(string(t.Kind) + "://")
	}
	if t.Domain != "" {
		b.WriteString(t.Domain + `\`)
	}
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

// Addr is "host:port" for dialling (brackets for IPv6), with the kind's
// default port when t has none.
func (t Target) Addr() string {
	p := t.Port
	if p == 0 {
		p = t.Kind.DefaultPort()
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(p))
}

// id is what makes two targets the same node: the kind and the address.
// For KindSSH it is the address alone, as duplicate errors have always
// shown it.
func (t Target) id() string {
	if t.Kind.isSSH() {
		return t.Addr()
	}
	return string(t.Kind) + "://" + t.Addr()
}

// Account returns the domain and user name a Windows node logs on with:
// Domain and User, or, when Domain is empty, User split at its first
// backslash or semicolon ("DOMAIN\user", "DOMAIN;user", as an HP SUM input
// file's UID= may give it).
func (t Target) Account() (domain, user string) {
	if t.Domain != "" {
		return t.Domain, t.User
	}
	if i := strings.IndexAny(t.User, `\;`); i >= 0 {
		return t.User[:i], t.User[i+1:]
	}
	return "", t.User
}

// ParseError is a target that could not be parsed.
type ParseError struct {
	Input  string // as given, with a password replaced by "…"
	Reason string
}

func (e *ParseError) Error() string { return fmt.Sprintf("target %q: %s", e.Input, e.Reason) }

// Parse reads one target: "[user@]host[:port]" (KindSSH),
// "ssh://[user@]host[:port]" (KindSSH) or "bmc://[user@]host[:port]"
// (KindBMC). The scheme is case-insensitive; after it, the path may be
// empty or "/", and a query or fragment is refused. host is an IPv4
// address, an IPv6 address in brackets (with an optional port) or, without
// a scheme only, bare (without a port), or a host name of RFC 1123 labels.
// A zone ("%eth0") is allowed only on a link-local IPv6 address. A
// password (user:password@host) is refused and not repeated in the error.
// "windows://[DOMAIN\]user@host[:port]" (KindWindows) names the user's
// domain before a backslash (or a semicolon, as smbclient writes it). Any
// other scheme is refused.
func Parse(s string) (Target, error) { return parse(s, KindSSH) }

// parse is Parse with def the kind of a target without a scheme.
func parse(s string, def Kind) (Target, error) {
	in := s
	fail := func(format string, a ...any) (Target, error) {
		return Target{}, &ParseError{Input: in, Reason: fmt.Sprintf(format, a...)}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return fail("empty target")
	}
	if redacted, ok := redactPassword(s); ok {
		// The password must not be repeated in the error, nor anywhere
		// else.
		in = redacted
		return fail("a password in the target (user:password@host) is not taken: give it with --password-file or FLEETUP_PASSWORD")
	}
	t := Target{Kind: def}
	isURL := false
	if i := strings.Index(s, "://"); i >= 0 {
		scheme := s[:i]
		if !validScheme(scheme) {
			return fail("%q before \"://\" is not a scheme (known: %s)", scheme, knownSchemes)
		}
		k, why := kindOfScheme(strings.ToLower(scheme))
		if why != "" {
			return fail("%s", why)
		}
		t.Kind, s, isURL = k, s[i+len("://"):], true
		// The authority ends at the path, query or fragment.
		if j := strings.IndexAny(s, "/?#"); j >= 0 {
			path, rest := s[j:], ""
			if k := strings.IndexAny(path, "?#"); k >= 0 {
				path, rest = path[:k], path[k:]
			}
			s = s[:j]
			switch {
			case path != "" && path != "/":
				return fail("a path (%q) is not taken: want %s://[user@]host[:port]", path, t.Kind)
			case strings.HasPrefix(rest, "?"):
				return fail("a query (%q) is not taken: want %s://[user@]host[:port]", rest, t.Kind)
			case rest != "":
				return fail("a fragment (%q) is not taken: want %s://[user@]host[:port]", rest, t.Kind)
			}
		}
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		t.User, s = s[:i], s[i+1:]
		if t.Kind == KindWindows {
			if j := strings.IndexAny(t.User, `\;`); j >= 0 {
				t.Domain, t.User = t.User[:j], t.User[j+1:]
				if err := checkDomain(t.Domain); err != "" {
					return fail("%s", err)
				}
			}
		}
		if err := checkUser(t.User); err != "" {
			return fail("%s", err)
		}
		if t.Kind == KindWindows && strings.ContainsAny(t.User, `\;`) {
			return fail("user %q: one domain only (DOMAIN\\user)", t.User)
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
	case isURL && strings.Contains(s, ":"):
		// A URL's IPv6 address is always in brackets: bare, "fd42::1:443"
		// could be an address or an address and a port.
		return fail("an IPv6 address after %s:// must be in brackets: %s://[%s]", t.Kind, t.Kind, s)
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

// redactPassword reports whether s holds a password, "user:password@" (after
// an optional scheme), and if so returns s with the password replaced by
// "…". It errs on the side of redacting: anything with a ':' before the
// last '@' counts.
func redactPassword(s string) (string, bool) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", false
	}
	prefix, userinfo := "", s[:i]
	if j := strings.Index(userinfo, "://"); j >= 0 && validScheme(userinfo[:j]) {
		prefix, userinfo = userinfo[:j+len("://")], userinfo[j+len("://"):]
	}
	user, _, ok := strings.Cut(userinfo, ":")
	if !ok {
		return "", false
	}
	return prefix + user + ":…@" + s[i+1:], true
}

// validScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, '+', '-' or '.').
func validScheme(s string) bool {
	if s == "" {
		return true // reported as an empty scheme
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
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

// checkDomain validates a Windows domain: a NetBIOS or DNS domain name.
func checkDomain(d string) string {
	if d == "" {
		return `empty domain before '\' (want DOMAIN\user, or user alone for a local account)`
	}
	if len(d) > 255 {
		return "domain longer than 255 characters"
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Sprintf("domain %q has a character not allowed in a domain name (%q)", d, r)
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

// maxErrors caps how many line errors a file reports.
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

// parseServer reads one line of a nodes file, or one HOST= value: one
// target, or several separated by white space that are one server's
// addresses, at most one of each kind. Targets without a scheme are of kind
// def. The targets of a server each get Server, the first one's String().
// On any error, no target is returned.
func parseServer(s string, def Kind) ([]Target, []error) {
	fields := strings.Fields(s)
	if len(fields) <= 1 {
		t, err := parse(s, def)
		if err != nil {
			return nil, []error{err}
		}
		return []Target{t}, nil
	}
	var (
		ts     []Target
		errs   []error
		byKind = map[Kind]Target{}
	)
	for _, f := range fields {
		t, err := parse(f, def)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, ok := byKind[t.Kind]; ok {
			errs = append(errs, fmt.Errorf("two %s targets on one line: %s and %s (a line is one server, with at most one address of each kind)", t.Kind, prev, t))
			continue
		}
		byKind[t.Kind] = t
		ts = append(ts, t)
	}
	if len(errs) > 0 {
		if maySplitPassword(fields) {
			return nil, []error{errSplitPassword}
		}
		return nil, errs
	}
	for i := range ts {
		ts[i].Server = ts[0].String()
	}
	return ts, nil
}

// errSplitPassword stands for the errors of a line that may hold a
// password with white space in it, which must not be shown.
var errSplitPassword = errors.New("not a list of targets (not shown: it may hold user:password@host with a space in the password; a password is not taken in a target: give it with --password-file or FLEETUP_PASSWORD)")

// maySplitPassword reports whether fields, a line split at white space,
// may be "user:pass word@host" cut into pieces: a field with a ':' (after
// any scheme) followed by a field with an '@'. Parse redacts a password it
// sees whole, but no piece is whole ("user:p@ss word@host" gives
// "user:p@ss", whose redaction would still show "ss"), and echoing the
// pieces would show the password. Lines of valid targets may match too
// ("bmc://b1:443 root@node1"); only their errors are hidden.
func maySplitPassword(fields []string) bool {
	last := -1 // the last field with an '@'
	for i, f := range fields {
		if strings.Contains(f, "@") {
			last = i
		}
	}
	for _, f := range fields[:max(last, 0)] {
		if j := strings.Index(f, "://"); j >= 0 {
			f = f[j+len("://"):]
		}
		if strings.Contains(f, ":") {
			return true
		}
	}
	return false
}

// seenTargets finds duplicates across a file: target id → the line it was
// first on.
type seenTargets map[string]int

// add records ts, read on line, and returns an error for each target
// already seen.
func (seen seenTargets) add(ts []Target, line int) []error {
	var errs []error
	for _, t := range ts {
		if first, ok := seen[t.id()]; ok {
			errs = append(errs, fmt.Errorf("duplicate target %s (first on line %d)", t.id(), first))
			continue
		}
		seen[t.id()] = line
	}
	return errs
}

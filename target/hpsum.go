package target

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Secret is a password read from an input file. It formats as
// "[redacted]" so that it cannot reach a message or log by accident; Zero
// overwrites it.
type Secret []byte

func (s Secret) String() string   { return "[redacted]" }
func (s Secret) GoString() string { return "target.Secret([redacted])" }

// Zero overwrites the secret's bytes.
func (s Secret) Zero() { clear(s) }

// InputFile is an HP SUM input file.
type InputFile struct {
	// Groups are the [TARGETS] sections, in file order.
	Groups []TargetGroup
	// Options are the recognised keys outside the sections, upper case,
	// with their values as written (e.g. "SILENT": "YES").
	Options map[string]string
	// Warnings name ignored lines ("FILE:LINE: unknown key X ignored").
	Warnings []string
}

// TargetGroup is one [TARGETS] ... [END] section: its hosts share its
// credentials (and, with TYPE=, their kind).
type TargetGroup struct {
	Line int // of the [TARGETS] header
	// Targets are the section's HOST= values in order, a HOST= of several
	// targets (one server) giving each of them.
	Targets []Target
	User    string // UID=
	// Password is PWD=; nil when not given.
	Password Secret
	// UseCurrentCredential is USECURRENTCREDENTIAL=YES: log in with the
	// manager's own credentials.
	UseCurrentCredential bool
}

// knownOptions are HP SUM's input file keys outside [TARGETS] sections.
var knownOptions = map[string]bool{
	"SILENT": true, "IGNOREERRORS": true, "IGNOREWARN": true, "SKIPTARGET": true,
	"DRYRUN": true, "REBOOTALLOWED": true, "REBOOTMESSAGE": true, "REBOOTDELAY": true,
	"REBOOTALWAYS": true, "USELATEST": true, "ROMONLY": true, "SOFTWAREONLY": true,
	"FORCEALL": true, "FORCEFIRMWARE": true, "FORCEROM": true, "FORCESOFTWARE": true,
	"DOWNGRADE": true, "REWRITE": true, "ON_FAILED_DEPENDENCY": true, "OPEN_FIREWALL": true,
	"SOURCEPATH": true, "LOGDIR": true, "PORT": true, "SSL_PORT": true, "FTP_PORT": true,
	"REPORT": true, "INVENTORY_REPORT": true, "FIRMWARE_REPORT": true, "REPORTDIR": true,
	"USE_LATEST": true,
}

// ParseHPSUMInput reads HP SUM's input file format:
//
//	SILENT=YES
//	[TARGETS]
//	HOST=198.18.1.2
//	HOST=root@node2:2222
//	UID=root
//	PWD=secret
//	[END]
//
// Keys and section names are case-insensitive; values may be in double
// quotes; lines starting with ';' or '#' are comments. Inside a section
// HOST (one or more), UID, PWD, USECURRENTCREDENTIAL=YES|NO and TYPE are
// allowed; outside, HP SUM's options are kept in Options and unknown keys
// are ignored with a warning. name is the file's name for errors, which
// carry line numbers and never a PWD value.
//
// fleetup reads more than HP SUM in a section:
//
//   - A HOST= value is read as Parse reads a target, so it may have a
//     scheme (HOST=bmc://10.0.0.5), and may be several targets separated
//     by white space: one server's addresses, at most one of each kind, as
//     on a line of a nodes file (ParseList), each with Server set to the
//     first.
//   - TYPE=ssh, TYPE=bmc or TYPE=windows sets the kind of the section's
//     HOST= values that have no scheme (a value with a scheme keeps it);
//     without TYPE= they are ssh. A windows section's UID= may name the
//     domain, UID=DOMAIN\user (see Target.Account). Like UID= and PWD=,
//     TYPE= is about the whole section, so it is given at most once and, since it changes how the HOST= lines
//     read, before the section's first HOST=: a TYPE= after a HOST= is an
//     error rather than a kind that silently applies to some hosts only.
//     Any other value is an error naming it.
//
// A target is a duplicate, and an error, when its kind, host and port are
// those of an earlier one anywhere in the file.
func ParseHPSUMInput(r io.Reader, name string) (*InputFile, error) {
	f := &InputFile{Options: map[string]string{}}
	var (
		errs  errorList
		group *TargetGroup
		seen  = seenTargets{}
		setAt map[string]int // key → line, in the current group
		kind  Kind           // TYPE=, in the current group
	)
	endGroup := func(line int) {
		switch {
		case len(group.Targets) == 0:
			errs.add(name, group.Line, errors.New("[TARGETS] section has no HOST="))
		case group.UseCurrentCredential && (group.User != "" || group.Password != nil):
			errs.add(name, group.Line, errors.New("[TARGETS] section sets USECURRENTCREDENTIAL=YES and UID=/PWD=: use one or the other"))
		case group.Password != nil && group.User == "":
			errs.add(name, group.Line, errors.New("[TARGETS] section has PWD= but no UID="))
		}
		f.Groups = append(f.Groups, *group)
		group = nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			section := strings.ToUpper(strings.TrimSpace(strings.Trim(line, "[]")))
			if !strings.HasSuffix(line, "]") || strings.Count(line, "[") != 1 || strings.Count(line, "]") != 1 {
				errs.add(name, n, errors.New("malformed section header (want [TARGETS] or [END])"))
				continue
			}
			switch section {
			case "TARGETS":
				if group != nil {
					errs.add(name, n, fmt.Errorf("[TARGETS] inside the [TARGETS] section opened on line %d: missing [END]", group.Line))
					endGroup(n)
				}
				group = &TargetGroup{Line: n}
				setAt = map[string]int{}
				kind = KindSSH
			case "END":
				if group == nil {
					errs.add(name, n, errors.New("[END] without [TARGETS]"))
					continue
				}
				endGroup(n)
			default:
				errs.add(name, n, fmt.Errorf("unknown section [%s] (want [TARGETS] or [END])", section))
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			if group != nil {
				// Might be a mangled PWD line: do not echo it.
				errs.add(name, n, errors.New("expected KEY=VALUE (HOST, UID, PWD, USECURRENTCREDENTIAL or TYPE) or [END]"))
			} else {
				errs.add(name, n, errors.New("expected KEY=VALUE or a [SECTION]"))
			}
			continue
		}
		key = strings.ToUpper(strings.TrimSpace(key))
		value = unquote(strings.TrimSpace(value))
		if group == nil {
			switch {
			case key == "HOST" || key == "UID" || key == "PWD" || key == "USECURRENTCREDENTIAL" || key == "TYPE":
				errs.add(name, n, fmt.Errorf("%s= outside a [TARGETS] ... [END] section", key))
			case knownOptions[key]:
				f.Options[key] = value
			default:
				f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: unknown key %q ignored", name, n, key))
			}
			continue
		}
		if key != "HOST" {
			if first, ok := setAt[key]; ok {
				errs.add(name, n, fmt.Errorf("%s given twice in one [TARGETS] section (first on line %d)", key, first))
				continue
			}
			setAt[key] = n
		}
		switch key {
		case "HOST":
			if _, ok := setAt["HOST"]; !ok {
				setAt["HOST"] = n // the first, for TYPE=
			}
			ts, hostErrs := parseServer(value, kind)
			for _, err := range hostErrs {
				errs.add(name, n, fmt.Errorf("HOST: %w", err))
			}
			if len(hostErrs) > 0 {
				continue
			}
			dups := seen.add(ts, n)
			for _, err := range dups {
				errs.add(name, n, err)
			}
			if len(dups) == 0 {
				group.Targets = append(group.Targets, ts...)
			}
		case "TYPE":
			if first, ok := setAt["HOST"]; ok {
				errs.add(name, n, fmt.Errorf("TYPE= after HOST= (line %d): TYPE= sets the kind of every HOST= of the section, so it goes before the first", first))
				continue
			}
			switch k := Kind(strings.ToLower(value)); k {
			case KindSSH, KindBMC, KindWindows:
				kind = k
			default:
				errs.add(name, n, fmt.Errorf("TYPE=%q: unknown kind (want ssh, bmc or windows)", value))
			}
		case "UID":
			if value == "" {
				errs.add(name, n, errors.New("empty UID="))
				continue
			}
			if msg := checkUser(value); msg != "" {
				errs.add(name, n, fmt.Errorf("UID: %s", msg))
				continue
			}
			group.User = value
		case "PWD":
			if value == "" {
				errs.add(name, n, errors.New("empty PWD= (leave the line out to log in with keys or the run's password)"))
				continue
			}
			group.Password = Secret(value)
		case "USECURRENTCREDENTIAL":
			switch strings.ToUpper(value) {
			case "YES":
				group.UseCurrentCredential = true
			case "NO":
			default:
				errs.add(name, n, fmt.Errorf("USECURRENTCREDENTIAL=%q: want YES or NO", value))
			}
		default:
			errs.add(name, n, fmt.Errorf("unknown key %q in a [TARGETS] section (want HOST, UID, PWD, USECURRENTCREDENTIAL or TYPE)", key))
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxLine)
		}
		errs.add(name, n+1, err)
	}
	if group != nil {
		errs.add(name, group.Line, errors.New("[TARGETS] section not closed with [END]"))
		endGroup(n)
	}
	if err := errs.err(); err != nil {
		for _, g := range f.Groups {
			g.Password.Zero()
		}
		return nil, err
	}
	if len(f.Groups) == 0 {
		return nil, fmt.Errorf("%s: no [TARGETS] section", name)
	}
	return f, nil
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

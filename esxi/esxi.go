// Package esxi lets a VMware ESXi host reach the manager's web server.
// ESXi's own firewall blocks outbound connections except to ports 80 and
// 443, so a host cannot fetch components from 63001/63002 until a firewall
// rule file allows it: a file in /etc/vmware/firewall holding one service
// per port, each with one outbound TCP rule on the destination port,
// enabled and not required, loaded with "esxcli network firewall refresh"
// (HP SUM's manual, the section on enabling its ports for VMware nodes).
//
// RuleXML writes that file; Install places it on a host over a
// transport.Conn and refreshes the firewall, Remove takes it away and
// refreshes again, which leaves the host's firewall as it was. A file
// placed in /etc/vmware/firewall lasts until the host reboots (ESXi keeps
// /etc in memory), so a reboot removes it too.
package esxi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/fleetup/fleetup/transport"
)

// RuleFile is where Install puts the rule file by default.
const RuleFile = "/etc/vmware/firewall/fleetup.xml"

// Esxcli is the esxcli program run by default.
const Esxcli = "esxcli"

// Service is one firewall service of the rule file: outbound TCP to Port.
type Service struct {
	// Name is the service's id as esxcli network firewall ruleset list
	// shows it: letters, digits, '_' and '-'.
	Name string
	Port int
}

// Services returns the services for the manager's HTTP and HTTPS ports:
// fleetupHTTP and fleetupHTTPS.
func Services(httpPort, httpsPort int) []Service {
	return []Service{{"fleetupHTTP", httpPort}, {"fleetupHTTPS", httpsPort}}
}

// ErrInvalidService is wrapped by every error RuleXML returns for a bad
// service.
var ErrInvalidService = errors.New("invalid ESXi firewall service")

func validate(svcs []Service) error {
	if len(svcs) == 0 {
		return fmt.Errorf("%w: no services", ErrInvalidService)
	}
	if len(svcs) > 9999 {
		return fmt.Errorf("%w: %d services, at most 9999", ErrInvalidService, len(svcs))
	}
	names := map[string]bool{}
	for _, s := range svcs {
		if s.Name == "" {
			return fmt.Errorf("%w: service for port %d has no name", ErrInvalidService, s.Port)
		}
		for _, c := range s.Name {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("%w: service name %q has character %q (allowed: A-Z a-z 0-9 _ -)", ErrInvalidService, s.Name, c)
			}
		}
		if names[s.Name] {
			return fmt.Errorf("%w: service name %q twice", ErrInvalidService, s.Name)
		}
		names[s.Name] = true
		if s.Port < 1 || s.Port > 65535 {
			return fmt.Errorf("%w: service %s: port %d out of range 1-65535", ErrInvalidService, s.Name, s.Port)
		}
	}
	return nil
}

// RuleXML returns the rule file for svcs, in the layout of VMware's own
// files and the manual's example: a ConfigRoot with one service per entry
// (ids 0000, 0001, ...), each with one rule (id 0000) direction outbound,
// protocol tcp, porttype dst and the port, enabled true and required
// false. Names and ports are validated, so nothing needs escaping.
func RuleXML(svcs []Service) ([]byte, error) {
	if err := validate(svcs); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<!-- Firewall configuration for fleetup: outbound TCP to the manager's web server -->\n")
	b.WriteString("<ConfigRoot>\n")
	for i, s := range svcs {
		fmt.Fprintf(&b, "  <service id='%04d'>\n", i)
		fmt.Fprintf(&b, "    <id>%s</id>\n", s.Name)
		b.WriteString("    <rule id='0000'>\n")
		b.WriteString("      <direction>outbound</direction>\n")
		b.WriteString("      <protocol>tcp</protocol>\n")
		b.WriteString("      <porttype>dst</porttype>\n")
		fmt.Fprintf(&b, "      <port>%d</port>\n", s.Port)
		b.WriteString("    </rule>\n")
		b.WriteString("    <enabled>true</enabled>\n")
		b.WriteString("    <required>false</required>\n")
		b.WriteString("  </service>\n")
	}
	b.WriteString("</ConfigRoot>\n")
	return b.Bytes(), nil
}

// Options says where the rule file goes and which esxcli refreshes the
// firewall; the zero value is RuleFile and Esxcli.
type Options struct {
	// File is the rule file's absolute path; RuleFile when empty. Its
	// directory must exist.
	File string
	// Esxcli is the esxcli program; Esxcli when empty.
	Esxcli string
}

func (o Options) paths() (file, esxcli string, err error) {
	file, esxcli = o.File, o.Esxcli
	if file == "" {
		file = RuleFile
	}
	if esxcli == "" {
		esxcli = Esxcli
	}
	if !path.IsAbs(file) || path.Clean(file) != file || strings.HasSuffix(file, "/") {
		return "", "", fmt.Errorf("rule file %q: not a clean absolute path", file)
	}
	return file, esxcli, nil
}

// refresh is the command that reloads the firewall's rule files.
func refresh(esxcli string) string {
	return transport.ShellQuote(esxcli) + " network firewall refresh"
}

// Install writes xml to the rule file on the host behind conn (to a
// temporary file beside it, mode 0444, renamed into place) and refreshes
// the firewall. When the refresh fails it takes the file away again and
// refreshes once more, so that a host is never left with a file its
// firewall did not accept.
func Install(ctx context.Context, conn transport.Conn, xml []byte, opts Options) error {
	file, esxcli, err := opts.paths()
	if err != nil {
		return err
	}
	q, tmp, dir := transport.ShellQuote(file), transport.ShellQuote(file+".fleetup-new"), transport.ShellQuote(path.Dir(file))
	script := fmt.Sprintf("[ -d %s ] || { echo %s: no such directory, not an ESXi host? >&2; exit 3; }; "+
		"umask 022 && cat > %s && chmod 444 %s && mv -f %s %s || { rm -f %s; exit 1; }",
		dir, dir, tmp, tmp, tmp, q, tmp)
	if err := run(ctx, conn, script, bytes.NewReader(xml)); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := run(ctx, conn, refresh(esxcli), nil); err != nil {
		rerr := run(context.WithoutCancel(ctx), conn, "rm -f "+q+" && "+refresh(esxcli), nil)
		if rerr != nil {
			return fmt.Errorf("refresh firewall: %w; then removing %s again: %w", err, file, rerr)
		}
		return fmt.Errorf("refresh firewall (%s removed again): %w", file, err)
	}
	return nil
}

// Remove deletes the rule file from the host behind conn and refreshes
// the firewall. It reports whether the file was there; without the file
// it changes nothing and refreshes nothing.
func Remove(ctx context.Context, conn transport.Conn, opts Options) (bool, error) {
	file, esxcli, err := opts.paths()
	if err != nil {
		return false, err
	}
	var out bytes.Buffer
	q := transport.ShellQuote(file)
	script := fmt.Sprintf("if [ -e %s ]; then rm -f %s && echo removed && %s; fi", q, q, refresh(esxcli))
	if err := conn.Run(ctx, script, nil, &out, nil); err != nil {
		if strings.Contains(out.String(), "removed") {
			return true, fmt.Errorf("refresh firewall after removing %s: %w", file, err)
		}
		return false, fmt.Errorf("remove %s: %w", file, err)
	}
	return strings.Contains(out.String(), "removed"), nil
}

// run runs cmd with stdin and returns its error with standard error in it.
func run(ctx context.Context, conn transport.Conn, cmd string, stdin io.Reader) error {
	var stderr bytes.Buffer
	if err := conn.Run(ctx, cmd, stdin, nil, &stderr); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" && !strings.Contains(err.Error(), msg) {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

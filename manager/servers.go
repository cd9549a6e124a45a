package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/ftpd"
	"github.com/fleetup/fleetup/managerfw"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/wire"
)

// closeTimeout bounds each server's shutdown at the end of a run.
const closeTimeout = 5 * time.Second

// servers is what a run starts on the manager itself: the web
// server nodes fetch from and post status to (remote nodes only), the FTP
// server for switches (--ftp-port), and the rules --open-firewall adds to
// this machine's firewall. close undoes all of it, also after a cancel.
type servers struct {
	runID    string
	stateDir string
	ports    *config.Config
	notice   func(msg string)
	host     *depot.Host // serve's ports, when set (Options.Host)

	depot    *depot.Depot
	ftp      *ftpd.Server
	ftpUser  string
	credFile string // the FTP credentials, mode 0600, removed by close
	fw       *managerfw.Opened
	passive  []int // the FTP passive ports free when FTP started
}

// startDepot starts the web server on the configured ports with every
// component of the run. A port the user chose that is taken is a usage
// error naming the process holding it; a taken default port moves.
func (m *servers) startDepot(ctx context.Context, tlsConf *tls.Config, comps []*fleetup.Component) error {
	dp, err := depot.New(depot.Options{
		HTTPPort: m.ports.HTTPPort.Value, HTTPSPort: m.ports.HTTPSPort.Value,
		HTTPPortExplicit: m.ports.HTTPPort.Explicit(), HTTPSPortExplicit: m.ports.HTTPSPort.Explicit(),
		TLS: tlsConf,
	})
	if err != nil {
		return err
	}
	for _, c := range comps {
		if err := dp.Add(c); err != nil {
			return err
		}
	}
	if m.host != nil {
		if err := m.host.Attach(dp, wire.DepotServerName(m.runID)); err != nil {
			return fmt.Errorf("start the manager's web server: %w", err)
		}
		m.depot = dp
		return nil
	}
	if err := dp.Start(ctx); err != nil {
		var pe *depot.PortInUseError
		if errors.As(err, &pe) {
			return configErrorf("%w (%s)", err, portSource(m.ports, pe.What))
		}
		return fmt.Errorf("start the manager's web server: %w", err)
	}
	m.depot = dp
	for _, n := range dp.Notices() {
		m.notice(n)
	}
	return nil
}

// portSource says where the setting of a server's port came from.
func portSource(c *config.Config, what string) string {
	switch what {
	case "http":
		return "set by " + c.HTTPPort.Source.String()
	case "https":
		return "set by " + c.HTTPSPort.Source.String()
	case "ftp":
		return "set by " + c.FTPPort.Source.String()
	}
	return "chosen explicitly"
}

// startFTP serves the run's components over FTP on the configured port
// (passive data ports 63006-63010) to one user minted for this run. The
// credentials go to a file in the state directory readable by the
// manager's user only (runstate.WriteFTPCredentials), for the duration of
// the run; they are never printed.
func (m *servers) startFTP(ctx context.Context, comps []*fleetup.Component) error {
	user, pass := ftpd.NewCredentials()
	port := m.ports.FTPPort.Value
	srv, err := ftpd.New(ftpd.Options{
		Port: port, User: user, Password: pass,
		PassivePorts: [2]int{ftpd.DefaultPassiveFirst, ftpd.DefaultPassiveLast},
	})
	if err != nil {
		return fmt.Errorf("ftp server: %w", err)
	}
	for _, c := range comps {
		if err := srv.Add(c.File, c.Path); err != nil {
			return fmt.Errorf("ftp server: %s: %w", c.File, err)
		}
	}
	cred, err := runstate.WriteFTPCredentials(m.stateDir, runstate.FTPCredentials{RunID: m.runID, User: user, Password: pass, Port: port})
	if err != nil {
		return configErrorf("--state-dir: %w", err)
	}
	m.credFile = cred
	if err := srv.Start(ctx); err != nil {
		if pe := depot.InUse("ftp", port, err); pe != nil {
			return configErrorf("%w (%s)", pe, portSource(m.ports, "ftp"))
		}
		return fmt.Errorf("start the ftp server: %w", err)
	}
	m.ftp, m.ftpUser = srv, user
	m.passive = m.freePassivePorts()
	return nil
}

// listening returns the TCP ports the manager's servers listen on: http,
// https, FTP and its passive range.
func (m *servers) listening() []int {
	var ports []int
	if m.depot != nil {
		ports = append(ports, m.depot.HTTPPort())
		if p := m.depot.HTTPSPort(); p != 0 {
			ports = append(ports, p)
		}
	}
	if m.ftp != nil {
		ports = append(ports, m.ftp.Addr().Port)
		ports = append(ports, m.passive...)
	}
	return ports
}

// freePassivePorts returns the FTP server's passive data ports that no
// other process holds now, and says which are held: the server skips a
// held one, and the firewall must not open it for that other process.
func (m *servers) freePassivePorts() []int {
	var ports []int
	ctl := m.ftp.Addr().Port
	for p := ftpd.DefaultPassiveFirst; p <= ftpd.DefaultPassiveLast; p++ {
		if p == ctl {
			continue
		}
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			if pe := depot.InUse("ftp passive", p, err); pe != nil {
				m.notice(pe.Error() + ": FTP transfers use the other passive ports")
			}
			continue
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports
}

// openFirewall opens every port the manager listens on in this machine's
// firewall (--open-firewall), for any source of IPv4 and IPv6.
func (m *servers) openFirewall(ctx context.Context) error {
	ports := m.listening()
	if len(ports) == 0 {
		m.notice("--open-firewall: the manager listens on no port for this run (the local node needs none); nothing to open")
		return nil
	}
	if os.Geteuid() != 0 {
		return configErrorf("--open-firewall changes this machine's firewall and needs root: run fleetup as root, or open ports %s yourself (fleetup ports lists them)", JoinPorts(ports))
	}
	l := &managerfw.Local{JournalDir: m.stateDir}
	o, err := l.Open(ctx, m.runID, ports)
	if err != nil {
		return fmt.Errorf("--open-firewall: %w", err)
	}
	m.fw = o
	if len(o.Rules()) == 0 {
		m.notice("--open-firewall: this machine's firewall filters no input; nothing to open")
		return nil
	}
	m.notice(fmt.Sprintf("--open-firewall: opened tcp ports %s to IPv4 and IPv6 in this machine's firewall: %d rule(s) tagged %s, removed when the run ends",
		JoinPorts(o.Ports()), len(o.Rules()), o.Tag()))
	return nil
}

// JoinPorts formats ports as "63001, 63002".
func JoinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

// Listening says where the manager listens for a run: its web server
// (for remote nodes), its FTP server (switches) and the rules
// --open-firewall added.
type Listening struct {
	HTTPPort  int `json:"http_port,omitempty"`
	HTTPSPort int `json:"https_port,omitempty"`
	FTPPort   int `json:"ftp_port,omitempty"`
	// FTPPassive are the FTP server's passive data ports free at its start.
	FTPPassive []int  `json:"ftp_passive,omitempty"`
	FTPUser    string `json:"ftp_user,omitempty"`
	// FTPCredentials is the file (mode 0600) holding the FTP password.
	FTPCredentials string   `json:"ftp_credentials,omitempty"`
	Firewall       []string `json:"firewall_rules,omitempty"`
}

// Any reports whether the manager listens on anything for the run.
func (l Listening) Any() bool { return l.HTTPPort != 0 || l.FTPPort != 0 }

// String is a line for people: "http 63001, https 63002; ftp ...".
func (l Listening) String() string {
	var parts []string
	if l.HTTPPort != 0 {
		parts = append(parts, fmt.Sprintf("http %d, https %d", l.HTTPPort, l.HTTPSPort))
	}
	if l.FTPPort != 0 {
		parts = append(parts, fmt.Sprintf("ftp %d (passive %s; user %s, password in %s)", l.FTPPort,
			JoinPorts(l.FTPPassive), l.FTPUser, l.FTPCredentials))
	}
	return strings.Join(parts, "; ")
}

// listeningInfo says where the servers listen.
func (m *servers) listeningInfo() Listening {
	var l Listening
	if m.depot != nil {
		l.HTTPPort, l.HTTPSPort = m.depot.HTTPPort(), m.depot.HTTPSPort()
	}
	if m.ftp != nil {
		l.FTPPort, l.FTPUser, l.FTPCredentials = m.ftp.Addr().Port, m.ftpUser, m.credFile
		l.FTPPassive = m.passive
	}
	if m.fw != nil {
		l.Firewall = m.fw.Rules()
	}
	return l
}

// close stops the servers (letting transfers in flight finish for a
// bounded time), closes the firewall ports and removes the credentials
// file. It runs at the end of every run, cancelled or not.
func (m *servers) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if m.ftp != nil {
		cctx, cancel := context.WithTimeout(ctx, closeTimeout)
		_ = m.ftp.Close(cctx)
		cancel()
	}
	if m.credFile != "" {
		if err := runstate.RemoveFTPCredentials(m.credFile); err != nil {
			m.notice("remove the ftp credentials: " + err.Error() + "; `fleetup cleanup --local` removes them once this run is over")
		}
	}
	if m.depot != nil {
		cctx, cancel := context.WithTimeout(ctx, closeTimeout)
		_ = m.depot.Close(cctx)
		cancel()
	}
	if m.fw != nil {
		cctx, cancel := context.WithTimeout(ctx, 2*closeTimeout)
		removed, err := m.fw.Close(cctx)
		cancel()
		if err != nil {
			m.notice("--open-firewall: closing the ports failed (" + err.Error() + "); `fleetup cleanup --local` removes the rest")
		} else if len(removed) > 0 {
			m.notice(fmt.Sprintf("--open-firewall: closed tcp ports %s again (%d rule(s) removed)", JoinPorts(m.fw.Ports()), len(removed)))
		}
	}
}

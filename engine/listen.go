package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/fleetup/fleetup/wire"
)

// ManagerCN is the common name of the manager's certificate (pki.ManagerName).
const ManagerCN = "fleetup-manager"

// Version is the engine's version, set at link time.
var Version = "dev"

// listen binds the engine's port: the configured one, or, when the default
// is taken and the user did not choose it, the next free one.
func listen(cfg wire.Config) (net.Listener, int, string, error) {
	port := cfg.Port
	if port == 0 {
		port = wire.DefaultPort
	}
	tries := 1
	if !cfg.PortExplicit {
		tries = 100
	}
	var firstErr error
	for i := 0; i < tries && port+i <= 65535; i++ {
		p := port + i
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Listen, strconv.Itoa(p)))
		if err == nil {
			moved := ""
			if i > 0 {
				moved = fmt.Sprintf("port %d is in use on the node; the engine listens on %d", port, p)
			}
			return ln, p, moved, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if cfg.PortExplicit {
		return nil, 0, "", fmt.Errorf("engine port %d (chosen with --engine-port) is not free on the node: %w", port, firstErr)
	}
	return nil, 0, "", fmt.Errorf("no free engine port in %d-%d: %w", port, port+tries-1, firstErr)
}

// engineTLS is the engine's TLS: as a server, for the run's manager only
// (a client certificate of the run's CA named ManagerCN, not another
// node's engine of the same run); as a client of the manager's web server,
// trusting the run's CA alone and naming the run (wire.DepotServerName).
func engineTLS(cert tls.Certificate, pool *x509.CertPool, runID string) (server, client *tls.Config) {
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName != ManagerCN {
				return errors.New("peer is not the run's manager")
			}
			return nil
		},
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   wire.DepotServerName(runID),
	}
	return server, client
}

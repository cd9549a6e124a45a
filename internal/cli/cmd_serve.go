package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup/agent/bmc"
	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/managerfw"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/store"
	"github.com/fleetup/fleetup/transport/smb"
	sshtr "github.com/fleetup/fleetup/transport/ssh"
	"github.com/fleetup/fleetup/transport/tlspin"
	"github.com/fleetup/fleetup/web"
)

// serveOptions are the flags of `fleetup serve`.
type serveOptions struct {
	StateDir          string
	TLSCert, TLSKey   string
	Identities        stringList
	NoAgent           bool
	KnownHosts        string
	KnownCerts        string
	AcceptNewHostKeys bool
	EngineIdle        time.Duration
	ConnectTimeout    time.Duration
	FwupdPlugins      string
	BMCResetTimeout   time.Duration
	SetupTTL          time.Duration
	StopTimeout       time.Duration
	SMBEncrypt        bool
	SMBMinDialect     smb.Dialect
}

// runServe is `fleetup serve`: the manager as a long-running service, its
// web UI and API on the https port, the nodes' depot on both ports, runs
// recorded in the store. SIGTERM cancels the runs going on, waits for
// their clean-up, and stops.
func runServe(ctx context.Context, env *Env, args []string) error {
	var o serveOptions
	fs := newFlags("serve", env)
	fs.StringVar(&o.StateDir, "state-dir", "", "the store, journal, run history and the UI's certificate (default "+runstate.DefaultDir()+")")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "the web UI's certificate (PEM; with --tls-key); default: one made on first start, kept in the state directory")
	fs.StringVar(&o.TLSKey, "tls-key", "", "the web UI's private key (PEM, mode 0600)")
	fs.Var(&o.Identities, "identity", "SSH private key file for nodes without a stored password (repeatable)")
	fs.BoolVar(&o.NoAgent, "no-agent", false, "do not use the SSH agent at SSH_AUTH_SOCK")
	fs.StringVar(&o.KnownHosts, "known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts)")
	fs.StringVar(&o.KnownCerts, "known-certs", "", "file of pinned BMC certificates (default fleetup_known_certs beside the known hosts file)")
	fs.BoolVar(&o.AcceptNewHostKeys, "accept-new-host-keys", false, "accept and record the SSH host key (or BMC certificate) of a node not yet known (a changed one is always refused)")
	fs.DurationVar(&o.EngineIdle, "engine-idle-timeout", 60*time.Second, "the engine removes itself after this long without the manager")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", 15*time.Second, "bound on reaching a node over SSH")
	fs.StringVar(&o.FwupdPlugins, "fwupd-plugins", "", "comma-separated fwupd plugins to load on nodes (e.g. test)")
	fs.DurationVar(&o.BMCResetTimeout, "bmc-reset-timeout", bmc.DefaultResetTimeout, "how long a BMC may take to come back after a flash")
	fs.DurationVar(&o.SetupTTL, "setup-ttl", time.Hour, "how long the one-time set-up link of the first administrator is valid")
	fs.DurationVar(&o.StopTimeout, "stop-timeout", 30*time.Minute, "on SIGTERM, how long to wait for cancelled runs to finish their component and clean up")
	registerSMBFlags(fs, &o.SMBEncrypt, &o.SMBMinDialect)
	pf := registerPortFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	ports, err := pf.load(env, fs)
	if err != nil {
		return err
	}
	stateDir := o.StateDir
	if stateDir == "" {
		stateDir = runstate.DefaultDir()
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return usagef("--state-dir: %w", err)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	db, err := store.Open(store.Path(stateDir), store.KeyPath(stateDir))
	if err != nil {
		return usagef("--state-dir: %w", err)
	}
	defer db.Close()
	cert, err := serveCertificate(stateDir, o.TLSCert, o.TLSKey)
	if err != nil {
		return usagef("%w", err)
	}

	sgs, err := loadIdentities(o.Identities)
	if err != nil {
		return err
	}
	knownHosts := o.KnownHosts
	if knownHosts == "" {
		knownHosts = (&nodeOptions{}).knownHosts()
	}
	knownCerts := o.KnownCerts
	if knownCerts == "" {
		knownCerts = tlspin.DefaultPath(knownHosts)
	}
	var plugins []string
	if o.FwupdPlugins != "" {
		plugins = strings.Split(o.FwupdPlugins, ",")
	}
	svc, err := manager.NewService(manager.ServiceOptions{
		Store: db, Ports: ports, StateDir: stateDir, Log: log, FwupdPlugins: plugins,
		Reach: manager.Reach{
			Signers: sgs, UseAgent: !o.NoAgent, KnownHosts: knownHosts, KnownCerts: knownCerts,
			AcceptNew: o.AcceptNewHostKeys, ConnectTimeout: o.ConnectTimeout, EngineIdle: o.EngineIdle,
			EnginePort: ports.EnginePort.Value, EnginePortExplicit: ports.EnginePort.Explicit(),
			BMCResetTimeout:      o.BMCResetTimeout,
			SMBRequireEncryption: o.SMBEncrypt, SMBMinDialect: o.SMBMinDialect,
		},
	})
	if err != nil {
		return err
	}

	setup := ""
	if n, err := db.AccountCount(ctx); err != nil {
		return err
	} else if n == 0 {
		if setup, err = db.NewSetupToken(ctx, o.SetupTTL); err != nil {
			return err
		}
	}
	ui, err := web.New(web.Options{Store: db, Runner: svc, Logger: log, SetupToken: setup})
	if err != nil {
		return err
	}
	host, err := depot.NewHost(depot.HostOptions{
		HTTPPort: ports.HTTPPort.Value, HTTPSPort: ports.HTTPSPort.Value,
		HTTPPortExplicit: ports.HTTPPort.Explicit(), HTTPSPortExplicit: ports.HTTPSPort.Explicit(),
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Handler: ui.Handler(),
		Logger:  log,
	})
	if err != nil {
		return usagef("%w", err)
	}
	svc.SetHost(host)
	if err := host.Start(ctx); err != nil {
		var pe *depot.PortInUseError
		if errors.As(err, &pe) {
			return usagef("%w", err)
		}
		return err
	}
	for _, n := range host.Notices() {
		fmt.Fprintf(env.Stdout, "fleetup: %s\n", n)
	}
	// From here on the service may have work in the background (the
	// clean-up of interrupted runs): every return waits for it.
	stopped := false
	stopService := func() error {
		if stopped {
			return nil
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.Background(), o.StopTimeout)
		defer cancel()
		serr := svc.Shutdown(sctx)
		ui.Close() // the event streams, which would hold the servers' shutdown
		return errors.Join(serr, host.Close(sctx))
	}
	defer stopService()
	// Runs a killed manager left: shown as interrupted, their nodes
	// cleaned up.
	interrupted, err := svc.Recover(ctx)
	for _, r := range interrupted {
		fmt.Fprintf(env.Stdout, "fleetup: run %s was interrupted (its manager is gone)\n", r)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "fleetup: recovering interrupted runs: %v\n", err)
	}
	// --open-firewall: the UI's and the nodes' ports stay open while the
	// service runs (HP SUM's "remote-node functions and remote browser
	// access"); each run still opens what it adds (FTP).
	if ports.OpenFirewall.Value {
		if os.Geteuid() != 0 {
			host.Close(context.Background())
			return usagef("--open-firewall changes this machine's firewall and needs root")
		}
		l := &managerfw.Local{JournalDir: stateDir}
		opened, err := l.Open(ctx, "serve-"+manager.NewRunID(), []int{host.HTTPPort(), host.HTTPSPort()})
		if err != nil {
			host.Close(context.Background())
			return fmt.Errorf("--open-firewall: %w", err)
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := opened.Close(cctx); err != nil {
				fmt.Fprintf(env.Stderr, "fleetup: --open-firewall: %v (fleetup cleanup --local removes the rules)\n", err)
			}
		}()
		if len(opened.Rules()) == 0 {
			fmt.Fprintln(env.Stdout, "fleetup: --open-firewall: this machine's firewall filters no input; nothing to open")
		} else {
			fmt.Fprintf(env.Stdout, "fleetup: --open-firewall: opened tcp ports %d, %d (%d rule(s) tagged %s) until the service stops\n", host.HTTPPort(), host.HTTPSPort(), len(opened.Rules()), opened.Tag())
		}
	}
	sum := sha256.Sum256(cert.Certificate[0])
	base := "https://" + net.JoinHostPort(serveHostName(), strconv.Itoa(host.HTTPSPort()))
	fmt.Fprintf(env.Stdout, "fleetup: serving the web UI at %s (http port %d for nodes)\n", base, host.HTTPPort())
	fmt.Fprintf(env.Stdout, "fleetup: certificate SHA-256 %s\n", fingerprint(sum[:]))
	if setup != "" {
		fmt.Fprintf(env.Stdout, "fleetup: no account yet: create the first administrator within %v at\n  %s/setup?token=%s\n", o.SetupTTL, base, setup)
	}

	<-ctx.Done()
	fmt.Fprintln(env.Stdout, "fleetup: stopping: cancelling the runs going on (their nodes finish the component they install, then clean up)")
	return stopService()
}

// loadIdentities loads --identity keys.
func loadIdentities(files []string) ([]gossh.Signer, error) {
	var out []gossh.Signer
	for _, f := range files {
		s, err := sshtr.LoadIdentity(f, nil)
		if err != nil {
			return nil, usagef("--identity %s: %w", f, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func fingerprint(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func serveHostName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// The UI's own certificate, made on first start, in the state directory.
const (
	serveCertFile = "serve-cert.pem"
	serveKeyFile  = "serve-key.pem"
)

// serveCertificate loads --tls-cert/--tls-key, or the certificate made on
// an earlier start, or makes one: ECDSA P-256, self-signed, for this
// host's name, localhost and its addresses, valid two years.
func serveCertificate(stateDir, certFile, keyFile string) (tls.Certificate, error) {
	if certFile != "" {
		if err := checkPrivate(keyFile); err != nil {
			return tls.Certificate{}, fmt.Errorf("--tls-key: %w", err)
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		return c, nil
	}
	certFile, keyFile = filepath.Join(stateDir, serveCertFile), filepath.Join(stateDir, serveKeyFile)
	if _, err := os.Stat(certFile); err == nil {
		if err := checkPrivate(keyFile); err != nil {
			return tls.Certificate{}, err
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("the UI's certificate %s: %w", certFile, err)
		}
		return c, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	name := serveHostName()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"fleetup"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{name, "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ip, ok := a.(*net.IPNet); ok && !ip.IP.IsLoopback() && !ip.IP.IsLinkLocalUnicast() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip.IP)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeNew(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeNew(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		os.Remove(keyFile)
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certFile, keyFile)
}

// checkPrivate refuses a key file others may read.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: mode %04o: others may read the private key (chmod 600 it)", path, fi.Mode().Perm())
	}
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

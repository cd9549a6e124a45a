// Package bmcsim is a hand-written Redfish BMC simulator for fleetup's
// integration tests. It exists because no packaged Redfish emulator can
// update firmware: Debian has none (sushy-tools and DMTF's mock-up server are
// not packaged), and the mock-ups serve recorded resources only.
//
// A BMC serves HTTPS on the listeners it is given and behaves like one of
// three vendors' Redfish services, as their documentation describes them
// (Flavor): HPE iLO 5, Dell iDRAC9 and OpenBMC's bmcweb. It keeps one
// account, hands out sessions, shows a service root, a manager, a computer
// system, a chassis and an update service with a firmware inventory, and
// flashes images pulled from an ImageURI (SimpleUpdate) or pushed to it
// (HttpPushUri, MultipartHttpPushUri), each flavor the way its vendor does.
// After its own firmware was flashed it resets: for a while it refuses
// connections, then answers 503, then comes back with the new version and no
// sessions. Python's sushy, redfishtool and HPE's ilorest accept it.
//
// Images are not real firmware: an image is any byte string whose first line
// is a header naming its target and version (see Image). A BMC refuses
// images without the header, for targets it does not have, and truncated
// ones, with its vendor's kind of message.
//
// Tests read what happened through the BMC's methods (Versions, Flashes,
// OpenSessions) and inject faults (SetReachable, NeverReturn, RotateCert).
//
// How each flavor updates (details in pull.go and push.go):
//
//	iLO      SimpleUpdate at /redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate/
//	         (HTTP, HTTPS): 200 with Base.1.4.Success in iLO's message
//	         envelope, no task; progress in UpdateService Oem.Hpe.State
//	         (Idle, Uploading, Verifying, Updating, Complete, Error),
//	         FlashProgressPercent and Result.MessageId (iLO.2.15.*).
//	         HttpPushUri /cgi-bin/uploadFile: the HPE multipart form
//	         (sessionKey, parameters, file). Ids end in "/".
//	iDRAC    SimpleUpdate (HTTP, HTTPS) and MultipartHttpPushUri
//	         /redfish/v1/UpdateService/MultipartUpload (UpdateParameters,
//	         UpdateFile): 202, Location /redfish/v1/TaskService/Tasks/JID_n
//	         (202 while running, 200 when done; gone after a reset), the job
//	         at /redfish/v1/Managers/iDRAC.Embedded.1/Jobs/JID_n and
//	         /redfish/v1/JobService/Jobs/JID_n (kept across resets).
//	         Inventory ids carry versions: Installed-<SoftwareId>-<version>,
//	         the replaced one kept as Previous-….
//	OpenBMC  HttpPushUri /redfish/v1/UpdateService (octet-stream, applied
//	         at once) and MultipartHttpPushUri /redfish/v1/UpdateService/update
//	         (applied OnReset unless @Redfish.OperationApplyTime says
//	         Immediate): checked before the answer (400 OpenBMC.0.2.InvalidUpload
//	         for a bad image), then 202 with the task in the body and
//	         Location /redfish/v1/TaskService/Tasks/n/Monitor (202 while
//	         running, 204 once, then 404). No SimpleUpdate.
package bmcsim

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Flavor is the vendor a BMC imitates.
type Flavor string

// The flavors.
const (
	ILO     Flavor = "ilo"     // HPE iLO 5-like
	IDRAC   Flavor = "idrac"   // Dell iDRAC9-like
	OpenBMC Flavor = "openbmc" // OpenBMC bmcweb-like
)

// Flavors lists every flavor.
var Flavors = []Flavor{ILO, IDRAC, OpenBMC}

// Options configure a BMC.
type Options struct {
	Flavor   Flavor
	User     string // the one account; required
	Password string // required
	// Firmware is the initial FirmwareInventory, in order. Nil: the
	// flavor's default (DefaultFirmware), which holds the BMC's own
	// firmware and a BIOS entry. Exactly one entry must be the Manager's.
	Firmware []Firmware
	// ResetTime is how long the BMC is unavailable after a flash that
	// resets it (default 3s): for the first two thirds it refuses
	// connections, for the last third it answers 503. The reset starts a
	// quarter of ResetTime (at most 500ms) after the flash completed, so
	// that pollers can see it complete.
	ResetTime time.Duration
	// FlashTime is how long the flash itself takes after the image arrived
	// (default 1s).
	FlashTime time.Duration
	// SessionTimeout is how long a session may go unused before the BMC
	// ends it (default 30 minutes, as iLO, iDRAC and bmcweb ship); its
	// token then gets 401.
	SessionTimeout time.Duration
	// ConnectTimeout bounds the BMC's connection attempt when it pulls an
	// ImageURI (default 10s), as a real BMC gives up on an unanswered SYN.
	ConnectTimeout time.Duration
	// Dial makes the BMC's outgoing connections (fetching ImageURI); nil:
	// a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Cert is the BMC's TLS certificate; nil: a fresh self-signed one
	// (ECDSA P-256) for the listeners' addresses.
	Cert *tls.Certificate
	// Logf, if set, receives a line per request and per state change.
	// Passwords and tokens never reach it.
	Logf func(format string, args ...any)
}

// Firmware is one member of the FirmwareInventory.
type Firmware struct {
	ID, Name, Version, SoftwareID string
	Updateable                    bool
	// Manager marks the entry that is the BMC's own firmware
	// (Manager.FirmwareVersion follows it, and flashing it resets the BMC).
	Manager bool
	// BIOS marks the entry that ComputerSystem.BiosVersion follows.
	BIOS bool
}

// Flash is one flash the BMC did or refused.
type Flash struct {
	// Via is how the image came: "SimpleUpdate" (pulled from ImageURI),
	// "MultipartHttpPushUri" or "HttpPushUri".
	Via      string
	ImageURI string // for SimpleUpdate
	Protocol string // TransferProtocol for SimpleUpdate ("" when not given)
	Bytes    int64  // image bytes received
	// Target is the FirmwareInventory id that changed ("" for a failed
	// flash). On an iDRAC the id carries the version, so this is the id
	// after the flash ("Installed-25227-7.10.00.00").
	Target  string
	Version string // the version the image carried ("" if unreadable)
	// Err is the BMC's message when it refused or failed the flash.
	Err            string
	Started, Ended time.Time
}

// BMC is a running simulator. Close stops it.
type BMC struct {
	opts    Options
	prof    *profile
	handler http.Handler
	srv     *http.Server
	lns     []*gatedListener
	connCh  chan net.Conn
	cert    atomic.Pointer[tls.Certificate]
	certIPs []net.IP

	ctx    context.Context // canceled by Close: ends in-flight work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines: accept loops, flashes, resets
	reqs   sync.WaitGroup // requests being served; Add only with mu held and !closed

	mu sync.Mutex // guards everything below
	st state
	// gate: see gate.go.
	reachable   bool
	phase       phase
	listening   bool
	gateCh      chan struct{} // closed and replaced on every gate change
	conns       map[net.Conn]struct{}
	neverReturn bool
	// resetPending: a reset is about to start or runs.
	resetPending bool
	closed       bool

	closeOnce sync.Once
	closeErr  error
}

// Start starts a BMC serving HTTPS on ln until Close. It is StartMulti with
// one listener.
func Start(opts Options, ln net.Listener) (*BMC, error) {
	return StartMulti(opts, ln)
}

// StartMulti starts a BMC serving HTTPS on every listener (say one per
// address family) until Close, which closes them. URL names the first. On
// error the listeners are closed too.
func StartMulti(opts Options, lns ...net.Listener) (*BMC, error) {
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	if len(lns) == 0 {
		return nil, errors.New("bmcsim: start: no listener")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		closeAll()
		return nil, err
	}
	b := &BMC{
		opts:      opts,
		prof:      profiles[opts.Flavor],
		connCh:    make(chan net.Conn),
		reachable: true,
		listening: true,
		gateCh:    make(chan struct{}),
		conns:     map[net.Conn]struct{}{},
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.st.init(b.prof, opts.Firmware)
	for _, ln := range lns {
		b.certIPs = append(b.certIPs, listenerIPs(ln)...)
	}
	if opts.Cert != nil {
		if err := b.setCert(opts.Cert); err != nil {
			closeAll()
			return nil, err
		}
	} else if err := b.RotateCert(); err != nil {
		closeAll()
		return nil, err
	}
	b.handler = b.routes()
	b.srv = &http.Server{
		Handler:           b,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(logWriter{b}, "", 0),
		// No HTTP/2: BMCs speak HTTP/1.1 to the clients that matter.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return b.cert.Load(), nil
		},
	}
	for _, ln := range lns {
		b.lns = append(b.lns, newGatedListener(ln))
	}
	for _, gl := range b.lns {
		b.wg.Add(1)
		go b.acceptLoop(gl)
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		_ = b.srv.Serve(tls.NewListener(&chanListener{b: b, addr: lns[0].Addr()}, tlsConf))
	}()
	b.logf("bmcsim: %s BMC serving on %s", opts.Flavor, b.URL())
	return b, nil
}

func (o Options) withDefaults() (Options, error) {
	if profiles[o.Flavor] == nil {
		return o, fmt.Errorf("bmcsim: unknown flavor %q (want ilo, idrac or openbmc)", o.Flavor)
	}
	if o.User == "" || o.Password == "" {
		return o, errors.New("bmcsim: User and Password are required")
	}
	if o.ResetTime <= 0 {
		o.ResetTime = 3 * time.Second
	}
	if o.FlashTime <= 0 {
		o.FlashTime = time.Second
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 30 * time.Minute
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
	if o.Firmware == nil {
		o.Firmware = DefaultFirmware(o.Flavor)
	}
	o.Firmware = append([]Firmware(nil), o.Firmware...)
	ids := map[string]bool{}
	managers, bioses := 0, 0
	for _, f := range o.Firmware {
		if f.ID == "" || f.Version == "" {
			return o, fmt.Errorf("bmcsim: firmware %+v: ID and Version are required", f)
		}
		if ids[f.ID] {
			return o, fmt.Errorf("bmcsim: firmware id %q twice", f.ID)
		}
		ids[f.ID] = true
		if f.Manager {
			managers++
		}
		if f.BIOS {
			bioses++
		}
	}
	if managers != 1 {
		return o, fmt.Errorf("bmcsim: want exactly one Manager firmware entry, have %d", managers)
	}
	if bioses > 1 {
		return o, fmt.Errorf("bmcsim: want at most one BIOS firmware entry, have %d", bioses)
	}
	return o, nil
}

// DefaultFirmware is the FirmwareInventory a BMC of flavor f starts with
// when Options.Firmware is nil.
func DefaultFirmware(f Flavor) []Firmware {
	switch f {
	case ILO:
		return []Firmware{
			{ID: "1", Name: "iLO 5", Version: "2.72", Updateable: true, Manager: true},
			{ID: "2", Name: "System ROM", Version: "U32 v2.68 (07/14/2022)", Updateable: true, BIOS: true},
		}
	case IDRAC:
		return []Firmware{
			{ID: "Installed-25227-7.00.00.00", Name: "Integrated Dell Remote Access Controller",
				Version: "7.00.00.00", SoftwareID: "25227", Updateable: true, Manager: true},
			{ID: "Installed-159-1.6.13", Name: "BIOS", Version: "1.6.13", SoftwareID: "159", Updateable: true, BIOS: true},
		}
	case OpenBMC:
		return []Firmware{
			{ID: "bmc_active", Name: "bmc", Version: "2.14.0-dev", Updateable: true, Manager: true},
			{ID: "bios_active", Name: "bios", Version: "1.4.0", Updateable: true, BIOS: true},
		}
	}
	return nil
}

// Close stops serving (the listeners are closed), ends in-flight work
// (flashes, downloads, resets) and waits for it. It is idempotent; later
// calls return the first one's result.
func (b *BMC) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.closeConnsLocked()
		close(b.gateCh)
		b.gateCh = make(chan struct{})
		b.mu.Unlock()
		b.cancel()
		var errs []error
		for _, gl := range b.lns {
			if err := gl.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if err := b.srv.Close(); err != nil {
			errs = append(errs, err)
		}
		b.wg.Wait()
		b.reqs.Wait()
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// URL is "https://ADDR:PORT" of the first listener (an IPv6 address in
// brackets).
func (b *BMC) URL() string { return "https://" + b.lns[0].ln.Addr().String() }

// URLs are the URLs of every listener, in the order given to StartMulti.
func (b *BMC) URLs() []string {
	out := make([]string, len(b.lns))
	for i, gl := range b.lns {
		out[i] = "https://" + gl.ln.Addr().String()
	}
	return out
}

// Flavor is the flavor the BMC imitates.
func (b *BMC) Flavor() Flavor { return b.opts.Flavor }

// Fingerprint is "SHA256:" and the unpadded standard base64 of the SHA-256
// of the current leaf certificate's DER, as OpenSSH prints key fingerprints.
func (b *BMC) Fingerprint() string { return Fingerprint(b.cert.Load().Certificate[0]) }

// Certificate is the current leaf certificate.
func (b *BMC) Certificate() *x509.Certificate { return b.cert.Load().Leaf }

// Fingerprint formats the fingerprint of a DER certificate as
// BMC.Fingerprint does.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// RotateCert gives the BMC a new self-signed certificate, presented from the
// next TLS handshake on (a "changed certificate" test).
func (b *BMC) RotateCert() error {
	c, err := selfSigned(b.prof.certName(&b.st), b.certIPs)
	if err != nil {
		return fmt.Errorf("bmcsim: make certificate: %w", err)
	}
	return b.setCert(c)
}

func (b *BMC) setCert(c *tls.Certificate) error {
	if len(c.Certificate) == 0 {
		return errors.New("bmcsim: certificate without a leaf")
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return fmt.Errorf("bmcsim: parse certificate: %w", err)
		}
		cc := *c
		cc.Leaf = leaf
		c = &cc
	}
	b.cert.Store(c)
	return nil
}

// Versions maps each FirmwareInventory id to its version, now.
func (b *BMC) Versions() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]string{}
	for _, f := range b.st.firmware {
		out[f.ID] = f.Version
	}
	return out
}

// Firmware is the FirmwareInventory now, in order.
func (b *BMC) Firmware() []Firmware {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Firmware(nil), b.st.firmware...)
}

// OpenSessions counts the sessions not deleted and not expired (a reset
// ends them all).
func (b *BMC) OpenSessions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireSessionsLocked()
	return len(b.st.sessions)
}

// Flashes lists the flashes that ended (done, refused or failed), in order.
func (b *BMC) Flashes() []Flash {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Flash(nil), b.st.flashes...)
}

// SetReachable(false) makes the whole service refuse connections (like
// during a reset) and drops the open ones, until SetReachable(true). A reset
// that ends meanwhile leaves the BMC unreachable.
func (b *BMC) SetReachable(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reachable = ok
	b.applyGateLocked()
}

// NeverReturn makes the next reset never end: the BMC stays down (refusing
// connections) until Close.
func (b *BMC) NeverReturn() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.neverReturn = true
}

// Resetting reports whether the BMC is in a reset (refusing connections or
// answering 503).
func (b *BMC) Resetting() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.phase != phaseUp
}

func (b *BMC) logf(format string, args ...any) {
	if b.opts.Logf != nil {
		b.opts.Logf(format, args...)
	}
}

// logWriter sends the http.Server's own complaints (TLS handshake errors
// and the like) to Logf.
type logWriter struct{ b *BMC }

func (w logWriter) Write(p []byte) (int, error) {
	w.b.logf("bmcsim: http: %s", trimNL(string(p)))
	return len(p), nil
}

var _ io.Writer = logWriter{}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// Package ftpd is the manager's FTP server for switches (HP SUM's
// /ftp_port, SPEC S5: port 21 or 63006-63010, from the node). It is off by
// default; deploy starts one only when --ftp-port is given, and it serves
// the run's component payloads, read-only, to the switches of that run.
//
// Contract:
//
//   - One user, minted for the run (NewCredentials), is the only login;
//     anonymous logins do not exist. A wrong password is answered 530 after
//     Options.LoginDelay and counted (Stats.FailedLogins); after
//     MaxLoginFailures in one session the session is closed.
//   - The file system is virtual and flat: the root "/" lists exactly the
//     files registered with Add (name as served -> path on disk). There are
//     no directories, so CWD accepts only "/", and any name that is not
//     registered (including "..", "../../etc/passwd", "/x/y") is 550.
//     Nothing outside the registered files is ever opened.
//   - Files are opened per transfer and streamed from disk, never read into
//     memory whole. A file whose size on disk differs from the size it had
//     when registered is refused (550), since it changed after the baseline
//     was checked.
//   - Read-only: STOR, STOU, APPE, DELE, MKD, RMD, RNFR, RNTO (and their X
//     variants) are 550; SITE and everything unknown are 502.
//   - Passive mode only (PASV for IPv4, EPSV for both families, RFC 2428):
//     PORT and EPRT are 502, so the server never connects out to an address
//     a client names (no FTP bounce). A passive data connection is accepted
//     only from the IP address of the control connection's peer; any other
//     peer is dropped. Data ports come from Options.PassivePorts, or from
//     the kernel when the range is unset.
//   - At most Options.MaxSessions control connections at once; one more is
//     answered 421 and closed. A session idle for Options.IdleTimeout is
//     closed with 421.
//   - TYPE A is accepted but files are always sent as stored (as vsftpd
//     does by default): firmware images are binary.
//
// Why not a library: github.com/fclairamb/ftpserverlib (v0.29.0 is on the
// module proxy) was considered. It would bring spf13/afero and x/text into
// go.mod and move golang.org/x/sys past the version the tree pins; it has no
// bound on concurrent sessions (a refusal from its ClientConnected hook is
// answered 500, not 421); and it speaks much more than a switch needs (SITE,
// HASH, COMB, MFMT, ALLO, active mode, TLS), all of which would have to be
// switched off and checked to stay off. The subset switches use (RFC 959
// and RFC 2428 passive, REST STREAM, SIZE, MDTM, MLSD/MLST of RFC 3659) is
// small enough to own and test completely here.
//
// Logs never contain the password.
//
// Wiring into deploy (for the integrator), when config.FTPEnabled():
//
//	user, pass := ftpd.NewCredentials()
//	fs, err := ftpd.New(ftpd.Options{Port: cfg.FTPPort.Value, User: user, Password: pass, Logger: log})
//	for _, c := range comps { err = fs.Add(c.File, c.Path) } // c.File is the name switches ask for
//	err = fs.Start(ctx)            // a taken port is an error: exit as a usage error, like depot's
//	defer fs.Close(ctx5s)          // with a timeout, as the depot's Close
//
// Only firmware meant for switches needs to be added, but adding every
// component of the run is harmless (read-only, run-scoped credentials).
// Tell the user (and the switch update) ftp://user:pass@manager:port/name;
// never log pass. With --open-firewall the manager must accept, from the
// switches, TCP to the control port and to the passive range (Options
// PassivePorts, 63006-63010 by default for ports 21 and 63006-63010).
// Close ends sessions after their current transfer and cuts them when its
// context ends; call it when the run ends, fails or is cancelled.
package ftpd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The default ports: HP SUM's 63006 for the control connection, and its
// block 63006-63010 for passive data connections (less the control port).
const (
	DefaultPort             = 63006
	DefaultPassiveFirst     = 63006
	DefaultPassiveLast      = 63010
	DefaultMaxSessions      = 16
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultLoginDelay       = time.Second
	DefaultDataTimeout      = 30 * time.Second
	MaxLoginFailures        = 3
	maxRegisteredNameLength = 255
)

// Options configures a Server.
type Options struct {
	// Port is the control port; 0 lets the kernel pick one (see Addr).
	// Deploy passes the --ftp-port value (21, or 63006 as HP SUM).
	Port int
	// PassivePorts is the inclusive range passive data connections listen
	// on; the control port is skipped when inside it. Zero means 63006-63010
	// when Port is 21 or within 63006-63010 (the ports HP SUM allows, so
	// 63006 gives data ports 63007-63010), else a port the kernel picks per
	// transfer.
	PassivePorts [2]int
	// User and Password are the only login; both are required. Mint them
	// per run with NewCredentials.
	User, Password string
	// Files maps the name as served to the path on disk; New calls Add for
	// each. More can be added with Add later.
	Files map[string]string
	// MaxSessions bounds concurrent control connections (default 16).
	MaxSessions int
	// IdleTimeout closes a session that sends no command for this long
	// (default 5 minutes).
	IdleTimeout time.Duration
	// LoginDelay is how long a wrong password waits before its 530
	// (default 1 s; negative means none, for tests).
	LoginDelay time.Duration
	// DataTimeout bounds the wait for a client to open a passive data
	// connection (default 30 s).
	DataTimeout time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Stats is what the server did so far.
type Stats struct {
	Sessions       int   // control connections accepted (not counting those refused for the limit)
	Refused        int   // control connections refused by MaxSessions
	FailedLogins   int   // wrong user or password
	Transfers      int   // RETRs completed
	BytesServed    int64 // file bytes sent by RETR
	ForeignDataIPs int   // data connections dropped for coming from another IP
}

// Server is a read-only FTP server. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	files    map[string]file
	stats    Stats
	state    int // 0 new, 1 started, 2 closed
	ln       net.Listener
	sessions map[*session]struct{}
	wg       sync.WaitGroup
	nextPasv int
}

type file struct {
	path string
	size int64
}

// New checks opts and registers opts.Files; the server listens only once
// started.
func New(opts Options) (*Server, error) {
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("ftpd: port %d out of range 0-65535", opts.Port)
	}
	if opts.PassivePorts == [2]int{} && (opts.Port == 21 || opts.Port >= DefaultPassiveFirst && opts.Port <= DefaultPassiveLast) {
		opts.PassivePorts = [2]int{DefaultPassiveFirst, DefaultPassiveLast}
	}
	if p := opts.PassivePorts; p != [2]int{} {
		if p[0] < 1 || p[1] > 65535 || p[0] > p[1] {
			return nil, fmt.Errorf("ftpd: passive port range %d-%d is not within 1-65535 with first <= last", p[0], p[1])
		}
		if p[0] == p[1] && p[0] == opts.Port {
			return nil, fmt.Errorf("ftpd: passive port range %d-%d has no port besides the control port", p[0], p[1])
		}
	}
	if opts.User == "" || opts.Password == "" {
		return nil, errors.New("ftpd: user and password are required (see NewCredentials)")
	}
	if strings.ContainsAny(opts.User, " \r\n\x00") {
		return nil, fmt.Errorf("ftpd: user %q has a space or control character", opts.User)
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.LoginDelay == 0 {
		opts.LoginDelay = DefaultLoginDelay
	}
	if opts.DataTimeout <= 0 {
		opts.DataTimeout = DefaultDataTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: opts, log: log, files: map[string]file{}, sessions: map[*session]struct{}{}}
	for name, path := range opts.Files {
		if err := s.Add(name, path); err != nil {
			return nil, err
		}
	}
	s.opts.Files = nil
	return s, nil
}

// NewCredentials mints a user name and password for one run: the user is
// "fleetup-" and 8 hex digits, the password 32 hex digits (128 bits), both
// from crypto/rand.
func NewCredentials() (user, pass string) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("ftpd: crypto/rand: " + err.Error()) // never fails on Linux
	}
	return "fleetup-" + hex.EncodeToString(b[:4]), hex.EncodeToString(b[4:])
}

// Add registers the file at path to be served as name in the root. name
// must be a plain file name (no "/", not "." or "..", no control
// characters); path must be a regular file, and its size now is the size it
// must still have when served. Adding a name again replaces it.
func (s *Server) Add(name, path string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("ftpd: add %q: %w", name, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("ftpd: add %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("ftpd: add %s: %s is not a regular file", name, path)
	}
	s.mu.Lock()
	s.files[name] = file{path: path, size: fi.Size()}
	s.mu.Unlock()
	return nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return errors.New("name is a directory reference")
	case len(name) > maxRegisteredNameLength:
		return fmt.Errorf("name longer than %d bytes", maxRegisteredNameLength)
	case strings.ContainsAny(name, "/\\"):
		return errors.New("name has a path separator")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("name has a control character")
		}
	}
	return nil
}

// lookup returns the registered file called name: the name as sent, or
// with one leading "/" (an absolute path in the root).
func (s *Server) lookup(name string) (file, bool) {
	name = strings.TrimPrefix(name, "/")
	if checkName(name) != nil {
		return file{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[name]
	return f, ok
}

// names returns the registered names, sorted.
func (s *Server) list() []entry {
	s.mu.Lock()
	out := make([]entry, 0, len(s.files))
	for n, f := range s.files {
		out = append(out, entry{name: n, file: f})
	}
	s.mu.Unlock()
	sortEntries(out)
	return out
}

// Stats returns what the server did so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Start listens on Options.Port on every address, IPv4 and IPv6 on one
// socket, and serves until Close. ctx bounds the start only. A taken port is
// an error naming it; it never moves (the switches are told the port).
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != 0 {
		return errors.New("ftpd: already started")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(s.opts.Port))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("ftpd: ftp port %d is in use: %w", s.opts.Port, err)
		}
		return fmt.Errorf("ftpd: listen on ftp port %d: %w", s.opts.Port, err)
	}
	s.state = 1
	s.ln = ln
	s.wg.Add(1)
	go s.accept(ln)
	s.log.Info("ftp listening", "port", ln.Addr().(*net.TCPAddr).Port,
		"passive", fmt.Sprintf("%d-%d", s.opts.PassivePorts[0], s.opts.PassivePorts[1]))
	return nil
}

// Addr returns the address the control port listens on (nil before Start).
func (s *Server) Addr() *net.TCPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr().(*net.TCPAddr)
}

// Close stops accepting, asks every session to end after the transfer it is
// in (if any), and waits for them until ctx ends; then it cuts what is left
// and returns ctx's error. Close before Start, or twice, does nothing.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.state != 1 {
		s.state = 2
		s.mu.Unlock()
		return nil
	}
	s.state = 2
	s.ln.Close()
	for ss := range s.sessions {
		ss.stop()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for ss := range s.sessions {
		ss.kill()
	}
	s.mu.Unlock()
	<-done
	return fmt.Errorf("ftpd: close: %w", ctx.Err())
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			s.log.Error("ftp accept", "err", err)
			return
		}
		s.mu.Lock()
		if s.state != 1 || len(s.sessions) >= s.opts.MaxSessions {
			s.stats.Refused++
			s.mu.Unlock()
			s.log.Warn("ftp session refused: too many sessions", "remote", c.RemoteAddr().String())
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "421 Too many sessions, try again later.\r\n")
			c.Close()
			continue
		}
		ss := newSession(s, c)
		s.sessions[ss] = struct{}{}
		s.stats.Sessions++
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			ss.serve()
			s.mu.Lock()
			delete(s.sessions, ss)
			s.mu.Unlock()
		}()
	}
}

// passivePort returns the next port of the passive range to try, round
// robin, and how many ports the range has (0, 0 without a range).
func (s *Server) passivePort() (first, n int) {
	r := s.opts.PassivePorts
	if r == [2]int{} {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n = r[1] - r[0] + 1
	first = r[0] + s.nextPasv%n
	s.nextPasv++
	return first, n
}

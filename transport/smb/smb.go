// Package smb is fleetup's SMB client for Windows nodes: one
// authenticated session per node (NTLMv2, its own credential, nothing
// global), SMB 2.1 or newer only, every message signed, encrypted on SMB
// 3.x, on the node's ADMIN$ share; the share operations the Windows
// launcher needs (MkdirAll, WriteFile, ReadFile, Stat, RemoveAll,
// ReadDir) and an MS-SCMR client over \PIPE\svcctl (scmr.go).
//
// It is built on github.com/oiweiwei/go-msrpc and its SMB2 fork. Some of
// their calls do not honour a context and a log-off can hang: every call
// here runs under a deadline (Options.Timeout), and a call that overruns
// it closes the session's connection, so that nothing waits for ever.
package smb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	smb2 "github.com/oiweiwei/go-smb2.fork"
)

// Dialect is an SMB2 dialect revision.
type Dialect uint16

// The dialects of SMB2 and 3.
const (
	SMB202 Dialect = 0x0202
	SMB210 Dialect = 0x0210
	SMB300 Dialect = 0x0300
	SMB302 Dialect = 0x0302
	SMB311 Dialect = 0x0311
)

func (d Dialect) String() string {
	switch d {
	case SMB202:
		return "SMB 2.0.2"
	case SMB210:
		return "SMB 2.1"
	case SMB300:
		return "SMB 3.0"
	case SMB302:
		return "SMB 3.0.2"
	case SMB311:
		return "SMB 3.1.1"
	}
	return fmt.Sprintf("SMB dialect 0x%04x", uint16(d))
}

// DefaultPort is SMB's TCP port.
const DefaultPort = 445

// DefaultShare is the share the Windows launcher works on.
const DefaultShare = "ADMIN$"

// Options configure a session.
type Options struct {
	// User and Domain log on (Domain empty: the server's local account).
	User   string
	Domain string
	// Password returns the user's password when the session is set up;
	// the bytes are zeroed after use.
	Password func() ([]byte, error)
	// RequireEncryption refuses a server that does not encrypt the
	// session (any SMB 2.x server).
	RequireEncryption bool
	// Timeout bounds the connection, the session set-up and every call
	// (30s when 0).
	Timeout time.Duration
	// Share is the share to work on (DefaultShare when empty).
	Share string
	// MinDialect is the oldest dialect accepted (SMB 2.1 when 0). Lower it
	// only for a test server that speaks nothing newer.
	MinDialect Dialect
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 30 * time.Second
}

// Session is an authenticated SMB session with the share mounted. Its
// methods may be called from several goroutines; paths are relative to
// the share, with \ or / between their parts.
type Session struct {
	opts      Options
	host      string // as the caller named it
	addr      string // the address literal and port dialled
	conn      net.Conn
	sess      *smb2.Session
	share     *smb2.Share
	dialer    *smb2.Dialer
	dialect   Dialect
	encrypted bool

	// mu guards the connection's fields above (replaced by a
	// reconnection) and the state below; redial serialises
	// reconnections.
	mu     sync.Mutex
	closed bool // by Close
	broken bool // the connection broke; the next call reconnects
	redial sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

// Dial connects to addr (host or host:port; port 445 when absent),
// resolving a host name itself (both families, in the resolver's order),
// negotiates SMB 2.1 or newer with signing required and encryption on
// 3.x, logs on with NTLMv2 and mounts the share. A log-on the server
// refuses is an *AuthError, a missing share ErrNoShare.
func Dial(ctx context.Context, addr string, opts Options) (*Session, error) {
	if opts.User == "" {
		return nil, errors.New("smb: no user name")
	}
	if opts.Share == "" {
		opts.Share = DefaultShare
	}
	if opts.MinDialect == 0 {
		opts.MinDialect = SMB210
	}
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout())
	defer cancel()
	ips, err := resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	var dialErrs []error
	for _, ip := range ips {
		a := net.JoinHostPort(ip, strconv.Itoa(port))
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			conn = c
			break
		}
		dialErrs = append(dialErrs, err)
	}
	if conn == nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, &classified{ErrServerGone, errors.Join(dialErrs...)})
	}
	s := &Session{opts: opts, host: host, addr: conn.RemoteAddr().String(), conn: conn}
	if err := s.setup(ctx); err != nil {
		_ = conn.Close()
		_ = s.conn.Close() // setup's second connection, for SMB 2.x
		return nil, fmt.Errorf("smb session with %s: %w", addr, err)
	}
	return s, nil
}

// reconnect replaces a session whose connection broke (a server that
// dropped an idle session, as Windows does after 15 minutes) by a fresh
// one to the same address, with the same credentials and dialect floor.
// Concurrent callers wait for one reconnection.
func (s *Session) reconnect(ctx context.Context) error {
	s.redial.Lock()
	defer s.redial.Unlock()
	s.mu.Lock()
	broken, closed := s.broken, s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !broken {
		return nil // another caller reconnected
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout())
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("reconnect to %s: %w", s.addr, &classified{ErrServerGone, err})
	}
	fresh := &Session{opts: s.opts, host: s.host, addr: s.addr, conn: conn}
	if err := fresh.setup(ctx); err != nil {
		_ = conn.Close()
		_ = fresh.conn.Close()
		return fmt.Errorf("reconnect to %s: %w", s.addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		go fresh.logoff()
		return ErrClosed
	}
	if fresh.dialect < s.dialect || s.encrypted && !fresh.encrypted {
		// Never a weaker session than the first one.
		go fresh.logoff()
		return fmt.Errorf("reconnect to %s: %w: the server now negotiates %s (encrypted %v), the session had %s (encrypted %v)", s.addr, ErrDialect, fresh.dialect, fresh.encrypted, s.dialect, s.encrypted)
	}
	s.conn, s.sess, s.share, s.dialer = fresh.conn, fresh.sess, fresh.share, fresh.dialer
	s.dialect, s.encrypted = fresh.dialect, fresh.encrypted
	s.broken = false
	return nil
}

// setup negotiates, logs on, checks the dialect and mounts the share.
func (s *Session) setup(ctx context.Context) error {
	var pw []byte
	if s.opts.Password != nil {
		var err error
		if pw, err = s.opts.Password(); err != nil {
			return fmt.Errorf("password: %w", err)
		}
	}
	s.dialer = &smb2.Dialer{
		Negotiator: smb2.Negotiator{RequireMessageSigning: true, UseMessageEncryption: true},
		Initiator:  &smb2.NTLMInitiator{User: s.opts.User, Domain: s.opts.Domain, Password: string(pw)},
	}
	sess, err := s.logon(ctx)
	if err != nil {
		clear(pw)
		return err
	}
	s.sess = sess
	s.dialect, s.encrypted = negotiated(sess)
	// The dialect the server chose from our list is its newest: one below
	// the minimum means it speaks nothing we accept.
	if s.dialect < s.opts.MinDialect {
		clear(pw)
		s.drop()
		hint := ""
		if s.dialect == SMB202 {
			hint = " (a test stand-in such as impacket's speaks only SMB 2.0.2: --smb-min-dialect 2.0.2 accepts it; never on production nodes)"
		}
		return fmt.Errorf("%w: the server speaks %s only; fleetup needs %s or newer%s", ErrDialect, s.dialect, s.opts.MinDialect, hint)
	}
	if s.dialect < SMB300 {
		if s.opts.RequireEncryption {
			clear(pw)
			s.drop()
			return fmt.Errorf("%w: the server negotiated %s, which does not encrypt, and encryption is required (--smb-encrypt): enable SMB 3 on the node or run without --smb-encrypt", ErrDialect, s.dialect)
		}
		// The library would try to encrypt on 2.x (and fail on its
		// first message): a session of its own, pinned to the dialect
		// found, signed only.
		s.drop()
		host, port, _ := net.SplitHostPort(s.addr)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if err != nil {
			clear(pw)
			return &classified{ErrServerGone, err}
		}
		s.conn = c
		s.dialer = &smb2.Dialer{
			Negotiator: smb2.Negotiator{RequireMessageSigning: true, SpecifiedDialect: uint16(s.dialect)},
			Initiator:  &smb2.NTLMInitiator{User: s.opts.User, Domain: s.opts.Domain, Password: string(pw)},
		}
		clear(pw)
		if sess, err = s.logon(ctx); err != nil {
			return err
		}
		s.sess = sess
		s.dialect, s.encrypted = negotiated(sess)
		if sessionFlags(sess)&sessionFlagEncryptData != 0 {
			s.drop()
			return fmt.Errorf("%w: the server asks to encrypt a session on %s, a dialect without encryption (a Samba server with \"smb encrypt\" on and SMB 3 off?)", ErrDialect, s.dialect)
		}
	}
	clear(pw)
	sh, err := bounded(ctx, s.conn, func() (*smb2.Share, error) {
		return sess.WithContext(ctx).Mount(`\\` + s.host + `\` + s.opts.Share)
	})
	if err != nil {
		s.logoff()
		err = classify(err)
		if errors.Is(err, ErrNoShare) {
			return fmt.Errorf("mount %s: %w (enable the administrative shares on the node: AutoShareServer)", s.opts.Share, err)
		}
		return fmt.Errorf("mount %s: %w", s.opts.Share, err)
	}
	s.share = sh
	return nil
}

// logon negotiates and sets up the session on s.conn with s.dialer.
func (s *Session) logon(ctx context.Context) (*smb2.Session, error) {
	sess, err := bounded(ctx, s.conn, func() (*smb2.Session, error) { return s.dialer.DialContext(ctx, s.conn) })
	if err != nil {
		if code, ok := statusOf(err); ok {
			switch code {
			case statusLogonFailure, statusWrongPassword, statusAccountRestriction, statusPasswordExpired,
				statusAccountDisabled, statusAccountExpired, statusAccountLockedOut:
				return nil, &AuthError{User: s.userName(), Status: statusName(code)}
			case statusNotSupported, statusInvalidParameter:
				return nil, fmt.Errorf("%w: the server refused every dialect from SMB 2.0.2 to 3.1.1 (%v)", ErrDialect, err)
			}
		}
		var te *smb2.TransportError
		if errors.Is(err, io.EOF) || errors.As(err, &te) && errors.Is(te.Err, io.EOF) {
			return nil, fmt.Errorf("the server closed the connection while negotiating SMB 2/3 (as one that speaks SMB1 only does; fleetup never speaks SMB1): %w", classify(err))
		}
		return nil, classify(err)
	}
	return sess, nil
}

func (s *Session) userName() string {
	if s.opts.Domain != "" {
		return s.opts.Domain + `\` + s.opts.User
	}
	return s.opts.User
}

// negotiated reads the dialect and whether messages are encrypted from the
// library's session, which does not export them (reflection reads
// unexported fields; the library is pinned, and a test breaks if its
// layout changes). On a layout it does not know it says SMB 2.1 and no
// encryption: the strictest reading.
func negotiated(sess *smb2.Session) (Dialect, bool) {
	v := reflect.ValueOf(sess).Elem().FieldByName("s")
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
		return SMB210, false
	}
	c := v.Elem().FieldByName("conn")
	if !c.IsValid() || c.Kind() != reflect.Pointer || c.IsNil() {
		return SMB210, false
	}
	d := c.Elem().FieldByName("dialect")
	e := c.Elem().FieldByName("useEncryption")
	if !d.IsValid() || d.Kind() != reflect.Uint16 || !e.IsValid() || e.Kind() != reflect.Bool {
		return SMB210, false
	}
	dialect := Dialect(d.Uint())
	// Encryption needs SMB 3: on 2.x the library silently signs only.
	return dialect, e.Bool() && dialect >= SMB300
}

// sessionFlagEncryptData is SMB2_SESSION_FLAG_ENCRYPT_DATA.
const sessionFlagEncryptData = 0x0004

// sessionFlags reads the session's flags the server set (see negotiated).
func sessionFlags(sess *smb2.Session) uint64 {
	v := reflect.ValueOf(sess).Elem().FieldByName("s")
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
		return 0
	}
	f := v.Elem().FieldByName("sessionFlags")
	if !f.IsValid() || f.Kind() != reflect.Uint16 {
		return 0
	}
	return f.Uint()
}

// Dialect is the negotiated dialect.
func (s *Session) Dialect() Dialect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialect
}

// Encrypted reports whether the session's messages are encrypted.
func (s *Session) Encrypted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.encrypted
}

// Addr is the address literal and port the session is connected to.
func (s *Session) Addr() string { return s.addr }

// Host is the node's address (its IP literal) as dialled.
func (s *Session) Host() string {
	h, _, _ := net.SplitHostPort(s.addr)
	return h
}

// LocalAddr is the manager's address of the session's connection: the
// manager as the node sees it.
func (s *Session) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn.LocalAddr()
}

// Share is the mounted share's name.
func (s *Session) Share() string { return s.opts.Share }

// Close unmounts the share and logs off, each bounded, then closes the
// connection. It is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closeErr = s.logoff()
	})
	return s.closeErr
}

// drop closes the connection of a session the library cannot use (one
// on SMB 2.x that it would encrypt): a log-off would be its first
// message.
func (s *Session) drop() {
	_ = s.conn.Close()
	s.sess = nil
}

// logoff unmounts and logs off under a short deadline of its own (a
// log-off can hang in the library), and closes the connection whatever
// happened: a refused or failed log-off is no failure, since closing the
// connection ends the session on the server.
func (s *Session) logoff() error {
	ctx, cancel := context.WithTimeout(context.Background(), min(5*time.Second, s.opts.timeout()))
	defer cancel()
	s.mu.Lock()
	share, sess, conn, broken := s.share, s.sess, s.conn, s.broken
	s.mu.Unlock()
	if !broken {
		if share != nil {
			_, _ = bounded(ctx, nil, func() (struct{}, error) { return struct{}{}, share.WithContext(ctx).Umount() })
		}
		if sess != nil {
			_, _ = bounded(ctx, nil, func() (struct{}, error) { return struct{}{}, sess.WithContext(ctx).Logoff() })
		}
	}
	if err := conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// bounded runs f and waits for it until ctx ends; then it closes conn (when
// given), which ends what f waits for, and returns ctx's error as the
// server gone. f runs on in its goroutine until the library notices.
func bounded[T any](ctx context.Context, conn net.Conn, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The library panics on some states a server can put it in (an
		// encrypted session without keys): an error, not a crash.
		defer func() {
			if p := recover(); p != nil {
				var zero T
				ch <- result{zero, fmt.Errorf("smb library failure: %v", p)}
			}
		}()
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		if conn != nil {
			_ = conn.Close()
		}
		var zero T
		return zero, &classified{ErrServerGone, fmt.Errorf("no answer in time: %w", ctx.Err())}
	}
}

// do runs op on the share under the session's deadline (and ctx's). A call
// that overruns it closes the connection: its state is unknown. A
// connection found broken is replaced before the call (see reconnect),
// and a call that failed because the connection broke at once (not by
// the deadline) is tried once more on a fresh one: every share operation
// here can be repeated.
func (s *Session) do(ctx context.Context, what string, op func(sh *smb2.Share) error) error {
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		closed, broken := s.closed, s.broken
		s.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if broken {
			if err := s.reconnect(ctx); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		s.mu.Lock()
		share, conn := s.share, s.conn
		s.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, s.opts.timeout())
		sh := share.WithContext(cctx)
		_, err := bounded(cctx, conn, func() (struct{}, error) { return struct{}{}, op(sh) })
		cancel()
		if err == nil {
			return nil
		}
		err = classify(err)
		if !errors.Is(err, ErrServerGone) {
			return fmt.Errorf("%s: %w", what, err)
		}
		s.mu.Lock()
		if s.conn == conn {
			s.broken = true
			_ = conn.Close()
		}
		s.mu.Unlock()
		if attempt > 0 || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// Path joins share-relative path parts with backslashes.
func Path(parts ...string) string {
	return strings.Join(parts, `\`)
}

func norm(p string) string {
	return strings.Trim(strings.ReplaceAll(p, "/", `\`), `\`)
}

// MkdirAll makes dir and every missing parent.
func (s *Session) MkdirAll(ctx context.Context, dir string) error {
	dir = norm(dir)
	return s.do(ctx, `make \`+dir, func(sh *smb2.Share) error { return sh.MkdirAll(dir, 0o700) })
}

// WriteFile writes data to name atomically for a reader on the node: the
// bytes go to name.tmp, which is then renamed to name (replacing an older
// name, removed first: a reader meanwhile finds no file, never half of
// one).
func (s *Session) WriteFile(ctx context.Context, name string, data []byte) error {
	name = norm(name)
	tmp := name + ".tmp"
	return s.do(ctx, `write \`+name, func(sh *smb2.Share) error {
		f, err := sh.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			_ = f.Close()
			_ = sh.Remove(tmp)
			return err
		}
		if err := f.Close(); err != nil {
			_ = sh.Remove(tmp)
			return err
		}
		if err := sh.Remove(name); err != nil && !os.IsNotExist(err) && !isNotFound(err) {
			_ = sh.Remove(tmp)
			return err
		}
		if err := sh.Rename(tmp, name); err != nil {
			_ = sh.Remove(tmp)
			return err
		}
		return nil
	})
}

// WriteFileFrom writes what r gives to name as WriteFile does, for files
// too large to hold in memory (the engine, payloads): each chunk of 1 MiB
// is written under the session's deadline, not the whole copy.
func (s *Session) WriteFileFrom(ctx context.Context, name string, r io.Reader) error {
	name = norm(name)
	tmp := name + ".tmp"
	// The file's handle keeps the context of the share it was opened on:
	// one that lasts the copy (each step is still bounded by do).
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var f *smb2.File
	if err := s.do(ctx, `write \`+name, func(*smb2.Share) error {
		var err error
		s.mu.Lock()
		share := s.share
		s.mu.Unlock()
		f, err = share.WithContext(fctx).OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		return err
	}); err != nil {
		return err
	}
	fail := func(err error) error {
		_ = s.do(context.WithoutCancel(ctx), `remove \`+tmp, func(sh *smb2.Share) error { _ = f.Close(); return sh.Remove(tmp) })
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			chunk := buf[:n]
			if err := s.do(ctx, `write \`+name, func(*smb2.Share) error { _, err := f.Write(chunk); return err }); err != nil {
				return fail(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fail(fmt.Errorf("write \\%s: read the source: %w", name, rerr))
		}
	}
	return s.do(ctx, `write \`+name, func(sh *smb2.Share) error {
		if err := f.Close(); err != nil {
			_ = sh.Remove(tmp)
			return err
		}
		if err := sh.Remove(name); err != nil && !os.IsNotExist(err) && !isNotFound(err) {
			_ = sh.Remove(tmp)
			return err
		}
		if err := sh.Rename(tmp, name); err != nil {
			_ = sh.Remove(tmp)
			return err
		}
		return nil
	})
}

func isNotFound(err error) bool {
	code, ok := statusOf(err)
	return ok && (code == statusNameNotFound || code == statusPathNotFound || code == statusNoSuchFile)
}

// ReadFile reads name, at most max bytes: a larger file is ErrTooLarge. A
// missing file is an error satisfying errors.Is(err, os.ErrNotExist).
func (s *Session) ReadFile(ctx context.Context, name string, max int64) ([]byte, error) {
	name = norm(name)
	var out []byte
	err := s.do(ctx, `read \`+name, func(sh *smb2.Share) error {
		f, err := sh.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, 0, 4096)
		chunk := make([]byte, 64<<10)
		for {
			n, err := f.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if int64(len(buf)) > max {
				return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return err
			}
			if n == 0 {
				break
			}
		}
		out = buf
		return nil
	})
	return out, err
}

// Exists reports whether name exists.
func (s *Session) Exists(ctx context.Context, name string) (bool, error) {
	_, err := s.Stat(ctx, name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Stat returns name's file information.
func (s *Session) Stat(ctx context.Context, name string) (os.FileInfo, error) {
	name = norm(name)
	var fi os.FileInfo
	err := s.do(ctx, `stat \`+name, func(sh *smb2.Share) error {
		var err error
		fi, err = sh.Stat(name)
		return err
	})
	return fi, err
}

// ReadDir lists dir.
func (s *Session) ReadDir(ctx context.Context, dir string) ([]os.FileInfo, error) {
	dir = norm(dir)
	var list []os.FileInfo
	err := s.do(ctx, `list \`+dir, func(sh *smb2.Share) error {
		var err error
		list, err = sh.ReadDir(dir)
		return err
	})
	return list, err
}

// Remove removes the file or empty directory name; a missing one is no
// error.
func (s *Session) Remove(ctx context.Context, name string) error {
	name = norm(name)
	err := s.do(ctx, `remove \`+name, func(sh *smb2.Share) error { return sh.Remove(name) })
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// RemoveAll removes path and everything below it; a missing path is no
// error. While a file is in use on the node (the engine's exe, just after
// its service stopped) it tries again, every 500 ms for up to wait; the
// error then says the file is locked (ErrLocked).
func (s *Session) RemoveAll(ctx context.Context, path string, wait time.Duration) error {
	path = norm(path)
	if path == "" {
		return errors.New("smb: refusing to remove the share's root")
	}
	deadline := time.Now().Add(wait)
	for {
		err := s.do(ctx, `remove \`+path, func(sh *smb2.Share) error { return sh.RemoveAll(path) })
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func splitAddr(addr string) (string, int, error) {
	if addr == "" {
		return "", 0, errors.New("smb: empty address")
	}
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a host name, an IPv4 literal, or an IPv6 literal with
		// or without brackets.
		h := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if strings.ContainsAny(h, "[]") {
			return "", 0, fmt.Errorf("smb: address %q: %w", addr, err)
		}
		return h, DefaultPort, nil
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("smb: address %q: bad port", addr)
	}
	return host, port, nil
}

// resolve returns host's addresses as literals (a link-local one with
// its zone): the literal itself, or what the resolver gives for a name
// (both families, in its order).
func resolve(ctx context.Context, host string) ([]string, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []string{ip.String()}, nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	var ips []string
	for _, a := range addrs {
		ips = append(ips, a.String())
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %s: no address", host)
	}
	return ips, nil
}

package ftpd

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// session is one control connection and its state.
type session struct {
	srv    *Server
	conn   net.Conn
	r      *bufio.Reader
	peer   netip.Addr // control peer, unmapped: the only IP data connections may come from
	local  netip.Addr // our end of the control connection, unmapped
	remote string     // for logs

	stopped  atomic.Bool
	stopCh   chan struct{}
	stopOnce sync.Once

	user     string
	loggedIn bool
	failures int
	rest     int64
	epsvAll  bool
	ascii    bool

	mu        sync.Mutex // guards pasv, accepting and data against kill
	pasv      net.Listener
	accepting net.Listener // the passive listener openData waits on
	data      net.Conn
}

func newSession(srv *Server, c net.Conn) *session {
	ss := &session{srv: srv, conn: c, r: bufio.NewReaderSize(c, MaxLineBytes), stopCh: make(chan struct{}), remote: c.RemoteAddr().String()}
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ss.peer = a.AddrPort().Addr().Unmap()
	}
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		ss.local = a.AddrPort().Addr().Unmap()
	}
	return ss
}

// stop asks the session to end at its next command read.
func (ss *session) stop() {
	ss.stopOnce.Do(func() {
		ss.stopped.Store(true)
		close(ss.stopCh)
		_ = ss.conn.SetReadDeadline(time.Now())
	})
}

// kill cuts the session's connections now.
func (ss *session) kill() {
	ss.stop()
	ss.conn.Close()
	ss.mu.Lock()
	if ss.pasv != nil {
		ss.pasv.Close()
	}
	if ss.accepting != nil {
		ss.accepting.Close()
	}
	if ss.data != nil {
		ss.data.Close()
	}
	ss.mu.Unlock()
}

func (ss *session) reply(code int, msg string) error {
	_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.opts.DataTimeout))
	_, err := fmt.Fprintf(ss.conn, "%d %s\r\n", code, msg)
	return err
}

// replyLines sends a multi-line reply: code-first, the lines (each with a
// leading space, RFC 2389), code last.
func (ss *session) replyLines(code int, first string, lines []string, last string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d-%s\r\n", code, first)
	for _, l := range lines {
		fmt.Fprintf(&b, " %s\r\n", l)
	}
	fmt.Fprintf(&b, "%d %s\r\n", code, last)
	_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.opts.DataTimeout))
	_, err := io.WriteString(ss.conn, b.String())
	return err
}

func (ss *session) serve() {
	defer func() {
		ss.mu.Lock()
		if ss.pasv != nil {
			ss.pasv.Close()
			ss.pasv = nil
		}
		ss.mu.Unlock()
		ss.conn.Close()
	}()
	log := ss.srv.log.With("remote", ss.remote)
	log.Info("ftp session start")
	defer log.Info("ftp session end")
	if ss.reply(220, "fleetup FTP server ready (read-only).") != nil {
		return
	}
	for {
		_ = ss.conn.SetReadDeadline(time.Now().Add(ss.srv.opts.IdleTimeout))
		if ss.stopped.Load() {
			_ = ss.reply(421, "Server shutting down.")
			return
		}
		line, err := ss.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) && ss.skipLine() {
			if ss.reply(500, fmt.Sprintf("Command line longer than %d bytes.", MaxLineBytes)) != nil {
				return
			}
			continue
		}
		if err != nil {
			var ne net.Error
			switch {
			case ss.stopped.Load():
				_ = ss.reply(421, "Server shutting down.")
			case errors.Is(err, bufio.ErrBufferFull):
				_ = ss.reply(500, fmt.Sprintf("Command line longer than %d bytes.", MaxLineBytes))
			case errors.As(err, &ne) && ne.Timeout():
				_ = ss.reply(421, "Idle timeout, closing control connection.")
			}
			return
		}
		cmd, err := ParseCommand(string(line))
		if err != nil {
			if ss.reply(500, "Syntax error: "+err.Error()+".") != nil {
				return
			}
			continue
		}
		if cmd.Verb == "PASS" {
			log.Debug("ftp command", "verb", cmd.Verb)
		} else {
			log.Debug("ftp command", "verb", cmd.Verb, "arg", cmd.Arg)
		}
		if quit := ss.handle(cmd); quit {
			return
		}
	}
}

// skipLine discards the rest of an over-long line, at most maxSkipBytes;
// it reports whether the line ended within that.
func (ss *session) skipLine() bool {
	for skipped := 0; skipped < maxSkipBytes; {
		b, err := ss.r.ReadSlice('\n')
		skipped += len(b)
		if err == nil {
			return true
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return false
		}
	}
	return false
}

// maxSkipBytes bounds how much of an over-long line is read and discarded
// before the session is closed instead.
const maxSkipBytes = 64 << 10

// preLogin are the commands answered before a login.
var preLogin = map[string]bool{"USER": true, "PASS": true, "QUIT": true, "NOOP": true, "SYST": true, "FEAT": true, "OPTS": true, "HELP": true}

// writing are the commands that would change the file system.
var writing = map[string]bool{
	"STOR": true, "STOU": true, "APPE": true, "DELE": true, "MKD": true, "XMKD": true,
	"RMD": true, "XRMD": true, "RNFR": true, "RNTO": true, "ALLO": true, "MFMT": true, "MFF": true,
}

// handle answers one command; it returns true when the session must end.
func (ss *session) handle(cmd Command) (quit bool) {
	fail := func(err error) bool { return err != nil }
	if !ss.loggedIn && !preLogin[cmd.Verb] {
		return fail(ss.reply(530, "Please login with USER and PASS."))
	}
	if cmd.Verb != "REST" && cmd.Verb != "RETR" && cmd.Verb != "PASV" && cmd.Verb != "EPSV" && cmd.Verb != "TYPE" {
		ss.rest = 0
	}
	switch cmd.Verb {
	case "USER":
		if ss.loggedIn {
			return fail(ss.reply(503, "Already logged in."))
		}
		if cmd.Arg == "" {
			return fail(ss.reply(501, "USER needs a user name."))
		}
		ss.user = cmd.Arg
		return fail(ss.reply(331, "Password required for "+cmd.Arg+"."))
	case "PASS":
		return ss.pass(cmd.Arg)
	case "QUIT":
		_ = ss.reply(221, "Goodbye.")
		return true
	case "NOOP":
		return fail(ss.reply(200, "NOOP ok."))
	case "SYST":
		return fail(ss.reply(215, "UNIX Type: L8"))
	case "FEAT":
		return fail(ss.replyLines(211, "Features:", []string{"EPSV", "MDTM", "MLST type*;size*;modify*;perm*;", "PASV", "REST STREAM", "SIZE", "UTF8"}, "End"))
	case "HELP":
		return fail(ss.reply(214, "Commands: USER PASS QUIT NOOP SYST FEAT OPTS PWD CWD TYPE MODE STRU PASV EPSV REST RETR SIZE MDTM LIST NLST MLSD MLST ABOR."))
	case "OPTS":
		opt, val, _ := strings.Cut(cmd.Arg, " ")
		switch strings.ToUpper(opt) {
		case "UTF8", "UTF-8":
			if v := strings.ToUpper(val); v == "ON" || v == "" {
				return fail(ss.reply(200, "Always in UTF8 mode."))
			}
			return fail(ss.reply(504, "UTF8 cannot be turned off."))
		case "MLST":
			return fail(ss.reply(200, "MLST OPTS type;size;modify;perm;"))
		}
		return fail(ss.reply(501, "Option not understood."))
	case "PWD", "XPWD":
		return fail(ss.reply(257, `"/" is the current directory.`))
	case "CWD", "XCWD":
		if cmd.Arg == "/" {
			return fail(ss.reply(250, "Directory successfully changed."))
		}
		return fail(ss.reply(550, "No such directory: only / exists."))
	case "CDUP", "XCUP":
		return fail(ss.reply(550, "No parent directory: only / exists."))
	case "TYPE":
		switch strings.ToUpper(strings.Join(strings.Fields(cmd.Arg), " ")) {
		case "I", "L 8":
			ss.ascii = false
			return fail(ss.reply(200, "Switching to Binary mode."))
		case "A", "A N":
			ss.ascii = true
			return fail(ss.reply(200, "Switching to ASCII mode (files are sent as stored)."))
		}
		return fail(ss.reply(504, "TYPE "+cmd.Arg+" is not supported."))
	case "MODE":
		if strings.EqualFold(cmd.Arg, "S") {
			return fail(ss.reply(200, "Mode set to S."))
		}
		return fail(ss.reply(504, "Only MODE S is supported."))
	case "STRU":
		if strings.EqualFold(cmd.Arg, "F") {
			return fail(ss.reply(200, "Structure set to F."))
		}
		return fail(ss.reply(504, "Only STRU F is supported."))
	case "PORT", "EPRT":
		return fail(ss.reply(502, "Active mode is not supported; use PASV or EPSV."))
	case "PASV":
		return ss.passive(false, "")
	case "EPSV":
		return ss.passive(true, cmd.Arg)
	case "REST":
		n, err := strconv.ParseInt(cmd.Arg, 10, 64)
		if err != nil || n < 0 {
			return fail(ss.reply(501, fmt.Sprintf("REST needs a byte offset >= 0, not %q.", quoteShort(cmd.Arg))))
		}
		ss.rest = n
		return fail(ss.reply(350, fmt.Sprintf("Restarting at %d. Send RETR.", n)))
	case "RETR":
		return ss.retr(cmd.Arg)
	case "SIZE", "MDTM":
		f, fi, err := ss.stat(cmd.Arg)
		if err != nil {
			return fail(ss.reply(550, err.Error()))
		}
		if cmd.Verb == "SIZE" {
			return fail(ss.reply(213, strconv.FormatInt(f.size, 10)))
		}
		return fail(ss.reply(213, fi.ModTime().UTC().Format("20060102150405")))
	case "LIST", "NLST", "MLSD":
		return ss.list(cmd.Verb, cmd.Arg)
	case "MLST":
		return ss.mlst(cmd.Arg)
	case "ABOR":
		ss.closePassive()
		return fail(ss.reply(226, "No transfer to abort."))
	}
	if writing[cmd.Verb] {
		return fail(ss.reply(550, "Permission denied: this server is read-only."))
	}
	return fail(ss.reply(502, "Command "+cmd.Verb+" not implemented."))
}

func (ss *session) pass(pw string) (quit bool) {
	if ss.loggedIn {
		return ss.reply(503, "Already logged in.") != nil
	}
	if ss.user == "" {
		return ss.reply(503, "Login with USER first.") != nil
	}
	o := &ss.srv.opts
	userOK := subtle.ConstantTimeCompare([]byte(ss.user), []byte(o.User))
	passOK := subtle.ConstantTimeCompare([]byte(pw), []byte(o.Password))
	if userOK&passOK == 1 {
		ss.loggedIn = true
		ss.srv.log.Info("ftp login", "remote", ss.remote, "user", ss.user)
		return ss.reply(230, "Login successful.") != nil
	}
	ss.failures++
	ss.srv.mu.Lock()
	ss.srv.stats.FailedLogins++
	ss.srv.mu.Unlock()
	ss.srv.log.Warn("ftp login failed", "remote", ss.remote, "user", ss.user, "failures", ss.failures)
	ss.user = ""
	if d := o.LoginDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ss.stopCh:
			t.Stop()
		}
	}
	if ss.failures >= MaxLoginFailures {
		_ = ss.reply(421, "Too many failed logins, closing control connection.")
		return true
	}
	return ss.reply(530, "Login incorrect.") != nil
}

// passive opens a data listener on our end of the control connection: PASV
// (IPv4 only) or EPSV, whose argument may name the family or be ALL.
func (ss *session) passive(extended bool, arg string) (quit bool) {
	fail := func(err error) bool { return err != nil }
	if extended {
		switch strings.ToUpper(arg) {
		case "":
		case "ALL":
			ss.epsvAll = true
			return fail(ss.reply(200, "EPSV ALL ok."))
		case "1", "2":
			if (arg == "1") != ss.local.Is4() {
				return fail(ss.reply(522, "Network protocol not supported, use ("+map[bool]string{true: "1", false: "2"}[ss.local.Is4()]+")."))
			}
		default:
			return fail(ss.reply(501, fmt.Sprintf("EPSV argument %q is not 1, 2 or ALL.", quoteShort(arg))))
		}
	} else {
		if ss.epsvAll {
			return fail(ss.reply(503, "PASV refused after EPSV ALL."))
		}
		if !ss.local.Is4() {
			return fail(ss.reply(502, "PASV is for IPv4 only; use EPSV."))
		}
	}
	ss.closePassive()
	ln, err := ss.listenPassive()
	if err != nil {
		ss.srv.log.Warn("ftp passive listen", "remote", ss.remote, "err", err)
		return fail(ss.reply(425, "Cannot open a passive data port: "+err.Error()+"."))
	}
	ss.mu.Lock()
	ss.pasv = ln
	ss.mu.Unlock()
	port := ln.Addr().(*net.TCPAddr).Port
	if extended {
		return fail(ss.reply(229, fmt.Sprintf("Entering Extended Passive Mode (|||%d|).", port)))
	}
	ip := ss.local.As4()
	return fail(ss.reply(227, fmt.Sprintf("Entering Passive Mode (%d,%d,%d,%d,%d,%d).", ip[0], ip[1], ip[2], ip[3], port>>8, port&0xff)))
}

// listenPassive listens on our control address, on a port of the passive
// range (round robin, skipping ports in use) or one the kernel picks.
func (ss *session) listenPassive() (net.Listener, error) {
	host := ss.local.String()
	first, n := ss.srv.passivePort()
	if n == 0 {
		return net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	r := ss.srv.opts.PassivePorts
	var lastErr error
	for i := 0; i < n; i++ {
		p := r[0] + (first-r[0]+i)%n
		if p == ss.srv.opts.Port {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("every passive port %d-%d is in use: %w", r[0], r[1], lastErr)
}

func (ss *session) closePassive() {
	ss.mu.Lock()
	if ss.pasv != nil {
		ss.pasv.Close()
		ss.pasv = nil
	}
	ss.mu.Unlock()
}

// openData accepts the data connection on the passive listener, from the
// control peer's IP only, and closes the listener. It answers 425 itself
// when it fails.
func (ss *session) openData() (net.Conn, error) {
	ss.mu.Lock()
	ln := ss.pasv
	ss.pasv = nil
	ss.accepting = ln
	ss.mu.Unlock()
	if ln == nil {
		err := errors.New("no passive data port")
		return nil, errors.Join(err, ss.reply(425, "Use PASV or EPSV first."))
	}
	defer func() {
		ln.Close()
		ss.mu.Lock()
		ss.accepting = nil
		ss.mu.Unlock()
	}()
	if ss.stopped.Load() { // kill may have run before accepting was set
		return nil, errors.Join(errors.New("stopped"), ss.reply(421, "Server shutting down."))
	}
	tl := ln.(*net.TCPListener)
	_ = tl.SetDeadline(time.Now().Add(ss.srv.opts.DataTimeout))
	for {
		c, err := tl.AcceptTCP()
		if err != nil {
			return nil, errors.Join(err, ss.reply(425, "No data connection was opened."))
		}
		from := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		if from != ss.peer {
			ss.srv.mu.Lock()
			ss.srv.stats.ForeignDataIPs++
			ss.srv.mu.Unlock()
			ss.srv.log.Warn("ftp data connection from another address dropped", "remote", ss.remote, "from", from.String())
			c.Close()
			continue
		}
		ss.mu.Lock()
		ss.data = c
		ss.mu.Unlock()
		if ss.stopped.Load() {
			ss.closeData(c)
			return nil, errors.Join(errors.New("stopped"), ss.reply(421, "Server shutting down."))
		}
		return c, nil
	}
}

func (ss *session) closeData(c net.Conn) {
	c.Close()
	ss.mu.Lock()
	ss.data = nil
	ss.mu.Unlock()
}

// stat finds name among the registered files and checks it is still the
// size it was registered with.
func (ss *session) stat(name string) (file, os.FileInfo, error) {
	f, ok := ss.srv.lookup(name)
	if !ok {
		return file{}, nil, fmt.Errorf("%s: no such file", quoteShort(name))
	}
	fi, err := os.Stat(f.path)
	if err != nil {
		ss.srv.log.Error("ftp stat", "file", name, "err", err)
		return file{}, nil, fmt.Errorf("%s: cannot be read", name)
	}
	if fi.Size() != f.size {
		ss.srv.log.Error("ftp file changed since it was registered", "file", name, "path", f.path, "size", fi.Size(), "registered", f.size)
		return file{}, nil, fmt.Errorf("%s changed on the manager since the run started", name)
	}
	return f, fi, nil
}

func (ss *session) retr(name string) (quit bool) {
	rest := ss.rest
	ss.rest = 0
	f, ok := ss.srv.lookup(name)
	if !ok {
		ss.closePassive()
		return ss.reply(550, fmt.Sprintf("%s: no such file.", quoteShort(name))) != nil
	}
	fh, err := os.Open(f.path)
	if err != nil {
		ss.closePassive()
		ss.srv.log.Error("ftp open", "file", name, "err", err)
		return ss.reply(550, name+": cannot be read.") != nil
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil || fi.Size() != f.size {
		ss.closePassive()
		ss.srv.log.Error("ftp file changed since it was registered", "file", name, "path", f.path, "registered", f.size)
		return ss.reply(550, name+" changed on the manager since the run started.") != nil
	}
	if rest > f.size {
		ss.closePassive()
		return ss.reply(554, fmt.Sprintf("Restart offset %d is beyond the end of %s (%d bytes).", rest, name, f.size)) != nil
	}
	if _, err := fh.Seek(rest, io.SeekStart); err != nil {
		ss.closePassive()
		return ss.reply(550, name+": cannot be read.") != nil
	}
	data, err := ss.openData()
	if err != nil {
		return ss.stopped.Load()
	}
	defer ss.closeData(data)
	mode := "BINARY"
	if ss.ascii {
		mode = "ASCII"
	}
	if ss.reply(150, fmt.Sprintf("Opening %s mode data connection for %s (%d bytes).", mode, name, f.size-rest)) != nil {
		return true
	}
	var sent int64
	for sent < f.size-rest {
		_ = data.SetWriteDeadline(time.Now().Add(ss.srv.opts.IdleTimeout))
		n, err := io.CopyN(data, fh, min(1<<20, f.size-rest-sent))
		sent += n
		if err != nil {
			ss.srv.mu.Lock()
			ss.srv.stats.BytesServed += sent
			ss.srv.mu.Unlock()
			ss.srv.log.Warn("ftp transfer aborted", "remote", ss.remote, "file", name, "sent", sent, "err", err)
			return ss.reply(426, "Connection closed; transfer aborted.") != nil
		}
	}
	ss.closeData(data)
	ss.srv.mu.Lock()
	ss.srv.stats.BytesServed += sent
	ss.srv.stats.Transfers++
	ss.srv.mu.Unlock()
	ss.srv.log.Info("ftp sent", "remote", ss.remote, "file", name, "offset", rest, "bytes", sent)
	return ss.reply(226, "Transfer complete.") != nil
}

type entry struct {
	name string
	file file
}

func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.name, b.name) })
}

// listTarget resolves the argument of LIST, NLST or MLSD: options ("-la")
// are ignored; no path, ".", "/" or "/." is the root (all entries, dir
// true); a registered name is that entry alone.
func (ss *session) listTarget(arg string) (es []entry, dir bool, err error) {
	path := strings.TrimSpace(arg)
	for strings.HasPrefix(path, "-") {
		_, rest, _ := strings.Cut(path, " ")
		path = strings.TrimSpace(rest)
	}
	switch path {
	case "", ".", "/", "/.":
		return ss.srv.list(), true, nil
	}
	if f, ok := ss.srv.lookup(path); ok {
		return []entry{{name: strings.TrimPrefix(path, "/"), file: f}}, false, nil
	}
	return nil, false, fmt.Errorf("%s: no such file or directory", quoteShort(path))
}

func (ss *session) list(verb, arg string) (quit bool) {
	es, dir, err := ss.listTarget(arg)
	if err == nil && verb == "MLSD" && !dir {
		err = fmt.Errorf("%s is not a directory", quoteShort(arg))
	}
	if err != nil {
		ss.closePassive()
		return ss.reply(550, err.Error()+".") != nil
	}
	data, err := ss.openData()
	if err != nil {
		return ss.stopped.Load()
	}
	defer ss.closeData(data)
	if ss.reply(150, "Here comes the directory listing.") != nil {
		return true
	}
	var b strings.Builder
	now := time.Now()
	for _, e := range es {
		mtime := now
		if fi, err := os.Stat(e.file.path); err == nil {
			mtime = fi.ModTime()
		}
		switch verb {
		case "NLST":
			b.WriteString(e.name + "\r\n")
		case "MLSD":
			b.WriteString(mlsxFacts(e, mtime) + " " + e.name + "\r\n")
		default:
			b.WriteString(listLine(e, mtime, now) + "\r\n")
		}
	}
	_ = data.SetWriteDeadline(time.Now().Add(ss.srv.opts.DataTimeout))
	if _, err := io.WriteString(data, b.String()); err != nil {
		return ss.reply(426, "Connection closed; transfer aborted.") != nil
	}
	ss.closeData(data)
	return ss.reply(226, "Directory send OK.") != nil
}

func (ss *session) mlst(arg string) (quit bool) {
	switch arg {
	case "", "/", ".":
		return ss.replyLines(250, "Listing /", []string{"type=cdir;perm=el; /"}, "End") != nil
	}
	f, fi, err := ss.stat(arg)
	if err != nil {
		return ss.reply(550, err.Error()+".") != nil
	}
	e := entry{name: strings.TrimPrefix(arg, "/"), file: f}
	return ss.replyLines(250, "Listing "+e.name, []string{mlsxFacts(e, fi.ModTime()) + " /" + e.name}, "End") != nil
}

// mlsxFacts are the RFC 3659 facts of a file.
func mlsxFacts(e entry, mtime time.Time) string {
	return fmt.Sprintf("type=file;size=%d;modify=%s;perm=r;", e.file.size, mtime.UTC().Format("20060102150405"))
}

// listLine is one line of LIST in the "ls -l" format clients parse.
func listLine(e entry, mtime, now time.Time) string {
	when := mtime.Format("Jan _2 15:04")
	if mtime.Before(now.AddDate(0, -6, 0)) || mtime.After(now.Add(time.Hour)) {
		when = mtime.Format("Jan _2  2006")
	}
	return fmt.Sprintf("-r--r--r--    1 ftp      ftp      %12d %s %s", e.file.size, when, e.name)
}

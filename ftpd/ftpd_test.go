package ftpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testUser = "fleetup-test"
	testPass = "s3cret-pass"
)

// fixture is a started server on loopback with two registered files.
type fixture struct {
	srv   *Server
	addr  string // 127.0.0.1:port
	dir   string
	files map[string][]byte
}

func newFixture(t *testing.T, mod func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	fx := &fixture{dir: dir, files: map[string][]byte{
		"switch-fw-1.2.bin": randomBytes(t, 300_001),
		"small.cfg":         []byte("hostname sw1\n"),
	}}
	opts := Options{User: testUser, Password: testPass, LoginDelay: -1, Files: map[string]string{}}
	for name, b := range fx.files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		opts.Files[name] = p
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	fx.srv = srv
	fx.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.Addr().Port))
	return fx
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// client is a control connection driven step by step.
type client struct {
	t    *testing.T
	c    *textproto.Conn
	host string
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	host, _, _ := net.SplitHostPort(addr)
	cl := &client{t: t, c: c, host: host}
	cl.expect(220)
	return cl
}

// cmd sends line and returns the reply's code and message.
func (cl *client) cmd(line string) (int, string) {
	cl.t.Helper()
	if err := cl.c.PrintfLine("%s", line); err != nil {
		cl.t.Fatalf("send %q: %v", line, err)
	}
	return cl.read()
}

func (cl *client) read() (int, string) {
	cl.t.Helper()
	code, msg, err := cl.c.ReadResponse(0)
	if err != nil && code == 0 {
		cl.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

func (cl *client) expect(want int) string {
	cl.t.Helper()
	code, msg := cl.read()
	if code != want {
		cl.t.Fatalf("reply %d %q, want %d", code, msg, want)
	}
	return msg
}

func (cl *client) must(line string, want int) string {
	cl.t.Helper()
	code, msg := cl.cmd(line)
	if code != want {
		cl.t.Fatalf("%s: reply %d %q, want %d", line, code, msg, want)
	}
	return msg
}

func (cl *client) login() {
	cl.t.Helper()
	cl.must("USER "+testUser, 331)
	cl.must("PASS "+testPass, 230)
}

var epsvRe = regexp.MustCompile(`\(\|\|\|(\d+)\|\)`)

// epsv opens a passive data connection with EPSV.
func (cl *client) epsv() net.Conn {
	cl.t.Helper()
	msg := cl.must("EPSV", 229)
	m := epsvRe.FindStringSubmatch(msg)
	if m == nil {
		cl.t.Fatalf("EPSV reply %q has no port", msg)
	}
	d, err := net.Dial("tcp", net.JoinHostPort(cl.host, m[1]))
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.t.Cleanup(func() { d.Close() })
	return d
}

// transfer runs a data command after EPSV and returns the data received.
func (cl *client) transfer(line string) []byte {
	cl.t.Helper()
	d := cl.epsv()
	cl.must(line, 150)
	b, err := io.ReadAll(d)
	if err != nil {
		cl.t.Fatalf("%s: read data: %v", line, err)
	}
	cl.expect(226)
	return b
}

func TestReplies(t *testing.T) {
	fx := newFixture(t, nil)
	type step struct {
		line string
		code int
	}
	tests := []struct {
		name    string
		noLogin bool
		steps   []step
	}{
		{name: "before login only the greeting commands work", noLogin: true, steps: []step{
			{"LIST", 530}, {"RETR small.cfg", 530}, {"EPSV", 530}, {"CWD /", 530},
			{"NOOP", 200}, {"SYST", 215}, {"FEAT", 211}, {"OPTS UTF8 ON", 200},
			{"PASS " + testPass, 503}, {"USER " + testUser, 331}, {"PASS " + testPass, 230}, {"USER x", 503},
		}},
		{name: "wrong user with the right password", noLogin: true, steps: []step{
			{"USER anonymous", 331}, {"PASS " + testPass, 530}, {"LIST", 530},
		}},
		{name: "writes are refused", steps: []step{
			{"STOR x", 550}, {"STOU", 550}, {"APPE small.cfg", 550}, {"DELE small.cfg", 550},
			{"MKD d", 550}, {"XMKD d", 550}, {"RMD d", 550}, {"RNFR small.cfg", 550}, {"RNTO y", 550},
			{"SITE CHMOD 777 small.cfg", 502}, {"ALLO 100", 550}, {"MFMT 20200101000000 small.cfg", 550},
		}},
		{name: "active mode is refused", steps: []step{
			{"PORT 127,0,0,1,200,10", 502}, {"EPRT |1|127.0.0.1|51210|", 502}, {"EPRT |2|::1|51210|", 502},
		}},
		{name: "only the root directory", steps: []step{
			{"PWD", 257}, {"XPWD", 257}, {"CWD /", 250}, {"CWD ..", 550}, {"CWD ../..", 550}, {"CWD /etc", 550},
			{"CWD", 550}, {"CDUP", 550}, {"PWD", 257},
		}},
		{name: "names outside the run are not files", steps: []step{
			{"SIZE ../../etc/passwd", 550}, {"SIZE /etc/passwd", 550}, {"SIZE ..", 550}, {"SIZE /", 550},
			{"MDTM nothere.bin", 550}, {"SIZE small.cfg/..", 550}, {"RETR ../../etc/passwd", 550},
			{"RETR /etc/passwd", 550}, {"RETR nothere.bin", 550}, {"MLST ../small.cfg", 550},
			{"LIST ../..", 550}, {"NLST /etc", 550}, {"MLSD small.cfg", 550},
		}},
		{name: "file facts", steps: []step{
			{"SIZE small.cfg", 213}, {"SIZE /small.cfg", 213}, {"MDTM switch-fw-1.2.bin", 213}, {"MLST small.cfg", 250}, {"MLST", 250},
		}},
		{name: "types and modes", steps: []step{
			{"TYPE I", 200}, {"TYPE A", 200}, {"TYPE A N", 200}, {"TYPE L 8", 200}, {"TYPE E", 504}, {"TYPE", 504},
			{"MODE S", 200}, {"MODE B", 504}, {"STRU F", 200}, {"STRU R", 504},
		}},
		{name: "restart offsets", steps: []step{
			{"REST 0", 350}, {"REST 17", 350}, {"REST -1", 501}, {"REST abc", 501}, {"REST", 501},
			{"REST 99999999", 350}, {"RETR small.cfg", 554},
		}},
		{name: "transfers need a passive port", steps: []step{
			{"RETR small.cfg", 425}, {"LIST", 425}, {"NLST", 425},
		}},
		{name: "passive variants on IPv4", steps: []step{
			{"EPSV 2", 522}, {"EPSV 3", 501}, {"EPSV 1", 229}, {"PASV", 227}, {"EPSV ALL", 200}, {"PASV", 503}, {"EPSV", 229}, {"ABOR", 226},
		}},
		{name: "options and unknown commands", steps: []step{
			{"OPTS UTF8 OFF", 504}, {"OPTS MODE Z", 501}, {"OPTS MLST type;size;", 200},
			{"XYZZ", 502}, {"AUTH TLS", 502}, {"HELP", 214}, {"NOOP", 200},
		}},
		{name: "syntax errors keep the session", steps: []step{
			{"RE", 500}, {"RETRIEVE x", 500}, {"R3TR x", 500}, {"NOOP", 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := dial(t, fx.addr)
			if !tt.noLogin {
				cl.login()
			}
			var got, want []string
			for _, s := range tt.steps {
				code, msg := cl.cmd(s.line)
				got = append(got, fmt.Sprintf("%s -> %d", s.line, code))
				want = append(want, fmt.Sprintf("%s -> %d", s.line, s.code))
				if code != s.code {
					t.Logf("%s: %d %s", s.line, code, msg)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("replies (-want +got):\n%s", diff)
			}
			cl.must("QUIT", 221)
		})
	}
}

func TestRetr(t *testing.T) {
	fx := newFixture(t, nil)
	cl := dial(t, fx.addr)
	cl.login()
	cl.must("TYPE I", 200)
	want := fx.files["switch-fw-1.2.bin"]

	if got := cl.transfer("RETR switch-fw-1.2.bin"); !bytes.Equal(got, want) {
		t.Fatalf("EPSV RETR: got %d bytes, want %d equal bytes", len(got), len(want))
	}
	if got := cl.transfer("RETR /small.cfg"); !bytes.Equal(got, fx.files["small.cfg"]) {
		t.Fatalf("RETR /small.cfg: got %q", got)
	}

	// PASV, with the address of the control connection.
	msg := cl.must("PASV", 227)
	var h [4]int
	var p1, p2 int
	if _, err := fmt.Sscanf(msg[strings.Index(msg, "(")+1:], "%d,%d,%d,%d,%d,%d", &h[0], &h[1], &h[2], &h[3], &p1, &p2); err != nil {
		t.Fatalf("PASV reply %q: %v", msg, err)
	}
	if h != [4]int{127, 0, 0, 1} {
		t.Fatalf("PASV reply %q names %v, want 127.0.0.1", msg, h)
	}
	d, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p1<<8|p2))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cl.must("REST 100000", 350)
	cl.must("RETR switch-fw-1.2.bin", 150)
	got, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	cl.expect(226)
	if !bytes.Equal(got, want[100000:]) {
		t.Fatalf("REST 100000 + RETR: got %d bytes, want the last %d", len(got), len(want)-100000)
	}
	// REST applies to one transfer only.
	if got := cl.transfer("RETR switch-fw-1.2.bin"); len(got) != len(want) {
		t.Fatalf("RETR after a resumed RETR: got %d bytes, want %d", len(got), len(want))
	}

	st := fx.srv.Stats()
	if wantBytes := int64(2*len(want) + len(fx.files["small.cfg"]) + len(want) - 100000); st.Transfers != 4 || st.BytesServed != wantBytes {
		t.Errorf("Stats = %+v, want 4 transfers and %d bytes", st, wantBytes)
	}
}

func TestListings(t *testing.T) {
	fx := newFixture(t, nil)
	cl := dial(t, fx.addr)
	cl.login()
	lines := func(b []byte) []string { return strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n") }

	if diff := cmp.Diff([]string{"small.cfg", "switch-fw-1.2.bin"}, lines(cl.transfer("NLST"))); diff != "" {
		t.Errorf("NLST (-want +got):\n%s", diff)
	}
	list := lines(cl.transfer("LIST -la"))
	if len(list) != 2 || !strings.HasPrefix(list[0], "-r--r--r--") || !strings.HasSuffix(list[0], " small.cfg") || !strings.Contains(list[1], " 300001 ") {
		t.Errorf("LIST -la = %q", list)
	}
	if got := lines(cl.transfer("LIST small.cfg")); len(got) != 1 || !strings.HasSuffix(got[0], " small.cfg") {
		t.Errorf("LIST small.cfg = %q", got)
	}
	mlsd := lines(cl.transfer("MLSD /"))
	if len(mlsd) != 2 || !strings.HasPrefix(mlsd[1], "type=file;size=300001;modify=") || !strings.HasSuffix(mlsd[1], "; switch-fw-1.2.bin") {
		t.Errorf("MLSD / = %q", mlsd)
	}
	if msg := cl.must("SIZE switch-fw-1.2.bin", 213); msg != "300001" {
		t.Errorf("SIZE = %q", msg)
	}
	if msg := cl.must("MDTM small.cfg", 213); !regexp.MustCompile(`^\d{14}$`).MatchString(msg) {
		t.Errorf("MDTM = %q", msg)
	}
	feat := cl.must("FEAT", 211)
	for _, f := range []string{"EPSV", "PASV", "REST STREAM", "SIZE", "MDTM", "UTF8", "MLST"} {
		if !strings.Contains(feat, f) {
			t.Errorf("FEAT %q does not list %s", feat, f)
		}
	}
}

func TestRetrChangedFile(t *testing.T) {
	fx := newFixture(t, nil)
	if err := os.WriteFile(filepath.Join(fx.dir, "small.cfg"), []byte("hostname sw1-changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, fx.addr)
	cl.login()
	cl.epsv()
	if msg := cl.must("RETR small.cfg", 550); !strings.Contains(msg, "changed") {
		t.Errorf("RETR of a changed file: %q", msg)
	}
	cl.must("SIZE small.cfg", 550)
}

func TestLoginFailures(t *testing.T) {
	fx := newFixture(t, nil)
	cl := dial(t, fx.addr)
	for i := 1; i < MaxLoginFailures; i++ {
		cl.must("USER "+testUser, 331)
		cl.must("PASS wrong", 530)
	}
	cl.must("USER "+testUser, 331)
	cl.must("PASS wrong", 421)
	if _, err := cl.c.ReadLine(); err != io.EOF {
		t.Errorf("after %d failed logins the connection is still open: %v", MaxLoginFailures, err)
	}
	if got := fx.srv.Stats().FailedLogins; got != MaxLoginFailures {
		t.Errorf("FailedLogins = %d, want %d", got, MaxLoginFailures)
	}
}

func TestLongLines(t *testing.T) {
	fx := newFixture(t, nil)
	cl := dial(t, fx.addr)
	cl.must("NOOP "+strings.Repeat("x", 2*MaxLineBytes), 500)
	cl.must("NOOP", 200)
	// A line without end is read only so far (all of it is sent, so the
	// close is clean), then the session ends.
	if _, err := io.WriteString(cl.c.W, strings.Repeat("x", MaxLineBytes+maxSkipBytes)); err != nil {
		t.Fatal(err)
	}
	if err := cl.c.W.Flush(); err != nil {
		t.Fatal(err)
	}
	cl.expect(500)
	if _, err := cl.c.ReadLine(); err == nil {
		t.Error("after an endless line the connection is still open")
	}
}

func TestMaxSessions(t *testing.T) {
	fx := newFixture(t, func(o *Options) { o.MaxSessions = 1 })
	first := dial(t, fx.addr)
	c, err := textproto.Dial("tcp", fx.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, msg, _ := c.ReadResponse(0); code != 421 {
		t.Fatalf("second session got %d %q, want 421", code, msg)
	}
	first.must("QUIT", 221)
	if st := fx.srv.Stats(); st.Refused != 1 {
		t.Errorf("Stats.Refused = %d, want 1", st.Refused)
	}
}

// A data connection from another address than the control connection's is
// dropped; the client's own connection still gets the file.
func TestForeignDataConnection(t *testing.T) {
	fx := newFixture(t, nil)
	cl := dial(t, fx.addr)
	cl.login()
	msg := cl.must("EPSV", 229)
	port := epsvRe.FindStringSubmatch(msg)[1]
	bouncer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	foreign, err := bouncer.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	defer foreign.Close()
	if err := cl.c.PrintfLine("RETR small.cfg"); err != nil {
		t.Fatal(err)
	}
	// The server drops the foreign connection before it accepts ours.
	if n, err := foreign.Read(make([]byte, 1)); err == nil {
		t.Fatalf("foreign data connection got %d bytes", n)
	}
	own, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	cl.expect(150)
	got, err := io.ReadAll(own)
	if err != nil || !bytes.Equal(got, fx.files["small.cfg"]) {
		t.Fatalf("own data connection: %q, %v", got, err)
	}
	cl.expect(226)
	if st := fx.srv.Stats(); st.ForeignDataIPs != 1 {
		t.Errorf("Stats.ForeignDataIPs = %d, want 1", st.ForeignDataIPs)
	}
}

func TestPassivePortRange(t *testing.T) {
	// Find two free adjacent-ish ports by letting the kernel pick one and
	// using it as a one-port range.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	fx := newFixture(t, func(o *Options) { o.PassivePorts = [2]int{p, p} })
	cl := dial(t, fx.addr)
	cl.login()
	msg := cl.must("EPSV", 229)
	if got := epsvRe.FindStringSubmatch(msg)[1]; got != strconv.Itoa(p) {
		t.Fatalf("EPSV port %s, want %d from the range", got, p)
	}
	// A second session finds the only port taken.
	other := dial(t, fx.addr)
	other.login()
	if code, msg := other.cmd("EPSV"); code != 425 || !strings.Contains(msg, fmt.Sprintf("%d-%d", p, p)) {
		t.Errorf("EPSV with the range exhausted: %d %q, want 425 naming the range", code, msg)
	}
}

func TestIdleTimeout(t *testing.T) {
	fx := newFixture(t, func(o *Options) { o.IdleTimeout = 50 * time.Millisecond })
	cl := dial(t, fx.addr)
	if msg := cl.expect(421); !strings.Contains(msg, "Idle") {
		t.Errorf("idle session: %q", msg)
	}
}

func TestCloseEndsSessions(t *testing.T) {
	fx := newFixture(t, nil)
	cl := dial(t, fx.addr)
	cl.login()
	if err := fx.srv.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	cl.expect(421)
	if _, err := net.Dial("tcp", fx.addr); err == nil {
		t.Error("the control port still accepts after Close")
	}
}

// Close cuts a session that waits for its data connection once Close's
// context ends.
func TestCloseCutsWaitingTransfer(t *testing.T) {
	fx := newFixture(t, func(o *Options) { o.DataTimeout = time.Hour })
	cl := dial(t, fx.addr)
	cl.login()
	cl.must("EPSV", 229)
	if err := cl.c.PrintfLine("RETR small.cfg"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The session may notice the stop before Close gives up waiting: nil
	// is fine too; what matters is that Close returns and the session ends.
	if err := fx.srv.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Close with an ended context = %v, want context.Canceled or nil", err)
	}
	for {
		if _, err := cl.c.ReadLine(); err != nil {
			break // the session was cut
		}
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "fw.bin")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := Options{User: "u", Password: "p", Files: map[string]string{"fw.bin": f}}
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{name: "valid", mod: func(*Options) {}},
		{name: "port out of range", mod: func(o *Options) { o.Port = 70000 }, wantErr: "port 70000 out of range"},
		{name: "no password", mod: func(o *Options) { o.Password = "" }, wantErr: "user and password are required"},
		{name: "user with space", mod: func(o *Options) { o.User = "a b" }, wantErr: `user "a b" has a space`},
		{name: "reversed passive range", mod: func(o *Options) { o.PassivePorts = [2]int{63010, 63007} }, wantErr: "passive port range 63010-63007"},
		{name: "passive range is only the control port", mod: func(o *Options) { o.Port = 63008; o.PassivePorts = [2]int{63008, 63008} }, wantErr: "no port besides the control port"},
		{name: "name with slash", mod: func(o *Options) { o.Files = map[string]string{"a/fw.bin": f} }, wantErr: `add "a/fw.bin": name has a path separator`},
		{name: "dot dot", mod: func(o *Options) { o.Files = map[string]string{"..": f} }, wantErr: "directory reference"},
		{name: "control character", mod: func(o *Options) { o.Files = map[string]string{"a\nb": f} }, wantErr: "control character"},
		{name: "missing file", mod: func(o *Options) { o.Files = map[string]string{"x": filepath.Join(dir, "nope")} }, wantErr: "add x: stat"},
		{name: "directory", mod: func(o *Options) { o.Files = map[string]string{"x": dir} }, wantErr: "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.mod(&o)
			_, err := New(o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultPassiveRange(t *testing.T) {
	tests := []struct {
		port int
		want [2]int
	}{{63006, [2]int{63006, 63010}}, {63009, [2]int{63006, 63010}}, {21, [2]int{63006, 63010}}, {2121, [2]int{}}, {0, [2]int{}}}
	for _, tt := range tests {
		s, err := New(Options{Port: tt.port, User: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.opts.PassivePorts; got != tt.want {
			t.Errorf("passive ports for control port %d = %v, want %v", tt.port, got, tt.want)
		}
	}
}

func TestNewCredentials(t *testing.T) {
	u1, p1 := NewCredentials()
	u2, p2 := NewCredentials()
	if !regexp.MustCompile(`^fleetup-[0-9a-f]{8}$`).MatchString(u1) || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(p1) {
		t.Errorf("NewCredentials = %q, %q", u1, p1)
	}
	if u1 == u2 || p1 == p2 {
		t.Errorf("two runs got the same credentials: %q/%q and %q/%q", u1, p1, u2, p2)
	}
}

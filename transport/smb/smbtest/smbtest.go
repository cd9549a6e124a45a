//go:build linux

// Package smbtest runs a real Samba smbd for tests of SMB clients: on
// 127.0.0.1 and ::1, on a free port, with its own configuration and state
// under the test's temporary directory, a share ADMIN$ and a user with a
// password. It needs root (smbd's tdbsam user maps to a Unix account:
// root); without it the test is skipped, unless FLEETUP_NO_SKIP=1, then it
// fails.
package smbtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// User and Password log on to every server this package starts;
// Unprivileged (password Password too) is a user without administrator
// rights (Unix nobody), for refusals.
const (
	User         = "root"
	Password     = "Fleet-up-Secret1"
	Unprivileged = "nobody"
)

// Config shapes the server.
type Config struct {
	// MaxProtocol is smbd's "server max protocol" (SMB3 when empty);
	// "SMB2_10" makes a server that cannot encrypt, "NT1" one that speaks
	// SMB1 only.
	MaxProtocol string
	// NoAdminShare leaves out the ADMIN$ share (a share "data" is served
	// instead).
	NoAdminShare bool
	// EncryptRequired makes the server refuse unencrypted sessions.
	EncryptRequired bool
	// EncryptDesired keeps "smb encrypt = desired" on a server capped at
	// SMB 2 (which then flags SMB 2 sessions for encryption).
	EncryptDesired bool
}

// Server is a running smbd.
type Server struct {
	Port int
	// Dir is the directory ADMIN$ serves.
	Dir  string
	pgid int
}

// Freeze stops every smbd process of the server (SIGSTOP): connections
// stay open and nothing answers, as with a node that hangs. The returned
// function thaws them; the server's clean-up thaws them too.
func (s *Server) Freeze() (thaw func()) {
	_ = syscall.Kill(-s.pgid, syscall.SIGSTOP)
	return func() { _ = syscall.Kill(-s.pgid, syscall.SIGCONT) }
}

// DropConnections kills the smbd processes that serve connections (the
// children of the main process in its process group), as a server that
// drops idle sessions or restarts does: clients see their connection
// reset.
func (s *Server) DropConnections() {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == s.pgid {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 2 && f[1] == strconv.Itoa(s.pgid) && f[2] == strconv.Itoa(s.pgid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Addr is the server's address on 127.0.0.1.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Addr6 is the server's address on ::1.
func (s *Server) Addr6() string { return net.JoinHostPort("::1", strconv.Itoa(s.Port)) }

// Skip skips t without root, unless FLEETUP_NO_SKIP=1.
func Skip(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("smbd"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/smbd"); err2 != nil {
			skip(t, "smbd is not installed (Debian package samba)")
		}
	}
	if os.Geteuid() != 0 {
		skip(t, "smbd's test user maps to root: run as root")
	}
}

func skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("FLEETUP_NO_SKIP") == "1" {
		t.Fatalf("FLEETUP_NO_SKIP=1 and %s", why)
	}
	t.Skip(why)
}

// Start runs smbd for the test and stops it when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	Skip(t)
	base, err := os.MkdirTemp("", "fleetup-smbd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	for _, d := range []string{"priv", "lock", "state", "cache", "pid", "ncalrpc", "share", "log"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	maxp := cfg.MaxProtocol
	if maxp == "" {
		maxp = "SMB3"
	}
	// A Samba capped at SMB 2 still flags sessions for encryption with
	// "desired" (no Windows server does that on 2.x): off, unless asked.
	minp := "SMB2_02"
	if maxp == "NT1" {
		minp = "NT1" // an SMB1-only server
	}
	encrypt := "desired"
	if (strings.HasPrefix(maxp, "SMB2") || maxp == "NT1") && !cfg.EncryptDesired {
		encrypt = "off"
	}
	if cfg.EncryptRequired {
		encrypt = "required"
	}
	share := "ADMIN$"
	if cfg.NoAdminShare {
		share = "data"
	}
	conf := fmt.Sprintf(`[global]
  workgroup = FLEETLAB
  netbios name = FLEETUPTEST
  server role = standalone server
  interfaces = 127.0.0.1 ::1
  bind interfaces only = yes
  smb ports = %[2]d
  private dir = %[1]s/priv
  lock directory = %[1]s/lock
  state directory = %[1]s/state
  cache directory = %[1]s/cache
  pid directory = %[1]s/pid
  ncalrpc dir = %[1]s/ncalrpc
  log file = %[1]s/log/smbd.log
  log level = 1
  passdb backend = tdbsam:%[1]s/priv/passdb.tdb
  server min protocol = %[8]s
  server max protocol = %[3]s
  server signing = mandatory
  smb encrypt = %[4]s
  ntlm auth = ntlmv2-only
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  disable netbios = yes
  dns proxy = no
[%[5]s]
  path = %[1]s/share
  read only = no
  valid users = %[6]s %[7]s
`, base, port, maxp, encrypt, share, User, Unprivileged, minp)
	confPath := filepath.Join(base, "smb.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{User, Unprivileged} {
		pdb := exec.Command("pdbedit", "-s", confPath, "-a", "-u", u, "-t")
		pdb.Stdin = strings.NewReader(Password + "\n" + Password + "\n")
		if out, err := pdb.CombinedOutput(); err != nil {
			t.Fatalf("pdbedit %s: %v\n%s", u, err, out)
		}
	}
	// In the foreground, in a session of its own: smbd's shutdown signals
	// its process group, which must not be the test's.
	cmd := exec.Command("smbd", "--foreground", "--no-process-group", "-s", confPath, "--debug-stdout")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	logf, err := os.Create(filepath.Join(base, "log", "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start smbd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		// smbd's helpers (samba-dcerpcd, rpcd_*, notifyd) start sessions
		// of their own: each is found by this server's configuration
		// file on its command line.
		killByArg(confPath)
		logf.Close()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			out, _ := os.ReadFile(filepath.Join(base, "log", "stdout"))
			t.Fatalf("smbd exited: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("smbd did not listen on %s within 15s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &Server{Port: port, Dir: filepath.Join(base, "share"), pgid: cmd.Process.Pid}
}

// killByArg ends the processes whose command line holds arg (a path only
// this server's processes name), by pid: SIGTERM, then SIGKILL after 3s.
func killByArg(arg string) {
	find := func() []int {
		var pids []int
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			pid, err := strconv.Atoi(d.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			if err == nil && strings.Contains(string(b), arg) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	for _, pid := range find() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if len(find()) == 0 {
			return
		}
	}
	for _, pid := range find() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// freePort finds a port free on both 127.0.0.1 and ::1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		l6.Close()
		return port
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return 0
}

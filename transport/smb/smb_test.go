//go:build linux

package smb_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup/transport/smb"
	"github.com/fleetup/fleetup/transport/smb/smbtest"
)

func opts() smb.Options {
	return smb.Options{
		User:     smbtest.User,
		Password: func() ([]byte, error) { return []byte(smbtest.Password), nil },
		Timeout:  10 * time.Second,
	}
}

func dial(t *testing.T, addr string, o smb.Options) *smb.Session {
	t.Helper()
	s, err := smb.Dial(context.Background(), addr, o)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestFileOperations(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	for _, addr := range []string{srv.Addr(), srv.Addr6()} {
		t.Run(addr, func(t *testing.T) {
			ctx := context.Background()
			s := dial(t, addr, opts())
			if s.Dialect() < smb.SMB300 || !s.Encrypted() {
				t.Fatalf("dialect %s, encrypted %v: want SMB 3 encrypted", s.Dialect(), s.Encrypted())
			}
			dir := `Temp\fleetup-` + strings.NewReplacer(".", "-", ":", "-", "[", "", "]", "").Replace(addr)
			if err := s.MkdirAll(ctx, dir+`\payloads`); err != nil {
				t.Fatal(err)
			}
			big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16) // beyond one 64 KiB chunk
			if err := s.WriteFile(ctx, dir+`\fleetup-engine.exe`, big); err != nil {
				t.Fatal(err)
			}
			if err := s.WriteFile(ctx, dir+`/config.json`, []byte(`{"a":1}`)); err != nil {
				t.Fatal(err)
			}
			// A second write replaces the first.
			if err := s.WriteFile(ctx, dir+`\config.json`, []byte(`{"a":2}`)); err != nil {
				t.Fatal(err)
			}
			got, err := s.ReadFile(ctx, dir+`\config.json`, 1<<20)
			if err != nil || string(got) != `{"a":2}` {
				t.Fatalf("read config.json: %q, %v", got, err)
			}
			big2 := bytes.Repeat([]byte("x"), 3<<20+17)
			if err := s.WriteFileFrom(ctx, dir+`\payloads\abc`, bytes.NewReader(big2)); err != nil {
				t.Fatal(err)
			}
			if got, err := s.ReadFile(ctx, dir+`\payloads\abc`, 1<<30); err != nil || !bytes.Equal(got, big2) {
				t.Fatalf("read a streamed file: %d bytes, %v", len(got), err)
			}
			got, err = s.ReadFile(ctx, dir+`\fleetup-engine.exe`, 1<<30)
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("read the exe: %d bytes, %v", len(got), err)
			}
			if _, err := s.ReadFile(ctx, dir+`\fleetup-engine.exe`, 1000); !errors.Is(err, smb.ErrTooLarge) {
				t.Fatalf("bounded read: %v, want ErrTooLarge", err)
			}
			if _, err := s.ReadFile(ctx, dir+`\engine.csr`, 1000); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("read a missing file: %v, want os.ErrNotExist", err)
			}
			if ok, err := s.Exists(ctx, dir+`\config.json`); !ok || err != nil {
				t.Fatalf("exists config.json: %v %v", ok, err)
			}
			if ok, err := s.Exists(ctx, dir+`\nothing`); ok || err != nil {
				t.Fatalf("exists nothing: %v %v", ok, err)
			}
			list, err := s.ReadDir(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, fi := range list {
				names = append(names, fi.Name())
			}
			sort.Strings(names)
			if want := "config.json fleetup-engine.exe payloads"; strings.Join(names, " ") != want {
				t.Fatalf("dir holds %q, want %q (no .tmp left)", names, want)
			}
			// On the server's disk, as written.
			onDisk, err := os.ReadFile(filepath.Join(srv.Dir, "Temp", filepath.Base(strings.ReplaceAll(dir, `\`, "/")), "config.json"))
			if err != nil || string(onDisk) != `{"a":2}` {
				t.Fatalf("on disk: %q %v", onDisk, err)
			}
			if err := s.RemoveAll(ctx, dir, time.Second); err != nil {
				t.Fatal(err)
			}
			if ok, err := s.Exists(ctx, dir); ok || err != nil {
				t.Fatalf("after RemoveAll: exists %v %v", ok, err)
			}
			if err := s.RemoveAll(ctx, dir, time.Second); err != nil {
				t.Fatalf("RemoveAll of a missing dir: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			if err := s.MkdirAll(ctx, dir); !errors.Is(err, smb.ErrClosed) {
				t.Fatalf("after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestHostName(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	s := dial(t, strings.Replace(srv.Addr(), "127.0.0.1", "localhost", 1), opts())
	if s.Host() != "127.0.0.1" && s.Host() != "::1" {
		t.Fatalf("host %q: want an address literal", s.Host())
	}
}

func TestWrongPassword(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	o := opts()
	o.Password = func() ([]byte, error) { return []byte("not-the-password"), nil }
	_, err := smb.Dial(context.Background(), srv.Addr(), o)
	var ae *smb.AuthError
	if !errors.As(err, &ae) || ae.Status != "STATUS_LOGON_FAILURE" {
		t.Fatalf("wrong password: %v, want *AuthError STATUS_LOGON_FAILURE", err)
	}
	if !strings.Contains(err.Error(), "wrong user name or password") {
		t.Fatalf("message %q", err)
	}
}

func TestNoAdminShare(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{NoAdminShare: true})
	_, err := smb.Dial(context.Background(), srv.Addr(), opts())
	if !errors.Is(err, smb.ErrNoShare) || !strings.Contains(err.Error(), "ADMIN$") {
		t.Fatalf("no ADMIN$: %v, want ErrNoShare naming ADMIN$", err)
	}
}

func TestEncryption(t *testing.T) {
	t.Run("required by the server", func(t *testing.T) {
		srv := smbtest.Start(t, smbtest.Config{EncryptRequired: true})
		o := opts()
		o.RequireEncryption = true
		s := dial(t, srv.Addr(), o)
		if !s.Encrypted() {
			t.Fatal("not encrypted")
		}
		if err := s.WriteFile(context.Background(), "x", []byte("sealed")); err != nil {
			t.Fatalf("write on an encryption-only server: %v", err)
		}
	})
	t.Run("SMB 2.1 server", func(t *testing.T) {
		srv := smbtest.Start(t, smbtest.Config{MaxProtocol: "SMB2_10"})
		s := dial(t, srv.Addr(), opts())
		if s.Dialect() != smb.SMB210 || s.Encrypted() {
			t.Fatalf("dialect %s encrypted %v, want SMB 2.1 unencrypted", s.Dialect(), s.Encrypted())
		}
		if err := s.WriteFile(context.Background(), "x", []byte("signed")); err != nil {
			t.Fatal(err)
		}
		o := opts()
		o.RequireEncryption = true
		_, err := smb.Dial(context.Background(), srv.Addr(), o)
		if !errors.Is(err, smb.ErrDialect) || !strings.Contains(err.Error(), "SMB 2.1") {
			t.Fatalf("RequireEncryption on SMB 2.1: %v, want ErrDialect naming SMB 2.1", err)
		}
	})
	t.Run("SMB 2.1 server flagging encryption", func(t *testing.T) {
		srv := smbtest.Start(t, smbtest.Config{MaxProtocol: "SMB2_10", EncryptDesired: true})
		_, err := smb.Dial(context.Background(), srv.Addr(), opts())
		if !errors.Is(err, smb.ErrDialect) {
			t.Fatalf("SMB 2.1 session flagged for encryption: %v, want ErrDialect", err)
		}
	})
	t.Run("SMB1 server", func(t *testing.T) {
		srv := smbtest.Start(t, smbtest.Config{MaxProtocol: "NT1"})
		o := opts()
		o.MinDialect = smb.SMB202 // even so: SMB1 is never spoken
		_, err := smb.Dial(context.Background(), srv.Addr(), o)
		if err == nil || !strings.Contains(err.Error(), "SMB1") {
			t.Fatalf("SMB1-only server: %v, want an error naming SMB1", err)
		}
	})
	t.Run("SMB 2.0.2 server", func(t *testing.T) {
		srv := smbtest.Start(t, smbtest.Config{MaxProtocol: "SMB2_02"})
		_, err := smb.Dial(context.Background(), srv.Addr(), opts())
		if !errors.Is(err, smb.ErrDialect) || !strings.Contains(err.Error(), "SMB 2.0.2") {
			t.Fatalf("SMB 2.0.2 server: %v, want ErrDialect", err)
		}
		// Allowed explicitly (a test stand-in), it works, signed.
		o := opts()
		o.MinDialect = smb.SMB202
		s := dial(t, srv.Addr(), o)
		if s.Dialect() != smb.SMB202 || s.Encrypted() {
			t.Fatalf("dialect %s encrypted %v", s.Dialect(), s.Encrypted())
		}
		if err := s.WriteFile(context.Background(), "y", []byte("signed")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServerGone(t *testing.T) {
	_, err := smb.Dial(context.Background(), "127.0.0.1:1", opts())
	if !errors.Is(err, smb.ErrServerGone) {
		t.Fatalf("closed port: %v, want ErrServerGone", err)
	}
}

// Samba answers the service manager's pipe, refuses to open it for
// creating services to a user who is no administrator, and does not
// implement creating services at all: each error must say that the
// service manager refused, and what.
func TestSCMRefusedBySamba(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	ctx := context.Background()
	t.Run("unprivileged", func(t *testing.T) {
		o := opts()
		o.User = smbtest.Unprivileged
		s := dial(t, srv.Addr(), o)
		m, err := s.OpenSCM(ctx)
		if err == nil {
			m.Close()
		}
		var se *smb.SCMError
		if !errors.As(err, &se) || !errors.Is(err, smb.ErrAccessDenied) || !strings.Contains(err.Error(), "the service manager refused") || !strings.Contains(err.Error(), "access denied (5)") {
			t.Fatalf("open the SCM as %s: %v, want the service manager's refusal, access denied (5)", o.User, err)
		}
	})
	t.Run("administrator", func(t *testing.T) {
		s := dial(t, srv.Addr(), opts())
		m, err := s.OpenSCM(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		err = m.CreateService(ctx, smb.ServiceConfig{Name: "fleetup-test", DisplayName: "fleetup engine (run test)", BinaryPath: `"C:\Windows\Temp\x.exe" service`})
		var se *smb.SCMError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "the service manager refused to create the service fleetup-test") {
			t.Fatalf("create a service on Samba: %v, want the service manager's refusal", err)
		}
		t.Log(err)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		m, err = s.OpenSCM(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if _, err := m.QueryServiceStatus(ctx, "fleetup-nothing"); !errors.Is(err, smb.ErrNoService) {
			t.Fatalf("query a missing service: %v, want ErrNoService", err)
		}
		// The file session is still good.
		if err := s.WriteFile(ctx, "after-scm", []byte("x")); err != nil {
			t.Fatal(err)
		}
	})
}

// A server that stops answering: every call returns within its deadline
// as the server gone, and Close (whose log-off would hang) is bounded.
func TestHangingServer(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	o := opts()
	o.Timeout = 2 * time.Second
	s := dial(t, srv.Addr(), o)
	m, err := s.OpenSCM(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	thaw := srv.Freeze()
	defer thaw()
	start := time.Now()
	_, err = m.QueryServiceStatus(context.Background(), "fleetup-x")
	if !errors.Is(err, smb.ErrServerGone) || time.Since(start) > 5*time.Second {
		t.Fatalf("SCM call on a frozen server: %v after %s, want ErrServerGone within the deadline", err, time.Since(start))
	}
	start = time.Now()
	err = s.WriteFile(context.Background(), "x", []byte("x"))
	if !errors.Is(err, smb.ErrServerGone) || time.Since(start) > 5*time.Second {
		t.Fatalf("write on a frozen server: %v after %s, want ErrServerGone within the deadline", err, time.Since(start))
	}
	// The next call tries a fresh connection, bounded as well.
	start = time.Now()
	if err := s.WriteFile(context.Background(), "x", []byte("x")); !errors.Is(err, smb.ErrServerGone) || time.Since(start) > 5*time.Second {
		t.Fatalf("after the server was gone: %v after %s, want ErrServerGone within the deadline", err, time.Since(start))
	}
	start = time.Now()
	m.Close()
	s.Close()
	if time.Since(start) > 12*time.Second {
		t.Fatalf("Close took %s", time.Since(start))
	}
	// A new session while frozen: Dial is bounded too.
	start = time.Now()
	if _, err := smb.Dial(context.Background(), srv.Addr(), o); !errors.Is(err, smb.ErrServerGone) || time.Since(start) > 5*time.Second {
		t.Fatalf("dial a frozen server: %v after %s", err, time.Since(start))
	}
}

// The dialect and encryption are read from the library's unexported state:
// this breaks when the library's layout changes.
func TestNegotiatedReadable(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	s := dial(t, srv.Addr(), opts())
	if s.Dialect() != smb.SMB311 || !s.Encrypted() {
		t.Fatalf("Samba 4.17: %s encrypted %v, want SMB 3.1.1 encrypted", s.Dialect(), s.Encrypted())
	}
}

// A server that drops the connection (Windows ends idle sessions after 15
// minutes): the next call reconnects and works; after Close nothing does.
func TestReconnect(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	ctx := context.Background()
	s := dial(t, srv.Addr(), opts())
	if err := s.WriteFile(ctx, "before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	local := s.LocalAddr().String()
	srv.DropConnections()
	time.Sleep(200 * time.Millisecond)
	if err := s.WriteFile(ctx, "after", []byte("2")); err != nil {
		t.Fatalf("write after the server dropped the connection: %v", err)
	}
	if got, err := s.ReadFile(ctx, "before", 10); err != nil || string(got) != "1" {
		t.Fatalf("read: %q %v", got, err)
	}
	if s.LocalAddr().String() == local {
		t.Fatal("the same connection: the server did not drop it")
	}
	if !s.Encrypted() {
		t.Fatal("the fresh session is not encrypted")
	}
	s.Close()
	if err := s.WriteFile(ctx, "x", nil); !errors.Is(err, smb.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// A user the server's file system refuses gets ErrAccessDenied.
func TestAccessDenied(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	o := opts()
	o.User = smbtest.Unprivileged
	s := dial(t, srv.Addr(), o)
	err := s.MkdirAll(context.Background(), `Temp\fleetup-x`)
	if !errors.Is(err, smb.ErrAccessDenied) {
		t.Fatalf("mkdir as %s in a root-only share: %v, want ErrAccessDenied", o.User, err)
	}
}

// Credentials are per session: sessions with different users and
// passwords at once each get their own answer.
func TestCredentialsPerSession(t *testing.T) {
	srv := smbtest.Start(t, smbtest.Config{})
	type result struct {
		i   int
		err error
	}
	ch := make(chan result)
	for i := range 8 {
		go func() {
			o := opts()
			if i%2 == 1 {
				o.Password = func() ([]byte, error) { return []byte("wrong-" + strings.Repeat("x", i)), nil }
			}
			s, err := smb.Dial(context.Background(), srv.Addr(), o)
			if err == nil {
				err = s.WriteFile(context.Background(), "f"+string(rune('a'+i)), []byte("x"))
				s.Close()
			}
			ch <- result{i, err}
		}()
	}
	for range 8 {
		r := <-ch
		var ae *smb.AuthError
		if r.i%2 == 0 && r.err != nil {
			t.Errorf("session %d (right password): %v", r.i, r.err)
		}
		if r.i%2 == 1 && !errors.As(r.err, &ae) {
			t.Errorf("session %d (wrong password): %v, want *AuthError", r.i, r.err)
		}
	}
}

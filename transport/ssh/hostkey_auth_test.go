package ssh

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestSplitAddr(t *testing.T) {
	tests := []struct {
		in       string
		host     string
		port     int
		errorHas string
	}{
		{in: "node1", host: "node1", port: 22},
		{in: "node1:2222", host: "node1", port: 2222},
		{in: "198.18.1.2", host: "198.18.1.2", port: 22},
		{in: "198.18.1.2:22", host: "198.18.1.2", port: 22},
		{in: "[fd42:5e:0:1::2]", host: "fd42:5e:0:1::2", port: 22},
		{in: "[fd42:5e:0:1::2]:2200", host: "fd42:5e:0:1::2", port: 2200},
		{in: "fd42:5e:0:1::2", host: "fd42:5e:0:1::2", port: 22},
		{in: "", errorHas: "empty node address"},
		{in: "node1:0", errorHas: "bad port"},
		{in: "node1:65536", errorHas: "bad port"},
		{in: "node1:ssh", errorHas: "bad port"},
		{in: ":22", errorHas: "empty host"},
		{in: "[]", errorHas: "empty host"},
		{in: "[::1", errorHas: `"[::1"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, err := SplitAddr(tt.in)
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("SplitAddr(%q) error = %v, want it to contain %q", tt.in, err, tt.errorHas)
				}
				return
			}
			if err != nil || host != tt.host || port != tt.port {
				t.Fatalf("SplitAddr(%q) = %q, %d, %v; want %q, %d", tt.in, host, port, err, tt.host, tt.port)
			}
		})
	}
}

func FuzzSplitAddr(f *testing.F) {
	for _, s := range []string{"node1", "node1:22", "[::1]:22", "::1", "[::1]", "", ":", "[", "a:b:c", "1.2.3.4:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := SplitAddr(s)
		if err != nil {
			return
		}
		if host == "" || port < 1 || port > 65535 {
			t.Fatalf("SplitAddr(%q) = %q, %d without error", s, host, port)
		}
	})
}

func rootOpts(s *sshd, known string) Options {
	return Options{User: "root", Signers: []ssh.Signer{s.RootKey}, KnownHostsFile: known}
}

func TestHostKeys(t *testing.T) {
	s := startSSHD(t)
	addr := s.Addr("127.0.0.1")
	fp := ssh.FingerprintSHA256(s.HostKey)
	ctx := context.Background()

	t.Run("unknown refused", func(t *testing.T) {
		known := filepath.Join(t.TempDir(), "dir", "known_hosts")
		_, err := Dial(ctx, addr, rootOpts(s, known))
		var he *HostKeyError
		if !errors.As(err, &he) {
			t.Fatalf("Dial = %v, want *HostKeyError", err)
		}
		want := &HostKeyError{Host: addr, Fingerprint: fp, KeyType: ssh.KeyAlgoED25519, KnownHostsFile: known}
		if diff := cmp.Diff(want, he, cmp.AllowUnexported(HostKeyError{}), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".name" }, cmp.Ignore())); diff != "" {
			t.Errorf("HostKeyError (-want +got):\n%s", diff)
		}
		for _, part := range []string{addr, fp, known, "unknown host key"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("message %q does not name %q", err, part)
			}
		}
		if _, err := os.Stat(known); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("known hosts file was created on refusal: %v", err)
		}
	})

	t.Run("unknown accepted and recorded", func(t *testing.T) {
		known := filepath.Join(t.TempDir(), "dir", "known_hosts")
		opts := rootOpts(s, known)
		opts.AcceptNewHostKeys = true
		c, err := Dial(ctx, addr, opts)
		if err != nil {
			t.Fatalf("Dial with AcceptNewHostKeys: %v", err)
		}
		c.Close()
		fi, err := os.Stat(known)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("known hosts file mode %o, want 600", fi.Mode().Perm())
		}
		data, _ := os.ReadFile(known)
		if want := knownhosts.Line([]string{addr}, s.HostKey) + "\n"; string(data) != want {
			t.Errorf("known hosts file = %q, want %q", data, want)
		}
		opts.AcceptNewHostKeys = false
		c, err = Dial(ctx, addr, opts)
		if err != nil {
			t.Fatalf("Dial after recording: %v", err)
		}
		c.Close()
	})

	t.Run("hashed file stays hashed", func(t *testing.T) {
		known := filepath.Join(t.TempDir(), "known_hosts")
		_, other := newKey(t)
		hashed := knownhosts.HashHostname("other.example") + " " + string(ssh.MarshalAuthorizedKey(other.PublicKey()))
		// No trailing newline: the appended entry must still start a line.
		if err := os.WriteFile(known, []byte(strings.TrimSpace(hashed)), 0o600); err != nil {
			t.Fatal(err)
		}
		opts := rootOpts(s, known)
		opts.AcceptNewHostKeys = true
		c, err := Dial(ctx, addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		data, _ := os.ReadFile(known)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "|1|") || strings.Contains(string(data), "127.0.0.1") {
			t.Fatalf("known hosts file = %q, want a second, hashed entry", data)
		}
		opts.AcceptNewHostKeys = false
		c, err = Dial(ctx, addr, opts)
		if err != nil {
			t.Fatalf("Dial with the hashed entry: %v", err)
		}
		c.Close()
	})

	t.Run("changed refused even when accepting new keys", func(t *testing.T) {
		known := filepath.Join(t.TempDir(), "known_hosts")
		_, old := newKey(t)
		before := "# fleet\n" + knownhosts.Line([]string{addr}, old.PublicKey()) + "\n"
		if err := os.WriteFile(known, []byte(before), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, accept := range []bool{false, true} {
			opts := rootOpts(s, known)
			opts.AcceptNewHostKeys = accept
			_, err := Dial(ctx, addr, opts)
			var he *HostKeyError
			if !errors.As(err, &he) || !he.Known {
				t.Fatalf("Dial (accept new %v) = %v, want *HostKeyError with Known", accept, err)
			}
			if he.Fingerprint != fp || he.KnownLine != 2 {
				t.Errorf("HostKeyError = %+v, want fingerprint %s at line 2", he, fp)
			}
			for _, part := range []string{"HOST KEY CHANGED", addr, fp, known + ":2", "ssh-keygen -R"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("message %q does not contain %q", err, part)
				}
			}
		}
		if data, _ := os.ReadFile(known); string(data) != before {
			t.Errorf("known hosts file changed to %q", data)
		}
	})
}

func TestAuth(t *testing.T) {
	s := startSSHD(t)
	user, password := passwordUser(t)
	known := s.KnownHosts(t)
	ctx := context.Background()
	addr := s.Addr("::1")

	t.Run("password", func(t *testing.T) {
		var calls atomic.Int32
		var given []byte
		c, err := Dial(ctx, addr, Options{User: user, KnownHostsFile: known, Password: func() ([]byte, error) {
			calls.Add(1)
			given = append([]byte(nil), password...)
			return given, nil
		}})
		if err != nil {
			t.Fatalf("Dial with password: %v", err)
		}
		defer c.Close()
		var out strings.Builder
		if err := c.Run(ctx, "id -un", nil, &out, nil); err != nil || out.String() != user+"\n" {
			t.Errorf("id -un = %q, %v; want %q", out.String(), err, user)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("password asked %d times, want once", n)
		}
		if strings.Trim(string(given), "\x00") != "" {
			t.Errorf("password bytes not zeroed after Dial: %q", given)
		}
		if c.User() != user {
			t.Errorf("User() = %q", c.User())
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		_, err := Dial(ctx, addr, Options{User: user, KnownHostsFile: known, Password: func() ([]byte, error) {
			return []byte("not-the-password"), nil
		}})
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("Dial = %v, want *AuthError", err)
		}
		if ae.User != user || ae.Host != addr || !strings.Contains(strings.Join(ae.Methods, ","), "password") {
			t.Errorf("AuthError = %+v", ae)
		}
		if want := "ssh to " + addr + " as " + user + ": authentication failed (tried "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("message %q, want prefix %q", err, want)
		}
		if strings.Contains(err.Error(), "not-the-password") {
			t.Error("message contains the password")
		}
	})

	t.Run("password source fails", func(t *testing.T) {
		sentinel := errors.New("no terminal to ask on")
		_, err := Dial(ctx, addr, Options{User: user, KnownHostsFile: known, Password: func() ([]byte, error) { return nil, sentinel }})
		if !errors.Is(err, sentinel) {
			t.Fatalf("Dial = %v, want the password source's error", err)
		}
	})

	t.Run("key works, password not asked", func(t *testing.T) {
		opts := rootOpts(s, known)
		opts.Password = func() ([]byte, error) {
			t.Error("password asked although the key works")
			return nil, errors.New("no")
		}
		c, err := Dial(ctx, addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})

	t.Run("no method", func(t *testing.T) {
		_, err := Dial(ctx, addr, Options{User: "root", KnownHostsFile: known})
		var ae *AuthError
		if !errors.As(err, &ae) {
			t.Fatalf("Dial = %v, want *AuthError", err)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		_, other := newKey(t)
		_, err := Dial(ctx, addr, Options{User: "root", KnownHostsFile: known, Signers: []ssh.Signer{other}})
		var ae *AuthError
		if !errors.As(err, &ae) || !cmp.Equal(ae.Methods, []string{"publickey"}) {
			t.Fatalf("Dial = %#v, want *AuthError after publickey", err)
		}
	})

	t.Run("agent", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "agent.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ring := agent.NewKeyring()
		if err := ring.Add(agent.AddedKey{PrivateKey: rootPriv(t, s)}); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); agent.ServeAgent(ring, c) }()
			}
		}()
		t.Setenv("SSH_AUTH_SOCK", sock)
		c, err := Dial(ctx, addr, Options{User: "root", KnownHostsFile: known, UseAgent: true})
		if err != nil {
			t.Fatalf("Dial through the agent: %v", err)
		}
		c.Close()
	})

	t.Run("addresses", func(t *testing.T) {
		c, err := Dial(ctx, s.Addr("127.0.0.1"), rootOpts(s, known))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.RemoteAddr().String(); got != s.Addr("127.0.0.1") {
			t.Errorf("RemoteAddr = %s", got)
		}
		if ip := c.LocalAddr().(*net.TCPAddr).IP.String(); ip != "127.0.0.1" {
			t.Errorf("LocalAddr = %s, want 127.0.0.1:*", c.LocalAddr())
		}
	})
}

// rootPriv returns the raw private key of the server's root key.
func rootPriv(t *testing.T, s *sshd) any {
	t.Helper()
	if s.rootPriv == nil {
		t.Fatal("no root private key")
	}
	return s.rootPriv
}

func TestLoadIdentity(t *testing.T) {
	dir := t.TempDir()
	priv, signer := newKey(t)
	plain := filepath.Join(dir, "id_plain")
	writePrivateKey(t, plain, priv, nil)
	enc := filepath.Join(dir, "id_enc")
	writePrivateKey(t, enc, priv, []byte("open sesame"))
	want := string(signer.PublicKey().Marshal())

	var given []byte
	pass := func(p string) func() ([]byte, error) {
		return func() ([]byte, error) { given = []byte(p); return given, nil }
	}
	tests := []struct {
		name       string
		path       string
		passphrase func() ([]byte, error)
		errorHas   string
	}{
		{name: "plain", path: plain},
		{name: "plain ignores passphrase", path: plain, passphrase: func() ([]byte, error) { t.Error("passphrase asked for a plain key"); return nil, nil }},
		{name: "encrypted", path: enc, passphrase: pass("open sesame")},
		{name: "encrypted without passphrase", path: enc, errorHas: "encrypted and no passphrase"},
		{name: "wrong passphrase", path: enc, passphrase: pass("nope"), errorHas: "wrong passphrase"},
		{name: "missing", path: filepath.Join(dir, "none"), errorHas: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadIdentity(tt.path, tt.passphrase)
			if tt.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errorHas) {
					t.Fatalf("LoadIdentity error = %v, want %q", err, tt.errorHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(s.PublicKey().Marshal()) != want {
				t.Error("loaded another key")
			}
			if given != nil && strings.Trim(string(given), "\x00") != "" {
				t.Errorf("passphrase not zeroed: %q", given)
			}
		})
	}
}

// TestKeepAlive freezes the server's processes for the connection and
// checks that a pending command fails with the connection-lost error.
func TestKeepAlive(t *testing.T) {
	s := startSSHD(t)
	opts := rootOpts(s, s.KnownHosts(t))
	opts.KeepAlive = 200 * time.Millisecond
	c, err := Dial(context.Background(), s.Addr("127.0.0.1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Run(context.Background(), "echo started; exec sleep 60", nil, &lineSignal{ch: started}, nil)
	}()
	<-started
	pids := s.children(t)
	if len(pids) == 0 {
		t.Fatal("found no per-connection sshd process")
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGCONT)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Logf("stop %d: %v", pid, err)
		}
	}
	select {
	case err := <-done:
		var le *LostError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "connection to "+s.Addr("127.0.0.1")+" lost") {
			t.Fatalf("pending Run = %v, want *LostError", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("pending Run did not fail after the server froze")
	}
	// Later calls fail at once with the same error.
	var le *LostError
	if err := c.Run(context.Background(), "true", nil, nil, nil); !errors.As(err, &le) {
		t.Errorf("Run after loss = %v, want *LostError", err)
	}
	if err := c.WriteFile(context.Background(), "/tmp/x", 0o600, strings.NewReader("x")); !errors.As(err, &le) {
		t.Errorf("WriteFile after loss = %v, want *LostError", err)
	}
}

// lineSignal is a writer that closes ch at the first newline.
type lineSignal struct {
	ch   chan struct{}
	done bool
}

func (l *lineSignal) Write(p []byte) (int, error) {
	if !l.done && strings.Contains(string(p), "\n") {
		l.done = true
		close(l.ch)
	}
	return len(p), nil
}

package ssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/fleetup/fleetup/internal/testenv"
)

// sshd is a real OpenSSH server on 127.0.0.1 and [::1], started for one
// test and killed by PID when it ends.
type sshd struct {
	Port     int
	Dir      string
	PID      int
	HostKey  ssh.PublicKey
	RootKey  ssh.Signer // authorised for root
	rootPriv ed25519.PrivateKey
	log      *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

const sshdPath = "/usr/sbin/sshd"

func newKey(t testing.TB) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, s
}

func writePrivateKey(t testing.TB, path string, priv ed25519.PrivateKey, passphrase []byte) {
	t.Helper()
	var blk *pem.Block
	var err error
	if passphrase != nil {
		blk, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", passphrase)
	} else {
		blk, err = ssh.MarshalPrivateKey(priv, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a port free on both loopback addresses, as far as can
// be told without holding it.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l4, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l4.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
		l4.Close()
		if err == nil {
			l6.Close()
			return port
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return 0
}

// startSSHD starts sshd with extra config lines appended.
func startSSHD(t *testing.T, extra ...string) *sshd {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := os.Stat(sshdPath); err != nil {
		testenv.Skip(t, "needs openssh-server ("+sshdPath+")")
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	// A root-owned 0755 directory outside /tmp's sticky 1777, so that
	// sshd's StrictModes accepts the authorized keys file.
	base := "/run/fleetup-test"
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(base, "sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		os.Remove(base) // only when no other test's server is left in it
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &sshd{Dir: dir, log: &syncBuffer{}}
	hostPriv, hostSigner := newKey(t)
	s.HostKey = hostSigner.PublicKey()
	writePrivateKey(t, filepath.Join(dir, "host_ed25519"), hostPriv, nil)
	s.rootPriv, s.RootKey = newKey(t)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(s.RootKey.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 5 {
		s.Port = freePort(t)
		conf := filepath.Join(dir, "sshd_config")
		lines := []string{
			"Port " + strconv.Itoa(s.Port),
			"ListenAddress 127.0.0.1",
			"ListenAddress ::1",
			"HostKey " + filepath.Join(dir, "host_ed25519"),
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
			"UsePAM yes",
			"PasswordAuthentication yes",
			"KbdInteractiveAuthentication yes",
			"PubkeyAuthentication yes",
			"PermitRootLogin yes",
			"AllowTcpForwarding yes",
			"UseDNS no",
			"LogLevel INFO",
			"MaxStartups 100",
			"Subsystem sftp internal-sftp",
		}
		lines = append(lines, extra...)
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", conf)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.PID = cmd.Process.Pid
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			// Everything this server started (per-connection sshd
			// processes and the commands they ran) goes with it, also
			// when a test failed half-way.
			for _, pid := range s.children(t) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			// Let the server reap them: orphans would stay zombies where
			// PID 1 does not reap.
			for i := 0; i < 100 && len(s.children(t)) > 0; i++ {
				time.Sleep(20 * time.Millisecond)
			}
			syscall.Kill(s.PID, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				syscall.Kill(s.PID, syscall.SIGKILL)
				<-exited
			}
			if t.Failed() {
				t.Logf("sshd log:\n%s", s.log.String())
			}
		})
		if lastErr = s.waitReady(exited); lastErr == nil {
			return s
		}
	}
	t.Fatalf("sshd did not start: %v\n%s", lastErr, s.log.String())
	return nil
}

func (s *sshd) waitReady(exited chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, host := range []string{"127.0.0.1", "::1"} {
		for {
			c, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(s.Port)))
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return fmt.Errorf("sshd exited")
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("sshd not listening on %s: %w", host, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Addr is the server's address on the loopback host ("127.0.0.1" or "::1").
func (s *sshd) Addr(host string) string {
	return net.JoinHostPort(host, strconv.Itoa(s.Port))
}

// KnownHosts writes a known hosts file that trusts the server on both
// addresses, and returns its path.
func (s *sshd) KnownHosts(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	var b strings.Builder
	for _, h := range []string{"127.0.0.1", "::1"} {
		b.WriteString(knownhosts.Line([]string{s.Addr(h)}, s.HostKey) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// children returns the PIDs of every descendant of the server: the
// per-connection sshd processes and what they run.
func (s *sshd) children(t testing.TB) []int {
	t.Helper()
	parent := map[int]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
	}
	var out []int
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == s.PID {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

const futransport = "futransport"

// passwordUser makes sure the throwaway user futransport exists and gives
// it a fresh random password, locked again when t ends.
func passwordUser(t *testing.T) (user string, password []byte) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "useradd", "chpasswd")
	if err := exec.Command("id", "-u", futransport).Run(); err != nil {
		out, err := exec.Command("useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", futransport).CombinedOutput()
		if err != nil {
			t.Fatalf("useradd %s: %v: %s", futransport, err, out)
		}
	}
	var rnd [12]byte
	rand.Read(rnd[:])
	pw := "Fu-" + hex.EncodeToString(rnd[:])
	set := func(line string, args ...string) {
		cmd := exec.Command("chpasswd", args...)
		cmd.Stdin = strings.NewReader(line + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("chpasswd: %v: %s", err, out)
		}
	}
	set(futransport + ":" + pw)
	t.Cleanup(func() { set(futransport+":!", "-e") })
	return futransport, []byte(pw)
}

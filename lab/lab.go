// Package lab starts a fleet of Linux test nodes on this machine and tears
// it down again. Integration tests, benchmarks and the fleetup-lab command
// use it to get real servers to deploy to without real servers.
//
// A node is a network namespace (fulab-N) joined to the host by a veth pair
// (host side fulabN), addressed 198.18.N.2/30 and fd42:5e:0:N::2/64 (the host
// side is .1 and ::1), with no default route and no DNS. Each node runs its
// own OpenSSH server in its own mount and UTS namespace, so everything a
// session on the node starts sees the node's private /tmp, /var/tmp,
// /dev/shm, /run/lock, /run/sudo, /var/lib/sudo, /home, /root and /opt
// (tmpfs), the node's own /etc/fwupd (the host's, with TestDevices=true),
// /var/lib/fwupd and /var/cache/fwupd, optionally its own copy of
// /var/lib/dpkg, and the host name nodeN. Firewall rules set on a node stay
// in that node. A plain "fwupdtool install X.cab" run as root on a node
// flashes that node's fake "Integrated Webcam" (see FwupdHistory).
// A node can be given a reboot of its own (EnableReboot, reboot.go): its
// shutdown -r, reboot and systemctl reboot hand it to the lab, which stops
// every process of the node and starts its sshd again with a new boot id.
//
// Users: the lab creates the users UserPassword, UserKey, UserSudo and
// UserSudoNoPass in the host's /etc/passwd when missing, sets their password
// (Lab.Password) and installs /etc/sudoers.d/fleetup-lab. These stay after
// Close, because other labs in other test binaries may be using them; the
// lab removes everything else it made: namespaces, veths, processes, its
// directory under /run/fleetup-lab and /etc/netns/fulab-N.
//
// Node indices 1..250 are allocated with one flock per index under
// /run/fleetup-lab, held until Close, so several test binaries can run labs
// at the same time. Leftovers of an index whose lock is free (a crashed
// test) are removed before the index is reused.
//
// Start and New need root and the programs sshd, ip, nsenter, unshare, tc,
// fwupdtool, nft and iptables.
package lab

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/fleetup/fleetup/internal/testenv"
)

// The users every node accepts. UserPassword logs in with the password,
// UserKey with the key (it has no usable password), neither may sudo.
// UserSudo logs in with either and
// needs its password for sudo; UserSudoNoPass logs in with either and sudoes
// without a password. root logs in with the key only.
const (
	UserPassword   = "fupw"
	UserKey        = "fukey"
	UserSudo       = "fusudo"
	UserSudoNoPass = "fusudonp"
)

// Users lists the lab's users (not root).
var Users = []string{UserPassword, UserKey, UserSudo, UserSudoNoPass}

// MaxNodes is the largest number of nodes one machine can run at once.
const MaxNodes = 250

// StateDir holds the index locks and every lab's directory.
const StateDir = "/run/fleetup-lab"

// Options says what lab to start.
type Options struct {
	// Nodes is how many nodes to start, 1..MaxNodes.
	Nodes int
	// IPv6Only lists node positions (0-based, into Lab.Nodes) that get no
	// IPv4 address at all, on either side of their veth.
	IPv6Only []int
	// Dpkg gives each node its own copy of /var/lib/dpkg, so that dpkg -i
	// on a node changes only that node's package database. (Files a
	// package installs land on the host's file system unless they go to a
	// node-private directory such as /opt.)
	Dpkg bool
}

// Validate reports what is wrong with o.
func (o Options) Validate() error {
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return fmt.Errorf("lab options: Nodes %d out of range 1..%d", o.Nodes, MaxNodes)
	}
	for _, p := range o.IPv6Only {
		if p < 0 || p >= o.Nodes {
			return fmt.Errorf("lab options: IPv6Only position %d out of range 0..%d", p, o.Nodes-1)
		}
	}
	return nil
}

// Lab is a running set of nodes. Close tears it down.
type Lab struct {
	// Nodes are the running nodes, in the order asked for.
	Nodes []*Node
	// Dir is the lab's directory (under StateDir), removed by Close.
	Dir string

	password  string
	keyFile   string
	knownFile string
	signer    ssh.Signer

	closeOnce sync.Once
	closeErr  error
}

// Tools are the programs a lab needs on PATH.
var Tools = []string{"sshd", "ip", "nsenter", "unshare", "tc", "fwupdtool", "nft", "iptables", "useradd", "chpasswd", "visudo"}

// New starts a lab for a test, skipping the test (failing it when
// testenv.NoSkip) without root or the needed tools. The lab is closed by
// t.Cleanup, also when New fails halfway.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTools(t, Tools...)
	l, err := start(context.Background(), opts, func(l *Lab) {
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Errorf("close lab: %v", err)
			}
		})
	})
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	return l
}

// Start starts a lab. The caller must Close it. When Start fails it has
// already torn down what it made.
func Start(ctx context.Context, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("start lab: needs root")
	}
	return start(ctx, opts, nil)
}

func start(ctx context.Context, opts Options, registered func(*Lab)) (l *Lab, err error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(StateDir, "index"), 0o755); err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	// sshd refuses to start without its privilege separation directory,
	// which only a running ssh service makes (/run is a fresh tmpfs).
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	if err := os.Chmod(StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	sweepStaleLabDirs()
	dir, err := os.MkdirTemp(StateDir, "lab-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	l = &Lab{Dir: dir}
	if registered != nil {
		registered(l)
	}
	defer func() {
		if err != nil && registered == nil {
			err = errors.Join(err, l.Close())
		}
	}()
	// sshd checks that every directory on the way to AuthorizedKeysFile
	// belongs to root and is not group or world writable.
	if err := os.Chmod(dir, 0o755); err != nil {
		return l, fmt.Errorf("start lab: %w", err)
	}
	if l.password, err = labPassword(); err != nil {
		return l, fmt.Errorf("start lab: %w", err)
	}
	if err := ensureUsers(ctx, l.password); err != nil {
		return l, fmt.Errorf("start lab: %w", err)
	}
	if err := l.writeClientKey(); err != nil {
		return l, fmt.Errorf("start lab: %w", err)
	}
	locks, err := allocate(opts.Nodes)
	if err != nil {
		return l, fmt.Errorf("start lab: %w", err)
	}
	for i, lk := range locks {
		n := newNode(l, i, lk, slices.Contains(opts.IPv6Only, i))
		l.Nodes = append(l.Nodes, n)
	}
	errs := make([]error, len(l.Nodes))
	var wg sync.WaitGroup
	for i, n := range l.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.start(ctx, opts.Dpkg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return l, fmt.Errorf("start lab: %w", err)
	}
	if err := l.WriteKnownHosts(filepath.Join(dir, "known_hosts")); err != nil {
		return l, fmt.Errorf("start lab: %w", err)
	}
	l.knownFile = filepath.Join(dir, "known_hosts")
	return l, nil
}

// writeClientKey makes the lab's ed25519 client key and the authorized
// keys directory sshd reads for every user (root included).
func (l *Lab) writeClientKey() error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate client key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "fleetup-lab")
	if err != nil {
		return fmt.Errorf("encode client key: %w", err)
	}
	l.keyFile = filepath.Join(l.Dir, "id_ed25519")
	if err := os.WriteFile(l.keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	if l.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("client key: %w", err)
	}
	line := ssh.MarshalAuthorizedKey(sshPub)
	if err := os.WriteFile(l.keyFile+".pub", line, 0o644); err != nil {
		return err
	}
	auth := l.authorizedKeysDir()
	if err := os.Mkdir(auth, 0o755); err != nil {
		return err
	}
	for _, u := range []string{"root", UserKey, UserSudo, UserSudoNoPass} {
		if err := os.WriteFile(filepath.Join(auth, u), line, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) authorizedKeysDir() string { return filepath.Join(l.Dir, "authorized_keys") }

// KeyFile is the path of the lab's private key (ed25519, OpenSSH format,
// no passphrase), accepted for root, UserKey, UserSudo and UserSudoNoPass on
// every node. Its public key is KeyFile()+".pub".
func (l *Lab) KeyFile() string { return l.keyFile }

// Signer is the lab's private key as an ssh.Signer.
func (l *Lab) Signer() ssh.Signer { return l.signer }

// Password is the password of UserPassword, UserSudo and UserSudoNoPass.
// It is made once per machine (kept in StateDir) and shared by every lab,
// since the users are.
func (l *Lab) Password() string { return l.password }

// KnownHostsFile is a known_hosts file with every node's host key for each
// of its addresses, as they were when the lab started: RotateHostKey does
// not change it, so clients using it see the rotated key as changed. Use
// WriteKnownHosts for a current one.
func (l *Lab) KnownHostsFile() string { return l.knownFile }

// WriteKnownHosts writes a known_hosts file with every node's current host
// key for each of its addresses.
func (l *Lab) WriteKnownHosts(path string) error {
	var b strings.Builder
	for _, n := range l.Nodes {
		var addrs []string
		if n.IPv4.IsValid() {
			addrs = append(addrs, n.IPv4.String())
		}
		addrs = append(addrs, n.IPv6.String())
		b.WriteString(strings.Join(addrs, ","))
		b.WriteByte(' ')
		b.Write(ssh.MarshalAuthorizedKey(n.HostKey))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write known hosts: %w", err)
	}
	return nil
}

// Close tears the lab down: it kills every process in every node, deletes
// the veths and namespaces, removes the lab's directory and releases the
// node indices. It is safe to call more than once and on a lab that failed
// to start; later calls return the first call's result.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		errs := make([]error, len(l.Nodes))
		var wg sync.WaitGroup
		for i, n := range l.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = n.close()
			}()
		}
		wg.Wait()
		if l.Dir != "" {
			if err := os.RemoveAll(l.Dir); err != nil {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			l.closeErr = fmt.Errorf("close lab: %w", err)
		}
	})
	return l.closeErr
}

// sweepStaleLabDirs removes lab directories whose process is gone.
func sweepStaleLabDirs() {
	ents, _ := os.ReadDir(StateDir)
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, "lab-") {
			continue
		}
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, "lab-"), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(filepath.Join(StateDir, name))
		}
	}
}

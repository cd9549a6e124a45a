package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A node's Samba: a real smbd (Samba 4.17) in the node's namespaces with a
// configuration and state of its own under the node's directory (never the
// machine's /etc/samba or /var/lib/samba), serving one share, ADMIN$, to one
// tdbsam user: SMB2_10 to SMB3, signing mandatory, NTLMv2 only. Samba
// refuses to create services over \PIPE\svcctl (WERR_ACCESS_DENIED), so it
// stands in for a Windows server whose service manager says no.

// SambaTools are the programs StartSamba needs.
var SambaTools = []string{"smbd", "smbpasswd"}

// SambaOptions says how to start a node's Samba.
type SambaOptions struct {
	// User and Password are the account (a Unix user of the machine: the
	// share's files belong to it). Empty: UserPassword and the lab's
	// password.
	User, Password string
	// Logf, when set, receives a line for each step of the start and close.
	Logf func(format string, args ...any)
}

// SambaServer is a running smbd. Close stops it.
type SambaServer struct {
	node  *Node
	dir   string
	share string
	conf  string

	cmd    *exec.Cmd
	exited chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// StartSamba starts smbd on port 445 of the node's addresses. The caller
// must Close it before the lab closes.
func (n *Node) StartSamba(opts SambaOptions) (s *SambaServer, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if opts.User == "" {
		opts.User = UserPassword
	}
	if opts.Password == "" && n.lab != nil {
		opts.Password = n.lab.Password()
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	s = &SambaServer{node: n, dir: filepath.Join(n.Dir, "samba")}
	s.share = filepath.Join(s.dir, "ADMIN$")
	s.conf = filepath.Join(s.dir, "smb.conf")
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("%s: start samba: %w", n.Name, err), s.Close())
			s = nil
		}
	}()
	u, err := user.Lookup(opts.User)
	if err != nil {
		return s, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []string{"private", "state", "cache", "lock", "pid", "log", "ncalrpc", "ADMIN$"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return s, err
		}
	}
	os.Chmod(filepath.Join(s.dir, "private"), 0o700)
	// The share looks like C:\Windows: a Temp directory in it.
	if err := os.Mkdir(filepath.Join(s.share, "Temp"), 0o755); err != nil {
		return s, err
	}
	for _, d := range []string{s.share, filepath.Join(s.share, "Temp")} {
		if err := os.Chown(d, uid, gid); err != nil {
			return s, err
		}
	}
	var ifaces []string
	for _, a := range n.Addrs() {
		ifaces = append(ifaces, a.String())
	}
	if err := os.WriteFile(s.conf, []byte(s.config(strings.ToUpper(n.Name), ifaces, opts.User)), 0o644); err != nil {
		return s, err
	}
	pw := exec.CommandContext(ctx, "smbpasswd", "-c", s.conf, "-a", "-s", opts.User)
	pw.Stdin = strings.NewReader(opts.Password + "\n" + opts.Password + "\n")
	if out, err := pw.CombinedOutput(); err != nil {
		return s, fmt.Errorf("smbpasswd -a %s: %w: %s", opts.User, err, strings.TrimSpace(string(out)))
	}
	out, err := os.OpenFile(filepath.Join(s.dir, "smbd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return s, err
	}
	defer out.Close()
	// Its own process group (Setpgid) and --no-process-group: smbd's
	// shutdown signals its process group, which is then its own.
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(n.PID()), "-n", "-m", "-u", "--",
		"smbd", "--foreground", "--no-process-group", "-s", s.conf)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return s, fmt.Errorf("start smbd: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	for _, a := range ifaces {
		for {
			d := net.Dialer{Timeout: time.Second}
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a, "445"))
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.exited:
				return s, fmt.Errorf("smbd exited: %s", s.tail())
			case <-ctx.Done():
				return s, fmt.Errorf("wait for smbd on %s: %w: %s", a, err, s.tail())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	opts.Logf("%s: smbd listening on %v", n.Name, ifaces)
	return s, nil
}

func (s *SambaServer) config(name string, ifaces []string, user string) string {
	d := func(sub string) string { return filepath.Join(s.dir, sub) }
	return fmt.Sprintf(`# smbd of lab node %[1]s (package lab)
[global]
	netbios name = %[1]s
	workgroup = WORKGROUP
	server role = standalone server
	security = user
	passdb backend = tdbsam:%[2]s/passdb.tdb
	private dir = %[2]s
	state directory = %[3]s
	cache directory = %[4]s
	lock directory = %[5]s
	pid directory = %[6]s
	ncalrpc dir = %[7]s
	log file = %[8]s/log.%%m
	log level = 1
	max log size = 10000
	interfaces = %[9]s
	bind interfaces only = yes
	smb ports = 445
	disable netbios = yes
	server min protocol = SMB2_10
	server max protocol = SMB3
	server signing = mandatory
	ntlm auth = ntlmv2-only
	map to guest = never
	restrict anonymous = 2
	load printers = no
	printing = bsd
	printcap name = /dev/null
	disable spoolss = yes
	usershare path =
	dns proxy = no
	winbind enum users = no

[ADMIN$]
	path = %[10]s
	read only = no
	valid users = %[11]s
	browseable = no
`, name, d("private"), d("state"), d("cache"), d("lock"), d("pid"), d("ncalrpc"), d("log"),
		strings.Join(ifaces, " "), s.share, user)
}

func (s *SambaServer) tail() string {
	var parts []string
	files, _ := filepath.Glob(filepath.Join(s.dir, "log", "log.*"))
	for _, f := range append([]string{filepath.Join(s.dir, "smbd.out")}, files...) {
		b, _ := os.ReadFile(f)
		if len(b) > 1000 {
			b = b[len(b)-1000:]
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			parts = append(parts, filepath.Base(f)+": "+t)
		}
	}
	return strings.Join(parts, "; ")
}

// Share is the host directory behind the ADMIN$ share; it holds an empty
// Temp directory at the start, as C:\Windows does.
func (s *SambaServer) Share() string { return s.share }

// ConfigFile is smbd's configuration (for smbclient -s, net -s, ...).
func (s *SambaServer) ConfigFile() string { return s.conf }

// Close stops smbd and its children and removes its directory. It is safe
// to call more than once.
func (s *SambaServer) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.cmd != nil && s.cmd.Process != nil {
			pgid := s.cmd.Process.Pid
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
			}
			// Children that outlive the parent (smbd-notifyd, cleanupd).
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-s.exited
			deadline := time.Now().Add(10 * time.Second)
			for syscall.Kill(-pgid, 0) == nil {
				if time.Now().After(deadline) {
					errs = append(errs, fmt.Errorf("smbd process group %d still running", pgid))
					break
				}
				syscall.Kill(-pgid, syscall.SIGKILL)
				time.Sleep(20 * time.Millisecond)
			}
		}
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("%s: close samba: %w", s.node.Name, err)
		}
	})
	return s.closeErr
}

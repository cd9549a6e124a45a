package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/lab/winsim"
	"github.com/fleetup/fleetup/lab/winsim/bcryptshim"
)

// A node's Windows stand-in (package winsim): an impacket SMB server on
// port 445 of the node's addresses, serving ADMIN$ from the node's own
// Wine prefix and MS-SCMR on \PIPE\svcctl carried out by that prefix's
// service manager (wine sc.exe, with a persistent wineserver), so that
// services created over the network are real (Wine) Windows services. The
// server, the wineserver and every Wine process run in the node's network
// and mount namespaces.

// WindowsPort is where the stand-in serves SMB.
const WindowsPort = 445

// WindowsTools are the programs StartWindows needs.
var WindowsTools = []string{winsim.Python, winsim.Wine, winsim.WineServer}

// WindowsOptions says how to start a node's Windows stand-in.
type WindowsOptions struct {
	// User and Password are the one account the server accepts (NTLMv2).
	// Empty: UserPassword and the lab's password, as the Linux nodes have.
	User, Password string
	// NoAdminShare serves no ADMIN$ share: tree connects to it fail
	// (STATUS_BAD_NETWORK_NAME), as on a server whose admin shares are off.
	NoAdminShare bool
	// RefuseServices makes CreateService fail with ERROR_ACCESS_DENIED.
	RefuseServices bool
	// Logf, when set, receives a line for each step of the start and close.
	Logf func(format string, args ...any)
}

// WindowsNode is a running Windows stand-in. Close stops it.
type WindowsNode struct {
	node   *Node
	opts   WindowsOptions
	dir    string // the node's winsim directory: prefix, log, password
	prefix string
	log    string

	cmd    *exec.Cmd
	exited chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// StartWindows starts the node's Windows stand-in: it copies the machine's
// Wine prefix template (made once per machine, see WinePrefixTemplate) into
// the node's directory, installs bcryptprimitives.dll and the netsh.exe
// stand-in into its system32, and starts the server on port 445 of the
// node's addresses (IPv4 and IPv6; IPv6 only on an IPv6-only node). The
// caller must Close it before the lab closes (with testing: register Close
// with t.Cleanup after lab.New).
func (n *Node) StartWindows(opts WindowsOptions) (w *WindowsNode, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if opts.User == "" {
		opts.User = UserPassword
	}
	if opts.Password == "" && n.lab != nil {
		opts.Password = n.lab.Password()
	}
	if opts.Password == "" {
		return nil, fmt.Errorf("%s: start windows: no password", n.Name)
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	w = &WindowsNode{node: n, opts: opts, dir: filepath.Join(n.Dir, "winsim")}
	w.prefix = filepath.Join(w.dir, "wine")
	w.log = filepath.Join(n.Dir, "winsim.log")
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("%s: start windows: %w", n.Name, err), w.Close())
			w = nil
		}
	}()
	start := time.Now()
	tmpl, err := WinePrefixTemplate(ctx)
	if err != nil {
		return w, err
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return w, err
	}
	if err := copyPrefix(tmpl, w.prefix); err != nil {
		return w, fmt.Errorf("copy wine prefix: %w", err)
	}
	// Wine makes C:\windows\temp; Windows has C:\Windows\Temp, and the
	// SMB server, on a case-sensitive file system, serves the name as it is.
	win := filepath.Join(w.prefix, "drive_c", "windows")
	if err := os.Rename(filepath.Join(win, "temp"), filepath.Join(win, "Temp")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return w, err
	}
	if err := os.MkdirAll(filepath.Join(win, "Temp"), 0o755); err != nil {
		return w, err
	}
	if err := bcryptshim.Install(w.prefix); err != nil {
		return w, err
	}
	netsh := filepath.Join(w.prefix, "drive_c", "windows", "system32", "netsh.exe")
	os.Remove(netsh) // a link to the template's: never write through it
	if err := winsim.BuildNetsh(ctx, netsh); err != nil {
		return w, err
	}
	opts.Logf("%s: wine prefix %s ready in %v", n.Name, w.prefix, time.Since(start).Round(time.Millisecond))
	script := filepath.Join(w.dir, "winsim.py")
	if err := os.WriteFile(script, winsim.Script, 0o644); err != nil {
		return w, err
	}
	pwFile := filepath.Join(w.dir, "password")
	if err := os.WriteFile(pwFile, []byte(opts.Password+"\n"), 0o600); err != nil {
		return w, err
	}
	ready := filepath.Join(w.dir, "ready")
	args := []string{"-t", strconv.Itoa(n.PID()), "-n", "-m", "-u", "--",
		winsim.Python, script,
		"--bind", "::", "--port", strconv.Itoa(WindowsPort),
		"--prefix", w.prefix,
		"--user", opts.User, "--password-file", pwFile,
		"--name", strings.ToUpper(n.Name), "--domain", strings.ToUpper(n.Name),
		"--log", w.log, "--ready-file", ready,
	}
	if opts.NoAdminShare {
		args = append(args, "--no-admin-share")
	}
	if opts.RefuseServices {
		args = append(args, "--refuse-services")
	}
	if n.PID() == 0 {
		return w, errors.New("node not running")
	}
	out, err := os.OpenFile(filepath.Join(n.Dir, "winsim.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return w, err
	}
	defer out.Close()
	cmd := exec.Command("nsenter", args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return w, fmt.Errorf("start winsim: %w", err)
	}
	w.cmd, w.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(w.exited)
	}()
	if err := w.waitReady(ctx, ready); err != nil {
		return w, err
	}
	opts.Logf("%s: windows stand-in listening on port %d after %v", n.Name, WindowsPort, time.Since(start).Round(time.Millisecond))
	return w, nil
}

// waitReady waits for the server's ready file, then for port 445 on each
// of the node's addresses.
func (w *WindowsNode) waitReady(ctx context.Context, ready string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for _, a := range append([]string{""}, addrStrings(w.node)...) {
		for {
			var err error
			if a == "" {
				_, err = os.Stat(ready)
			} else {
				var c net.Conn
				d := net.Dialer{Timeout: time.Second}
				if c, err = d.DialContext(ctx, "tcp", net.JoinHostPort(a, strconv.Itoa(WindowsPort))); err == nil {
					c.Close()
				}
			}
			if err == nil {
				break
			}
			select {
			case <-w.exited:
				return fmt.Errorf("winsim exited: %s", w.tail())
			case <-ctx.Done():
				return fmt.Errorf("wait for winsim: %w (last: %v): %s", ctx.Err(), err, w.tail())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func addrStrings(n *Node) []string {
	var s []string
	for _, a := range n.Addrs() {
		s = append(s, a.String())
	}
	return s
}

func (w *WindowsNode) tail() string {
	var parts []string
	for _, f := range []string{filepath.Join(w.node.Dir, "winsim.out"), w.log} {
		b, _ := os.ReadFile(f)
		if len(b) > 1500 {
			b = b[len(b)-1500:]
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			parts = append(parts, filepath.Base(f)+": "+s)
		}
	}
	return strings.Join(parts, "; ")
}

// Node is the lab node the stand-in runs in.
func (w *WindowsNode) Node() *Node { return w.node }

// Prefix is the host directory of the node's Wine prefix (WINEPREFIX).
func (w *WindowsNode) Prefix() string { return w.prefix }

// AdminShare is the host directory behind ADMIN$: the prefix's
// drive_c/windows (also when NoAdminShare keeps it from being served).
func (w *WindowsNode) AdminShare() string {
	return filepath.Join(w.prefix, "drive_c", "windows")
}

// Log is the server's log (impacket's and winsim's, with every wine call
// and its output). It stays readable after Close, until the lab closes.
func (w *WindowsNode) Log() string {
	b, _ := os.ReadFile(w.log)
	return string(b)
}

// Wine runs a Wine program (e.g. "sc.exe", "query", NAME) in the node's
// prefix, inside the node, and returns its combined output.
func (w *WindowsNode) Wine(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{"WINEPREFIX=" + w.prefix, "WINEDEBUG=-all", "WINESERVER=" + winsim.WineServer,
		"WINEDLLOVERRIDES=mscoree,mshtml=;winemenubuilder.exe=d", winsim.Wine}, args...)
	return w.node.Exec(ctx, "env", argv...)
}

// Services lists the Win32 services Wine's service manager knows in the
// prefix (the subkeys of HKLM\System\CurrentControlSet\Services whose
// Type is a Win32 service), sorted.
func (w *WindowsNode) Services(ctx context.Context) ([]string, error) {
	out, err := w.Wine(ctx, "reg.exe", "query", `HKLM\System\CurrentControlSet\Services`, "/s")
	if err != nil {
		return nil, fmt.Errorf("%s: list services: %w", w.node.Name, err)
	}
	return parseServices(out), nil
}

// parseServices reads `reg query HKLM\...\Services /s` output: the keys
// directly below Services with a Type value that has a Win32 service bit
// (0x10 own process, 0x20 shared process).
func parseServices(out []byte) []string {
	const root = `hkey_local_machine\system\currentcontrolset\services\`
	var names []string
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "HKEY_") {
			cur = ""
			rest, ok := strings.CutPrefix(strings.ToLower(line), root)
			if ok && rest != "" && !strings.Contains(rest, `\`) {
				cur = line[len(root):]
			}
			continue
		}
		f := strings.Fields(line)
		if cur == "" || len(f) != 3 || f[0] != "Type" || f[1] != "REG_DWORD" {
			continue
		}
		if v, err := strconv.ParseUint(strings.TrimPrefix(f[2], "0x"), 16, 32); err == nil && v&0x30 != 0 {
			names = append(names, cur)
		}
	}
	sort.Strings(names)
	return names
}

// FirewallRule is a rule of the netsh stand-in's file.
type FirewallRule struct {
	Name      string `json:"name"`
	Dir       string `json:"dir"`
	Action    string `json:"action"`
	Protocol  string `json:"protocol,omitempty"`
	LocalPort string `json:"localport,omitempty"`
	RemoteIP  string `json:"remoteip,omitempty"`
}

// FirewallRules are the names of the rules the prefix's netsh.exe holds
// (C:\Windows\fleetup-lab-firewall.json), in the order they were added.
func (w *WindowsNode) FirewallRules() ([]string, error) {
	rules, err := w.FirewallRuleDetails()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range rules {
		names = append(names, r.Name)
	}
	return names, nil
}

// FirewallRuleDetails are the rules the prefix's netsh.exe holds.
func (w *WindowsNode) FirewallRuleDetails() ([]FirewallRule, error) {
	b, err := os.ReadFile(filepath.Join(w.AdminShare(), winsim.FirewallFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: firewall rules: %w", w.node.Name, err)
	}
	var rules []FirewallRule
	if err := json.Unmarshal(b, &rules); err != nil {
		return nil, fmt.Errorf("%s: firewall rules: %w", w.node.Name, err)
	}
	return rules, nil
}

// Processes lists the running processes of the node's prefix (those with
// WINEPREFIX set to it: the wineserver, services.exe and what it started,
// e.g. services of a run), not the SMB server itself.
func (w *WindowsNode) Processes() ([]Process, error) {
	return prefixProcesses(w.prefix)
}

func prefixProcesses(prefix string) ([]Process, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	want := []byte("WINEPREFIX=" + prefix)
	var ps []Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || deadOrZombie(pid) {
			continue
		}
		found := false
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				found = true
				break
			}
		}
		if !found {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		c := strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		if strings.Contains(c, "winsim.py") {
			continue
		}
		owner := "?"
		if fi, err := os.Stat(filepath.Join("/proc", e.Name())); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				owner = strconv.Itoa(int(st.Uid))
				if st.Uid == 0 {
					owner = "root"
				}
			}
		}
		ps = append(ps, Process{PID: pid, User: owner, Cmdline: c})
	}
	return ps, nil
}

// Close stops the server, the wineserver and every process of the prefix,
// and removes the prefix. It is safe to call more than once.
func (w *WindowsNode) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.close() })
	return w.closeErr
}

func (w *WindowsNode) close() error {
	var errs []error
	if w.cmd != nil && w.cmd.Process != nil {
		// SIGTERM: the server stops the wineserver (wineserver -k) and exits.
		w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
			<-w.exited
		}
	}
	if w.node.PID() != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		w.node.Exec(ctx, "env", "WINEPREFIX="+w.prefix, winsim.WineServer, "-k")
		cancel()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ps, err := prefixProcesses(w.prefix)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(ps) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("wine processes left: %v", ps))
			break
		}
		for _, p := range ps {
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.RemoveAll(w.dir); err != nil {
		errs = append(errs, err)
	}
	w.opts.Logf("%s: windows stand-in closed", w.node.Name)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close windows: %w", w.node.Name, err)
	}
	return nil
}

// templateVersion names the template; bump it when its making changes.
const templateVersion = "1"

var templateMu sync.Mutex

// WinePrefixTemplate returns the machine's template Wine prefix, making it
// on first use (wine64 wineboot -i, ~10-60 s): a plain prefix with netsh.exe
// loaded native first (so that the stand-in in a copy's system32 runs, not
// Wine's). It lives in StateDir, keyed by the Wine version, and stays after
// the lab closes, like the lab's users; labs of other test binaries share
// it (an flock guards the making). Nodes get copies (StartWindows).
func WinePrefixTemplate(ctx context.Context) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	ver, err := exec.CommandContext(ctx, winsim.Wine, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("wine prefix template: %s --version: %w", winsim.Wine, err)
	}
	v := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(strings.TrimSpace(string(ver))))
	dir := filepath.Join(StateDir, "wine-template-"+v+"-"+templateVersion)
	if _, err := os.Stat(filepath.Join(dir, ".fleetup-ready")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, ".fleetup-ready")); err == nil {
		return dir, nil
	}
	os.RemoveAll(dir)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := makeTemplate(ctx, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("wine prefix template: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

func makeTemplate(ctx context.Context, prefix string) error {
	logf, err := os.Create(prefix + ".log")
	if err != nil {
		return err
	}
	defer logf.Close()
	defer os.Remove(prefix + ".log")
	env := append(os.Environ(), "WINEPREFIX="+prefix, "WINEDEBUG=-all", "WINESERVER="+winsim.WineServer,
		"WINEDLLOVERRIDES=mscoree,mshtml=;winemenubuilder.exe=d")
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		cmd.Stdin = nil
		// A file, not a pipe: the prefix's system processes outlive the
		// command and would hold a pipe open.
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Run(); err != nil {
			logf.Sync()
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(b))
		}
		return nil
	}
	steps := [][]string{
		{winsim.Wine, "wineboot", "-i"},
		{winsim.Wine, "reg.exe", "add", `HKCU\Software\Wine\DllOverrides`, "/v", "netsh.exe", "/d", "native", "/f"},
		{winsim.WineServer, "-k"},
		{winsim.WineServer, "-w"},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil && s[0] != winsim.WineServer {
			return err
		}
	}
	user, err := os.ReadFile(filepath.Join(prefix, "user.reg"))
	if err != nil {
		return err
	}
	if !bytes.Contains(user, []byte(`"netsh.exe"="native"`)) {
		return errors.New("user.reg lacks the netsh.exe override after wineboot")
	}
	return os.WriteFile(filepath.Join(prefix, ".fleetup-ready"), nil, 0o644)
}

// immutableExt are the extensions of the files copyPrefix links instead of
// copying: Wine's programs and libraries, which nothing writes in place.
var immutableExt = map[string]bool{
	".dll": true, ".exe": true, ".sys": true, ".drv": true, ".ocx": true, ".acm": true,
	".cpl": true, ".tlb": true, ".nls": true, ".ax": true, ".ds": true, ".mui": true, ".com": true,
}

// copyPrefix copies the template prefix to dst: programs and libraries as
// hard links (the copy takes ~30 ms instead of ~2.5 s for ~700 MB), the
// rest (registry, directories, symlinks such as dosdevices) as copies.
func copyPrefix(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case !d.Type().IsRegular():
			return nil
		case immutableExt[strings.ToLower(filepath.Ext(path))]:
			return os.Link(path, target)
		default:
			return copyFile(path, target, info.Mode().Perm())
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

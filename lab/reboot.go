package lab

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Reboots. A network namespace cannot reboot, so the lab gives a node a
// reboot of its own (EnableReboot): the commands fleetup would use on a
// real server, shutdown -r, reboot and systemctl reboot, found first on the
// PATH of root's sessions (ShimDir), hand the node to the lab, which
//
//   - writes the request's message to the node's logged-in users (wall on
//     the node, which reads the node's own utmp: the node's sshd records
//     its pty sessions there), waits the delay shutdown was given (+MIN),
//   - stops every process of the node (its sshd and every session, as
//     KillSSHD does, then everything else; a placeholder keeps the
//     namespaces, so the node's files survive as on a disk),
//   - waits Down, gives the node a new boot id (the node's
//     /proc/sys/kernel/random/boot_id is a file of the node's own), empties
//     its utmp, runs the node's BootScript when there is one (the node's
//     rc.local), and
//   - starts the node's sshd again with the same host key (StartSSHD),
//     unless the node was told not to come back (NoReturn).

// BootScript is run by sh as root on the node, by a lab reboot, after the
// node's processes are stopped and before its sshd starts again: what a
// real server's boot would do (a firmware staged by an install becoming
// active, say). It is in the node's private /opt.
const BootScript = "/opt/rc.local"

// RebootOptions configure a node's lab reboots.
type RebootOptions struct {
	// Down is how long the node stays down between its processes being
	// stopped and its sshd starting again (1s when 0).
	Down time.Duration
	// NoReturn makes a reboot leave the node down: its sshd is not
	// started again (StartSSHD brings it back).
	NoReturn bool
	// NoBootScript makes a reboot skip the node's BootScript: what an
	// install staged for the next boot does not take (a firmware that
	// did not activate).
	NoBootScript bool
}

// shutdownGrace is the time between a reboot's last message to the
// logged-in users and the end of every process of the node.
const shutdownGrace = time.Second

// rebootState is a node's EnableReboot.
type rebootState struct {
	opts    RebootOptions
	mu      sync.Mutex
	reboots int
	err     error // the last reboot's failure
	busy    bool
	done    chan struct{} // closed when the watcher ends
}

// shutdownShim is the node's shutdown, reboot and systemctl (its reboot
// verb; other verbs run the real systemctl): it checks it runs as root,
// reads "shutdown -r [now|+MIN] [MESSAGE...]", and writes the request for
// the lab to REQ (delay in seconds, then the message).
const shutdownShim = `#!/bin/sh
# lab node's %[1]s: hands a reboot to the lab (lab.EnableReboot).
req=%[2]s
me=${0##*/}
if [ "$me" = systemctl ]; then
  verb=
  for a in "$@"; do case $a in -*) ;; *) verb=$a; break ;; esac; done
  [ "$verb" = reboot ] || exec /usr/bin/systemctl "$@"
  set -- -r now
fi
[ "$(id -u)" = 0 ] || { echo "$me: must be root" >&2; exit 1; }
if [ "$me" = reboot ]; then set -- -r now; fi
act= when=now
while [ $# -gt 0 ]; do
  case $1 in
  -r|--reboot) act=reboot ;;
  -h|-P|-H|--poweroff|--halt) act=halt ;;
  -c) rm -f "$req"; echo "lab: reboot cancelled" >&2; exit 0 ;;
  --no-wall|-q|-f|-n) ;;
  -*) echo "$me: option $1 not known to the lab" >&2; exit 1 ;;
  *) break ;;
  esac
  shift
done
[ "$act" = reboot ] || { echo "$me: the lab node only reboots (shutdown -r)" >&2; exit 1; }
if [ $# -gt 0 ]; then when=$1; shift; fi
case $when in
now) delay=0 ;;
+[0-9]*) delay=$(( ${when#+} * 60 )) ;;
*) echo "$me: time $when not known to the lab (now or +MINUTES)" >&2; exit 1 ;;
esac
printf '%%s\n%%s\n' "$delay" "$*" > "$req.tmp" && mv -f "$req.tmp" "$req"
`

// EnableReboot gives the node its own boot id and utmp and the lab's
// shutdown, reboot and systemctl, and starts watching for reboot requests
// until the node is closed. Calling it again changes the options.
func (n *Node) EnableReboot(opts RebootOptions) error {
	if opts.Down <= 0 {
		opts.Down = time.Second
	}
	n.mu.Lock()
	rs := n.reboot
	if rs != nil {
		n.mu.Unlock()
		rs.mu.Lock()
		rs.opts = opts
		rs.mu.Unlock()
		return nil
	}
	n.mu.Unlock()
	ctx := context.Background()
	bootID := filepath.Join(n.Dir, "boot_id")
	if err := writeBootID(bootID); err != nil {
		return fmt.Errorf("%s: enable reboot: %w", n.Name, err)
	}
	// utmp: wall and sshd use /run/utmp (/var/run is /run on Debian).
	// The host's is made, empty, when missing (a Debian machine has one
	// from its boot), so that each node can have its own over it.
	if err := withSetupLock(func() error {
		f, err := os.OpenFile("/run/utmp", os.O_CREATE|os.O_RDONLY, 0o664)
		if err != nil {
			return err
		}
		return f.Close()
	}); err != nil {
		return fmt.Errorf("%s: enable reboot: /run/utmp: %w", n.Name, err)
	}
	utmp := filepath.Join(n.Dir, "utmp")
	if err := os.WriteFile(utmp, nil, 0o664); err != nil {
		return fmt.Errorf("%s: enable reboot: %w", n.Name, err)
	}
	mounts := "mount --bind " + shellQuote(bootID) + " /proc/sys/kernel/random/boot_id && mount --bind " + shellQuote(utmp) + " /run/utmp" +
		" && { chgrp utmp /run/utmp 2>/dev/null || true; }"
	if _, err := n.Shell(ctx, mounts); err != nil {
		return fmt.Errorf("%s: enable reboot: %w", n.Name, err)
	}
	req := filepath.Join(n.Dir, "reboot.request")
	for _, name := range []string{"shutdown", "reboot", "systemctl"} {
		if err := n.Shim(name, fmt.Sprintf(shutdownShim, name, shellQuote(req))); err != nil {
			return fmt.Errorf("%s: enable reboot: %w", n.Name, err)
		}
	}
	rs = &rebootState{opts: opts, done: make(chan struct{})}
	n.mu.Lock()
	n.reboot = rs
	n.mu.Unlock()
	go n.watchReboots(rs, req)
	return nil
}

// writeBootID writes a new random boot id (a UUID, as the kernel's) into
// path in place: the node's boot_id is a bind mount of that file.
func writeBootID(path string) error {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x\n", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o444)
	if err != nil {
		return err
	}
	_, err = f.WriteString(id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// BootID is the node's boot id as its sessions read it; "" before
// EnableReboot.
func (n *Node) BootID() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "boot_id"))
	return strings.TrimSpace(string(b))
}

// Reboots is how many lab reboots the node went through (complete or
// left down by NoReturn), and the last one's failure.
func (n *Node) Reboots() (int, error) {
	n.mu.Lock()
	rs := n.reboot
	n.mu.Unlock()
	if rs == nil {
		return 0, nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.reboots, rs.err
}

// Rebooting reports whether a lab reboot of the node is in progress.
func (n *Node) Rebooting() bool {
	n.mu.Lock()
	rs := n.reboot
	n.mu.Unlock()
	if rs == nil {
		return false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.busy
}

// watchReboots polls for the shims' request file until the node is closed.
func (n *Node) watchReboots(rs *rebootState, req string) {
	defer close(rs.done)
	for n.PID() != 0 {
		time.Sleep(50 * time.Millisecond)
		b, err := os.ReadFile(req)
		if err != nil {
			continue
		}
		lines := strings.SplitN(string(b), "\n", 2)
		delay, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
		msg := ""
		if len(lines) > 1 {
			msg = strings.TrimSpace(lines[1])
		}
		rs.mu.Lock()
		rs.busy = true
		opts := rs.opts
		rs.mu.Unlock()
		err = n.labReboot(req, time.Duration(delay)*time.Second, msg, opts)
		if err != nil {
			n.logf("lab: reboot: %v", err)
		}
		rs.mu.Lock()
		rs.busy = false
		rs.reboots++
		rs.err = err
		rs.mu.Unlock()
	}
}

// labReboot is one reboot of the node (see the top of this file). The
// request stays in place until the delay has passed, so shutdown -c can
// still cancel it.
func (n *Node) labReboot(req string, delay time.Duration, msg string, opts RebootOptions) error {
	ctx := context.Background()
	wall := func(text string) {
		if _, _, err := n.run(ctx, strings.NewReader(text+"\n"), true, "wall"); err != nil {
			n.logf("lab: reboot: wall: %v", err)
		}
	}
	if delay > 0 {
		text := fmt.Sprintf("The system will reboot in %d minute(s)!", int(delay/time.Minute))
		if msg != "" {
			text += "\n" + msg
		}
		wall(text)
		time.Sleep(delay)
		if _, err := os.Stat(req); err != nil {
			return nil // cancelled (shutdown -c)
		}
	}
	_ = os.Remove(req)
	text := "The system will reboot now!"
	if msg != "" {
		text += "\n" + msg
	}
	wall(text)
	// A real shutdown takes a moment before it stops the sessions: what
	// wall wrote reaches the users' terminals meanwhile (sshd forwards
	// it from the pty).
	time.Sleep(shutdownGrace)
	n.logf("lab: reboot: stopping every process of the node")
	if err := n.KillSSHD(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		ps, err := n.Kill(syscall.SIGKILL, func(Process) bool { return true })
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			break
		}
		if attempt == 100 {
			return fmt.Errorf("processes still there after killing them 100 times: %v", ps)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(opts.Down)
	if err := writeBootID(filepath.Join(n.Dir, "boot_id")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "utmp"), nil, 0o664); err != nil {
		return err
	}
	if opts.NoBootScript {
		n.logf("lab: reboot: %s not run (NoBootScript)", BootScript)
	} else if out, err := n.Shell(ctx, "if [ -f "+BootScript+" ]; then sh "+BootScript+"; fi"); err != nil {
		n.logf("lab: reboot: %s: %v: %s", BootScript, err, out)
	}
	if opts.NoReturn {
		n.logf("lab: reboot: the node stays down (NoReturn)")
		return nil
	}
	n.logf("lab: reboot: starting sshd again")
	return n.StartSSHD()
}

// logf appends a line to the node's start.log.
func (n *Node) logf(format string, args ...any) {
	f, err := os.OpenFile(filepath.Join(n.Dir, "start.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, format+"\n", args...)
}

package runstate

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// Owner identifies the process that owns a piece of run state across pid
// reuse: its pid and the time it started. Start is in the unit of the
// platform it was read on (clock ticks after boot from /proc/PID/stat on
// Linux, microseconds since 1970 from sysctl kern.proc.pid on macOS,
// 100-nanosecond intervals since 1601 from GetProcessTimes on Windows);
// state files never leave the machine they were written on, so values are
// only ever compared with values of the same kind. 0 means unknown.
type Owner struct {
	PID   int
	Start uint64
}

// Liveness is the decision whether an Owner still runs, and why.
type Liveness struct {
	Alive bool
	// Reason says in a phrase what the decision rests on, e.g. "pid 812
	// is another process (started at 9134, the owner at 8870)".
	Reason string
}

func (l Liveness) String() string {
	if l.Alive {
		return "alive: " + l.Reason
	}
	return "dead: " + l.Reason
}

// errNoProcess is what inspect returns for a pid no process holds.
var errNoProcess = errors.New("no such process")

// procInfo is what the platform tells about a running pid.
type procInfo struct {
	start  uint64 // in the platform's unit, see Owner
	exited bool   // the process has ended but its pid is still held (a zombie)
}

var self = sync.OnceValue(func() Owner {
	pid := os.Getpid()
	o := Owner{PID: pid}
	if p, err := inspect(pid); err == nil {
		o.Start = p.start
	}
	return o
})

// Self returns this process as an Owner. Its Start is 0 where the
// platform does not tell a process's start time.
func Self() Owner { return self() }

// Check decides whether o still runs. This is the one liveness rule for
// every kind of run state (journal runs, firewall state files, FTP
// credentials):
//
//   - no pid, or no process holds the pid: dead;
//   - the pid is held by a process that has ended (a zombie on Unix, a
//     process whose handle is still open on Windows): dead;
//   - the pid's process started at another time than o: dead, the pid was
//     reused by another process;
//   - same start time: alive;
//   - the pid exists but a start time is unknown (o was written without
//     one, or the platform would not tell the process's): alive. A live
//     manager's state must never be taken for a dead one's, since what a
//     clean-up then removes (firewall rules, engines on nodes) would pull
//     the ground from under a running deploy; a reused pid is then taken
//     for the owner, and the Reason says so.
//
// The program's name plays no part: a reused pid may well run another
// fleetup.
func (o Owner) Check() Liveness {
	if o.PID <= 0 {
		return Liveness{Reason: fmt.Sprintf("no pid recorded (pid %d)", o.PID)}
	}
	p, err := inspect(o.PID)
	if err == nil {
		switch {
		case p.exited:
			return Liveness{Reason: fmt.Sprintf("pid %d has exited (its pid is not released yet)", o.PID)}
		case o.Start == 0:
			return Liveness{Alive: true, Reason: fmt.Sprintf("pid %d runs; no start time was recorded, so a reused pid cannot be told from the owner: taken as alive", o.PID)}
		case p.start != o.Start:
			return Liveness{Reason: fmt.Sprintf("pid %d is another process (started at %d, the owner at %d): the pid was reused", o.PID, p.start, o.Start)}
		default:
			return Liveness{Alive: true, Reason: fmt.Sprintf("pid %d runs and started at %d, as the owner did", o.PID, o.Start)}
		}
	}
	if errors.Is(err, errNoProcess) {
		return Liveness{Reason: fmt.Sprintf("pid %d does not exist", o.PID)}
	}
	// The start time is unreadable (permissions, hidepid, an unsupported
	// platform): fall back to whether the pid exists at all.
	exists, eerr := pidExists(o.PID)
	if !exists {
		if eerr != nil {
			return Liveness{Reason: fmt.Sprintf("pid %d: start time unreadable (%v), and not found (%v)", o.PID, err, eerr)}
		}
		return Liveness{Reason: fmt.Sprintf("pid %d does not exist", o.PID)}
	}
	return Liveness{Alive: true, Reason: fmt.Sprintf("pid %d exists but its start time is unreadable (%v), so a reused pid cannot be told from the owner: taken as alive", o.PID, err)}
}

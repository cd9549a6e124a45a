package runstate

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// szomb is p_stat of a process that has exited and not been reaped
// (SZOMB in <sys/proc.h>).
const szomb = 5

// inspect reads pid's start time (p_starttime of sysctl kern.proc.pid.PID,
// in microseconds since 1970) and whether it is a zombie. A pid that no
// process holds comes back as an empty answer, which x/sys reports as
// EIO; Check then asks kill(2) whether the pid exists.
func inspect(pid int) (procInfo, error) {
	k, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return procInfo{}, fmt.Errorf("sysctl kern.proc.pid.%d: %w", pid, err)
	}
	if int(k.Proc.P_pid) != pid {
		return procInfo{}, fmt.Errorf("sysctl kern.proc.pid.%d: answered for pid %d", pid, k.Proc.P_pid)
	}
	tv := k.Proc.P_starttime
	if tv.Sec < 0 || tv.Usec < 0 {
		return procInfo{}, fmt.Errorf("sysctl kern.proc.pid.%d: start time %d.%06d", pid, tv.Sec, tv.Usec)
	}
	return procInfo{start: uint64(tv.Sec)*1_000_000 + uint64(tv.Usec), exited: k.Proc.P_stat == szomb}, nil
}

package runstate

import (
	"errors"
	"fmt"
	"math"

	"golang.org/x/sys/windows"
)

// stillActive is the exit code GetExitCodeProcess reports for a process
// that has not ended (STILL_ACTIVE).
const stillActive = 259

// inspect reads pid's creation time (GetProcessTimes, 100-nanosecond
// intervals since 1601) and whether it has ended while its handle keeps
// the pid taken.
func inspect(pid int) (procInfo, error) {
	h, err := openProcess(pid)
	if err != nil {
		return procInfo{}, err
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return procInfo{}, fmt.Errorf("pid %d: GetExitCodeProcess: %w", pid, err)
	}
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return procInfo{}, fmt.Errorf("pid %d: GetProcessTimes: %w", pid, err)
	}
	start := uint64(created.HighDateTime)<<32 | uint64(created.LowDateTime)
	return procInfo{start: start, exited: code != stillActive}, nil
}

// openProcess opens pid for queries; a pid no process holds is
// errNoProcess.
func openProcess(pid int) (windows.Handle, error) {
	if pid <= 0 || uint64(pid) > math.MaxUint32 {
		return 0, errNoProcess
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return 0, errNoProcess
	}
	if err != nil {
		return 0, fmt.Errorf("pid %d: OpenProcess: %w", pid, err)
	}
	return h, nil
}

// pidExists reports whether a process holds pid. Access denied means
// there is one that this user may not look at.
func pidExists(pid int) (bool, error) {
	h, err := openProcess(pid)
	switch {
	case err == nil:
		windows.CloseHandle(h)
		return true, nil
	case errors.Is(err, errNoProcess):
		return false, nil
	case errors.Is(err, windows.ERROR_ACCESS_DENIED):
		return true, nil
	default:
		// Neither answer is certain; the pid is not known to be free.
		return true, err
	}
}

//go:build unix

package runstate

import (
	"errors"
	"syscall"
)

// pidExists reports whether a process holds pid: kill(pid, 0) succeeds,
// or fails with EPERM (a process of another user).
func pidExists(pid int) (bool, error) {
	err := syscall.Kill(pid, 0)
	switch {
	case err == nil, errors.Is(err, syscall.EPERM):
		return true, nil
	case errors.Is(err, syscall.ESRCH):
		return false, nil
	default:
		return true, err
	}
}

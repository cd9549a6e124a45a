//go:build unix

package tlspin

import (
	"os"
	"syscall"
)

// lockFile takes a flock of f, exclusive (to append) or shared (to read),
// waiting for it; it goes when f is closed.
func lockFile(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	return syscall.Flock(int(f.Fd()), how)
}

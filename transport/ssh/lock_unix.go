//go:build unix

package ssh

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock of f, waiting for it; it goes when f
// is closed.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }

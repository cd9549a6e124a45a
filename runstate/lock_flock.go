//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd || solaris

package runstate

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive flock(2) of f, waiting for it. The lock
// goes when f is closed (or its process dies).
func lockFile(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// removeHeldLock unlinks the lock file while still holding its lock, then
// releases it: a writer waiting for the lock then finds it holds a file
// no longer linked, and starts over (lockRun).
func removeHeldLock(f *os.File, path string) {
	_ = os.Remove(path)
	f.Close()
}

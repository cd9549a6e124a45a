package runstate

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive LockFileEx lock of f's first byte, waiting
// for it. The lock goes when f is closed (or its process dies).
func lockFile(f *os.File) error {
	var ol windows.Overlapped
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, &ol)
}

// removeHeldLock releases the lock, then removes the lock file: Windows
// does not delete a file that is open (Go opens files without
// FILE_SHARE_DELETE). A writer that opened the file in between keeps it
// from being deleted, and then holds or waits for a lock on the file that
// stays, which is just as right.
func removeHeldLock(f *os.File, path string) {
	f.Close()
	_ = os.Remove(path)
}

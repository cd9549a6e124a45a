package tlspin

import (
	"os"

	"golang.org/x/sys/windows"
)

// lockOffset is where lockFile locks a byte: beyond any pin file's end
// (Windows allows that), since Windows locks are mandatory and a lock on
// the contents would stop even the reads of the process holding a shared
// lock.
const lockOffset = 1 << 62

// lockFile takes a LockFileEx lock of one byte of f at lockOffset,
// exclusive (to append) or shared (to read), waiting for it; it goes when
// f is closed.
func lockFile(f *os.File, exclusive bool) error {
	var flags uint32
	if exclusive {
		flags = windows.LOCKFILE_EXCLUSIVE_LOCK
	}
	ol := windows.Overlapped{Offset: uint32(lockOffset & 0xffffffff), OffsetHigh: uint32(lockOffset >> 32)}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags, 0, 1, 0, &ol)
}

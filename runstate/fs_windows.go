package runstate

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/windows"
)

// renameFile moves tmp over path with MoveFileEx and
// MOVEFILE_WRITE_THROUGH, which returns once the move is on disk: Windows
// cannot flush a directory, so this is what makes the rename durable. A
// reader that has path open (without FILE_SHARE_DELETE, as os.ReadFile
// does) makes the move fail for a moment; it is retried for up to a
// second.
func renameFile(tmp, path string) error {
	from, err := windows.UTF16PtrFromString(tmp)
	if err != nil {
		return err
	}
	to, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		err = windows.MoveFileEx(from, to, windows.MOVEFILE_REPLACE_EXISTING|windows.MOVEFILE_WRITE_THROUGH)
		if err == nil {
			return nil
		}
		busy := errors.Is(err, windows.ERROR_SHARING_VIOLATION) || errors.Is(err, windows.ERROR_ACCESS_DENIED)
		if !busy || i >= 100 {
			return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncDir does nothing on Windows: a directory handle cannot be flushed
// (FlushFileBuffers refuses it), and renameFile writes through instead.
func syncDir(dir string) error { return nil }

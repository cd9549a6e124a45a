//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd || solaris || windows)

package runstate

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

func lockFile(f *os.File) error {
	return fmt.Errorf("file locks on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func removeHeldLock(f *os.File, path string) {
	_ = os.Remove(path)
	f.Close()
}

//go:build !unix && !windows

package runstate

import (
	"errors"
	"fmt"
	"runtime"
)

// pidExists cannot tell here; the pid is not known to be free.
func pidExists(pid int) (bool, error) {
	return true, fmt.Errorf("process lookup on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

//go:build !linux && !darwin && !windows

package runstate

import (
	"errors"
	"fmt"
	"runtime"
)

// inspect cannot read start times here: Check falls back to whether the
// pid exists, and takes an existing pid for the owner.
func inspect(pid int) (procInfo, error) {
	return procInfo{}, fmt.Errorf("process start times on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

//go:build !windows

package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/fleetup/fleetup/proc"
)

// The flags that open a payload without following a symbolic link (and
// without blocking on a FIFO put in its place).
const (
	oNoFollow = syscall.O_NOFOLLOW
	oNonblock = syscall.O_NONBLOCK
)

// removeAll removes path and everything under it.
func removeAll(path string) error { return os.RemoveAll(path) }

// privateTo checks that fi is a directory (dir) or regular file, not a
// symbolic link, owned by uid, that neither group nor others can write
// (nor, for a directory, read or enter).
func privateTo(fi fs.FileInfo, uid int, dir bool) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return errors.New("it is a symbolic link")
	case dir && !fi.IsDir():
		return errors.New("it is not a directory")
	case !dir && !fi.Mode().IsRegular():
		return errors.New("it is not a regular file")
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("its owner cannot be told")
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("it is owned by uid %d, not %d", st.Uid, uid)
	}
	mask := fs.FileMode(0o022)
	if dir {
		mask = 0o077
	}
	if perm := fi.Mode().Perm(); perm&mask != 0 {
		return fmt.Errorf("its mode %04o lets others in", perm)
	}
	return nil
}

// killMarked stops the processes marked with marker and describes each
// ("pid 123 (gpg-agent)"), naming them before they go.
func killMarked(marker string, grace time.Duration) ([]string, error) {
	pids, err := proc.Marked(marker)
	if err != nil || len(pids) == 0 {
		return nil, err
	}
	names := map[int]string{}
	for _, pid := range pids {
		names[pid] = commOf(pid)
	}
	killed, err := proc.KillMarked(marker, grace)
	var out []string
	for _, pid := range killed {
		name := names[pid]
		if name == "" {
			name = commOf(pid)
		}
		out = append(out, fmt.Sprintf("pid %d (%s)", pid, name))
	}
	return out, err
}

func commOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "gone"
	}
	return strings.TrimSpace(string(b))
}

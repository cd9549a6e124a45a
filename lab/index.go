package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// indexLock is a held lock on one node index. The lock files stay in
// StateDir/index for good: deleting a lock file another process has open
// would let two labs hold "the same" index.
type indexLock struct {
	index int
	f     *os.File
}

func (l *indexLock) release() {
	if l.f != nil {
		l.f.Close() // closing the descriptor drops the flock
		l.f = nil
	}
}

// allocate takes the locks of n free indices in 1..MaxNodes.
func allocate(n int) ([]*indexLock, error) {
	var got []*indexLock
	for i := 1; i <= MaxNodes && len(got) < n; i++ {
		path := filepath.Join(StateDir, "index", strconv.Itoa(i)+".lock")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			for _, l := range got {
				l.release()
			}
			return nil, fmt.Errorf("allocate node index: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue
			}
			for _, l := range got {
				l.release()
			}
			return nil, fmt.Errorf("allocate node index: lock %s: %w", path, err)
		}
		got = append(got, &indexLock{index: i, f: f})
	}
	if len(got) < n {
		for _, l := range got {
			l.release()
		}
		return nil, fmt.Errorf("allocate node index: only %d of %d indices free in 1..%d", len(got), n, MaxNodes)
	}
	return got, nil
}

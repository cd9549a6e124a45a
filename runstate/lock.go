package runstate

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockPath is the lock file of run runID's files in dir.
func lockPath(dir, runID string) string { return filepath.Join(dir, runID+".lock") }

// runLock is a held lock of a run's lock file.
type runLock struct {
	f    *os.File
	path string
	// remove makes release remove the lock file: set once the run's
	// files in the directory are gone.
	remove bool
}

// lockRun takes the exclusive lock of run runID's lock file in dir
// (flock on Unix, LockFileEx on Windows), creating the file. Writers of a
// run's files in dir hold it, so that two processes (a manager and a
// `fleetup cleanup`) never lose each other's updates. The lock goes with
// its holder's process, so a crash never leaves a run locked.
func lockRun(dir, runID string) (*runLock, error) {
	path := lockPath(dir, runID)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock run %s: %w", runID, err)
		}
		if err := lockFile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock run %s: %s: %w", runID, path, err)
		}
		// The holder before us may have removed the file (release with
		// remove); then our lock is on a file no longer linked, and we
		// start over.
		held, herr := f.Stat()
		linked, lerr := os.Stat(path)
		if herr == nil && lerr == nil && os.SameFile(held, linked) {
			return &runLock{f: f, path: path}, nil
		}
		f.Close()
	}
}

// release releases the lock, and removes the lock file when l.remove is
// set (see removeHeldLock for how, per platform).
func (l *runLock) release() {
	if l.remove {
		removeHeldLock(l.f, l.path)
		return
	}
	l.f.Close()
}

package engine

import (
	"errors"
	"io/fs"
	"time"
)

// Windows has no O_NOFOLLOW or O_NONBLOCK: os.OpenFile opens a symbolic
// link's target there, which privateTo then refuses by its mode.
const (
	oNoFollow = 0
	oNonblock = 0
)

// privateTo checks that fi is a directory (dir) or a regular file, not a
// symbolic link. Who may write it is the directory's ACL's business on
// Windows: the engine's directory is under C:\Windows\Temp, made by the
// manager as an administrator; uid is not used.
func privateTo(fi fs.FileInfo, uid int, dir bool) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return errors.New("it is a symbolic link")
	case dir && !fi.IsDir():
		return errors.New("it is not a directory")
	case !dir && !fi.Mode().IsRegular():
		return errors.New("it is not a regular file")
	}
	return nil
}

// removeAll removes path and everything under it, file by file (see
// removeTree: os.RemoveAll fails under Wine).
func removeAll(path string) error {
	_, err := removeTree(path)
	return err
}

// killMarked ends the processes the engine's installs started: every
// process of the engine's job object but the engine itself (see
// installJob). marker is not used: Windows has no environment of other
// processes to read.
func killMarked(marker string, grace time.Duration) ([]string, error) {
	j := currentJob()
	if j == nil {
		return nil, nil
	}
	return j.killOthers(grace)
}

package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/windows"
)

// removeTree removes root and everything under it except the files keep
// (root itself then stays), file by file and then the
// directories, deepest first, clearing the read-only attribute where it
// stops a removal. It goes on past what it cannot remove and returns what
// it removed and an error naming each path it could not. It does what
// os.RemoveAll does, which fails under Wine (its removal relative to an
// open directory handle is not implemented there).
func removeTree(root string, keep ...string) ([]string, error) {
	var files, dirs []string
	var errs []error
	walkErr := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			errs = append(errs, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		for _, k := range keep {
			if strings.EqualFold(filepath.Clean(path), filepath.Clean(k)) {
				return nil
			}
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		} else {
			files = append(files, path)
		}
		return nil
	})
	if walkErr != nil && !errors.Is(walkErr, fs.ErrNotExist) {
		errs = append(errs, walkErr)
	}
	var removed []string
	for _, f := range files {
		if err := removeOne(f); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, f)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if keepsUnder(keep, d) {
			continue // the directories of what is kept stay
		}
		if err := removeOne(d); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, d)
		}
	}
	return removed, errors.Join(errs...)
}

func removeOne(path string) error {
	err := os.Remove(path)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		if os.Chmod(path, 0o666) == nil {
			if err2 := os.Remove(path); err2 == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("remove %s: %w", path, err)
}

// keepsUnder reports whether one of keep is dir or inside it.
func keepsUnder(keep []string, dir string) bool {
	for _, k := range keep {
		rel, err := filepath.Rel(dir, k)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// dirRemovalWaits are the seconds removeDirLater's cmd.exe waits before
// each rmdir.
var dirRemovalWaits = []int{2, 5, 10, 20}

// removeDirLater removes dir, the engine's exe in it included, after the
// engine has exited: a detached cmd.exe, outside the engine's job, waits
// (ping as the timer) and runs rmdir /s /q, four times over about 40
// seconds, a removal of a directory already gone failing silently. (No
// loop: Wine's cmd.exe does not run a "for" with a parenthesised body.)
// When that process cannot be started, it marks the exe and the directory
// for deletion at the next reboot (MoveFileEx DELAY_UNTIL_REBOOT). It
// returns what it arranged.
func removeDirLater(dir string) (string, error) {
	var script strings.Builder
	for i, wait := range dirRemovalWaits {
		if i > 0 {
			script.WriteString(" & ")
		}
		fmt.Fprintf(&script, `ping -n %d 127.0.0.1 >nul & rmdir /s /q "%s" 2>nul`, wait+1, dir)
	}
	cmdExe := filepath.Join(os.Getenv("SystemRoot"), "System32", "cmd.exe")
	if os.Getenv("SystemRoot") == "" {
		cmdExe = "cmd.exe"
	}
	start := func(flags uint32) error {
		c := exec.Command(cmdExe)
		c.Dir = filepath.VolumeName(dir) + `\`
		c.SysProcAttr = &syscall.SysProcAttr{
			CmdLine:       `cmd.exe /d /q /c ` + script.String(),
			CreationFlags: flags,
			HideWindow:    true,
		}
		if err := c.Start(); err != nil {
			return err
		}
		return c.Process.Release()
	}
	base := uint32(windows.DETACHED_PROCESS | windows.CREATE_NEW_PROCESS_GROUP)
	err := start(base | windows.CREATE_BREAKAWAY_FROM_JOB)
	if err != nil && currentJob() == nil {
		// Not allowed out of a job the engine was started in, and the
		// engine has no job of its own that would end the process with
		// the engine: it may stay in the outer one.
		err = start(base)
	}
	if err == nil {
		return "directory " + dir + " removed after the engine exits (cmd.exe rmdir)", nil
	}
	var errs []error
	errs = append(errs, fmt.Errorf("start cmd.exe to remove %s: %w", dir, err))
	for _, p := range []string{filepath.Join(dir, WinExeFile), dir} {
		from, _ := windows.UTF16PtrFromString(p)
		if merr := windows.MoveFileEx(from, nil, windows.MOVEFILE_DELAY_UNTIL_REBOOT); merr != nil {
			errs = append(errs, fmt.Errorf("mark %s for deletion at reboot: %w", p, merr))
		}
	}
	if len(errs) == 1 {
		return "directory " + dir + " marked for deletion at the next reboot", nil
	}
	return "", errors.Join(errs...)
}

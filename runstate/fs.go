package runstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// staleTemp is how old a temporary file must be before it is taken for
// the leftover of a writer that crashed, and removed.
const staleTemp = time.Hour

// tempPattern is the name of writeAtomic's temporary files for a target
// named base: hidden, so that no reader takes it for state.
func tempPattern(base string) string { return "." + base + ".tmp-*" }

// isTemp reports whether name is one of writeAtomic's temporary files.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// mkdir creates dir (mode 0700) and its parents when missing, and checks
// that it is a directory.
func mkdir(dir string) error {
	if dir == "" {
		return errors.New("empty directory name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// writeAtomic replaces path with data, mode 0600: a temporary file in the
// same directory, written and synced, renamed over path, and the
// directory synced. A crash at any point leaves either the old or the new
// content (and perhaps a temporary file, which readers ignore and
// cleanTemps removes). On failure the temporary file is removed and path
// is unchanged.
func writeAtomic(path string, data []byte) error {
	return writeTemp(path, data, replace)
}

// writeNew is writeAtomic for a file that must not exist yet: an existing
// path is an error wrapping fs.ErrExist, and is left alone.
func writeNew(path string, data []byte) error {
	return writeTemp(path, data, createOnly)
}

// writeTemp writes data to a synced temporary file next to path and hands
// it to install, which moves it to path.
func writeTemp(path string, data []byte, install func(tmp, path string) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, tempPattern(base))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := install(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Clean(dir))
}

func replace(tmp, path string) error { return renameFile(tmp, path) }

// createOnly links tmp to path, which fails when path exists, so that
// nothing else's file is ever overwritten, then drops tmp. Where the file
// system has no hard links it checks path is absent and renames: state
// directories are the manager user's own (0700), so only that user's own
// processes could slip a file in between.
func createOnly(tmp, path string) error {
	err := os.Link(tmp, path)
	if err == nil {
		_ = os.Remove(tmp) // path holds the content; a leftover is cleaned later
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return fs.ErrExist
	}
	if _, lerr := os.Lstat(path); lerr == nil {
		return fs.ErrExist
	} else if !errors.Is(lerr, fs.ErrNotExist) {
		return lerr
	}
	return renameFile(tmp, path)
}

// removeFile removes path and syncs its directory. A path already gone
// is no error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

// cleanTemps removes the temporary files in dir that writers which
// crashed left there more than staleTemp ago. A younger one may belong to
// a write in progress and is left.
func cleanTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !isTemp(e.Name()) || e.IsDir() {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// marshal encodes v as indented JSON with a final newline.
func marshal(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

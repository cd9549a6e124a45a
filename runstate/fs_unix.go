//go:build !windows

package runstate

import (
	"fmt"
	"os"
)

// renameFile moves tmp over path atomically (rename(2)).
func renameFile(tmp, path string) error { return os.Rename(tmp, path) }

// syncDir makes the directory's entries (a rename, a new or removed file)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

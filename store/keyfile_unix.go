//go:build unix

package store

import (
	"fmt"
	"io/fs"
)

// checkKeyMode refuses a key file group or others may read or write.
func checkKeyMode(name string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("key file %s is readable or writable by group or others (mode %04o): restrict it with chmod 600 %s", name, perm, name)
	}
	return nil
}

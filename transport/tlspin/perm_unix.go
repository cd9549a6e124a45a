//go:build unix

package tlspin

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// noFollow makes opening the pin file fail if a symbolic link has been put
// in its place since it was checked.
const noFollow = syscall.O_NOFOLLOW

// checkPerm refuses a pin file that someone other than its user can
// write: one writable by group or others, or owned by another user than
// the current one or root.
func checkPerm(path string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o): refused, since whoever can write it can pin their own certificate; restrict it with chmod go-w %s", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := int(st.Uid); uid != 0 && uid != os.Getuid() {
			return fmt.Errorf("%s belongs to another user (uid %d): refused, since they can pin their own certificate; it must be yours (uid %d) or root's", path, uid, os.Getuid())
		}
	}
	return nil
}

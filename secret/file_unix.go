//go:build unix

package secret

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkFile refuses a password file (fi, from fstat of the opened file)
// that group or others may read or write, or that the current user does
// not own: someone else could read the password, or put theirs in.
func checkFile(name string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("password file %s is readable or writable by group or others (mode %04o): restrict it with chmod 600 %s", name, perm, name)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("password file %s: cannot tell its owner", name)
	}
	if me := os.Geteuid(); int(st.Uid) != me {
		return fmt.Errorf("password file %s is owned by uid %d, not by you (uid %d): use a file of your own (chown %d %s, chmod 600 %s)", name, st.Uid, me, me, name, name)
	}
	return nil
}

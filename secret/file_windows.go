package secret

import (
	"fmt"
	"io/fs"
)

// checkFile refuses every password file on Windows: who may read a file
// there is its ACL, which this package does not check. The environment
// variable and the prompt work.
func checkFile(name string, fi fs.FileInfo) error {
	return fmt.Errorf("password file %s: password files are not supported on Windows (their ACLs are not checked); use the environment variable or the prompt", name)
}

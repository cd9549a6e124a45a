//go:build !unix

package store

import "io/fs"

// checkKeyMode checks nothing where file modes do not say who may read a
// file (Windows: its ACL does, which this package does not check).
func checkKeyMode(name string, fi fs.FileInfo) error { return nil }

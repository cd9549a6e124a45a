package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// keySize is the size of the key file: an AES-256 key.
const keySize = 32

// loadKey reads the key file, or makes it when it is missing: 32 random
// bytes written to a new file (0600, O_EXCL) that is then linked into
// place, so that two processes making it at once agree on one key and
// neither ever reads a half-written one. made says whether this call made
// it.
func loadKey(name string) (key []byte, made bool, err error) {
	key, err = readKey(name)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	mkErr := makeKey(name)
	if mkErr != nil && !errors.Is(mkErr, fs.ErrExist) {
		return nil, false, fmt.Errorf("key file %s: %w", name, mkErr)
	}
	key, err = readKey(name)
	return key, err == nil && mkErr == nil, err
}

func readKey(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("key file %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file (%s)", name, fi.Mode().Type())
	}
	if err := checkKeyMode(name, fi); err != nil {
		return nil, err
	}
	if fi.Size() != keySize {
		return nil, fmt.Errorf("key file %s holds %d bytes, not %d: it is not a fleetup store key", name, fi.Size(), keySize)
	}
	key := make([]byte, keySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("key file %s: %w", name, err)
	}
	return key, nil
}

func makeKey(name string) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key := make([]byte, keySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".store.key-*") // O_EXCL, 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link fails when name exists: whoever linked first made the key.
	return os.Link(tmp.Name(), name)
}

package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Fast argon2id for the tests; TestPasswordRealParameters uses the
	// real ones.
	argonParams = argon2Params{time: 1, memory: 64, threads: 1, saltLen: 16, keyLen: 32}
	goleak.VerifyTestMain(m)
}

// clock is a settable time for a DB's now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }

// openTest opens a new store in a temporary directory, closed at the end
// of the test, with its clock at a fixed time.
func openTest(t *testing.T) (*DB, *clock) {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)}
	db.now = c.now
	return db, c
}

func ctx(t *testing.T) context.Context { return t.Context() }

// wantErr fails the test unless err is nil when want is nil, or wraps
// want otherwise.
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

// errInvalid stands for "a *ValidationError" in wantErr's tables.
var errInvalid = errors.New("validation error")

// checkErr is wantErr that also takes errInvalid.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if want == errInvalid {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("error %v, want a validation error", err)
		}
		return
	}
	wantErr(t, err, want)
}

func TestPaths(t *testing.T) {
	if got := Path("/var/lib/fleetup"); got != "/var/lib/fleetup/fleetup.db" {
		t.Errorf("Path = %s", got)
	}
	if got := KeyPath("/var/lib/fleetup"); got != "/var/lib/fleetup/store.key" {
		t.Errorf("KeyPath = %s", got)
	}
}

func TestOpenCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "sub")
	db, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, Path(dir): 0o600, KeyPath(dir): 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
	fi, _ := os.Stat(KeyPath(dir))
	if fi.Size() != keySize {
		t.Errorf("key file: %d bytes", fi.Size())
	}
	// The WAL and shared-memory files take the database's mode.
	if _, err := db.AccountCount(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		fi, err := os.Stat(Path(dir) + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", suffix, fi.Mode())
		}
	}
	var mode string
	if err := db.sql.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v", mode, err)
	}
	var fk int
	if err := db.sql.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys %d, %v", fk, err)
	}
	if v, err := db.SchemaVersion(ctx(t)); err != nil || v != len(migrations) {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, len(migrations))
	}
}

func TestOpenKeyFile(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, key string)
		want    string // in the error; "" for success
	}{
		{"missing is made", func(t *testing.T, key string) {}, ""},
		{"good", func(t *testing.T, key string) { writeFile(t, key, make([]byte, 32), 0o600) }, ""},
		{"group readable", func(t *testing.T, key string) { writeFile(t, key, make([]byte, 32), 0o640) }, "readable or writable by group or others"},
		{"other readable", func(t *testing.T, key string) { writeFile(t, key, make([]byte, 32), 0o604) }, "readable or writable by group or others"},
		{"short", func(t *testing.T, key string) { writeFile(t, key, make([]byte, 31), 0o600) }, "holds 31 bytes, not 32"},
		{"long", func(t *testing.T, key string) { writeFile(t, key, make([]byte, 33), 0o600) }, "holds 33 bytes, not 32"},
		{"empty", func(t *testing.T, key string) { writeFile(t, key, nil, 0o600) }, "holds 0 bytes"},
		{"directory", func(t *testing.T, key string) {
			if err := os.Mkdir(key, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			key := KeyPath(dir)
			tt.prepare(t, key)
			db, err := Open(Path(dir), key)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				return
			}
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), key) {
				t.Fatalf("error %q, want it to name %s and say %q", err, key, tt.want)
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open("", KeyPath(dir)); err == nil {
		t.Error("opened without a path")
	}
	if _, err := Open(Path(dir), ""); err == nil {
		t.Error("opened without a key file")
	}
}

func writeFile(t *testing.T, name string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}

func TestRebindDollar(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT a FROM t WHERE b = ? AND c > ?", "SELECT a FROM t WHERE b = $1 AND c > $2"},
		{"INSERT INTO t VALUES (?, ?, ?)", "INSERT INTO t VALUES ($1, $2, $3)"},
	}
	for _, tt := range tests {
		if got := postgresDialect.rebind(tt.in); got != tt.want {
			t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := sqliteDialect.rebind(tt.in); got != tt.in {
			t.Errorf("sqlite rebind changed %q", tt.in)
		}
	}
	if got := postgresDialect.ddl("id {{autoid}}, b {{blob}}"); got != "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, b BYTEA" {
		t.Errorf("ddl: %s", got)
	}
}

func TestDSN(t *testing.T) {
	got := dsn("/a b/c?d#e%f.db")
	want := "file:/a b/c%3fd%23e%25f.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	if got != want {
		t.Errorf("dsn = %s\nwant  %s", got, want)
	}
	// A path with the characters a URI escapes opens where it says.
	dir := filepath.Join(t.TempDir(), "we?ird#dir%")
	db, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateAccount(ctx(t), "alice", []byte("correct horse battery"), RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(Path(dir)); err != nil || fi.Size() == 0 {
		t.Fatalf("database not at its path: %v", err)
	}
}

// TestKeyMadeOnce has several opens make the missing key file at once:
// they all end up with the same key.
func TestKeyMadeOnce(t *testing.T) {
	name := KeyPath(t.TempDir())
	keys := make([][]byte, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], _, errs[i] = loadKey(name) })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("open %d got another key", i)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(name))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

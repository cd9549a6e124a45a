// Package store is the database of `fleetup serve`: the accounts of the
// web UI and API with their sessions and tokens, the audit log, the
// credentials the manager logs in to nodes with (encrypted at rest), the
// registered nodes and baselines, the inventories nodes reported, and the
// history of runs with their events and per-node results.
//
// It runs on SQLite through modernc.org/sqlite, a pure Go translation of
// SQLite (no cgo), in one file beside a key file (Path and KeyPath). Two
// processes may use the file at once (the CLI recording a run while
// `fleetup serve` runs): WAL journaling lets readers go on while one
// writes, and a busy timeout makes a writer wait for the other.
//
// The SQL is kept portable to PostgreSQL: ? placeholders (rebound by the
// dialect), the column types TEXT, BIGINT, INTEGER and BLOB only,
// timestamps as BIGINT microseconds since the Unix epoch (UTC), structured
// fields as JSON in TEXT columns, read back in Go (no json_extract, no
// datetime()), INSERT ... RETURNING for new ids, and the one piece of DDL
// that differs, the auto-increment id column, held in the dialect.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Path is the database file in a state directory.
func Path(stateDir string) string { return filepath.Join(stateDir, "fleetup.db") }

// KeyPath is the key file in a state directory: the 32-byte AES-256 key
// credentials are encrypted with.
func KeyPath(stateDir string) string { return filepath.Join(stateDir, "store.key") }

// DB is an open store. Its methods are safe for concurrent use. Writes of
// one process are serialized in Go (a writer never waits on SQLite's busy
// handler for another goroutine of its own); writes of another process
// wait up to the busy timeout.
type DB struct {
	sql  *sql.DB
	d    dialect
	path string
	key  []byte // AES-256 key of the credentials
	// wsem, a semaphore of one, is held by the one write transaction of
	// this process at a time.
	wsem chan struct{}
	now  func() time.Time // time.Now; tests move it
}

// busyTimeout is how long a writer waits for another process's write
// before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// dsn is the modernc.org/sqlite data source name of the database at path:
// a file: URI (with the characters that end a URI's path escaped) whose
// pragmas every new connection applies. _txlock=immediate makes every
// transaction take the write lock when it begins, so a transaction that
// reads and then writes never fails with SQLITE_BUSY when another process
// wrote in between (it waits instead, at BEGIN).
func dsn(path string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc +
		"?_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_txlock=immediate"
}

// Open opens the store at path, creating it (and its directory, 0700)
// when missing, and migrates its schema to the latest version; a store
// whose schema is newer than this fleetup knows is refused. keyFile holds
// the credentials' key: Open makes it (0600, 32 random bytes) when it is
// missing and refuses one that is not a regular file, that group or others
// may read, or that does not hold exactly 32 bytes. A missing key file
// is not made anew for a store that holds credentials (they would never
// open again): Open fails, asking for the key file back. The caller
// closes the DB.
func Open(path, keyFile string) (*DB, error) {
	if path == "" {
		return nil, errors.New("store: no database path")
	}
	if keyFile == "" {
		return nil, errors.New("store: no key file")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	key, madeKey, err := loadKey(keyFile)
	if err != nil {
		return nil, err
	}
	// SQLite creates the file with the umask's mode, and its -wal and
	// -shm files with the database file's: made here first, all are 0600.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	sdb, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	// SQLite writes one at a time; a few connections serve the readers.
	sdb.SetMaxOpenConns(8)
	sdb.SetMaxIdleConns(4)
	db := &DB{sql: sdb, d: sqliteDialect, path: path, key: key, wsem: make(chan struct{}, 1), now: time.Now}
	ctx := context.Background()
	if err := db.migrate(ctx, len(migrations)); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if madeKey {
		// A new key for a store that holds credentials would leave them
		// sealed for good: the key file was lost or moved, and the one
		// just made is taken back so that the next Open says so again.
		var n int
		if err := db.read().queryRow(ctx, `SELECT COUNT(*) FROM credentials`).Scan(&n); err != nil || n > 0 {
			sdb.Close()
			if err == nil {
				os.Remove(keyFile)
				err = fmt.Errorf("key file %s is missing but the store holds %d credentials encrypted with it: restore the key file (or delete the store)", keyFile, n)
			}
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
	}
	return db, nil
}

// Close closes the database. The methods of a closed DB fail.
func (db *DB) Close() error {
	clear(db.key)
	return db.sql.Close()
}

// querier is what a *sql.DB and a *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs queries written with ? placeholders on a database or in a
// transaction, rebinding them for the dialect.
type conn struct {
	q querier
	d dialect
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.q.ExecContext(ctx, c.d.rebind(query), args...)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.q.QueryContext(ctx, c.d.rebind(query), args...)
}

func (c conn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return c.q.QueryRowContext(ctx, c.d.rebind(query), args...)
}

// exists reports whether query (a SELECT) returns a row.
func (c conn) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var one int
	err := c.queryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// read is the connection for reads outside a transaction.
func (db *DB) read() conn { return conn{db.sql, db.d} }

// write runs fn in a transaction that holds the write lock, and commits
// it when fn returns nil. Write transactions of this process run one at
// a time.
func (db *DB) write(ctx context.Context, fn func(c conn) error) error {
	select {
	case db.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-db.wsem }()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(conn{tx, db.d}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// micros is t as stored: microseconds since the Unix epoch; 0 for the
// zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the time stored as v, in UTC; the zero time for 0.
func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// nowMicros is the current time as stored.
func (db *DB) nowMicros() int64 { return db.now().UnixMicro() }

// notFound is ErrNotFound naming what: "node 7: not found".
func notFound(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrNotFound)
}

// checkLimit refuses a negative limit; 0 means no limit.
func checkLimit(limit int) error {
	if limit < 0 {
		return &ValidationError{Field: "limit", Value: fmt.Sprint(limit), Reason: "must be 0 (no limit) or more"}
	}
	return nil
}

// limitClause is the LIMIT of a query for limit (0: none).
func limitClause(limit int) string {
	if limit == 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", limit)
}

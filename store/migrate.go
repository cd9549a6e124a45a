package store

import (
	"context"
	"fmt"
)

// migrations are the schema's versions in order: migrations[i] takes the
// schema from version i to i+1, in one transaction, and is recorded in
// schema_migrations. A migration, once released, is never edited: a
// change is a new migration at the end. Statements use {{autoid}} and
// {{blob}} for the dialect's types (dialect.ddl).
var migrations = [][]string{
	// 1: the base schema.
	{
		`CREATE TABLE accounts (
			id {{autoid}},
			name TEXT NOT NULL UNIQUE,
			role TEXT NOT NULL,
			password TEXT NOT NULL,
			created BIGINT NOT NULL
		)`,
		`CREATE TABLE setup_tokens (
			hash TEXT PRIMARY KEY,
			created BIGINT NOT NULL,
			expires BIGINT NOT NULL
		)`,
		`CREATE TABLE sessions (
			hash TEXT PRIMARY KEY,
			account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
			csrf TEXT NOT NULL,
			created BIGINT NOT NULL,
			expires BIGINT NOT NULL
		)`,
		`CREATE INDEX sessions_account ON sessions(account_id)`,
		`CREATE TABLE api_tokens (
			id {{autoid}},
			account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
			name TEXT NOT NULL,
			hash TEXT NOT NULL UNIQUE,
			created BIGINT NOT NULL,
			last_used BIGINT NOT NULL DEFAULT 0,
			UNIQUE (account_id, name)
		)`,
		// audit keeps the account's name: an entry outlives its account.
		`CREATE TABLE audit (
			id {{autoid}},
			at BIGINT NOT NULL,
			account_id BIGINT NOT NULL,
			account TEXT NOT NULL,
			action TEXT NOT NULL,
			object TEXT NOT NULL,
			detail TEXT NOT NULL,
			remote TEXT NOT NULL
		)`,
		`CREATE TABLE credentials (
			id {{autoid}},
			name TEXT NOT NULL UNIQUE,
			username TEXT NOT NULL,
			nonce {{blob}} NOT NULL,
			secret {{blob}} NOT NULL,
			created BIGINT NOT NULL
		)`,
		`CREATE TABLE nodes (
			id {{autoid}},
			name TEXT NOT NULL UNIQUE,
			credential_id BIGINT REFERENCES credentials(id),
			bmc_credential_id BIGINT REFERENCES credentials(id),
			tags TEXT NOT NULL,
			created BIGINT NOT NULL
		)`,
		`CREATE TABLE node_targets (
			node_id BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
			pos INTEGER NOT NULL,
			target TEXT NOT NULL UNIQUE,
			PRIMARY KEY (node_id, pos)
		)`,
		`CREATE TABLE baselines (
			id {{autoid}},
			name TEXT NOT NULL UNIQUE,
			dir TEXT NOT NULL,
			added BIGINT NOT NULL,
			checked BIGINT NOT NULL DEFAULT 0,
			components TEXT NOT NULL,
			problems TEXT NOT NULL
		)`,
		`CREATE TABLE inventories (
			id {{autoid}},
			node TEXT NOT NULL,
			run_id TEXT NOT NULL,
			taken BIGINT NOT NULL,
			inventory TEXT NOT NULL
		)`,
		`CREATE TABLE runs (
			id TEXT PRIMARY KEY,
			kind TEXT NOT NULL,
			source TEXT NOT NULL,
			account TEXT NOT NULL,
			baseline TEXT NOT NULL,
			targets TEXT NOT NULL,
			started BIGINT NOT NULL,
			ended BIGINT NOT NULL DEFAULT 0,
			state TEXT NOT NULL,
			options TEXT NOT NULL,
			pid BIGINT NOT NULL,
			proc_start BIGINT NOT NULL
		)`,
		`CREATE TABLE run_nodes (
			run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
			node TEXT NOT NULL,
			state TEXT NOT NULL,
			failed_in TEXT NOT NULL,
			error TEXT NOT NULL,
			result TEXT NOT NULL,
			ended BIGINT NOT NULL,
			PRIMARY KEY (run_id, node)
		)`,
		`CREATE TABLE run_components (
			run_id TEXT NOT NULL,
			node TEXT NOT NULL,
			pos INTEGER NOT NULL,
			component_id TEXT NOT NULL,
			version TEXT NOT NULL,
			installed TEXT NOT NULL,
			action TEXT NOT NULL,
			phase TEXT NOT NULL,
			reboot_needed INTEGER NOT NULL,
			error TEXT NOT NULL,
			PRIMARY KEY (run_id, node, pos),
			FOREIGN KEY (run_id, node) REFERENCES run_nodes(run_id, node) ON DELETE CASCADE
		)`,
		`CREATE TABLE events (
			run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
			seq BIGINT NOT NULL,
			at BIGINT NOT NULL,
			node TEXT NOT NULL,
			event TEXT NOT NULL,
			PRIMARY KEY (run_id, seq)
		)`,
	},
	// 2: a run counts its events (AddEvents numbers them from it, where
	// version 1 took the largest seq), and the indexes of the queries
	// by time.
	{
		`ALTER TABLE runs ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0`,
		`UPDATE runs SET last_seq = (SELECT COALESCE(MAX(seq), 0) FROM events WHERE events.run_id = runs.id)`,
		`CREATE INDEX runs_started ON runs(started)`,
		`CREATE INDEX inventories_node_taken ON inventories(node, taken)`,
		`CREATE INDEX run_components_component ON run_components(component_id, version)`,
		`CREATE INDEX audit_account_at ON audit(account_id, at)`,
	},
}

// migrate brings the schema to version target (len(migrations) but in
// tests), one migration per transaction. It refuses a schema newer than
// this binary knows. Two processes migrating at once are fine: each
// migration begins by reading the version under the write lock.
func (db *DB) migrate(ctx context.Context, target int) error {
	if _, err := db.read().exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("schema_migrations: %w", err)
	}
	for {
		done := false
		err := db.write(ctx, func(c conn) error {
			cur, err := schemaVersion(ctx, c)
			if err != nil {
				return err
			}
			if cur > len(migrations) {
				return &SchemaTooNewError{Version: cur, Known: len(migrations)}
			}
			if cur >= target {
				done = true
				return nil
			}
			for i, stmt := range migrations[cur] {
				if _, err := c.exec(ctx, db.d.ddl(stmt)); err != nil {
					return fmt.Errorf("migration %d, statement %d: %w", cur+1, i+1, err)
				}
			}
			_, err = c.exec(ctx, `INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`, cur+1, db.nowMicros())
			return err
		})
		if err != nil || done {
			return err
		}
	}
}

func schemaVersion(ctx context.Context, c conn) (int, error) {
	var v int
	err := c.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// SchemaVersion is the version of the database's schema: after Open, the
// latest this fleetup knows.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(ctx, db.read())
}

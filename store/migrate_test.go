package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetup/fleetup"
)

// openAt makes a store at schema version v, with raw access for the test
// to fill it as that version's binary would have.
func openAt(t *testing.T, dir string, v int) {
	t.Helper()
	sdb, err := sql.Open("sqlite", dsn(Path(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	db := &DB{sql: sdb, d: sqliteDialect, wsem: make(chan struct{}, 1), now: time.Now}
	if err := db.migrate(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	if got, err := db.SchemaVersion(t.Context()); err != nil || got != v {
		t.Fatalf("version %d, %v; want %d", got, err, v)
	}
}

func rawExec(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	sdb, err := sql.Open("sqlite", dsn(Path(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	for _, s := range stmts {
		if _, err := sdb.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestMigrateFromVersion1(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir, 1)
	// What version 1 held: a run with three events, numbered 1-3 (version
	// 1 numbered them from the largest seq), an account, a node.
	ev := func(msg string) string {
		return fmt.Sprintf(`'{"time":"2026-12-01T10:00:00Z","node":"n1","message":"%s"}'`, msg)
	}
	rawExec(t, dir,
		`INSERT INTO runs (id, kind, source, account, baseline, targets, started, ended, state, options, pid, proc_start)
			VALUES ('r1', 'deploy', 'cli', '', '/srv/b', '["n1"]', 1764583200000000, 0, 'ended', '', 0, 0)`,
		`INSERT INTO events (run_id, seq, at, node, event) VALUES ('r1', 1, 0, 'n1', `+ev("one")+`)`,
		`INSERT INTO events (run_id, seq, at, node, event) VALUES ('r1', 2, 0, 'n1', `+ev("two")+`)`,
		`INSERT INTO events (run_id, seq, at, node, event) VALUES ('r1', 3, 0, 'n1', `+ev("three")+`)`,
		`INSERT INTO runs (id, kind, source, account, baseline, targets, started, ended, state, options, pid, proc_start)
			VALUES ('r2', 'inventory', 'ui', 'alice', '', '[]', 1764583300000000, 0, 'running', '', 42, 7)`,
		`INSERT INTO nodes (name, tags, created) VALUES ('web1', '["web"]', 1)`,
		`INSERT INTO node_targets (node_id, pos, target) VALUES (1, 0, 'root@198.18.1.2')`,
	)

	db, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(ctx(t)); err != nil || v != len(migrations) {
		t.Fatalf("after upgrade: version %d, %v", v, err)
	}
	// The backfilled last_seq numbers new events on from 3.
	if err := db.AddEvents(ctx(t), "r1", []fleetup.Event{{Node: "n1", Message: "four"}}); err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(ctx(t), "r1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%d:%s", e.Seq, e.Event.Message))
	}
	if s := strings.Join(got, " "); s != "1:one 2:two 3:three 4:four" {
		t.Errorf("events after upgrade: %s", s)
	}
	// A run without events starts at 1.
	if err := db.AddEvents(ctx(t), "r2", []fleetup.Event{{Node: "n1"}}); err != nil {
		t.Fatal(err)
	}
	if evs, err := db.Events(ctx(t), "r2", 0, 0); err != nil || len(evs) != 1 || evs[0].Seq != 1 {
		t.Errorf("r2 events %+v, %v", evs, err)
	}
	r, err := db.Run(ctx(t), "r2")
	if err != nil {
		t.Fatal(err)
	}
	if r.PID != 42 || r.ProcStart != 7 || r.Account != "alice" || r.State != RunRunning {
		t.Errorf("r2 after upgrade: %+v", r.Run)
	}
	n, err := db.Node(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "web1" || len(n.Targets) != 1 || n.Targets[0] != "root@198.18.1.2" || n.Tags[0] != "web" {
		t.Errorf("node after upgrade: %+v", n)
	}
	// The indexes of version 2 are there.
	var idx int
	if err := db.sql.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'runs_started'`).Scan(&idx); err != nil || idx != 1 {
		t.Errorf("index runs_started: %d, %v", idx, err)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	dir := t.TempDir()
	for range 3 {
		db, err := Open(Path(dir), KeyPath(dir))
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	rows := 0
	sdb, err := sql.Open("sqlite", dsn(Path(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	if err := sdb.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(migrations) {
		t.Errorf("schema_migrations holds %d rows, %v; want %d", rows, err, len(migrations))
	}
}

func TestMigrateRefusesNewer(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	newer := len(migrations) + 3
	rawExec(t, dir, fmt.Sprintf(`INSERT INTO schema_migrations (version, applied) VALUES (%d, 0)`, newer))
	_, err = Open(Path(dir), KeyPath(dir))
	want := fmt.Sprintf("store %s: schema version %d is newer than this fleetup (%d); upgrade fleetup", Path(dir), newer, len(migrations))
	if err == nil || err.Error() != want {
		t.Fatalf("error %v\nwant  %s", err, want)
	}
	var se *SchemaTooNewError
	if !errors.As(err, &se) || se.Version != newer || se.Known != len(migrations) {
		t.Errorf("not a SchemaTooNewError: %#v", err)
	}
}

// TestMigrationsPortable keeps the schema to the types and syntax both
// SQLite and PostgreSQL take.
func TestMigrationsPortable(t *testing.T) {
	banned := []string{"AUTOINCREMENT", "DATETIME", "REAL", "BOOLEAN", "VARCHAR", "JSON", "WITHOUT ROWID", "STRICT", "INSERT OR", "REPLACE INTO"}
	for v, m := range migrations {
		for _, s := range m {
			u := strings.ToUpper(s)
			for _, b := range banned {
				if strings.Contains(u, b) {
					t.Errorf("migration %d uses %s: %s", v+1, b, s)
				}
			}
			if strings.Contains(u, "INTEGER PRIMARY KEY") {
				t.Errorf("migration %d spells out the auto-increment id (use {{autoid}}): %s", v+1, s)
			}
		}
	}
}

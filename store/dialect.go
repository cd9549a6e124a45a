package store

import (
	"strconv"
	"strings"
)

// dialect is what differs between the SQL databases the store's SQL is
// written for: the DDL of an auto-increment id column and of a column of
// bytes, and the placeholder syntax. Everything else is common SQL.
type dialect struct {
	name string
	// autoID is the type of an id column whose values the database
	// assigns; migrations write it as {{autoid}}.
	autoID string
	// blob is the type of a column of bytes; migrations write it as
	// {{blob}}.
	blob string
	// rebind turns a query written with ? placeholders into the
	// dialect's.
	rebind func(query string) string
}

// sqliteDialect is SQLite's: an INTEGER PRIMARY KEY is the rowid, and ?
// placeholders are native.
var sqliteDialect = dialect{
	name:   "sqlite",
	autoID: "INTEGER PRIMARY KEY",
	blob:   "BLOB",
	rebind: func(q string) string { return q },
}

// postgresDialect is PostgreSQL's, kept for the day the store runs there
// (no driver is linked in yet).
var postgresDialect = dialect{
	name:   "postgres",
	autoID: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
	blob:   "BYTEA",
	rebind: rebindDollar,
}

// ddl is a migration statement with the dialect's pieces in place.
func (d dialect) ddl(stmt string) string {
	return strings.NewReplacer("{{autoid}}", d.autoID, "{{blob}}", d.blob).Replace(stmt)
}

// rebindDollar numbers the ? placeholders of q $1, $2, ... (PostgreSQL's
// syntax). The store's queries hold no ? inside string literals, which it
// does not skip.
func rebindDollar(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

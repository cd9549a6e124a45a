package store

import (
	"context"
	"fmt"
)

// AddAudit records what someone did. Time, when zero, is now; Action is
// required.
func (db *DB) AddAudit(ctx context.Context, e AuditEntry) error {
	if err := checkText("audit action", e.Action, maxName, true); err != nil {
		return err
	}
	for _, f := range []struct{ field, v string }{
		{"audit account", e.Account}, {"audit object", e.Object}, {"audit remote", e.Remote},
	} {
		if err := checkText(f.field, f.v, maxText, false); err != nil {
			return err
		}
	}
	// Detail is free text (it may hold an error's several lines), only
	// bounded.
	if len(e.Detail) > 64<<10 {
		return invalid("audit detail", "", "longer than 64 KiB")
	}
	at := micros(e.Time)
	if at == 0 {
		at = db.nowMicros()
	}
	return db.write(ctx, func(c conn) error {
		_, err := c.exec(ctx, `INSERT INTO audit (at, account_id, account, action, object, detail, remote) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			at, e.AccountID, e.Account, e.Action, e.Object, e.Detail, e.Remote)
		if err != nil {
			return fmt.Errorf("audit %s: %w", e.Action, err)
		}
		return nil
	})
}

// AuditLog is the audit log, newest first, at most limit entries (0: all):
// everyone's for accountID 0, else that account's alone.
func (db *DB) AuditLog(ctx context.Context, accountID int64, limit int) ([]AuditEntry, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	q := `SELECT id, at, account_id, account, action, object, detail, remote FROM audit`
	var args []any
	if accountID != 0 {
		q += ` WHERE account_id = ?`
		args = append(args, accountID)
	}
	rows, err := db.read().query(ctx, q+` ORDER BY at DESC, id DESC`+limitClause(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var (
			e  AuditEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &at, &e.AccountID, &e.Account, &e.Action, &e.Object, &e.Detail, &e.Remote); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		e.Time = fromMicros(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return out, nil
}

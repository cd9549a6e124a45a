package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// AccountCount is how many accounts there are (0: the first
// administrator is still to be made).
func (db *DB) AccountCount(ctx context.Context) (int, error) {
	var n int
	if err := db.read().queryRow(ctx, `SELECT COUNT(*) FROM accounts`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count accounts: %w", err)
	}
	return n, nil
}

// CreateAccount makes an account whose password is hashed with argon2id.
// It refuses a malformed name, an unknown role, a password shorter than
// 12 bytes, and a name already taken (ErrExists).
func (db *DB) CreateAccount(ctx context.Context, name string, password []byte, role string) (*Account, error) {
	if err := checkAccountName(name); err != nil {
		return nil, err
	}
	if err := checkRole(role); err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", name, err)
	}
	a := &Account{Name: name, Role: role}
	err = db.write(ctx, func(c conn) error {
		taken, err := c.exists(ctx, `SELECT 1 FROM accounts WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("account %s: %w", name, ErrExists)
		}
		created := db.nowMicros()
		a.Created = fromMicros(created)
		return c.queryRow(ctx, `INSERT INTO accounts (name, role, password, created) VALUES (?, ?, ?, ?) RETURNING id`,
			name, role, hash, created).Scan(&a.ID)
	})
	if err != nil {
		if errors.Is(err, ErrExists) {
			return nil, err
		}
		return nil, fmt.Errorf("create account %s: %w", name, err)
	}
	return a, nil
}

// Authenticate returns the account whose name and password these are.
// An unknown name and a wrong password both fail with ErrBadCredentials,
// after the same work (one argon2id hash).
func (db *DB) Authenticate(ctx context.Context, name string, password []byte) (*Account, error) {
	var (
		a     Account
		hash  string
		when  int64
		found bool
	)
	if checkAccountName(name) == nil {
		err := db.read().queryRow(ctx, `SELECT id, name, role, password, created FROM accounts WHERE name = ?`, name).
			Scan(&a.ID, &a.Name, &a.Role, &hash, &when)
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("login %q: %w", name, err)
		}
	}
	if !found {
		dummyHash(password)
		return nil, fmt.Errorf("login %q: %w", name, ErrBadCredentials)
	}
	ok, err := checkPasswordHash(hash, password)
	if err != nil {
		return nil, fmt.Errorf("login %q: account %d: %w", name, a.ID, err)
	}
	if !ok || len(password) == 0 {
		return nil, fmt.Errorf("login %q: %w", name, ErrBadCredentials)
	}
	a.Created = fromMicros(when)
	return &a, nil
}

// Account is the account with this id.
func (db *DB) Account(ctx context.Context, id int64) (*Account, error) {
	return account(ctx, db.read(), id)
}

func account(ctx context.Context, c conn, id int64) (*Account, error) {
	var (
		a    Account
		when int64
	)
	err := c.queryRow(ctx, `SELECT id, name, role, created FROM accounts WHERE id = ?`, id).Scan(&a.ID, &a.Name, &a.Role, &when)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("account %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("account %d: %w", id, err)
	}
	a.Created = fromMicros(when)
	return &a, nil
}

// Accounts are all accounts, by name.
func (db *DB) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := db.read().query(ctx, `SELECT id, name, role, created FROM accounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	defer rows.Close()
	out := []Account{}
	for rows.Next() {
		var (
			a    Account
			when int64
		)
		if err := rows.Scan(&a.ID, &a.Name, &a.Role, &when); err != nil {
			return nil, fmt.Errorf("accounts: %w", err)
		}
		a.Created = fromMicros(when)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	return out, nil
}

// SetPassword replaces an account's password (same rules as
// CreateAccount). Its sessions and API tokens stay valid.
func (db *DB) SetPassword(ctx context.Context, id int64, password []byte) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return fmt.Errorf("account %d: %w", id, err)
	}
	return db.write(ctx, func(c conn) error {
		res, err := c.exec(ctx, `UPDATE accounts SET password = ? WHERE id = ?`, hash, id)
		if err != nil {
			return fmt.Errorf("account %d: set password: %w", id, err)
		}
		return mustAffect(res, "account %d", id)
	})
}

// mustAffect is ErrNotFound naming what when res changed no row.
func mustAffect(res sql.Result, format string, args ...any) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(format, args...)
	}
	return nil
}

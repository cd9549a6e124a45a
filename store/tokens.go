package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// APITokenPrefix begins every API token secret, so that one is recognised
// where it should not be (a log, a repository).
const APITokenPrefix = "fut_"

// maxTTL bounds the lifetime of a session or setup token.
const maxTTL = 366 * 24 * time.Hour

// lastUsedEvery is how stale an API token's LastUsed may get before a use
// writes it again: scripts calling in a loop do not make a write each.
const lastUsedEvery = time.Minute

// newToken is 32 bytes from crypto/rand, base64url without padding.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// tokenHash is what the store keeps of a token: its SHA-256, in hex.
func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 || ttl > maxTTL {
		return invalid("lifetime", ttl.String(), "must be more than 0 and at most a year")
	}
	return nil
}

// NewSetupToken makes a one-time token, valid for ttl, that lets whoever
// holds it make the first administrator. It returns the token; the store
// keeps its hash alone.
func (db *DB) NewSetupToken(ctx context.Context, ttl time.Duration) (string, error) {
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	tok, err := newToken()
	if err != nil {
		return "", fmt.Errorf("setup token: %w", err)
	}
	err = db.write(ctx, func(c conn) error {
		now := db.nowMicros()
		if _, err := c.exec(ctx, `DELETE FROM setup_tokens WHERE expires <= ?`, now); err != nil {
			return err
		}
		_, err := c.exec(ctx, `INSERT INTO setup_tokens (hash, created, expires) VALUES (?, ?, ?)`,
			tokenHash(tok), now, now+ttl.Microseconds())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("setup token: %w", err)
	}
	return tok, nil
}

// UseSetupToken consumes a setup token: it fails with ErrNotFound when the
// token is unknown, used or expired, and succeeds once.
func (db *DB) UseSetupToken(ctx context.Context, token string) error {
	var used int64
	err := db.write(ctx, func(c conn) error {
		now := db.nowMicros()
		res, err := c.exec(ctx, `DELETE FROM setup_tokens WHERE hash = ? AND expires > ?`, tokenHash(token), now)
		if err != nil {
			return err
		}
		if used, err = res.RowsAffected(); err != nil {
			return err
		}
		// Expired tokens go too, this one included.
		_, err = c.exec(ctx, `DELETE FROM setup_tokens WHERE expires <= ?`, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("setup token: %w", err)
	}
	if used == 0 {
		return notFound("setup token")
	}
	return nil
}

// NewSession makes a session of the account, valid for ttl, with a random
// CSRF token. Token and CSRF are set in what it returns; the store keeps
// the token's hash alone. Expired sessions are deleted on the way.
func (db *DB) NewSession(ctx context.Context, accountID int64, ttl time.Duration) (*Session, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	tok, err := newToken()
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	csrf, err := newToken()
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	s := &Session{Token: tok, AccountID: accountID, CSRF: csrf}
	err = db.write(ctx, func(c conn) error {
		if _, err := account(ctx, c, accountID); err != nil {
			return err
		}
		now := db.nowMicros()
		if _, err := c.exec(ctx, `DELETE FROM sessions WHERE expires <= ?`, now); err != nil {
			return fmt.Errorf("session: %w", err)
		}
		s.Created, s.Expires = fromMicros(now), fromMicros(now+ttl.Microseconds())
		_, err := c.exec(ctx, `INSERT INTO sessions (hash, account_id, csrf, created, expires) VALUES (?, ?, ?, ?, ?)`,
			tokenHash(tok), accountID, csrf, now, now+ttl.Microseconds())
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Session is the session whose token this is, with its account (CSRF set,
// Token not). An unknown or expired token fails with ErrNotFound; an
// expired session is deleted.
func (db *DB) Session(ctx context.Context, token string) (*Session, *Account, error) {
	var (
		s                Session
		a                Account
		created, expires int64
		acreated         int64
	)
	h := tokenHash(token)
	err := db.read().queryRow(ctx, `SELECT s.account_id, s.csrf, s.created, s.expires, a.id, a.name, a.role, a.created
		FROM sessions s JOIN accounts a ON a.id = s.account_id WHERE s.hash = ?`, h).
		Scan(&s.AccountID, &s.CSRF, &created, &expires, &a.ID, &a.Name, &a.Role, &acreated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, notFound("session")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	if now := db.nowMicros(); expires <= now {
		err := db.write(ctx, func(c conn) error {
			_, err := c.exec(ctx, `DELETE FROM sessions WHERE hash = ?`, h)
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("session: delete expired: %w", err)
		}
		return nil, nil, fmt.Errorf("session expired: %w", ErrNotFound)
	}
	s.Created, s.Expires = fromMicros(created), fromMicros(expires)
	a.Created = fromMicros(acreated)
	return &s, &a, nil
}

// DeleteSession ends a session (a logout); ErrNotFound when there is
// none with this token.
func (db *DB) DeleteSession(ctx context.Context, token string) error {
	return db.write(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM sessions WHERE hash = ?`, tokenHash(token))
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		return mustAffect(res, "session")
	})
}

// NewAPIToken makes an API token of the account, named name (unique among
// the account's tokens: ErrExists). Secret, "fut_" and 43 characters of
// base64url, is set in what it returns and never again; the store keeps
// its hash alone.
func (db *DB) NewAPIToken(ctx context.Context, accountID int64, name string) (*APIToken, error) {
	if err := checkName("API token name", name); err != nil {
		return nil, err
	}
	tok, err := newToken()
	if err != nil {
		return nil, fmt.Errorf("api token: %w", err)
	}
	t := &APIToken{AccountID: accountID, Name: name, Secret: APITokenPrefix + tok}
	err = db.write(ctx, func(c conn) error {
		if _, err := account(ctx, c, accountID); err != nil {
			return err
		}
		taken, err := c.exists(ctx, `SELECT 1 FROM api_tokens WHERE account_id = ? AND name = ?`, accountID, name)
		if err != nil {
			return fmt.Errorf("api token %s: %w", name, err)
		}
		if taken {
			return fmt.Errorf("api token %s of account %d: %w", name, accountID, ErrExists)
		}
		now := db.nowMicros()
		t.Created = fromMicros(now)
		err = c.queryRow(ctx, `INSERT INTO api_tokens (account_id, name, hash, created) VALUES (?, ?, ?, ?) RETURNING id`,
			accountID, name, tokenHash(t.Secret), now).Scan(&t.ID)
		if err != nil {
			return fmt.Errorf("api token %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// APITokenAccount is the account whose API token secret is; an unknown
// secret fails with ErrBadCredentials. It records the token's use
// (LastUsed, to the minute).
func (db *DB) APITokenAccount(ctx context.Context, secret string) (*Account, error) {
	if !strings.HasPrefix(secret, APITokenPrefix) {
		return nil, fmt.Errorf("api token: %w", ErrBadCredentials)
	}
	var (
		id, lastUsed, created int64
		a                     Account
	)
	h := tokenHash(secret)
	err := db.read().queryRow(ctx, `SELECT t.id, t.last_used, a.id, a.name, a.role, a.created
		FROM api_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.hash = ?`, h).
		Scan(&id, &lastUsed, &a.ID, &a.Name, &a.Role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("api token: %w", ErrBadCredentials)
	}
	if err != nil {
		return nil, fmt.Errorf("api token: %w", err)
	}
	a.Created = fromMicros(created)
	if now := db.nowMicros(); now-lastUsed >= lastUsedEvery.Microseconds() {
		err := db.write(ctx, func(c conn) error {
			_, err := c.exec(ctx, `UPDATE api_tokens SET last_used = ? WHERE id = ?`, now, id)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("api token %d: record use: %w", id, err)
		}
	}
	return &a, nil
}

// APITokens are the account's API tokens, by name (secrets unset);
// accountID 0: everyone's.
func (db *DB) APITokens(ctx context.Context, accountID int64) ([]APIToken, error) {
	q := `SELECT id, account_id, name, created, last_used FROM api_tokens`
	var args []any
	if accountID != 0 {
		q += ` WHERE account_id = ?`
		args = append(args, accountID)
	}
	rows, err := db.read().query(ctx, q+` ORDER BY account_id, name`, args...)
	if err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	defer rows.Close()
	out := []APIToken{}
	for rows.Next() {
		var (
			t                 APIToken
			created, lastUsed int64
		)
		if err := rows.Scan(&t.ID, &t.AccountID, &t.Name, &created, &lastUsed); err != nil {
			return nil, fmt.Errorf("api tokens: %w", err)
		}
		t.Created, t.LastUsed = fromMicros(created), fromMicros(lastUsed)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	return out, nil
}

// DeleteAPIToken revokes the account's API token id; ErrNotFound when the
// account has no such token.
func (db *DB) DeleteAPIToken(ctx context.Context, accountID, id int64) error {
	return db.write(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM api_tokens WHERE id = ? AND account_id = ?`, id, accountID)
		if err != nil {
			return fmt.Errorf("api token %d: %w", id, err)
		}
		return mustAffect(res, "api token %d of account %d", id, accountID)
	})
}

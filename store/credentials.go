package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// credentialAD is the additional data a credential's secret is sealed
// with: its name and user, so that a ciphertext copied to another row (or
// a row renamed behind the store's back) fails to open. Names and users
// hold no NUL (checkText), which keeps the two apart.
func credentialAD(name, user string) []byte {
	return []byte("fleetup credential\x00" + name + "\x00" + user)
}

func (db *DB) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(db.key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts secret with AES-256-GCM under a new random 12-byte nonce.
func (db *DB) seal(name, user string, secret []byte) (nonce, sealed []byte, err error) {
	g, err := db.aead()
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, g.Seal(nil, nonce, secret, credentialAD(name, user)), nil
}

// PutCredential stores a user and secret under name: a new credential, or,
// when one has this name, a new user and secret for it (same id, so nodes
// that use it go on). The secret is encrypted (AES-256-GCM, the store's
// key, a new nonce each time); the caller may clear its copy afterwards.
func (db *DB) PutCredential(ctx context.Context, name, user string, secret []byte) (*Credential, error) {
	if err := checkName("credential name", name); err != nil {
		return nil, err
	}
	if err := checkText("credential user", user, maxName, true); err != nil {
		return nil, err
	}
	switch {
	case len(secret) == 0:
		return nil, invalid("credential secret", "", "empty")
	case len(secret) > maxSecret:
		return nil, invalid("credential secret", "", "longer than 64 KiB")
	}
	nonce, sealed, err := db.seal(name, user, secret)
	if err != nil {
		return nil, fmt.Errorf("credential %s: encrypt: %w", name, err)
	}
	cr := &Credential{Name: name, User: user}
	err = db.write(ctx, func(c conn) error {
		var created int64
		err := c.queryRow(ctx, `SELECT id, created FROM credentials WHERE name = ?`, name).Scan(&cr.ID, &created)
		switch {
		case err == nil:
			cr.Created = fromMicros(created)
			_, err = c.exec(ctx, `UPDATE credentials SET username = ?, nonce = ?, secret = ? WHERE id = ?`, user, nonce, sealed, cr.ID)
			return err
		case errors.Is(err, sql.ErrNoRows):
			now := db.nowMicros()
			cr.Created = fromMicros(now)
			return c.queryRow(ctx, `INSERT INTO credentials (name, username, nonce, secret, created) VALUES (?, ?, ?, ?, ?) RETURNING id`,
				name, user, nonce, sealed, now).Scan(&cr.ID)
		default:
			return err
		}
	})
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", name, err)
	}
	return cr, nil
}

// Credentials are all credentials, by name, without their secrets.
func (db *DB) Credentials(ctx context.Context) ([]Credential, error) {
	rows, err := db.read().query(ctx, `SELECT id, name, username, created FROM credentials ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	defer rows.Close()
	out := []Credential{}
	for rows.Next() {
		var (
			cr      Credential
			created int64
		)
		if err := rows.Scan(&cr.ID, &cr.Name, &cr.User, &created); err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		cr.Created = fromMicros(created)
		out = append(out, cr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return out, nil
}

// CredentialSecret is credential id's user and decrypted secret. The
// caller owns the secret and should clear it when done. A secret that
// does not open (another store's key, a row tampered with) is an error.
func (db *DB) CredentialSecret(ctx context.Context, id int64) (user string, secret []byte, err error) {
	var (
		name          string
		nonce, sealed []byte
	)
	err = db.read().queryRow(ctx, `SELECT name, username, nonce, secret FROM credentials WHERE id = ?`, id).
		Scan(&name, &user, &nonce, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, notFound("credential %d", id)
	}
	if err != nil {
		return "", nil, fmt.Errorf("credential %d: %w", id, err)
	}
	g, err := db.aead()
	if err != nil {
		return "", nil, fmt.Errorf("credential %d: %w", id, err)
	}
	if len(nonce) != g.NonceSize() {
		return "", nil, fmt.Errorf("credential %d (%s): malformed nonce", id, name)
	}
	secret, err = g.Open(nil, nonce, sealed, credentialAD(name, user))
	if err != nil {
		return "", nil, fmt.Errorf("credential %d (%s): cannot decrypt its secret: the key file is not the one it was stored with, or the row was altered", id, name)
	}
	return user, secret, nil
}

// DeleteCredential deletes credential id; it is refused (ErrInUse, naming
// the nodes) while a node refers to it.
func (db *DB) DeleteCredential(ctx context.Context, id int64) error {
	return db.write(ctx, func(c conn) error {
		var name string
		err := c.queryRow(ctx, `SELECT name FROM credentials WHERE id = ?`, id).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("credential %d", id)
		}
		if err != nil {
			return fmt.Errorf("credential %d: %w", id, err)
		}
		users, err := queryStrings(ctx, c, `SELECT name FROM nodes WHERE credential_id = ? OR bmc_credential_id = ? ORDER BY name`, id, id)
		if err != nil {
			return fmt.Errorf("credential %d: %w", id, err)
		}
		if len(users) > 0 {
			return fmt.Errorf("credential %d (%s) is used by node %s: %w", id, name, strings.Join(users, ", "), ErrInUse)
		}
		if _, err := c.exec(ctx, `DELETE FROM credentials WHERE id = ?`, id); err != nil {
			return fmt.Errorf("credential %d: %w", id, err)
		}
		return nil
	})
}

// queryStrings is the one TEXT column of query's rows.
func queryStrings(ctx context.Context, c conn, query string, args ...any) ([]string, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

package store

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestCredentials(t *testing.T) {
	db, _ := openTest(t)
	c1, err := db.PutCredential(ctx(t), "lab-root", "root", []byte("s3cret one"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cred, user string
		secret           []byte
		want             error
	}{
		{"second", "bmc", "admin", []byte("s3cret two"), nil},
		{"empty name", "", "root", []byte("x"), errInvalid},
		{"name with newline", "a\nb", "root", []byte("x"), errInvalid},
		{"name with space at end", "a ", "root", []byte("x"), errInvalid},
		{"empty user", "c", "", []byte("x"), errInvalid},
		{"user with NUL", "c", "ro\x00ot", []byte("x"), errInvalid},
		{"empty secret", "c", "root", nil, errInvalid},
		{"huge secret", "c", "root", make([]byte, 65<<10), errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.PutCredential(ctx(t), tt.cred, tt.user, tt.secret)
			checkErr(t, err, tt.want)
		})
	}
	user, secret, err := db.CredentialSecret(ctx(t), c1.ID)
	if err != nil || user != "root" || string(secret) != "s3cret one" {
		t.Fatalf("CredentialSecret = %q, %q, %v", user, secret, err)
	}
	_, _, err = db.CredentialSecret(ctx(t), 999)
	wantErr(t, err, ErrNotFound)

	// Put again: same id, new user and secret.
	again, err := db.PutCredential(ctx(t), "lab-root", "admin", []byte("rotated"))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != c1.ID || !again.Created.Equal(c1.Created) {
		t.Errorf("replaced credential %+v, was %+v", again, c1)
	}
	user, secret, _ = db.CredentialSecret(ctx(t), c1.ID)
	if user != "admin" || string(secret) != "rotated" {
		t.Errorf("after replace: %q %q", user, secret)
	}

	list, err := db.Credentials(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "bmc" || list[1].Name != "lab-root" || list[1].User != "admin" {
		t.Errorf("Credentials = %+v", list)
	}

	// In use: refused, naming the nodes.
	if _, err := db.AddNode(ctx(t), Node{Name: "web1", Targets: []string{"root@198.18.1.2"}, CredentialID: c1.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddNode(ctx(t), Node{Name: "web2", Targets: []string{"bmc://admin@198.18.1.3"}, BMCCredentialID: c1.ID}); err != nil {
		t.Fatal(err)
	}
	err = db.DeleteCredential(ctx(t), c1.ID)
	wantErr(t, err, ErrInUse)
	if !strings.Contains(err.Error(), "web1, web2") {
		t.Errorf("error %q does not name the nodes", err)
	}
	wantErr(t, db.DeleteCredential(ctx(t), 999), ErrNotFound)
	wantErr(t, db.DeleteCredential(ctx(t), list[0].ID), nil)
	wantErr(t, db.DeleteCredential(ctx(t), list[0].ID), ErrNotFound)
}

// TestCredentialMovedFailsToOpen copies one row's ciphertext over
// another's: the additional data (name and user) makes it fail to open.
func TestCredentialMovedFailsToOpen(t *testing.T) {
	db, _ := openTest(t)
	a, _ := db.PutCredential(ctx(t), "a", "root", []byte("secret of a"))
	b, _ := db.PutCredential(ctx(t), "b", "root", []byte("secret of b"))
	if _, err := db.sql.Exec(`UPDATE credentials SET nonce = (SELECT nonce FROM credentials WHERE id = ?), secret = (SELECT secret FROM credentials WHERE id = ?) WHERE id = ?`, a.ID, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, s, err := db.CredentialSecret(ctx(t), b.ID); err == nil {
		t.Fatalf("moved ciphertext opened: %q", s)
	}
	// So does a changed user.
	if _, err := db.sql.Exec(`UPDATE credentials SET username = 'admin' WHERE id = ?`, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CredentialSecret(ctx(t), a.ID); err == nil || !strings.Contains(err.Error(), "cannot decrypt") {
		t.Fatalf("error %v", err)
	}
}

func TestCredentialOtherKey(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.PutCredential(ctx(t), "a", "root", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	// The key file lost: Open does not make a new one over credentials.
	other := t.TempDir()
	_, err = Open(Path(dir), KeyPath(other))
	if err == nil || !strings.Contains(err.Error(), "is missing but the store holds 1 credentials") {
		t.Fatalf("error %v", err)
	}
	if _, err := os.Stat(KeyPath(other)); !os.IsNotExist(err) {
		t.Errorf("a new key file was left: %v", err)
	}

	// Another key: the secret does not open.
	writeFile(t, KeyPath(other), bytes.Repeat([]byte{7}, 32), 0o600)
	db, err = Open(Path(dir), KeyPath(other))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := db.CredentialSecret(ctx(t), c.ID); err == nil || !strings.Contains(err.Error(), "cannot decrypt") {
		t.Fatalf("error %v", err)
	}
}

// TestCredentialEncryptedAtRest writes a credential whose secret is a
// unique marker and looks for it in the raw bytes of the database, its
// WAL and shared-memory files, before and after a checkpoint.
func TestCredentialEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	marker := []byte("MARKER-7f3c9a1e-do-not-store-in-clear")
	user := "marker-user-4b1d"
	for i := range 3 { // several versions of the row, in the WAL
		if _, err := db.PutCredential(ctx(t), "m", user, marker); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if _, s, err := db.CredentialSecret(ctx(t), 1); err != nil || !bytes.Equal(s, marker) {
		t.Fatalf("CredentialSecret = %q, %v", s, err)
	}
	look := func(when string) {
		t.Helper()
		sawUser := false
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(Path(dir) + suffix)
			if err != nil {
				if os.IsNotExist(err) && suffix != "" {
					continue
				}
				t.Fatal(err)
			}
			if bytes.Contains(b, marker) {
				t.Errorf("%s: the secret is in fleetup.db%s in clear", when, suffix)
			}
			sawUser = sawUser || bytes.Contains(b, []byte(user))
		}
		// The files read are the ones written: the user name, not
		// secret, is there.
		if !sawUser {
			t.Errorf("%s: the user name is in none of the files: were the right ones read?", when)
		}
	}
	look("before the checkpoint")
	if _, err := db.sql.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	look("after the checkpoint")
	if b, _ := os.ReadFile(KeyPath(dir)); bytes.Contains(b, marker) {
		t.Error("marker in the key file")
	}
}

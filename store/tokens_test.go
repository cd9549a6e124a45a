package store

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSetupToken(t *testing.T) {
	db, clk := openTest(t)
	tok, err := db.NewSetupToken(ctx(t), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(b) != 32 {
		t.Errorf("token %q: %d bytes, %v", tok, len(b), err)
	}
	for _, ttl := range []time.Duration{0, -time.Second, 400 * 24 * time.Hour} {
		if _, err := db.NewSetupToken(ctx(t), ttl); err == nil {
			t.Errorf("ttl %v accepted", ttl)
		}
	}
	wantErr(t, db.UseSetupToken(ctx(t), "nonsense"), ErrNotFound)
	wantErr(t, db.UseSetupToken(ctx(t), ""), ErrNotFound)
	wantErr(t, db.UseSetupToken(ctx(t), tok), nil)
	wantErr(t, db.UseSetupToken(ctx(t), tok), ErrNotFound) // once only

	old, err := db.NewSetupToken(ctx(t), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	wantErr(t, db.UseSetupToken(ctx(t), old), ErrNotFound) // expired
	var n int
	if err := db.sql.QueryRow(`SELECT COUNT(*) FROM setup_tokens`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d setup tokens left, %v", n, err)
	}
	// Only the hash is stored.
	tok, _ = db.NewSetupToken(ctx(t), time.Hour)
	var stored string
	if err := db.sql.QueryRow(`SELECT hash FROM setup_tokens`).Scan(&stored); err != nil || stored != tokenHash(tok) || strings.Contains(stored, tok) {
		t.Errorf("stored %q for %q, %v", stored, tok, err)
	}
}

func TestSessions(t *testing.T) {
	db, clk := openTest(t)
	a, err := db.CreateAccount(ctx(t), "alice", goodPassword, RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := db.NewSession(ctx(t), a.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s.Token == "" || s.CSRF == "" || s.Token == s.CSRF || !s.Expires.Equal(s.Created.Add(time.Hour)) {
		t.Errorf("session %+v", s)
	}
	got, acct, err := db.Session(ctx(t), s.Token)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, acct); diff != "" {
		t.Errorf("account (-want +got):\n%s", diff)
	}
	want := *s
	want.Token = ""
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}

	tests := []struct {
		name    string
		account int64
		ttl     time.Duration
		want    error
	}{
		{"unknown account", 999, time.Hour, ErrNotFound},
		{"zero ttl", a.ID, 0, errInvalid},
		{"negative ttl", a.ID, -time.Hour, errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.NewSession(ctx(t), tt.account, tt.ttl)
			checkErr(t, err, tt.want)
		})
	}
	_, _, err = db.Session(ctx(t), "nonsense")
	wantErr(t, err, ErrNotFound)

	// Expiry: the session is refused at Expires, and deleted.
	short, err := db.NewSession(ctx(t), a.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(59 * time.Second)
	if _, _, err := db.Session(ctx(t), short.Token); err != nil {
		t.Errorf("before expiry: %v", err)
	}
	clk.add(time.Second)
	_, _, err = db.Session(ctx(t), short.Token)
	wantErr(t, err, ErrNotFound)
	var n int
	db.sql.QueryRow(`SELECT COUNT(*) FROM sessions WHERE hash = ?`, tokenHash(short.Token)).Scan(&n)
	if n != 0 {
		t.Error("expired session not deleted")
	}

	wantErr(t, db.DeleteSession(ctx(t), s.Token), nil)
	wantErr(t, db.DeleteSession(ctx(t), s.Token), ErrNotFound)
	_, _, err = db.Session(ctx(t), s.Token)
	wantErr(t, err, ErrNotFound)

	// Sessions go with their account.
	s2, _ := db.NewSession(ctx(t), a.ID, time.Hour)
	if _, err := db.sql.Exec(`DELETE FROM accounts WHERE id = ?`, a.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err = db.Session(ctx(t), s2.Token)
	wantErr(t, err, ErrNotFound)
}

func TestAPITokens(t *testing.T) {
	db, clk := openTest(t)
	alice, _ := db.CreateAccount(ctx(t), "alice", goodPassword, RoleAdmin)
	bob, _ := db.CreateAccount(ctx(t), "bob", goodPassword, RoleViewer)

	tok, err := db.NewAPIToken(ctx(t), alice.ID, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Secret, "fut_") || len(tok.Secret) != 4+43 || tok.ID == 0 {
		t.Errorf("token %+v", tok)
	}
	tests := []struct {
		name    string
		account int64
		token   string
		want    error
	}{
		{"same name other account", bob.ID, "ci", nil},
		{"taken", alice.ID, "ci", ErrExists},
		{"unknown account", 999, "x", ErrNotFound},
		{"empty name", alice.ID, "", errInvalid},
		{"control in name", alice.ID, "a\tb", errInvalid},
		{"second", alice.ID, "backup job", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.NewAPIToken(ctx(t), tt.account, tt.token)
			checkErr(t, err, tt.want)
		})
	}

	a, err := db.APITokenAccount(ctx(t), tok.Secret)
	if err != nil || a.ID != alice.ID {
		t.Fatalf("APITokenAccount = %+v, %v", a, err)
	}
	for _, bad := range []string{"", "fut_", "fut_nonsense", tok.Secret[4:], tok.Secret + "x"} {
		_, err := db.APITokenAccount(ctx(t), bad)
		wantErr(t, err, ErrBadCredentials)
	}

	list, err := db.APITokens(ctx(t), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "backup job" || list[1].Name != "ci" || list[1].Secret != "" {
		t.Errorf("APITokens = %+v", list)
	}
	if !list[1].LastUsed.Equal(clk.t) || !list[0].LastUsed.IsZero() {
		t.Errorf("LastUsed %v, %v", list[1].LastUsed, list[0].LastUsed)
	}
	// LastUsed is written again only once it is a minute old.
	clk.add(30 * time.Second)
	db.APITokenAccount(ctx(t), tok.Secret)
	list, _ = db.APITokens(ctx(t), alice.ID)
	if !list[1].LastUsed.Equal(clk.t.Add(-30 * time.Second)) {
		t.Errorf("LastUsed rewritten within the minute: %v", list[1].LastUsed)
	}
	clk.add(30 * time.Second)
	db.APITokenAccount(ctx(t), tok.Secret)
	list, _ = db.APITokens(ctx(t), alice.ID)
	if !list[1].LastUsed.Equal(clk.t) {
		t.Errorf("LastUsed not rewritten after a minute: %v", list[1].LastUsed)
	}
	all, err := db.APITokens(ctx(t), 0)
	if err != nil || len(all) != 3 {
		t.Errorf("APITokens(0) = %d tokens, %v", len(all), err)
	}

	wantErr(t, db.DeleteAPIToken(ctx(t), bob.ID, tok.ID), ErrNotFound) // not bob's
	wantErr(t, db.DeleteAPIToken(ctx(t), alice.ID, tok.ID), nil)
	wantErr(t, db.DeleteAPIToken(ctx(t), alice.ID, tok.ID), ErrNotFound)
	_, err = db.APITokenAccount(ctx(t), tok.Secret)
	wantErr(t, err, ErrBadCredentials)

	var stored string
	db.sql.QueryRow(`SELECT hash FROM api_tokens WHERE account_id = ?`, bob.ID).Scan(&stored)
	if len(stored) != 64 {
		t.Errorf("stored %q", stored)
	}
}

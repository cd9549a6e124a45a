package store

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var goodPassword = []byte("correct horse battery")

func TestCreateAccount(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.CreateAccount(ctx(t), "alice", goodPassword, RoleAdmin); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, account, role string
		password            []byte
		want                error
	}{
		{"operator", "bob.smith@example-1_x", RoleOperator, goodPassword, nil},
		{"viewer", "carol", RoleViewer, []byte("twelve bytes"), nil},
		{"taken", "alice", RoleViewer, goodPassword, ErrExists},
		{"empty name", "", RoleViewer, goodPassword, errInvalid},
		{"long name", strings.Repeat("a", 65), RoleViewer, goodPassword, errInvalid},
		{"64 chars", strings.Repeat("a", 64), RoleViewer, goodPassword, nil},
		{"space in name", "al ice", RoleViewer, goodPassword, errInvalid},
		{"slash in name", "al/ice", RoleViewer, goodPassword, errInvalid},
		{"unicode name", "alicé", RoleViewer, goodPassword, errInvalid},
		{"bad role", "dave", "root", goodPassword, errInvalid},
		{"no role", "dave", "", goodPassword, errInvalid},
		{"empty password", "dave", RoleViewer, nil, errInvalid},
		{"short password", "dave", RoleViewer, []byte("elevenbytes"), errInvalid},
		{"huge password", "dave", RoleViewer, make([]byte, 1025), errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := db.CreateAccount(ctx(t), tt.account, tt.password, tt.role)
			checkErr(t, err, tt.want)
			if err != nil {
				if tt.password != nil && strings.Contains(err.Error(), string(tt.password)) {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if a.ID == 0 || a.Name != tt.account || a.Role != tt.role || a.Created.IsZero() {
				t.Errorf("account %+v", a)
			}
			got, err := db.Account(ctx(t), a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(a, got); diff != "" {
				t.Errorf("Account differs (-made +read):\n%s", diff)
			}
		})
	}
	n, err := db.AccountCount(ctx(t))
	if err != nil || n != 4 {
		t.Errorf("AccountCount = %d, %v", n, err)
	}
	as, err := db.Accounts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range as {
		names = append(names, a.Name)
	}
	if diff := cmp.Diff([]string{strings.Repeat("a", 64), "alice", "bob.smith@example-1_x", "carol"}, names); diff != "" {
		t.Errorf("Accounts (-want +got):\n%s", diff)
	}
	_, err = db.Account(ctx(t), 999)
	wantErr(t, err, ErrNotFound)
	if err.Error() != "account 999: not found" {
		t.Errorf("error %q", err)
	}
}

func TestAuthenticate(t *testing.T) {
	db, _ := openTest(t)
	alice, err := db.CreateAccount(ctx(t), "alice", goodPassword, RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, account string
		password      []byte
		want          error
	}{
		{"right", "alice", goodPassword, nil},
		{"wrong password", "alice", []byte("correct horse batterY"), ErrBadCredentials},
		{"empty password", "alice", nil, ErrBadCredentials},
		{"unknown name", "mallory", goodPassword, ErrBadCredentials},
		{"malformed name", "al ice'; --", goodPassword, ErrBadCredentials},
		{"empty name", "", goodPassword, ErrBadCredentials},
		{"case differs", "Alice", goodPassword, ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := db.Authenticate(ctx(t), tt.account, tt.password)
			wantErr(t, err, tt.want)
			if err == nil && (a.ID != alice.ID || a.Role != RoleOperator) {
				t.Errorf("account %+v", a)
			}
		})
	}
	// One message for an unknown name and a wrong password.
	_, e1 := db.Authenticate(ctx(t), "alice", []byte("wrong password!"))
	_, e2 := db.Authenticate(ctx(t), "mallory", []byte("wrong password!"))
	if strings.Replace(e1.Error(), "alice", "X", 1) != strings.Replace(e2.Error(), "mallory", "X", 1) {
		t.Errorf("errors tell unknown from wrong: %q, %q", e1, e2)
	}
}

func TestSetPassword(t *testing.T) {
	db, _ := openTest(t)
	a, err := db.CreateAccount(ctx(t), "alice", goodPassword, RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	newPW := []byte("another long password")
	tests := []struct {
		name string
		id   int64
		pw   []byte
		want error
	}{
		{"short", a.ID, []byte("short"), errInvalid},
		{"empty", a.ID, nil, errInvalid},
		{"unknown account", 999, newPW, ErrNotFound},
		{"good", a.ID, newPW, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, db.SetPassword(ctx(t), tt.id, tt.pw), tt.want)
		})
	}
	if _, err := db.Authenticate(ctx(t), "alice", goodPassword); err == nil {
		t.Error("old password still works")
	}
	if _, err := db.Authenticate(ctx(t), "alice", newPW); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestPasswordHashFormat(t *testing.T) {
	saved := argonParams
	defer func() { argonParams = saved }()
	argonParams = argon2Params{time: 2, memory: 128, threads: 2, saltLen: 16, keyLen: 32}
	h, err := hashPassword(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(h, "$")
	if len(f) != 6 || f[1] != "argon2id" || f[2] != "v=19" || f[3] != "m=128,t=2,p=2" || len(f[4]) != 22 || len(f[5]) != 43 {
		t.Fatalf("hash %s", h)
	}
	// A hash keeps its parameters: it still verifies after they change.
	argonParams = saved
	if ok, err := checkPasswordHash(h, goodPassword); err != nil || !ok {
		t.Errorf("check = %v, %v", ok, err)
	}
	for _, bad := range []string{
		"",
		"$argon2i$v=19$m=128,t=2,p=2$" + f[4] + "$" + f[5],
		"$argon2id$v=16$m=128,t=2,p=2$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=128,t=0,p=2$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=128,t=99,p=2$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=99999999,t=2,p=2$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=128,t=2,p=0$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=128,t=2,p=2,x=1$" + f[4] + "$" + f[5],
		"$argon2id$v=19$m=128,t=2,p=2$!!$" + f[5],
		"$argon2id$v=19$m=128,t=2,p=2$" + f[4] + "$" + f[5][:10],
		"$argon2id$v=19$m=128,t=2,p=2$" + f[4],
	} {
		if _, err := checkPasswordHash(bad, goodPassword); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestPasswordRealParameters runs one account through RFC 9106's
// parameters, the ones a real store uses.
func TestPasswordRealParameters(t *testing.T) {
	saved := argonParams
	defer func() { argonParams = saved }()
	argonParams = argon2Params{time: 3, memory: 64 << 10, threads: 4, saltLen: 16, keyLen: 32}
	h, err := hashPassword(goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Errorf("hash %s", h)
	}
	if ok, err := checkPasswordHash(h, goodPassword); err != nil || !ok {
		t.Errorf("check = %v, %v", ok, err)
	}
}

func TestAudit(t *testing.T) {
	db, clk := openTest(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	entries := []AuditEntry{
		{Time: at, AccountID: 1, Account: "alice", Action: "login", Remote: "198.18.0.1:5555"},
		{AccountID: 2, Account: "bob", Action: "node.add", Object: "web1", Detail: "targets root@198.18.1.2\nline two"},
		{AccountID: 1, Account: "alice", Action: "run.start", Object: "r1"},
	}
	for i, e := range entries {
		clk.add(time.Second)
		if err := db.AddAudit(ctx(t), e); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	for _, bad := range []AuditEntry{
		{Account: "alice"},
		{Action: "login\x00"},
		{Action: "login", Object: "a\nb"},
		{Action: "login", Detail: strings.Repeat("x", 65<<10)},
	} {
		checkErr(t, db.AddAudit(ctx(t), bad), errInvalid)
	}
	tests := []struct {
		name    string
		account int64
		limit   int
		want    []string
		err     error
	}{
		{"everyone", 0, 0, []string{"run.start", "node.add", "login"}, nil},
		{"limited", 0, 2, []string{"run.start", "node.add"}, nil},
		{"alice", 1, 0, []string{"run.start", "login"}, nil},
		{"bob", 2, 10, []string{"node.add"}, nil},
		{"nobody", 3, 0, nil, nil},
		{"negative limit", 0, -1, nil, errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.AuditLog(ctx(t), tt.account, tt.limit)
			checkErr(t, err, tt.err)
			var actions []string
			for _, e := range got {
				actions = append(actions, e.Action)
			}
			if diff := cmp.Diff(tt.want, actions); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	all, _ := db.AuditLog(ctx(t), 0, 0)
	if !all[2].Time.Equal(at.Truncate(time.Microsecond)) {
		t.Errorf("given time %v, read %v", at, all[2].Time)
	}
	if all[1].Time.IsZero() || all[1].Detail != entries[1].Detail || all[2].Remote != entries[0].Remote {
		t.Errorf("entry %+v", all[1])
	}
}

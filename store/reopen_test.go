package store

import (
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/google/go-cmp/cmp"
)

// TestReopen fills a store, closes it, opens it again and finds
// everything there.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	acct, err := db.CreateAccount(c, "alice", goodPassword, RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := db.NewSession(c, acct.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := db.NewAPIToken(c, acct.ID, "ci")
	if err != nil {
		t.Fatal(err)
	}
	setup, err := db.NewSetupToken(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := db.PutCredential(c, "root", "root", []byte("node password"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := db.AddNode(c, Node{Name: "web1", Targets: []string{"root@198.18.1.2"}, CredentialID: cred.ID, Tags: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	base, err := db.AddBaseline(c, "b", "/srv/b")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetBaselineCheck(c, base.ID, []ComponentSummary{{ID: "x"}}, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := db.BeginRun(c, Run{ID: "r1", Kind: RunDeploy, Source: SourceUI, Targets: []string{"root@198.18.1.2"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddEvents(c, "r1", []fleetup.Event{{Node: "root@198.18.1.2", Message: "hello"}}); err != nil {
		t.Fatal(err)
	}
	res := orchestrator.NodeResult{Node: "root@198.18.1.2", State: fleetup.StateComplete, Inventory: &fleetup.Inventory{Hostname: "web1"}}
	if err := db.NodeEnded(c, "r1", res); err != nil {
		t.Fatal(err)
	}
	if err := db.EndRun(c, "r1", RunEnded, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddAudit(c, AuditEntry{AccountID: acct.ID, Account: "alice", Action: "login"}); err != nil {
		t.Fatal(err)
	}
	runBefore, _ := db.Run(c, "r1")
	baseBefore, _ := db.Baseline(c, base.ID)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(Path(dir), KeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if a, err := db.Authenticate(c, "alice", goodPassword); err != nil || a.ID != acct.ID {
		t.Errorf("Authenticate: %v, %v", a, err)
	}
	if _, a, err := db.Session(c, sess.Token); err != nil || a.ID != acct.ID {
		t.Errorf("Session: %v", err)
	}
	if a, err := db.APITokenAccount(c, tok.Secret); err != nil || a.ID != acct.ID {
		t.Errorf("APITokenAccount: %v", err)
	}
	if err := db.UseSetupToken(c, setup); err != nil {
		t.Errorf("UseSetupToken: %v", err)
	}
	if user, secret, err := db.CredentialSecret(c, cred.ID); err != nil || user != "root" || string(secret) != "node password" {
		t.Errorf("CredentialSecret: %q %q %v", user, secret, err)
	}
	if n, err := db.Node(c, node.ID); err != nil || !cmp.Equal(n, node) {
		t.Errorf("Node: %v, %v", n, err)
	}
	if b, err := db.Baseline(c, base.ID); err != nil || !cmp.Equal(b, baseBefore) {
		t.Errorf("Baseline: %v", cmp.Diff(baseBefore, b))
	}
	if r, err := db.Run(c, "latest"); err != nil || !cmp.Equal(r, runBefore) {
		t.Errorf("Run: %v %v", err, cmp.Diff(runBefore, r))
	}
	if evs, err := db.Events(c, "r1", 0, 0); err != nil || len(evs) != 1 || evs[0].Event.Message != "hello" {
		t.Errorf("Events: %v, %v", evs, err)
	}
	if inv, err := db.LatestInventory(c, "root@198.18.1.2"); err != nil || inv.Inv.Hostname != "web1" {
		t.Errorf("LatestInventory: %v, %v", inv, err)
	}
	if log, err := db.AuditLog(c, 0, 0); err != nil || len(log) != 1 {
		t.Errorf("AuditLog: %v, %v", log, err)
	}
}

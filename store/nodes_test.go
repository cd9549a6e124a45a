package store

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAddNode(t *testing.T) {
	db, _ := openTest(t)
	cred, _ := db.PutCredential(ctx(t), "root", "root", []byte("pw"))
	web1, err := db.AddNode(ctx(t), Node{Name: "web1", Targets: []string{"bmc://admin@[fd42:5e::2]", "root@198.18.1.2"}, CredentialID: cred.ID, Tags: []string{"web", "rack-1", "web"}})
	if err != nil {
		t.Fatal(err)
	}
	if web1.ID == 0 || web1.Created.IsZero() || !cmp.Equal(web1.Tags, []string{"web", "rack-1"}) {
		t.Errorf("node %+v", web1)
	}
	got, err := db.Node(ctx(t), web1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(web1, got); diff != "" {
		t.Errorf("Node (-added +read):\n%s", diff)
	}

	tests := []struct {
		name string
		node Node
		want error
		says string
	}{
		{"ok", Node{Name: "db1", Targets: []string{"root@198.18.1.9"}}, nil, ""},
		{"empty name", Node{Targets: []string{"x"}}, errInvalid, ""},
		{"no targets", Node{Name: "n"}, errInvalid, ""},
		{"empty target", Node{Name: "n", Targets: []string{""}}, errInvalid, ""},
		{"target with space", Node{Name: "n", Targets: []string{"root@a b"}}, errInvalid, ""},
		{"target twice", Node{Name: "n", Targets: []string{"a", "a"}}, errInvalid, ""},
		{"duplicate name", Node{Name: "web1", Targets: []string{"root@198.18.1.99"}}, ErrExists, "node web1"},
		{"target taken", Node{Name: "web2", Targets: []string{"root@198.18.1.7", "root@198.18.1.2"}}, ErrExists, "target root@198.18.1.2 is already registered to node web1"},
		{"bad tag", Node{Name: "n", Targets: []string{"x"}, Tags: []string{"Web"}}, errInvalid, ""},
		{"long tag", Node{Name: "n", Targets: []string{"x"}, Tags: []string{strings.Repeat("a", 33)}}, errInvalid, ""},
		{"empty tag", Node{Name: "n", Targets: []string{"x"}, Tags: []string{""}}, errInvalid, ""},
		{"unknown credential", Node{Name: "n", Targets: []string{"x"}, CredentialID: 99}, ErrNotFound, "credential 99"},
		{"unknown bmc credential", Node{Name: "n", Targets: []string{"x"}, BMCCredentialID: 98}, ErrNotFound, "credential 98"},
		{"negative credential", Node{Name: "n", Targets: []string{"x"}, CredentialID: -1}, errInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.AddNode(ctx(t), tt.node)
			checkErr(t, err, tt.want)
			if tt.says != "" && !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %q does not say %q", err, tt.says)
			}
		})
	}
	// A refused node left nothing behind.
	ns, _ := db.Nodes(ctx(t), "")
	if len(ns) != 2 {
		t.Errorf("%d nodes", len(ns))
	}
	var targets int
	db.sql.QueryRow(`SELECT COUNT(*) FROM node_targets`).Scan(&targets)
	if targets != 3 {
		t.Errorf("%d targets", targets)
	}
}

func TestUpdateDeleteNode(t *testing.T) {
	db, _ := openTest(t)
	a, _ := db.AddNode(ctx(t), Node{Name: "a", Targets: []string{"root@198.18.1.1"}})
	b, _ := db.AddNode(ctx(t), Node{Name: "b", Targets: []string{"root@198.18.1.2"}})
	cred, _ := db.PutCredential(ctx(t), "c", "root", []byte("pw"))

	tests := []struct {
		name string
		node Node
		want error
	}{
		{"unknown", Node{ID: 99, Name: "z", Targets: []string{"z"}}, ErrNotFound},
		{"name of another", Node{ID: a.ID, Name: "b", Targets: []string{"root@198.18.1.1"}}, ErrExists},
		{"target of another", Node{ID: a.ID, Name: "a", Targets: []string{"root@198.18.1.2"}}, ErrExists},
		{"no targets", Node{ID: a.ID, Name: "a"}, errInvalid},
		{"its own target kept", Node{ID: a.ID, Name: "a2", Targets: []string{"root@198.18.1.1", "bmc://198.18.2.1"}, Tags: []string{"x"}, CredentialID: cred.ID}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, db.UpdateNode(ctx(t), tt.node), tt.want)
		})
	}
	got, err := db.Node(ctx(t), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := &Node{ID: a.ID, Name: "a2", Targets: []string{"root@198.18.1.1", "bmc://198.18.2.1"}, Tags: []string{"x"}, CredentialID: cred.ID, Created: a.Created}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
	// Taking the credential away frees it.
	got.CredentialID = 0
	wantErr(t, db.UpdateNode(ctx(t), *got), nil)
	wantErr(t, db.DeleteCredential(ctx(t), cred.ID), nil)

	wantErr(t, db.DeleteNode(ctx(t), b.ID), nil)
	wantErr(t, db.DeleteNode(ctx(t), b.ID), ErrNotFound)
	_, err = db.Node(ctx(t), b.ID)
	wantErr(t, err, ErrNotFound)
	if err.Error() != "node 2: not found" {
		t.Errorf("error %q", err)
	}
	// Its target is free again.
	if _, err := db.AddNode(ctx(t), Node{Name: "b", Targets: []string{"root@198.18.1.2"}}); err != nil {
		t.Error(err)
	}
}

func TestNodesByTag(t *testing.T) {
	db, _ := openTest(t)
	for _, n := range []Node{
		{Name: "web2", Targets: []string{"w2"}, Tags: []string{"web", "rack-2"}},
		{Name: "web1", Targets: []string{"w1"}, Tags: []string{"web", "rack-1"}},
		{Name: "db1", Targets: []string{"d1", "bmc://d1-bmc"}, Tags: []string{"db", "rack-1"}},
		{Name: "lone", Targets: []string{"l"}},
	} {
		if _, err := db.AddNode(ctx(t), n); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		tag  string
		want []string
		err  error
	}{
		{"", []string{"db1", "lone", "web1", "web2"}, nil},
		{"web", []string{"web1", "web2"}, nil},
		{"rack-1", []string{"db1", "web1"}, nil},
		{"none", nil, nil},
		{"we", nil, nil}, // a prefix is not a tag
		{"Web", nil, errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			ns, err := db.Nodes(ctx(t), tt.tag)
			checkErr(t, err, tt.err)
			var names []string
			for _, n := range ns {
				names = append(names, n.Name)
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	ns, _ := db.Nodes(ctx(t), "db")
	if !cmp.Equal(ns[0].Targets, []string{"d1", "bmc://d1-bmc"}) {
		t.Errorf("targets %v", ns[0].Targets)
	}
	ns, _ = db.Nodes(ctx(t), "")
	if ns[1].Tags == nil || len(ns[1].Tags) != 0 {
		t.Errorf("untagged node's tags %#v", ns[1].Tags)
	}
}

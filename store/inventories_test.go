package store

import (
	"testing"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/google/go-cmp/cmp"
)

func TestInventories(t *testing.T) {
	db, _ := openTest(t)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	inv := func(host string) *fleetup.Inventory {
		return &fleetup.Inventory{Hostname: host, OS: "debian", Packages: []fleetup.Package{{Name: "bash", Version: "5.2", Manager: "dpkg"}}}
	}
	recs := []InventoryRecord{
		{Node: "root@a", Time: t0, Inv: inv("a-old")},
		{Node: "root@a", Time: t0.Add(2 * time.Hour), Inv: inv("a-new"), RunID: "r2"},
		{Node: "root@a", Time: t0.Add(time.Hour), Inv: inv("a-mid")},
		{Node: "bmc://b", Time: t0, Inv: &fleetup.Inventory{BMC: &fleetup.BMCInventory{Vendor: "HPE"}}},
	}
	for _, r := range recs {
		if err := db.PutInventory(ctx(t), r); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []InventoryRecord{
		{Inv: inv("x")},
		{Node: "n"},
		{Node: "n\n", Inv: inv("x")},
	} {
		checkErr(t, db.PutInventory(ctx(t), bad), errInvalid)
	}

	latest, err := db.LatestInventory(ctx(t), "root@a")
	if err != nil {
		t.Fatal(err)
	}
	if latest.Inv.Hostname != "a-new" || latest.RunID != "r2" || !latest.Time.Equal(t0.Add(2*time.Hour)) || latest.ID == 0 {
		t.Errorf("latest %+v", latest)
	}
	if diff := cmp.Diff(recs[1].Inv, latest.Inv); diff != "" {
		t.Errorf("inventory round trip (-put +read):\n%s", diff)
	}
	_, err = db.LatestInventory(ctx(t), "root@nowhere")
	wantErr(t, err, ErrNotFound)

	all, err := db.LatestInventories(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Node != "bmc://b" || all[0].Inv.BMC.Vendor != "HPE" || all[1].Inv.Hostname != "a-new" {
		t.Errorf("LatestInventories = %+v", all)
	}

	for _, tt := range []struct {
		name  string
		limit int
		want  []string
		err   error
	}{
		{"all", 0, []string{"a-new", "a-mid", "a-old"}, nil},
		{"two", 2, []string{"a-new", "a-mid"}, nil},
		{"negative", -1, nil, errInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := db.InventoryHistory(ctx(t), "root@a", tt.limit)
			checkErr(t, err, tt.err)
			var hosts []string
			for _, r := range h {
				hosts = append(hosts, r.Inv.Hostname)
			}
			if diff := cmp.Diff(tt.want, hosts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if h, err := db.InventoryHistory(ctx(t), "nobody", 0); err != nil || len(h) != 0 {
		t.Errorf("history of nobody: %v, %v", h, err)
	}
	// Zero time: now.
	if err := db.PutInventory(ctx(t), InventoryRecord{Node: "c", Inv: inv("c")}); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.LatestInventory(ctx(t), "c"); r == nil || r.Time.IsZero() {
		t.Errorf("no time: %+v", r)
	}
}

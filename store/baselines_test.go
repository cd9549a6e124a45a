package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBaselines(t *testing.T) {
	db, _ := openTest(t)
	b, err := db.AddBaseline(ctx(t), "2026.12", "/srv/baselines/2026.12")
	if err != nil {
		t.Fatal(err)
	}
	if b.ID == 0 || b.Added.IsZero() || !b.Checked.IsZero() || b.Components == nil || b.Problems == nil {
		t.Errorf("baseline %+v", b)
	}
	for _, tt := range []struct {
		name, bname, dir string
		want             error
	}{
		{"second", "old", "/srv/baselines/old", nil},
		{"taken", "2026.12", "/elsewhere", ErrExists},
		{"empty name", "", "/x", errInvalid},
		{"empty dir", "x", "", errInvalid},
		{"dir with newline", "x", "/a\nb", errInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.AddBaseline(ctx(t), tt.bname, tt.dir)
			checkErr(t, err, tt.want)
		})
	}
	got, err := db.Baseline(ctx(t), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, got); diff != "" {
		t.Errorf("(-added +read):\n%s", diff)
	}

	comps := []ComponentSummary{{ID: "bios", Name: "BIOS", Version: "2.1", Kind: "fwupd", File: "bios.cab", Size: 1234, SHA256: "ab", Targets: []string{"guid"}, Requires: []string{"me >= 1"}}}
	problems := []Problem{{File: "junk.bin", Reason: "no manifest"}}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	wantErr(t, db.SetBaselineCheck(ctx(t), b.ID, comps, problems, at), nil)
	wantErr(t, db.SetBaselineCheck(ctx(t), 99, comps, problems, at), ErrNotFound)
	got, _ = db.Baseline(ctx(t), b.ID)
	if !got.Checked.Equal(at) || !cmp.Equal(got.Components, comps) || !cmp.Equal(got.Problems, problems) {
		t.Errorf("after check: %+v", got)
	}
	// A clean check: empty lists, not null; zero time: now.
	wantErr(t, db.SetBaselineCheck(ctx(t), b.ID, nil, nil, time.Time{}), nil)
	got, _ = db.Baseline(ctx(t), b.ID)
	if got.Components == nil || len(got.Problems) != 0 || got.Checked.IsZero() || got.Checked.Equal(at) {
		t.Errorf("after a clean check: %+v", got)
	}

	list, err := db.Baselines(ctx(t))
	if err != nil || len(list) != 2 || list[0].Name != "2026.12" || list[1].Name != "old" {
		t.Errorf("Baselines = %+v, %v", list, err)
	}
	wantErr(t, db.DeleteBaseline(ctx(t), b.ID), nil)
	wantErr(t, db.DeleteBaseline(ctx(t), b.ID), ErrNotFound)
	_, err = db.Baseline(ctx(t), b.ID)
	wantErr(t, err, ErrNotFound)
}

//go:build !windows

package installer

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The databases in testdata: fwupd-pending.db is a lab node's pending.db
// after fwupdtool flashed the test device (fwupd 2.0.20); fwupd-history-big.db
// has fwupd's history schema with 200 rows written by sqlite3 3.40 with
// 512-byte pages, so that the table spans interior pages and some rows
// overflow: row i has appstream_id org.example.dev(i%7), update_state 3
// when i%3 == 0 else 2, device_created 1700000000+i, version_new 2.0.i, and
// a metadata of 2000 bytes when i%25 == 0.

func TestHistoryDBVersion(t *testing.T) {
	tests := []struct {
		name, file, id string
		since          int64
		want           string
	}{
		{"fwupd's own database", "fwupd-pending.db", "dev.fleetup.example.fakedevice", 0, "1.2.5"},
		{"entry older than the install", "fwupd-pending.db", "dev.fleetup.example.fakedevice", 1796156972, ""},
		{"other release", "fwupd-pending.db", "org.example.other", 0, ""},
		{"newest success across pages", "fwupd-history-big.db", "org.example.dev3", 0, "2.0.199"},
		{"failed entries left out", "fwupd-history-big.db", "org.example.dev2", 0, "2.0.191"},
		{"since", "fwupd-history-big.db", "org.example.dev5", 1700000195, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := historyDBVersion(filepath.Join("testdata", tt.file), tt.id, time.Unix(tt.since, 0))
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseHistoryDBRows(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "fwupd-history-big.db"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ParseHistoryDB(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 200 {
		t.Fatalf("%d rows, want 200", len(rows))
	}
	for i, r := range rows {
		want := HistoryEntry{AppstreamID: "org.example.dev" + strconv.Itoa(i%7), UpdateState: 2, Created: 1700000000 + int64(i), VersionNew: "2.0." + strconv.Itoa(i)}
		if i%3 == 0 {
			want.UpdateState = 3
		}
		if r != want {
			t.Fatalf("row %d = %+v, want %+v", i, r, want)
		}
	}
}

// TestHistoryDBWithJournal checks that a writer's journal or log beside the
// database sends the caller to fwupdtool.
func TestHistoryDBWithJournal(t *testing.T) {
	for _, side := range []string{"-journal", "-wal"} {
		t.Run(side, func(t *testing.T) {
			dir := t.TempDir()
			data, err := os.ReadFile(filepath.Join("testdata", "fwupd-pending.db"))
			if err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dir, "pending.db")
			if err := os.WriteFile(db, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(db+side, []byte("pending"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := historyDBVersion(db, "dev.fleetup.example.fakedevice", time.Time{}); !errors.Is(err, errHistoryDB) {
				t.Errorf("error = %v, want errHistoryDB", err)
			}
		})
	}
}

func TestParseHistoryDBRejects(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "fwupd-pending.db"))
	if err != nil {
		t.Fatal(err)
	}
	utf16 := append([]byte(nil), data...)
	utf16[59] = 2
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not sqlite", []byte("SQLite format 2\x00" + string(make([]byte, 100)))},
		{"truncated", data[:1000]},
		{"utf-16", utf16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseHistoryDB(tt.data); !errors.Is(err, errHistoryDB) {
				t.Errorf("error = %v, want errHistoryDB", err)
			}
		})
	}
}

func TestTableColumns(t *testing.T) {
	got, err := tableColumns(`CREATE TABLE history (device_id TEXT,update_state INTEGER DEFAULT 0,checksum TEXT DEFAULT NULL, "Version_New" TEXT, x NUMERIC(10, 2), PRIMARY KEY (device_id))`)
	want := []string{"device_id", "update_state", "checksum", "version_new", "x"}
	if err != nil || len(got) != len(want) {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func FuzzParseHistoryDB(f *testing.F) {
	for _, name := range []string{"fwupd-pending.db", "fwupd-history-big.db"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseHistoryDB(data)
	})
}

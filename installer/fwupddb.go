package installer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fwupd keeps its update history in an SQLite database, pending.db in its
// local state directory. Reading that file is what `fwupdtool get-history`
// does, less the ~130 ms of CPU fwupdtool spends starting (it loads over a
// hundred shared libraries); after each flash the engine reads the version
// back from it directly, and runs get-history only when the file cannot be
// read with certainty (see historyDBVersion).

// HistoryEntry is one row of fwupd's history table: what fleetup reads of it.
type HistoryEntry struct {
	AppstreamID string
	UpdateState int64
	// Created is the device_created column, the JSON "Created" of
	// get-history: when the entry was made, in Unix seconds.
	Created    int64
	VersionNew string
}

// errHistoryDB says the history database cannot be read with certainty
// (a writer's journal or write-ahead log is present, or the format is one
// this reader does not handle): ask fwupdtool instead.
var errHistoryDB = errors.New("fwupd history database not readable directly")

// historyDBPath is fwupd's history database under its local state
// directory ("/var" unless FWUPD_LOCALSTATEDIR says otherwise).
func historyDBPath(localstatedir string) string {
	if localstatedir == "" {
		localstatedir = "/var"
	}
	return filepath.Join(localstatedir, "lib", "fwupd", "pending.db")
}

// historyDBVersion is ParseHistoryVersion's answer read from the database
// file at path instead of from fwupdtool's output (see historyDB).
func historyDBVersion(path, id string, since time.Time) (string, error) {
	r, err := historyDB(path, id, since)
	return r.Version, err
}

// historyDB is what the history database file at path says of the
// installs of release id since the given time. It returns errHistoryDB
// (wrapped) whenever the file might not hold the latest committed state:
// a hot rollback journal or a non-empty write-ahead log beside it.
func historyDB(path, id string, since time.Time) (historyResult, error) {
	for _, side := range []string{"-journal", "-wal"} {
		if fi, err := os.Stat(path + side); err == nil && fi.Size() > 0 {
			return historyResult{}, fmt.Errorf("%w: %s exists", errHistoryDB, filepath.Base(path+side))
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return historyResult{}, err
	}
	entries, err := ParseHistoryDB(data)
	if err != nil {
		return historyResult{}, err
	}
	return pickHistory(entries, id, since), nil
}

// fwupd's FwupdUpdateState values that fleetup acts on.
const (
	historyPending     = 1 // staged; applied at the next boot (UEFI capsules)
	historySuccess     = 2
	historyNeedsReboot = 4 // written; takes effect after a reboot
)

// historyResult is what fwupd's history says of the installs of one
// release since a given time.
type historyResult struct {
	// Version is the version of the newest successful install, or "".
	Version string
	// Reboot is true when an install of the release is pending or needs
	// a reboot: fwupd's machine-readable word that the node must restart.
	Reboot bool
}

// pickHistory finds, among entries, those of release id made at or after
// since.
func pickHistory(entries []HistoryEntry, id string, since time.Time) historyResult {
	var r historyResult
	var bestAt int64
	for _, e := range entries {
		if e.Created < since.Unix() || e.AppstreamID != id {
			continue
		}
		switch e.UpdateState {
		case historySuccess:
			if e.Created >= bestAt {
				r.Version, bestAt = e.VersionNew, e.Created
			}
		case historyPending, historyNeedsReboot:
			r.Reboot = true
		}
	}
	return r
}

// ParseHistoryDB reads the rows of the history table from the bytes of an
// SQLite database file (UTF-8, rollback-journal or WAL format; the caller
// makes sure no journal or log holds newer data). It is a reader for this
// one table, not for SQLite in general: every length and page number is
// checked, and what it does not understand is an error wrapping
// errHistoryDB.
func ParseHistoryDB(data []byte) ([]HistoryEntry, error) {
	db, err := openSQLite(data)
	if err != nil {
		return nil, err
	}
	var root int64
	var sql string
	err = db.scan(1, func(rec []any) error {
		if len(rec) >= 5 && rec[0] == "table" && rec[1] == "history" {
			root, _ = rec[3].(int64)
			sql, _ = rec[4].(string)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if root < 1 {
		return nil, fmt.Errorf("%w: no history table", errHistoryDB)
	}
	cols, err := tableColumns(sql)
	if err != nil {
		return nil, err
	}
	idx := map[string]int{}
	for i, c := range cols {
		idx[c] = i
	}
	for _, c := range []string{"appstream_id", "update_state", "device_created", "version_new"} {
		if _, ok := idx[c]; !ok {
			return nil, fmt.Errorf("%w: history has no column %s", errHistoryDB, c)
		}
	}
	var out []HistoryEntry
	err = db.scan(root, func(rec []any) error {
		get := func(col string) any {
			if i := idx[col]; i < len(rec) {
				return rec[i]
			}
			return nil // a column added after the row was written
		}
		e := HistoryEntry{}
		e.AppstreamID, _ = get("appstream_id").(string)
		e.UpdateState, _ = get("update_state").(int64)
		e.Created, _ = get("device_created").(int64)
		e.VersionNew, _ = get("version_new").(string)
		out = append(out, e)
		return nil
	})
	return out, err
}

// tableColumns returns the column names of a CREATE TABLE statement, in
// order (SQLite keeps the statement up to date through ALTER TABLE).
func tableColumns(sql string) ([]string, error) {
	open, end := strings.IndexByte(sql, '('), strings.LastIndexByte(sql, ')')
	if open < 0 || end < open {
		return nil, fmt.Errorf("%w: history schema %q", errHistoryDB, clipString(sql))
	}
	var cols []string
	depth, start := 0, open+1
	body := sql[:end]
	for i := open + 1; i <= len(body); i++ {
		if i < len(body) {
			switch body[i] {
			case '(':
				depth++
				continue
			case ')':
				depth--
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		f := strings.Fields(body[start:i])
		start = i + 1
		if len(f) == 0 {
			continue
		}
		name := strings.Trim(f[0], "\"`[]")
		switch strings.ToUpper(name) {
		case "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT":
			continue // a table constraint, not a column
		}
		cols = append(cols, strings.ToLower(name))
	}
	return cols, nil
}

func clipString(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// sqliteFile is an SQLite database file in memory.
type sqliteFile struct {
	data     []byte
	pageSize int
	usable   int
	pages    int
}

func openSQLite(data []byte) (*sqliteFile, error) {
	if len(data) < 100 || !bytes.Equal(data[:16], []byte("SQLite format 3\x00")) {
		return nil, fmt.Errorf("%w: not an SQLite database", errHistoryDB)
	}
	ps := int(binary.BigEndian.Uint16(data[16:18]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("%w: page size %d", errHistoryDB, ps)
	}
	if data[18] > 2 || data[19] > 2 {
		return nil, fmt.Errorf("%w: file format %d/%d", errHistoryDB, data[18], data[19])
	}
	if enc := binary.BigEndian.Uint32(data[56:60]); enc != 1 && enc != 0 {
		return nil, fmt.Errorf("%w: text encoding %d is not UTF-8", errHistoryDB, enc)
	}
	usable := ps - int(data[20])
	if usable < 480 {
		return nil, fmt.Errorf("%w: usable page size %d", errHistoryDB, usable)
	}
	return &sqliteFile{data: data, pageSize: ps, usable: usable, pages: len(data) / ps}, nil
}

// page returns page n (1-based).
func (f *sqliteFile) page(n int64) ([]byte, error) {
	if n < 1 || n > int64(f.pages) {
		return nil, fmt.Errorf("%w: page %d of %d", errHistoryDB, n, f.pages)
	}
	off := int(n-1) * f.pageSize
	return f.data[off : off+f.pageSize], nil
}

// scan calls fn with the decoded record of every row of the table b-tree
// rooted at page root, in rowid order.
func (f *sqliteFile) scan(root int64, fn func([]any) error) error {
	seen := map[int64]bool{}
	var walk func(n int64, depth int) error
	walk = func(n int64, depth int) error {
		if depth > 20 || seen[n] {
			return fmt.Errorf("%w: b-tree loops at page %d", errHistoryDB, n)
		}
		seen[n] = true
		pg, err := f.page(n)
		if err != nil {
			return err
		}
		h := 0
		if n == 1 {
			h = 100
		}
		if len(pg) < h+12 {
			return fmt.Errorf("%w: page %d too short", errHistoryDB, n)
		}
		kind := pg[h]
		cells := int(binary.BigEndian.Uint16(pg[h+3 : h+5]))
		ptrs := h + 8
		if kind == 0x05 {
			ptrs = h + 12
		} else if kind != 0x0d {
			return fmt.Errorf("%w: page %d is not a table b-tree page (type %d)", errHistoryDB, n, kind)
		}
		if ptrs+2*cells > len(pg) {
			return fmt.Errorf("%w: page %d: %d cells do not fit", errHistoryDB, n, cells)
		}
		for i := 0; i < cells; i++ {
			off := int(binary.BigEndian.Uint16(pg[ptrs+2*i:]))
			if off < ptrs || off >= f.usable {
				return fmt.Errorf("%w: page %d: cell %d at %d", errHistoryDB, n, i, off)
			}
			cell := pg[off:f.usable]
			if kind == 0x05 {
				if len(cell) < 4 {
					return fmt.Errorf("%w: page %d: short interior cell", errHistoryDB, n)
				}
				if err := walk(int64(binary.BigEndian.Uint32(cell)), depth+1); err != nil {
					return err
				}
				continue
			}
			payload, err := f.leafPayload(cell)
			if err != nil {
				return fmt.Errorf("page %d cell %d: %w", n, i, err)
			}
			rec, err := decodeRecord(payload)
			if err != nil {
				return fmt.Errorf("page %d cell %d: %w", n, i, err)
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		if kind == 0x05 {
			return walk(int64(binary.BigEndian.Uint32(pg[h+8:h+12])), depth+1)
		}
		return nil
	}
	return walk(root, 0)
}

// leafPayload returns the whole payload of a table leaf cell, following its
// overflow pages.
func (f *sqliteFile) leafPayload(cell []byte) ([]byte, error) {
	size, n := sqliteVarint(cell)
	if n == 0 || size > uint64(len(f.data)) {
		return nil, fmt.Errorf("%w: bad payload size", errHistoryDB)
	}
	cell = cell[n:]
	if _, n = sqliteVarint(cell); n == 0 { // the rowid
		return nil, fmt.Errorf("%w: bad rowid", errHistoryDB)
	}
	cell = cell[n:]
	p, u := int(size), f.usable
	maxLocal := u - 35
	if p <= maxLocal {
		if p > len(cell) {
			return nil, fmt.Errorf("%w: payload runs off the page", errHistoryDB)
		}
		return cell[:p], nil
	}
	minLocal := (u-12)*32/255 - 23
	local := minLocal + (p-minLocal)%(u-4)
	if local > maxLocal {
		local = minLocal
	}
	if local+4 > len(cell) {
		return nil, fmt.Errorf("%w: payload runs off the page", errHistoryDB)
	}
	out := append(make([]byte, 0, p), cell[:local]...)
	next := int64(binary.BigEndian.Uint32(cell[local:]))
	seen := map[int64]bool{}
	for len(out) < p {
		if seen[next] {
			return nil, fmt.Errorf("%w: overflow chain loops", errHistoryDB)
		}
		seen[next] = true
		pg, err := f.page(next)
		if err != nil {
			return nil, err
		}
		chunk := pg[4:u]
		if rest := p - len(out); rest < len(chunk) {
			chunk = chunk[:rest]
		}
		out = append(out, chunk...)
		next = int64(binary.BigEndian.Uint32(pg))
	}
	return out, nil
}

// decodeRecord decodes an SQLite record into nil, int64, float64, string
// (text) and []byte (blob) values.
func decodeRecord(p []byte) ([]any, error) {
	hlen, n := sqliteVarint(p)
	if n == 0 || hlen > uint64(len(p)) || hlen < uint64(n) {
		return nil, fmt.Errorf("%w: bad record header", errHistoryDB)
	}
	hdr, body := p[n:hlen], p[hlen:]
	var out []any
	for len(hdr) > 0 {
		st, k := sqliteVarint(hdr)
		if k == 0 {
			return nil, fmt.Errorf("%w: bad serial type", errHistoryDB)
		}
		hdr = hdr[k:]
		var size int
		switch {
		case st == 0, st == 8, st == 9:
			size = 0
		case st <= 4:
			size = int(st)
		case st == 5:
			size = 6
		case st == 6, st == 7:
			size = 8
		case st >= 12:
			if (st-12)/2 > uint64(len(body)) {
				return nil, fmt.Errorf("%w: value runs off the record", errHistoryDB)
			}
			size = int((st - 12) / 2)
		default:
			return nil, fmt.Errorf("%w: serial type %d", errHistoryDB, st)
		}
		if size > len(body) {
			return nil, fmt.Errorf("%w: value runs off the record", errHistoryDB)
		}
		v := body[:size]
		body = body[size:]
		switch {
		case st == 0:
			out = append(out, nil)
		case st == 8:
			out = append(out, int64(0))
		case st == 9:
			out = append(out, int64(1))
		case st <= 6:
			var x int64
			for _, b := range v {
				x = x<<8 | int64(b)
			}
			shift := 64 - 8*uint(size) // sign-extend
			out = append(out, x<<shift>>shift)
		case st == 7:
			out = append(out, math.Float64frombits(binary.BigEndian.Uint64(v)))
		case st%2 == 1:
			out = append(out, string(v))
		default:
			out = append(out, append([]byte(nil), v...))
		}
	}
	return out, nil
}

// sqliteVarint decodes SQLite's big-endian varint (1 to 9 bytes); n is 0
// when b ends first.
func sqliteVarint(b []byte) (v uint64, n int) {
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0
		}
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return v, 9
}

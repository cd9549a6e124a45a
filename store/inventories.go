package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// checkInventory validates rec for PutInventory.
func checkInventory(rec InventoryRecord) error {
	if err := checkText("inventory node", rec.Node, maxTarget, true); err != nil {
		return err
	}
	if err := checkText("inventory run id", rec.RunID, maxName, false); err != nil {
		return err
	}
	if rec.Inv == nil {
		return invalid("inventory", "", "none (Inv is nil)")
	}
	return nil
}

// PutInventory records a node's inventory. Time, when zero, is now.
func (db *DB) PutInventory(ctx context.Context, rec InventoryRecord) error {
	if err := checkInventory(rec); err != nil {
		return err
	}
	return db.write(ctx, func(c conn) error {
		return putInventory(ctx, c, rec, db.nowMicros())
	})
}

func putInventory(ctx context.Context, c conn, rec InventoryRecord, now int64) error {
	inv, err := jsonText(rec.Inv)
	if err != nil {
		return fmt.Errorf("inventory of %s: %w", rec.Node, err)
	}
	at := micros(rec.Time)
	if at == 0 {
		at = now
	}
	_, err = c.exec(ctx, `INSERT INTO inventories (node, run_id, taken, inventory) VALUES (?, ?, ?, ?)`, rec.Node, rec.RunID, at, inv)
	if err != nil {
		return fmt.Errorf("inventory of %s: %w", rec.Node, err)
	}
	return nil
}

const inventoryCols = `id, node, run_id, taken, inventory`

// LatestInventory is node's newest inventory.
func (db *DB) LatestInventory(ctx context.Context, node string) (*InventoryRecord, error) {
	recs, err := db.inventories(ctx, `WHERE node = ? ORDER BY taken DESC, id DESC LIMIT 1`, node)
	if err != nil {
		return nil, fmt.Errorf("inventory of %s: %w", node, err)
	}
	if len(recs) == 0 {
		return nil, notFound("inventory of %s", node)
	}
	return &recs[0], nil
}

// LatestInventories are every node's newest inventory, by node.
func (db *DB) LatestInventories(ctx context.Context) ([]InventoryRecord, error) {
	recs, err := db.inventories(ctx, `i WHERE i.id = (SELECT j.id FROM inventories j WHERE j.node = i.node ORDER BY j.taken DESC, j.id DESC LIMIT 1) ORDER BY i.node`)
	if err != nil {
		return nil, fmt.Errorf("inventories: %w", err)
	}
	return recs, nil
}

// InventoryHistory is node's inventories, newest first, at most limit (0:
// all).
func (db *DB) InventoryHistory(ctx context.Context, node string, limit int) ([]InventoryRecord, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	recs, err := db.inventories(ctx, `WHERE node = ? ORDER BY taken DESC, id DESC`+limitClause(limit), node)
	if err != nil {
		return nil, fmt.Errorf("inventory history of %s: %w", node, err)
	}
	return recs, nil
}

// inventories are the records of `SELECT ... FROM inventories rest`.
func (db *DB) inventories(ctx context.Context, rest string, args ...any) ([]InventoryRecord, error) {
	rows, err := db.read().query(ctx, `SELECT `+inventoryCols+` FROM inventories `+rest, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []InventoryRecord{}
	for rows.Next() {
		var (
			r     InventoryRecord
			taken int64
			inv   string
		)
		if err := rows.Scan(&r.ID, &r.Node, &r.RunID, &taken, &inv); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(inv), &r.Inv); err != nil {
			return nil, fmt.Errorf("inventory %d: %w", r.ID, err)
		}
		r.Time = fromMicros(taken)
		out = append(out, r)
	}
	return out, rows.Err()
}

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// checkNode validates n and returns it with its tags cleaned.
func checkNode(n Node) (Node, error) {
	if err := checkName("node name", n.Name); err != nil {
		return n, err
	}
	if err := checkTargets(n.Targets); err != nil {
		return n, err
	}
	if n.CredentialID < 0 || n.BMCCredentialID < 0 {
		return n, invalid("credential id", "", "negative")
	}
	tags, err := cleanTags(n.Tags)
	if err != nil {
		return n, err
	}
	n.Tags = tags
	n.Targets = slices.Clone(n.Targets)
	return n, nil
}

// nullID is id for a column that refers to another table: NULL for 0.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// checkNodeRefs refuses, inside a write, a node whose name or targets
// another node (not self) has, or whose credentials do not exist.
func checkNodeRefs(ctx context.Context, c conn, n Node, self int64) error {
	var other int64
	err := c.queryRow(ctx, `SELECT id FROM nodes WHERE name = ?`, n.Name).Scan(&other)
	if err == nil && other != self {
		return fmt.Errorf("node %s: %w", n.Name, ErrExists)
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	for _, t := range n.Targets {
		var owner string
		err := c.queryRow(ctx, `SELECT n.name FROM node_targets t JOIN nodes n ON n.id = t.node_id WHERE t.target = ? AND t.node_id <> ?`, t, self).Scan(&owner)
		if err == nil {
			return fmt.Errorf("target %s is already registered to node %s: %w", t, owner, ErrExists)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	for _, id := range []int64{n.CredentialID, n.BMCCredentialID} {
		if id == 0 {
			continue
		}
		ok, err := c.exists(ctx, `SELECT 1 FROM credentials WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if !ok {
			return notFound("credential %d", id)
		}
	}
	return nil
}

func putTargets(ctx context.Context, c conn, id int64, targets []string) error {
	if _, err := c.exec(ctx, `DELETE FROM node_targets WHERE node_id = ?`, id); err != nil {
		return err
	}
	for i, t := range targets {
		if _, err := c.exec(ctx, `INSERT INTO node_targets (node_id, pos, target) VALUES (?, ?, ?)`, id, i, t); err != nil {
			return err
		}
	}
	return nil
}

// AddNode registers a node. It refuses an empty name, no targets, a
// malformed tag, a name another node has or a target another node has
// (ErrExists, naming the target and the node), and a credential that does
// not exist (ErrNotFound). Targets are stored as given: the caller parsed
// them with package target. It returns the node with its ID and Created.
func (db *DB) AddNode(ctx context.Context, n Node) (*Node, error) {
	n, err := checkNode(n)
	if err != nil {
		return nil, err
	}
	tags, err := jsonText(n.Tags)
	if err != nil {
		return nil, err
	}
	err = db.write(ctx, func(c conn) error {
		if err := checkNodeRefs(ctx, c, n, 0); err != nil {
			return err
		}
		now := db.nowMicros()
		n.Created = fromMicros(now)
		err := c.queryRow(ctx, `INSERT INTO nodes (name, credential_id, bmc_credential_id, tags, created) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			n.Name, nullID(n.CredentialID), nullID(n.BMCCredentialID), tags, now).Scan(&n.ID)
		if err != nil {
			return fmt.Errorf("add node %s: %w", n.Name, err)
		}
		if err := putTargets(ctx, c, n.ID, n.Targets); err != nil {
			return fmt.Errorf("add node %s: %w", n.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// UpdateNode replaces node n.ID's name, targets, credentials and tags
// (Created stays), with AddNode's checks.
func (db *DB) UpdateNode(ctx context.Context, n Node) error {
	n, err := checkNode(n)
	if err != nil {
		return err
	}
	tags, err := jsonText(n.Tags)
	if err != nil {
		return err
	}
	return db.write(ctx, func(c conn) error {
		ok, err := c.exists(ctx, `SELECT 1 FROM nodes WHERE id = ?`, n.ID)
		if err != nil {
			return fmt.Errorf("node %d: %w", n.ID, err)
		}
		if !ok {
			return notFound("node %d", n.ID)
		}
		if err := checkNodeRefs(ctx, c, n, n.ID); err != nil {
			return err
		}
		_, err = c.exec(ctx, `UPDATE nodes SET name = ?, credential_id = ?, bmc_credential_id = ?, tags = ? WHERE id = ?`,
			n.Name, nullID(n.CredentialID), nullID(n.BMCCredentialID), tags, n.ID)
		if err != nil {
			return fmt.Errorf("update node %d: %w", n.ID, err)
		}
		if err := putTargets(ctx, c, n.ID, n.Targets); err != nil {
			return fmt.Errorf("update node %d: %w", n.ID, err)
		}
		return nil
	})
}

// DeleteNode deletes node id and its targets.
func (db *DB) DeleteNode(ctx context.Context, id int64) error {
	return db.write(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM nodes WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete node %d: %w", id, err)
		}
		return mustAffect(res, "node %d", id)
	})
}

// Node is node id.
func (db *DB) Node(ctx context.Context, id int64) (*Node, error) {
	ns, err := db.nodes(ctx, `WHERE id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", id, err)
	}
	if len(ns) == 0 {
		return nil, notFound("node %d", id)
	}
	return &ns[0], nil
}

// Nodes are the nodes, by name: all of them for tag "", else those with
// the tag.
func (db *DB) Nodes(ctx context.Context, tag string) ([]Node, error) {
	if tag != "" {
		if err := checkTag(tag); err != nil {
			return nil, err
		}
	}
	ns, err := db.nodes(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	if tag == "" {
		return ns, nil
	}
	// Tags are JSON: filtered here, not in SQL, to stay portable.
	out := []Node{}
	for _, n := range ns {
		if slices.Contains(n.Tags, tag) {
			out = append(out, n)
		}
	}
	return out, nil
}

// nodes are the nodes where (a WHERE clause on nodes, or "") holds, by
// name, with their targets.
func (db *DB) nodes(ctx context.Context, where string, args ...any) ([]Node, error) {
	c := db.read()
	rows, err := c.query(ctx, `SELECT id, name, COALESCE(credential_id, 0), COALESCE(bmc_credential_id, 0), tags, created FROM nodes `+where+` ORDER BY name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Node{}
	byID := map[int64]int{}
	for rows.Next() {
		var (
			n       Node
			tags    string
			created int64
		)
		if err := rows.Scan(&n.ID, &n.Name, &n.CredentialID, &n.BMCCredentialID, &tags, &created); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(tags), &n.Tags); err != nil {
			return nil, fmt.Errorf("node %d: tags: %w", n.ID, err)
		}
		n.Created = fromMicros(created)
		n.Targets = []string{}
		byID[n.ID] = len(out)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(out) == 0 {
		return out, nil
	}
	q := `SELECT node_id, target FROM node_targets ORDER BY node_id, pos`
	var targs []any
	if where != "" {
		q = `SELECT node_id, target FROM node_targets WHERE node_id IN (SELECT id FROM nodes ` + where + `) ORDER BY node_id, pos`
		targs = args
	}
	trows, err := c.query(ctx, q, targs...)
	if err != nil {
		return nil, err
	}
	defer trows.Close()
	for trows.Next() {
		var (
			id int64
			t  string
		)
		if err := trows.Scan(&id, &t); err != nil {
			return nil, err
		}
		if i, ok := byID[id]; ok {
			out[i].Targets = append(out[i].Targets, t)
		}
	}
	return out, trows.Err()
}

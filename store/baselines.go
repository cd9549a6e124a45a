package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AddBaseline registers the baseline directory dir under name (unique:
// ErrExists). It is unchecked until SetBaselineCheck.
func (db *DB) AddBaseline(ctx context.Context, name, dir string) (*Baseline, error) {
	if err := checkName("baseline name", name); err != nil {
		return nil, err
	}
	if err := checkText("baseline directory", dir, maxText, true); err != nil {
		return nil, err
	}
	b := &Baseline{Name: name, Dir: dir, Components: []ComponentSummary{}, Problems: []Problem{}}
	err := db.write(ctx, func(c conn) error {
		taken, err := c.exists(ctx, `SELECT 1 FROM baselines WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("baseline %s: %w", name, ErrExists)
		}
		now := db.nowMicros()
		b.Added = fromMicros(now)
		return c.queryRow(ctx, `INSERT INTO baselines (name, dir, added, components, problems) VALUES (?, ?, ?, '[]', '[]') RETURNING id`,
			name, dir, now).Scan(&b.ID)
	})
	if err != nil {
		return nil, fmt.Errorf("add baseline %s: %w", name, err)
	}
	return b, nil
}

// SetBaselineCheck records what a check of baseline id found at at (now
// when zero).
func (db *DB) SetBaselineCheck(ctx context.Context, id int64, comps []ComponentSummary, problems []Problem, at time.Time) error {
	if comps == nil {
		comps = []ComponentSummary{}
	}
	if problems == nil {
		problems = []Problem{}
	}
	cj, err := jsonText(comps)
	if err != nil {
		return fmt.Errorf("baseline %d: %w", id, err)
	}
	pj, err := jsonText(problems)
	if err != nil {
		return fmt.Errorf("baseline %d: %w", id, err)
	}
	when := micros(at)
	if when == 0 {
		when = db.nowMicros()
	}
	return db.write(ctx, func(c conn) error {
		res, err := c.exec(ctx, `UPDATE baselines SET checked = ?, components = ?, problems = ? WHERE id = ?`, when, cj, pj, id)
		if err != nil {
			return fmt.Errorf("baseline %d: %w", id, err)
		}
		return mustAffect(res, "baseline %d", id)
	})
}

// Baseline is baseline id.
func (db *DB) Baseline(ctx context.Context, id int64) (*Baseline, error) {
	bs, err := db.baselines(ctx, `WHERE id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("baseline %d: %w", id, err)
	}
	if len(bs) == 0 {
		return nil, notFound("baseline %d", id)
	}
	return &bs[0], nil
}

// Baselines are all baselines, by name.
func (db *DB) Baselines(ctx context.Context) ([]Baseline, error) {
	bs, err := db.baselines(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("baselines: %w", err)
	}
	return bs, nil
}

// DeleteBaseline forgets baseline id (its directory stays).
func (db *DB) DeleteBaseline(ctx context.Context, id int64) error {
	return db.write(ctx, func(c conn) error {
		res, err := c.exec(ctx, `DELETE FROM baselines WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("baseline %d: %w", id, err)
		}
		return mustAffect(res, "baseline %d", id)
	})
}

func (db *DB) baselines(ctx context.Context, where string, args ...any) ([]Baseline, error) {
	rows, err := db.read().query(ctx, `SELECT id, name, dir, added, checked, components, problems FROM baselines `+where+` ORDER BY name`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Baseline{}
	for rows.Next() {
		var (
			b              Baseline
			added, checked int64
			cj, pj         string
		)
		if err := rows.Scan(&b.ID, &b.Name, &b.Dir, &added, &checked, &cj, &pj); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(cj), &b.Components); err != nil {
			return nil, fmt.Errorf("baseline %d: components: %w", b.ID, err)
		}
		if err := json.Unmarshal([]byte(pj), &b.Problems); err != nil {
			return nil, fmt.Errorf("baseline %d: problems: %w", b.ID, err)
		}
		b.Added, b.Checked = fromMicros(added), fromMicros(checked)
		out = append(out, b)
	}
	return out, rows.Err()
}

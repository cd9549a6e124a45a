package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
)

// LatestRun is the id Run takes for the run begun last; no run has it.
const LatestRun = "latest"

// maxEvents bounds one AddEvents call.
const maxEvents = 10000

func checkRunID(id string) error {
	if err := checkName("run id", id); err != nil {
		return err
	}
	if id == LatestRun {
		return invalid("run id", id, "reserved (Run takes it for the run begun last)")
	}
	return nil
}

func checkRunState(state string) error {
	switch state {
	case RunRunning, RunEnded, RunCancelled, RunInterrupted:
		return nil
	}
	return invalid("run state", state, "must be running, ended, cancelled or interrupted")
}

func checkRunKind(kind string) error {
	switch kind {
	case RunDeploy, RunInventory, RunReview:
		return nil
	}
	return invalid("run kind", kind, "must be deploy, inventory or review")
}

// BeginRun records a run as it starts. State, when empty, is RunRunning;
// Started, when zero, is now. A run id already recorded is ErrExists.
func (db *DB) BeginRun(ctx context.Context, r Run) error {
	if err := checkRunID(r.ID); err != nil {
		return err
	}
	if err := checkRunKind(r.Kind); err != nil {
		return err
	}
	switch r.Source {
	case SourceCLI, SourceUI, SourceAPI:
	default:
		return invalid("run source", r.Source, "must be cli, ui or api")
	}
	if r.State == "" {
		r.State = RunRunning
	}
	if err := checkRunState(r.State); err != nil {
		return err
	}
	if err := checkText("run account", r.Account, maxName, false); err != nil {
		return err
	}
	if err := checkText("run baseline", r.Baseline, maxText, false); err != nil {
		return err
	}
	for _, t := range r.Targets {
		if err := checkText("run target", t, maxTarget, true); err != nil {
			return err
		}
	}
	if len(r.Options) > 0 && !json.Valid(r.Options) {
		return invalid("run options", "", "not JSON")
	}
	if r.PID < 0 {
		return invalid("run pid", fmt.Sprint(r.PID), "negative")
	}
	if r.Targets == nil {
		r.Targets = []string{}
	}
	targets, err := jsonText(r.Targets)
	if err != nil {
		return err
	}
	return db.write(ctx, func(c conn) error {
		taken, err := c.exists(ctx, `SELECT 1 FROM runs WHERE id = ?`, r.ID)
		if err != nil {
			return fmt.Errorf("run %s: %w", r.ID, err)
		}
		if taken {
			return fmt.Errorf("run %s: %w", r.ID, ErrExists)
		}
		started := micros(r.Started)
		if started == 0 {
			started = db.nowMicros()
		}
		_, err = c.exec(ctx, `INSERT INTO runs (id, kind, source, account, baseline, targets, started, ended, state, options, pid, proc_start)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Kind, r.Source, r.Account, r.Baseline, targets, started, micros(r.Ended), r.State, string(r.Options),
			r.PID, int64(r.ProcStart))
		if err != nil {
			return fmt.Errorf("run %s: %w", r.ID, err)
		}
		return nil
	})
}

// AddEvents appends events to run runID, numbered on from its last: the
// numbers are taken in the same transaction, so concurrent callers never
// get the same one, and each call's events are consecutive.
func (db *DB) AddEvents(ctx context.Context, runID string, evs []fleetup.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if len(evs) > maxEvents {
		return invalid("events", "", fmt.Sprintf("more than %d in one call", maxEvents))
	}
	js := make([]string, len(evs))
	for i, ev := range evs {
		j, err := jsonText(ev)
		if err != nil {
			return fmt.Errorf("run %s: event: %w", runID, err)
		}
		js[i] = j
	}
	return db.write(ctx, func(c conn) error {
		res, err := c.exec(ctx, `UPDATE runs SET last_seq = last_seq + ? WHERE id = ?`, len(evs), runID)
		if err != nil {
			return fmt.Errorf("run %s: events: %w", runID, err)
		}
		if err := mustAffect(res, "run %s", runID); err != nil {
			return err
		}
		var last int64
		if err := c.queryRow(ctx, `SELECT last_seq FROM runs WHERE id = ?`, runID).Scan(&last); err != nil {
			return fmt.Errorf("run %s: events: %w", runID, err)
		}
		seq := last - int64(len(evs))
		for i, ev := range evs {
			seq++
			_, err := c.exec(ctx, `INSERT INTO events (run_id, seq, at, node, event) VALUES (?, ?, ?, ?, ?)`,
				runID, seq, micros(ev.Time), ev.Node, js[i])
			if err != nil {
				return fmt.Errorf("run %s: event %d: %w", runID, seq, err)
			}
		}
		return nil
	})
}

// NodeEnded records a node's result in run runID, replacing one recorded
// before for the same node, with a row per component result; when
// r.Inventory is set it is also recorded as the node's inventory (with
// the run's id, replacing the one an earlier result of the node in this
// run recorded).
func (db *DB) NodeEnded(ctx context.Context, runID string, r orchestrator.NodeResult) error {
	if err := checkText("node", r.Node, maxTarget, true); err != nil {
		return err
	}
	// Any state but none: a caller may record a node it stopped
	// following before it ended.
	if r.State == "" {
		return invalid("node state", "", "empty")
	}
	res, err := jsonText(r)
	if err != nil {
		return fmt.Errorf("run %s: node %s: %w", runID, r.Node, err)
	}
	return db.write(ctx, func(c conn) error {
		ok, err := c.exists(ctx, `SELECT 1 FROM runs WHERE id = ?`, runID)
		if err != nil {
			return fmt.Errorf("run %s: %w", runID, err)
		}
		if !ok {
			return notFound("run %s", runID)
		}
		fail := func(err error) error { return fmt.Errorf("run %s: node %s: %w", runID, r.Node, err) }
		if _, err := c.exec(ctx, `DELETE FROM run_components WHERE run_id = ? AND node = ?`, runID, r.Node); err != nil {
			return fail(err)
		}
		if _, err := c.exec(ctx, `DELETE FROM run_nodes WHERE run_id = ? AND node = ?`, runID, r.Node); err != nil {
			return fail(err)
		}
		now := db.nowMicros()
		_, err = c.exec(ctx, `INSERT INTO run_nodes (run_id, node, state, failed_in, error, result, ended) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			runID, r.Node, string(r.State), string(r.FailedIn), r.Error, res, now)
		if err != nil {
			return fail(err)
		}
		for i, cr := range r.Components {
			reboot := 0
			if cr.RebootNeeded {
				reboot = 1
			}
			_, err := c.exec(ctx, `INSERT INTO run_components (run_id, node, pos, component_id, version, installed, action, phase, reboot_needed, error)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				runID, r.Node, i, cr.ComponentID, cr.Version, cr.Installed, string(cr.Action), string(cr.Phase), reboot, cr.Error)
			if err != nil {
				return fail(err)
			}
		}
		if r.Inventory != nil {
			if _, err := c.exec(ctx, `DELETE FROM inventories WHERE run_id = ? AND node = ?`, runID, r.Node); err != nil {
				return fail(err)
			}
			if err := putInventory(ctx, c, InventoryRecord{Node: r.Node, RunID: runID, Inv: r.Inventory}, now); err != nil {
				return fail(err)
			}
		}
		return nil
	})
}

// EndRun records that run runID ended at at (now when zero) in state
// (RunEnded, RunCancelled or RunInterrupted).
func (db *DB) EndRun(ctx context.Context, runID, state string, at time.Time) error {
	if err := checkRunState(state); err != nil {
		return err
	}
	if state == RunRunning {
		return invalid("run state", state, "a run does not end running")
	}
	ended := micros(at)
	if ended == 0 {
		ended = db.nowMicros()
	}
	return db.write(ctx, func(c conn) error {
		res, err := c.exec(ctx, `UPDATE runs SET state = ?, ended = ? WHERE id = ?`, state, ended, runID)
		if err != nil {
			return fmt.Errorf("run %s: end: %w", runID, err)
		}
		return mustAffect(res, "run %s", runID)
	})
}

const runCols = `id, kind, source, account, baseline, targets, started, ended, state, options, pid, proc_start`

func scanRun(rows interface{ Scan(...any) error }) (Run, error) {
	var (
		r              Run
		targets, opts  string
		started, ended int64
		procStart      int64
	)
	if err := rows.Scan(&r.ID, &r.Kind, &r.Source, &r.Account, &r.Baseline, &targets, &started, &ended, &r.State, &opts, &r.PID, &procStart); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(targets), &r.Targets); err != nil {
		return r, fmt.Errorf("run %s: targets: %w", r.ID, err)
	}
	if opts != "" {
		r.Options = []byte(opts)
	}
	r.Started, r.Ended = fromMicros(started), fromMicros(ended)
	r.ProcStart = uint64(procStart)
	return r, nil
}

// Run is run id with its nodes' results, in the order of its targets
// (nodes not among them after, in the order they ended), and Counts. id
// LatestRun ("latest") is the run with the newest Started.
func (db *DB) Run(ctx context.Context, id string) (*RunDetail, error) {
	c := db.read()
	q := `SELECT ` + runCols + ` FROM runs WHERE id = ?`
	args := []any{id}
	if id == LatestRun {
		q, args = `SELECT `+runCols+` FROM runs ORDER BY started DESC, id DESC LIMIT 1`, nil
	}
	r, err := scanRun(c.queryRow(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("run %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	d := &RunDetail{Run: r, Nodes: []orchestrator.NodeResult{}}
	d.Counts = map[string]int{}
	rows, err := c.query(ctx, `SELECT node, result, ended FROM run_nodes WHERE run_id = ?`, r.ID)
	if err != nil {
		return nil, fmt.Errorf("run %s: nodes: %w", r.ID, err)
	}
	defer rows.Close()
	type ended struct {
		res orchestrator.NodeResult
		at  int64
	}
	var ns []ended
	for rows.Next() {
		var (
			node, res string
			at        int64
		)
		if err := rows.Scan(&node, &res, &at); err != nil {
			return nil, fmt.Errorf("run %s: nodes: %w", r.ID, err)
		}
		var nr orchestrator.NodeResult
		if err := json.Unmarshal([]byte(res), &nr); err != nil {
			return nil, fmt.Errorf("run %s: node %s: %w", r.ID, node, err)
		}
		ns = append(ns, ended{nr, at})
		d.Counts[string(nr.State)]++
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("run %s: nodes: %w", r.ID, err)
	}
	order := map[string]int{}
	for i, t := range r.Targets {
		if _, ok := order[t]; !ok {
			order[t] = i
		}
	}
	pos := func(node string) int {
		if i, ok := order[node]; ok {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(ns, func(a, b ended) int {
		return cmp.Or(cmp.Compare(pos(a.res.Node), pos(b.res.Node)), cmp.Compare(a.at, b.at), cmp.Compare(a.res.Node, b.res.Node))
	})
	for _, n := range ns {
		d.Nodes = append(d.Nodes, n.res)
	}
	return d, nil
}

// Runs are the runs of kind (all for ""), newest first, at most limit (0:
// all), each with Counts.
func (db *DB) Runs(ctx context.Context, kind string, limit int) ([]Run, error) {
	if kind != "" {
		if err := checkRunKind(kind); err != nil {
			return nil, err
		}
	}
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	c := db.read()
	sel := `SELECT id FROM runs`
	var args []any
	if kind != "" {
		sel += ` WHERE kind = ?`
		args = append(args, kind)
	}
	sel += ` ORDER BY started DESC, id DESC` + limitClause(limit)
	rows, err := c.query(ctx, `SELECT `+runCols+` FROM runs WHERE id IN (`+sel+`) ORDER BY started DESC, id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	defer rows.Close()
	out := []Run{}
	byID := map[string]int{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("runs: %w", err)
		}
		r.Counts = map[string]int{}
		byID[r.ID] = len(out)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("runs: %w", err)
	}
	rows.Close()
	crows, err := c.query(ctx, `SELECT run_id, state, COUNT(*) FROM run_nodes WHERE run_id IN (`+sel+`) GROUP BY run_id, state`, args...)
	if err != nil {
		return nil, fmt.Errorf("runs: counts: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		var (
			id, state string
			n         int
		)
		if err := crows.Scan(&id, &state, &n); err != nil {
			return nil, fmt.Errorf("runs: counts: %w", err)
		}
		if i, ok := byID[id]; ok {
			out[i].Counts[state] = n
		}
	}
	if err := crows.Err(); err != nil {
		return nil, fmt.Errorf("runs: counts: %w", err)
	}
	return out, nil
}

// Events are run runID's events numbered after afterSeq, in order, at
// most limit (0: all). An unknown run is ErrNotFound.
func (db *DB) Events(ctx context.Context, runID string, afterSeq int64, limit int) ([]EventRecord, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	c := db.read()
	rows, err := c.query(ctx, `SELECT seq, event FROM events WHERE run_id = ? AND seq > ? ORDER BY seq`+limitClause(limit), runID, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("run %s: events: %w", runID, err)
	}
	defer rows.Close()
	out := []EventRecord{}
	for rows.Next() {
		var (
			e  = EventRecord{RunID: runID}
			js string
		)
		if err := rows.Scan(&e.Seq, &js); err != nil {
			return nil, fmt.Errorf("run %s: events: %w", runID, err)
		}
		if err := json.Unmarshal([]byte(js), &e.Event); err != nil {
			return nil, fmt.Errorf("run %s: event %d: %w", runID, e.Seq, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("run %s: events: %w", runID, err)
	}
	if len(out) == 0 {
		ok, err := c.exists(ctx, `SELECT 1 FROM runs WHERE id = ?`, runID)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", runID, err)
		}
		if !ok {
			return nil, notFound("run %s", runID)
		}
	}
	return out, nil
}

// MarkInterrupted finds the runs recorded as running whose manager process
// is gone (alive, given its PID and start time, says so: runstate's
// liveness check), records them RunInterrupted, ended now, and returns
// them so. alive is called outside any transaction.
func (db *DB) MarkInterrupted(ctx context.Context, alive func(pid int, procStart uint64) bool) ([]Run, error) {
	if alive == nil {
		return nil, errors.New("mark interrupted: no liveness check")
	}
	rows, err := db.read().query(ctx, `SELECT `+runCols+` FROM runs WHERE state = ? ORDER BY started, id`, RunRunning)
	if err != nil {
		return nil, fmt.Errorf("running runs: %w", err)
	}
	var running []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("running runs: %w", err)
		}
		running = append(running, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("running runs: %w", err)
	}
	out := []Run{}
	for _, r := range running {
		if alive(r.PID, r.ProcStart) {
			continue
		}
		now := db.nowMicros()
		var changed bool
		err := db.write(ctx, func(c conn) error {
			// Still running: it may have ended since it was read.
			res, err := c.exec(ctx, `UPDATE runs SET state = ?, ended = ? WHERE id = ? AND state = ?`, RunInterrupted, now, r.ID, RunRunning)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			changed = n == 1
			return err
		})
		if err != nil {
			return out, fmt.Errorf("run %s: mark interrupted: %w", r.ID, err)
		}
		if changed {
			r.State, r.Ended = RunInterrupted, fromMicros(now)
			out = append(out, r)
		}
	}
	return out, nil
}

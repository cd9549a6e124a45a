package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/store"
	"github.com/fleetup/fleetup/target"
)

// runRecord records a command-line run in the store of the state
// directory, so that `fleetup report`, `fleetup logs` and the web UI
// cover it. A store that cannot be opened or written is said, once, and
// never stops the run: the servers' update matters more than its record.
type runRecord struct {
	db  *store.DB
	rec *manager.Recorder
	out *reporter
}

func startRecord(ctx context.Context, out *reporter, stateDir, runID, kind, baselineDir string, ts []target.Target, options any) *runRecord {
	if stateDir == "" {
		stateDir = runstate.DefaultDir()
	}
	r := &runRecord{out: out}
	db, err := store.Open(store.Path(stateDir), store.KeyPath(stateDir))
	if err != nil {
		out.notice("", fmt.Sprintf("run not recorded for reports: %v", err))
		return r
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	if len(ts) == 0 {
		names = []string{"localhost"}
	}
	raw, _ := json.Marshal(options)
	self := runstate.Self()
	rec, err := manager.NewRecorder(ctx, db, store.Run{
		ID: runID, Kind: kind, Source: store.SourceCLI, Baseline: baselineDir, Targets: names,
		Started: time.Now(), Options: raw, PID: self.PID, ProcStart: self.Start,
	}, nil)
	if err != nil {
		db.Close()
		out.notice("", fmt.Sprintf("run not recorded for reports: %v", err))
		return r
	}
	r.db, r.rec = db, rec
	return r
}

func (r *runRecord) emit(ev fleetup.Event) {
	if r.rec != nil {
		r.rec.Emit(ev)
	}
}

func (r *runRecord) nodeEnded(res orchestrator.NodeResult) {
	if r.rec != nil {
		r.rec.NodeEnded(res)
	}
}

// end records the run's end; cancelled says it was cancelled.
func (r *runRecord) end(cancelled bool, results []orchestrator.NodeResult) {
	if r.rec == nil {
		return
	}
	state := store.RunEnded
	if cancelled {
		state = store.RunCancelled
	}
	if err := r.rec.End(state, results); err != nil {
		r.out.notice("", "run record: "+err.Error())
	}
	r.db.Close()
	r.rec = nil
}

// baselineDir is dir made absolute, as the record keeps it.
func baselineDir(dir string) string {
	if dir == "" {
		return ""
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

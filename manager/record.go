package manager

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/store"
)

// recordFlush is how often a Recorder writes the events it holds.
const recordFlush = 250 * time.Millisecond

// A Recorder records one run in the store, for reports and the web UI:
// its start, its events (written in batches, at most recordFlush late),
// each node's result as it ends, and its end. What the store refuses is
// kept as the Recorder's error (Err) rather than stopping the run: a run
// that updates servers goes on when its record cannot be written.
type Recorder struct {
	db     *store.DB
	runID  string
	notify func()

	// flushMu keeps one flush at a time, so that batches go in in order
	// (and a node's events before its result).
	flushMu sync.Mutex
	mu      sync.Mutex
	pending []fleetup.Event
	err     error
	closed  bool
	kick    chan struct{}
	done    chan struct{}
}

// NewRecorder records the start of run and returns its recorder; notify,
// when set, is called after events or a result were written.
func NewRecorder(ctx context.Context, db *store.DB, run store.Run, notify func()) (*Recorder, error) {
	if run.State == "" {
		run.State = store.RunRunning
	}
	if run.Started.IsZero() {
		run.Started = time.Now()
	}
	if err := db.BeginRun(ctx, run); err != nil {
		return nil, fmt.Errorf("record run %s: %w", run.ID, err)
	}
	r := &Recorder{db: db, runID: run.ID, notify: notify, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go r.loop()
	return r, nil
}

// Emit queues ev; it never blocks on the store.
func (r *Recorder) Emit(ev fleetup.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.pending = append(r.pending, ev)
	if len(r.pending) == 1 {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

func (r *Recorder) loop() {
	defer close(r.done)
	for {
		_, ok := <-r.kick
		r.flush()
		if !ok {
			return
		}
		time.Sleep(recordFlush) // batch what comes next
	}
}

func (r *Recorder) flush() {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	evs := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(evs) == 0 {
		return
	}
	err := r.db.AddEvents(context.Background(), r.runID, evs)
	r.fail(err)
	if err == nil && r.notify != nil {
		r.notify()
	}
}

func (r *Recorder) fail(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = fmt.Errorf("record run %s: %w", r.runID, err)
	}
}

// NodeEnded records a node's result (manager.Options.NodeEnded).
func (r *Recorder) NodeEnded(res orchestrator.NodeResult) {
	r.flush() // its events first
	r.flushMu.Lock()
	err := r.db.NodeEnded(context.Background(), r.runID, res)
	r.flushMu.Unlock()
	r.fail(err)
	if err == nil && r.notify != nil {
		r.notify()
	}
}

// End writes what is queued and records the end of the run with state
// (store.RunEnded, store.RunCancelled) and the results of nodes (those
// recorded by NodeEnded already are written again, harmlessly: a resumed
// run's kept nodes come only here). It returns every error the store
// gave during the run.
func (r *Recorder) End(state string, results []orchestrator.NodeResult) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.kick)
	}
	r.mu.Unlock()
	<-r.done
	r.flush()
	ctx := context.Background()
	for _, res := range results {
		r.fail(r.db.NodeEnded(ctx, r.runID, res))
	}
	// The run's end is what watchers and the next start go by: tried
	// again a few times (a busy database) before it is given up.
	var err error
	for try := 0; try < 5; try++ {
		if err = r.db.EndRun(ctx, r.runID, state, time.Now()); err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	r.fail(err)
	if r.notify != nil {
		r.notify()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

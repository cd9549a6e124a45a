package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/fleetup/fleetup/store"
)

// eventBatch bounds the events read from the store at once.
const eventBatch = 500

// apiRunEvents sends a run's events: with ?format=json the stored events
// after ?after=N as one JSON document; else a Server-Sent Events stream
// of the stored events after the Last-Event-ID (or ?after=), then the new
// ones as they are stored, a heartbeat comment every 15 s, and an "end"
// event once the run no longer runs.
func (s *Server) apiRunEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	run, err := s.db.Run(ctx, id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	id = run.ID // "latest" resolved
	after, err := afterSeq(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if r.URL.Query().Get("format") == "json" {
		limit, err := queryLimit(r, 1000)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		evs, err := s.db.Events(ctx, id, after, limit)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		if evs == nil {
			evs = []store.EventRecord{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"events": evs, "state": run.State, "running": run.State == store.RunRunning})
		return
	}

	// Subscribe before the first read, so that nothing stored in between
	// is missed.
	changed, stop := s.runner.Watch(id)
	defer stop()

	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	if rc.Flush() != nil {
		return
	}

	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(s.poll)
	defer poll.Stop()
	for {
		// Send what is stored, then see whether the run still runs:
		// events stored before it ended are sent before "end".
		for {
			evs, err := s.db.Events(ctx, id, after, eventBatch)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("run events", "run", id, "err", err)
				}
				return
			}
			for _, ev := range evs {
				data, err := json.Marshal(ev)
				if err != nil {
					continue
				}
				fmt.Fprintf(w, "id: %d\ndata: %s\n\n", ev.Seq, data)
				after = ev.Seq
			}
			if len(evs) < eventBatch {
				break
			}
		}
		if rc.Flush() != nil {
			return
		}
		d, err := s.db.Run(ctx, id)
		if err != nil {
			return
		}
		if d.State != store.RunRunning {
			// The run ended: a last look for events stored with its end.
			evs, err := s.db.Events(ctx, id, after, eventBatch)
			if err == nil && len(evs) > 0 {
				continue
			}
			data, _ := json.Marshal(map[string]string{"state": d.State})
			fmt.Fprintf(w, "event: end\ndata: %s\n\n", data)
			rc.Flush()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case _, ok := <-changed:
			if !ok {
				changed = nil // a closed channel would spin; the poll goes on
			}
		case <-poll.C:
		case <-heartbeat.C:
			fmt.Fprint(w, ": heartbeat\n\n")
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// afterSeq is the seq to send events after: the Last-Event-ID header of a
// reconnecting EventSource, else ?after=, else 0.
func afterSeq(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	field := "Last-Event-ID"
	if v == "" {
		v, field = r.URL.Query().Get("after"), "after"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badField(field, "want a non-negative event number")
	}
	return n, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

package engine

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/wire"
)

// Handler serves a Service over HTTP (wrapped in mutual TLS by the engine).
// Every request counts as a sign of life from the manager.
type Handler struct {
	Service *Service
	// OnEvent, when set, also receives every install event.
	OnEvent  func(fleetup.Event)
	lastSeen atomic.Int64
	invMu    sync.Mutex
	inv      *fleetup.Inventory
}

// NewHandler returns the engine's API handler for svc.
func NewHandler(svc *Service) *Handler {
	h := &Handler{Service: svc}
	h.touch()
	return h
}

func (h *Handler) touch() { h.lastSeen.Store(time.Now().UnixNano()) }

// Idle is how long ago the manager was last heard from.
func (h *Handler) Idle() time.Duration { return time.Since(time.Unix(0, h.lastSeen.Load())) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.touch()
	switch {
	case r.URL.Path == "/v1/ping" && r.Method == http.MethodGet:
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/v1/inventory" && r.Method == http.MethodGet:
		inv := h.Service.Collect(r.Context())
		h.invMu.Lock()
		h.inv = inv
		h.invMu.Unlock()
		writeJSON(w, inv)
	case r.URL.Path == "/v1/probe" && r.Method == http.MethodPost:
		var req wire.ProbeRequest
		if !readJSON(w, r, &req) {
			return
		}
		h.invMu.Lock()
		inv := h.inv
		h.invMu.Unlock()
		if inv == nil {
			inv = h.Service.Collect(r.Context())
		}
		writeJSON(w, h.Service.Probe(r.Context(), inv, req.Components))
	case r.URL.Path == "/v1/install" && r.Method == http.MethodPost:
		var req wire.InstallRequest
		if !readJSON(w, r, &req) {
			return
		}
		h.install(w, r, req)
	case r.URL.Path == "/v1/cancel" && r.Method == http.MethodPost:
		h.Service.Cancel()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// install streams events as JSON lines while the install runs, then the
// results. The stream also keeps the watchdog fed.
func (h *Handler) install(w http.ResponseWriter, r *http.Request, req wire.InstallRequest) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	send := func(l wire.InstallLine) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(l)
		_ = rc.Flush()
	}
	results := h.Service.Install(r.Context(), req, func(ev fleetup.Event) {
		h.touch()
		if h.OnEvent != nil {
			h.OnEvent(ev)
		}
		send(wire.InstallLine{Event: &ev})
	})
	send(wire.InstallLine{Results: results, Done: true})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<20))
	if err := dec.Decode(v); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

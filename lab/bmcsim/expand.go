package bmcsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// wantsExpand reports whether a request asks to expand a collection's
// members ($expand=., $expand=*, $expand=~, with or without levels), as
// ilorest always does on iLO.
func wantsExpand(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.RawQuery, "$expand") ||
		r.Method == http.MethodGet && r.URL.Query().Has("$expand")
}

// serveExpanded serves a GET and replaces the Members links of a
// collection in the answer with the members themselves.
func (rt *router) serveExpanded(w http.ResponseWriter, r *http.Request) {
	rec := newRecorder()
	rt.mux.ServeHTTP(rec, r)
	var o map[string]any
	members, ok := []any(nil), false
	if rec.status == http.StatusOK && json.Unmarshal(rec.body.Bytes(), &o) == nil {
		members, ok = o["Members"].([]any)
	}
	if !ok {
		rec.copyTo(w)
		return
	}
	for i, m := range members {
		link, _ := m.(map[string]any)
		path, _ := link["@odata.id"].(string)
		if path == "" {
			continue
		}
		sub := r.Clone(r.Context())
		sub.URL.Path, sub.URL.RawPath, sub.URL.RawQuery = strings.TrimRight(path, "/"), "", ""
		if _, pattern := rt.mux.Handler(sub); pattern == "" {
			continue
		}
		mrec := newRecorder()
		rt.mux.ServeHTTP(mrec, sub)
		var mo map[string]any
		if mrec.status == http.StatusOK && json.Unmarshal(mrec.body.Bytes(), &mo) == nil {
			members[i] = mo
		}
	}
	o["Members"] = members
	writeJSON(w, http.StatusOK, o)
}

// recorder keeps a response in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, status: http.StatusOK} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.body.Write(p)
}

func (r *recorder) copyTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body.Bytes())
}

package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/store"
)

// inputError is a bad value in a request: Field names it as the request
// spelled it ("targets[1]", "dir").
type inputError struct {
	Field string
	Msg   string
}

func (e *inputError) Error() string { return e.Field + ": " + e.Msg }

func badField(field, format string, args ...any) error {
	return &inputError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// errForbidden is an action the caller's account may not take.
var errForbidden = errors.New("forbidden")

// statusOf is the HTTP status an error of an operation answers with.
func statusOf(err error) int {
	var ie *inputError
	var ve *store.ValidationError
	var mbe *http.MaxBytesError
	var re *manager.RequestError
	switch {
	case errors.As(err, &ie), errors.As(err, &ve), errors.As(err, &re):
		return http.StatusBadRequest
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrInUse):
		return http.StatusConflict
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrNotRunning):
		return http.StatusConflict
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// publicMessage is what a user may read of err: the error itself for the
// errors a request causes, a generic text for internal ones (logged).
func (s *Server) publicMessage(r *http.Request, err error) (int, string) {
	code := statusOf(err)
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		return code, "internal error"
	}
	return code, err.Error()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// apiError answers an API request that failed with err.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := s.publicMessage(r, err)
	writeError(w, code, msg)
}

// decode reads a JSON request body into v, refusing unknown fields and
// trailing data.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return badField("body", "Content-Type must be application/json")
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return badField("body", "empty; want a JSON object")
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return badField(te.Field, "want a JSON %s", te.Type)
		}
		return badField("body", "%v", err)
	}
	if dec.More() {
		return badField("body", "more than one JSON value")
	}
	return nil
}

// pathID is the {id} of the path as a positive integer.
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: id %q", store.ErrNotFound, r.PathValue("id"))
	}
	return id, nil
}

// queryLimit is the ?limit= of r, def when absent, within [1, 1000].
func queryLimit(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, badField("limit", "want a number from 1 to 1000")
	}
	return n, nil
}

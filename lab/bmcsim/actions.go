package bmcsim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"
)

// maxJSONBody bounds the JSON bodies a BMC reads.
const maxJSONBody = 64 << 10

func (b *BMC) now() time.Time { return time.Now() }

// readJSONBody reads a small JSON object body into a map of raw values.
func readJSONBody(r io.Reader) (map[string]json.RawMessage, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJSONBody+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJSONBody {
		return nil, errors.New("body too large")
	}
	return parseJSONObject(data)
}

// parseJSONObject parses a JSON object into its members.
func parseJSONObject(data []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// stringField reads member key of m as a string. It reports whether the
// member is present, and an error if it is not a string.
func stringField(m map[string]json.RawMessage, key string) (string, bool, error) {
	raw, ok := m[key]
	if !ok {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, err
	}
	return s, true, nil
}

// login creates a session: 201 with X-Auth-Token and Location.
func (b *BMC) login(w http.ResponseWriter, r *http.Request) {
	p := b.prof
	m, err := readJSONBody(r.Body)
	if err != nil {
		b.writeError(w, http.StatusBadRequest, p.baseMsg("MalformedJSON"))
		return
	}
	user, okU, errU := stringField(m, "UserName")
	pass, okP, errP := stringField(m, "Password")
	switch {
	case !okU:
		b.writeError(w, http.StatusBadRequest, p.baseMsg("PropertyMissing", "UserName"))
		return
	case !okP:
		b.writeError(w, http.StatusBadRequest, p.baseMsg("PropertyMissing", "Password"))
		return
	case errU != nil || errP != nil:
		b.writeError(w, http.StatusBadRequest, p.baseMsg("MalformedJSON"))
		return
	}
	if !b.checkPassword(user, pass) {
		b.logf("bmcsim: %s: login of %q refused", b.opts.Flavor, user)
		b.writeError(w, http.StatusUnauthorized, p.baseMsg("NoValidSession"))
		return
	}
	b.mu.Lock()
	s := b.st.newSession(user)
	body := b.sessionJSON(s)
	b.mu.Unlock()
	w.Header().Set("X-Auth-Token", s.token)
	loc := p.id(sessionsPath + "/" + s.id)
	if p.flavor == ILO {
		// iLO names the session with an absolute URL.
		loc = "https://" + r.Host + loc
	}
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, body)
}

// logout deletes a session: 204.
func (b *BMC) logout(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b.mu.Lock()
	b.expireSessionsLocked()
	s := b.st.sessionByID(id)
	if s != nil {
		delete(b.st.sessions, s.token)
	}
	b.mu.Unlock()
	if s == nil {
		b.writeError(w, http.StatusNotFound, b.prof.baseMsg("ResourceNotFound", "Session", id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resetType reads an action's ResetType, which must be one of allowed.
func (b *BMC) resetType(w http.ResponseWriter, r *http.Request, action string, allowed []string) (string, bool) {
	p := b.prof
	m, err := readJSONBody(r.Body)
	if err != nil {
		b.writeError(w, http.StatusBadRequest, p.baseMsg("MalformedJSON"))
		return "", false
	}
	t, ok, err := stringField(m, "ResetType")
	switch {
	case !ok:
		b.writeError(w, http.StatusBadRequest, p.baseMsg("ActionParameterMissing", action, "ResetType"))
		return "", false
	case err != nil:
		b.writeError(w, http.StatusBadRequest, p.baseMsg("ActionParameterValueTypeError", string(m["ResetType"]), "ResetType", action))
		return "", false
	case !slices.Contains(allowed, t):
		b.writeError(w, http.StatusBadRequest, p.baseMsg("ActionParameterValueFormatError", t, "ResetType", action))
		return "", false
	}
	return t, true
}

// actionDone answers an action that succeeded at once: iLO sends its
// message envelope with 200, the others 204.
func (b *BMC) actionDone(w http.ResponseWriter, msg message) {
	if b.prof.flavor == ILO {
		writeJSON(w, http.StatusOK, b.prof.errorBody(msg))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// managerReset restarts the BMC: it answers, then resets (refusing
// connections, then 503) for ResetTime. An OpenBMC activates staged images.
func (b *BMC) managerReset(w http.ResponseWriter, r *http.Request) {
	if _, ok := b.resetType(w, r, "Manager.Reset", []string{"GracefulRestart", "ForceRestart"}); !ok {
		return
	}
	b.mu.Lock()
	ok := b.startResetLocked(100 * time.Millisecond)
	b.mu.Unlock()
	if !ok {
		b.writeError(w, http.StatusServiceUnavailable, b.prof.baseMsg("ServiceTemporarilyUnavailable", "1"))
		return
	}
	msg := b.prof.baseMsg("Success")
	if b.prof.flavor == ILO {
		msg = message{ID: b.prof.oem + ".ResetInProgress"}
	}
	b.actionDone(w, msg)
}

// systemReset changes the host's power state.
func (b *BMC) systemReset(w http.ResponseWriter, r *http.Request) {
	t, ok := b.resetType(w, r, "ComputerSystem.Reset",
		[]string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "PushPowerButton"})
	if !ok {
		return
	}
	b.mu.Lock()
	switch t {
	case "ForceOff", "GracefulShutdown":
		b.st.power = "Off"
	case "PushPowerButton":
		if b.st.power == "On" {
			b.st.power = "Off"
		} else {
			b.st.power = "On"
		}
	default:
		b.st.power = "On"
	}
	b.mu.Unlock()
	b.actionDone(w, b.prof.baseMsg("Success"))
}

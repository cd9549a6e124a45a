package web

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/orchestrator"
	"github.com/fleetup/fleetup/store"
)

// The JSON API under /api/v1, documented in docs/openapi.yaml.

// apiRun is a store.Run with its options as JSON, not base64.
type apiRun struct {
	store.Run
	Options json.RawMessage `json:"options,omitempty"`
}

type apiRunDetail struct {
	apiRun
	Nodes []orchestrator.NodeResult `json:"nodes"`
}

func toAPIRun(r store.Run) apiRun {
	a := apiRun{Run: r}
	if json.Valid(r.Options) {
		a.Options = r.Options
	}
	a.Run.Options = nil
	return a
}

func (s *Server) apiMe(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	auth := "session"
	if c.viaToken() {
		auth = "token"
	}
	writeJSON(w, http.StatusOK, struct {
		*store.Account
		Auth string `json:"auth"`
	}{c.acct, auth})
}

func (s *Server) apiNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := s.db.Nodes(r.Context(), r.URL.Query().Get("tag"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if nodes == nil {
		nodes = []store.Node{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes})
}

func (s *Server) apiNodeAdd(w http.ResponseWriter, r *http.Request) {
	var in nodeInput
	if err := decode(r, &in); err != nil {
		s.apiError(w, r, err)
		return
	}
	n, err := s.addNode(r.Context(), r, callerOf(r), in)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/nodes/"+itoa(n.ID))
	writeJSON(w, http.StatusCreated, n)
}

func (s *Server) apiNodesImport(w http.ResponseWriter, r *http.Request) {
	var in importInput
	if err := decode(r, &in); err != nil {
		s.apiError(w, r, err)
		return
	}
	res, err := s.importNodes(r.Context(), r, callerOf(r), in)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) apiNode(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	n, err := s.db.Node(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *Server) apiNodeDelete(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.deleteNode(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiCredentials(w http.ResponseWriter, r *http.Request) {
	creds, err := s.db.Credentials(r.Context())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if creds == nil {
		creds = []store.Credential{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"credentials": creds})
}

func (s *Server) apiCredentialAdd(w http.ResponseWriter, r *http.Request) {
	var in struct {
		credentialInput
		// Replace gives an existing credential of this name the new user
		// and password.
		Replace bool `json:"replace,omitempty"`
	}
	if err := decode(r, &in); err != nil {
		s.apiError(w, r, err)
		return
	}
	if strings.TrimSpace(in.Name) == "" {
		s.apiError(w, r, badField("name", "is required"))
		return
	}
	cred, err := s.putCredential(r.Context(), r, callerOf(r), "", in.credentialInput, "", in.Replace)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, cred)
}

func (s *Server) apiCredentialDelete(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.deleteCredential(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiBaselines(w http.ResponseWriter, r *http.Request) {
	bs, err := s.db.Baselines(r.Context())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if bs == nil {
		bs = []store.Baseline{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"baselines": bs})
}

func (s *Server) apiBaselineAdd(w http.ResponseWriter, r *http.Request) {
	var in baselineInput
	if err := decode(r, &in); err != nil {
		s.apiError(w, r, err)
		return
	}
	b, err := s.addBaseline(r.Context(), r, callerOf(r), in)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/baselines/"+itoa(b.ID))
	writeJSON(w, http.StatusCreated, b)
}

func (s *Server) apiBaseline(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	b, err := s.db.Baseline(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) apiBaselineDelete(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.deleteBaseline(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiBaselineCheck(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	b, err := s.checkBaseline(r.Context(), r, callerOf(r), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) apiInventory(w http.ResponseWriter, r *http.Request) {
	recs, err := s.db.LatestInventories(r.Context())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if recs == nil {
		recs = []store.InventoryRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"inventories": recs})
}

func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 100)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	runs, err := s.db.Runs(r.Context(), r.URL.Query().Get("kind"), limit)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := make([]apiRun, len(runs))
	for i, run := range runs {
		out[i] = toAPIRun(run)
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (s *Server) apiRunStart(w http.ResponseWriter, r *http.Request) {
	var req manager.RunRequest
	if err := decode(r, &req); err != nil {
		s.apiError(w, r, err)
		return
	}
	id, err := s.startRun(r.Context(), r, callerOf(r), req)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/runs/"+id)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	d, err := s.db.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	nodes := d.Nodes
	if nodes == nil {
		nodes = []orchestrator.NodeResult{}
	}
	writeJSON(w, http.StatusOK, apiRunDetail{apiRun: toAPIRun(d.Run), Nodes: nodes})
}

func (s *Server) apiRunCancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.cancelRun(r.Context(), r, callerOf(r), id); err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": "cancelling"})
}

func (s *Server) apiAudit(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 200)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	entries, err := s.auditLog(r.Context(), callerOf(r), limit)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if entries == nil {
		entries = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

func (s *Server) apiAccounts(w http.ResponseWriter, r *http.Request) {
	as, err := s.db.Accounts(r.Context())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if as == nil {
		as = []store.Account{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": as})
}

func (s *Server) apiAccountAdd(w http.ResponseWriter, r *http.Request) {
	var in accountInput
	if err := decode(r, &in); err != nil {
		s.apiError(w, r, err)
		return
	}
	a, err := s.addAccount(r.Context(), r, callerOf(r), in)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) apiTokens(w http.ResponseWriter, r *http.Request) {
	ts, err := s.db.APITokens(r.Context(), callerOf(r).acct.ID)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if ts == nil {
		ts = []store.APIToken{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": ts})
}

func (s *Server) apiTokenAdd(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if err := decode(r, &in); err != nil {
		s.apiError(w, r, err)
		return
	}
	t, err := s.addToken(r.Context(), r, callerOf(r), in.Name)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	// The secret is shown this once: the store keeps its hash alone.
	writeJSON(w, http.StatusCreated, struct {
		*store.APIToken
		Secret string `json:"secret"`
	}{t, t.Secret})
}

func (s *Server) apiTokenDelete(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.deleteToken(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

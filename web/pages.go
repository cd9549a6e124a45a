package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/store"
)

// formErrors maps a form field to its error message.
type formErrors map[string]string

// fieldSuffix and fieldIndex turn an inputError's field into a form's.
var (
	fieldSuffix = regexp.MustCompile(`(\[\d+\])?(\..*)?$`)
	fieldIndex  = regexp.MustCompile(`^targets\[(\d+)\]$`)
)

// formError is the form field an inputError is about, with its message:
// "targets[1]" and "credential.user" are shown next to "targets" and
// "credential", the first as "address 2: ...".
func formError(err error) (formErrors, bool) {
	var ie *inputError
	if !errors.As(err, &ie) {
		return nil, false
	}
	msg := ie.Msg
	if m := fieldIndex.FindStringSubmatch(ie.Field); m != nil {
		n, _ := strconv.Atoi(m[1])
		msg = fmt.Sprintf("address %d: %s", n+1, msg)
	}
	return formErrors{fieldSuffix.ReplaceAllString(ie.Field, ""): msg}, true
}

// formIDs reads the int64 values of a multi-valued form field.
func formIDs(r *http.Request, key string) ([]int64, error) {
	var ids []int64
	for _, v := range r.PostForm[key] {
		if v == "" {
			continue
		}
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			return nil, badField(key, "not a valid choice")
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func formInt(r *http.Request, key string) (int, error) {
	v := strings.TrimSpace(r.PostFormValue(key))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badField(key, "want a whole number")
	}
	return n, nil
}

func formSeconds(r *http.Request, key string) (time.Duration, error) {
	n, err := formInt(r, key)
	if err != nil || n < 0 {
		return 0, badField(key, "want a number of seconds")
	}
	return time.Duration(n) * time.Second, nil
}

func formBool(r *http.Request, key string) bool {
	v := r.PostFormValue(key)
	return v == "on" || v == "1" || v == "true" || v == "yes"
}

// parseForm reads a form body; a multipart one (a file upload) too.
func parseForm(r *http.Request) error {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		if err := r.ParseMultipartForm(maxImportBody); err != nil {
			return badField("file", "%v", err)
		}
		return nil
	}
	return r.ParseForm()
}

// Dashboard.

type dashboardData struct {
	Nodes, Baselines, Running int
	Runs                      []store.Run
}

func (s *Server) dashboardPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	nodes, err := s.db.Nodes(ctx, "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bs, err := s.db.Baselines(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	runs, err := s.db.Runs(ctx, "", 1000)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := dashboardData{Nodes: len(nodes), Baselines: len(bs)}
	for _, run := range runs {
		if run.State == store.RunRunning {
			d.Running++
		}
	}
	d.Runs = runs[:min(len(runs), 10)]
	s.render(w, r, http.StatusOK, "dashboard", "Dashboard", d)
}

// Nodes.

type nodeRow struct {
	store.Node
	Credential, BMCCredential string
	Inventory                 time.Time
}

type nodeForm struct {
	Name, Targets, Tags, Credential, User, BMCCredential, BMCUser string
}

type nodesData struct {
	Tag         string
	Tags        []string
	Nodes       []nodeRow
	Credentials []store.Credential
	Form        nodeForm
	Errors      formErrors
	Import      struct {
		Format, Content, Tags string
		Error                 string
		Result                *importResult
	}
}

func (s *Server) nodesData(ctx context.Context, tag string) (*nodesData, error) {
	d := &nodesData{Tag: tag, Errors: formErrors{}}
	all, err := s.db.Nodes(ctx, "")
	if err != nil {
		return nil, err
	}
	creds, err := s.db.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	d.Credentials = creds
	credName := map[int64]string{}
	for _, c := range creds {
		credName[c.ID] = c.Name + " (" + c.User + ")"
	}
	invs, err := s.db.LatestInventories(ctx)
	if err != nil {
		return nil, err
	}
	invAt := map[string]time.Time{}
	for _, rec := range invs {
		invAt[rec.Node] = rec.Time
	}
	for _, n := range all {
		for _, t := range n.Tags {
			if !slices.Contains(d.Tags, t) {
				d.Tags = append(d.Tags, t)
			}
		}
		if tag != "" && !slices.Contains(n.Tags, tag) {
			continue
		}
		row := nodeRow{Node: n, Credential: credName[n.CredentialID], BMCCredential: credName[n.BMCCredentialID]}
		for _, t := range n.Targets {
			if at := invAt[t]; at.After(row.Inventory) {
				row.Inventory = at
			}
		}
		d.Nodes = append(d.Nodes, row)
	}
	slices.Sort(d.Tags)
	return d, nil
}

func (s *Server) nodesPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.nodesData(r.Context(), r.URL.Query().Get("tag"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "nodes", "Nodes", d)
}

// splitLines splits a textarea of addresses: one per line.
func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// splitList splits a textarea of addresses or tags: lines, commas, spaces.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == ' ' || r == '\t' || r == ',' })
}

func (s *Server) nodesPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := nodeForm{
		Name:          r.PostFormValue("name"),
		Targets:       r.PostFormValue("targets"),
		Tags:          r.PostFormValue("tags"),
		Credential:    r.PostFormValue("credential"),
		User:          r.PostFormValue("user"),
		BMCCredential: r.PostFormValue("bmc_credential"),
		BMCUser:       r.PostFormValue("bmc_user"),
	}
	in := nodeInput{Name: f.Name, Targets: splitLines(f.Targets), Tags: splitList(f.Tags)}
	var err error
	pick := func(v, field string) int64 {
		if v == "" || v == "new" || err != nil {
			return 0
		}
		id, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			err = badField(field, "not a valid choice")
		}
		return id
	}
	in.CredentialID = pick(f.Credential, "credential")
	in.BMCCredentialID = pick(f.BMCCredential, "bmc_credential")
	if f.User != "" || r.PostFormValue("password") != "" {
		in.Credential = &credentialInput{User: f.User, Password: r.PostFormValue("password")}
	}
	if f.BMCUser != "" || r.PostFormValue("bmc_password") != "" {
		in.BMCCredential = &credentialInput{User: f.BMCUser, Password: r.PostFormValue("bmc_password")}
	}
	if err == nil {
		_, err = s.addNode(ctx, r, callerOf(r), in)
	}
	if err == nil {
		http.Redirect(w, r, "/nodes?done=node.add", http.StatusSeeOther)
		return
	}
	code, msg := s.publicMessage(r, err)
	d, derr := s.nodesData(ctx, "")
	if derr != nil {
		s.fail(w, r, derr)
		return
	}
	d.Form = f
	if fe, ok := formError(err); ok {
		d.Errors = fe
	} else {
		d.Errors["form"] = msg
	}
	s.render(w, r, code, "nodes", "Nodes", d)
}

func (s *Server) nodesImportPost(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := parseForm(r)
	in := importInput{Format: r.FormValue("format"), Content: r.FormValue("content"), Tags: splitList(r.FormValue("tags"))}
	if in.Format == "auto" {
		in.Format = ""
	}
	if err == nil && r.MultipartForm != nil {
		if fh := r.MultipartForm.File["file"]; len(fh) > 0 && fh[0].Size > 0 {
			var file io.ReadCloser
			file, err = fh[0].Open()
			if err == nil {
				var b []byte
				b, err = io.ReadAll(io.LimitReader(file, maxImportBody))
				file.Close()
				in.Content, in.Name = string(b), fh[0].Filename
			}
		}
	}
	var res *importResult
	if err == nil {
		res, err = s.importNodes(ctx, r, callerOf(r), in)
	}
	d, derr := s.nodesData(ctx, "")
	if derr != nil {
		s.fail(w, r, derr)
		return
	}
	code := http.StatusOK
	if err != nil {
		var msg string
		code, msg = s.publicMessage(r, err)
		d.Import.Error = msg
		d.Import.Format, d.Import.Tags = r.FormValue("format"), r.FormValue("tags")
		// An input file may hold passwords: never echo it back.
		if !strings.Contains(strings.ToUpper(in.Content), "PWD") {
			d.Import.Content = in.Content
		}
	}
	d.Import.Result = res
	s.render(w, r, code, "nodes", "Nodes", d)
}

func (s *Server) nodeDeletePost(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.deleteNode(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/nodes?done=node.delete", http.StatusSeeOther)
}

// Credentials.

type credentialsData struct {
	Credentials []store.Credential
	Used        map[int64][]string
	Form        struct{ Name, User string }
	Errors      formErrors
}

func (s *Server) credentialsData(ctx context.Context) (*credentialsData, error) {
	creds, err := s.db.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := s.db.Nodes(ctx, "")
	if err != nil {
		return nil, err
	}
	d := &credentialsData{Credentials: creds, Used: map[int64][]string{}, Errors: formErrors{}}
	for _, n := range nodes {
		for _, id := range []int64{n.CredentialID, n.BMCCredentialID} {
			if id != 0 && !slices.Contains(d.Used[id], n.Name) {
				d.Used[id] = append(d.Used[id], n.Name)
			}
		}
	}
	return d, nil
}

func (s *Server) credentialsPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.credentialsData(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "credentials", "Credentials", d)
}

func (s *Server) credentialsPost(w http.ResponseWriter, r *http.Request) {
	in := credentialInput{Name: r.PostFormValue("name"), User: r.PostFormValue("user"), Password: r.PostFormValue("password")}
	var err error
	if strings.TrimSpace(in.Name) == "" {
		err = badField("credential.name", "is required")
	} else {
		_, err = s.putCredential(r.Context(), r, callerOf(r), "credential", in, "", formBool(r, "replace"))
	}
	if err == nil {
		http.Redirect(w, r, "/credentials?done=credential.add", http.StatusSeeOther)
		return
	}
	code, msg := s.publicMessage(r, err)
	d, derr := s.credentialsData(r.Context())
	if derr != nil {
		s.fail(w, r, derr)
		return
	}
	d.Form.Name, d.Form.User = in.Name, in.User
	var ie *inputError
	switch {
	case errors.As(err, &ie):
		d.Errors[strings.TrimPrefix(ie.Field, "credential.")] = ie.Msg
	case errors.Is(err, store.ErrExists):
		d.Errors["name"] = "A credential has this name: tick “replace” to give it this user and password."
	default:
		d.Errors["form"] = msg
	}
	s.render(w, r, code, "credentials", "Credentials", d)
}

func (s *Server) credentialDeletePost(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.deleteCredential(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/credentials?done=credential.delete", http.StatusSeeOther)
}

// Baselines.

type baselinesData struct {
	Baselines []store.Baseline
	Form      baselineInput
	Errors    formErrors
}

func (s *Server) baselinesPage(w http.ResponseWriter, r *http.Request) {
	bs, err := s.db.Baselines(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "baselines", "Baselines", &baselinesData{Baselines: bs, Errors: formErrors{}})
}

func (s *Server) baselinesPost(w http.ResponseWriter, r *http.Request) {
	in := baselineInput{Name: r.PostFormValue("name"), Dir: r.PostFormValue("dir")}
	b, err := s.addBaseline(r.Context(), r, callerOf(r), in)
	if err == nil {
		http.Redirect(w, r, "/baselines/"+itoa(b.ID), http.StatusSeeOther)
		return
	}
	code, msg := s.publicMessage(r, err)
	bs, derr := s.db.Baselines(r.Context())
	if derr != nil {
		s.fail(w, r, derr)
		return
	}
	d := &baselinesData{Baselines: bs, Form: in, Errors: formErrors{}}
	if fe, ok := formError(err); ok {
		d.Errors = fe
	} else {
		d.Errors["form"] = msg
	}
	s.render(w, r, code, "baselines", "Baselines", d)
}

func (s *Server) baselinePage(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := s.db.Baseline(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "baseline", "Baseline "+b.Name, b)
}

func (s *Server) baselineCheckPost(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.checkBaseline(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/baselines/"+itoa(id)+"?done=baseline.check", http.StatusSeeOther)
}

func (s *Server) baselineDeletePost(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.deleteBaseline(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/baselines?done=baseline.delete", http.StatusSeeOther)
}

// Run forms: inventory, review, deploy.

// runFormData is what the inventory, review and deploy pages show: the
// choices and what was chosen.
type runFormData struct {
	Nodes     []store.Node
	Tags      []string
	Baselines []store.Baseline
	Req       manager.RunRequest
	// HealthTimeout and RebootDelay are in seconds, as the form has them.
	HealthTimeout, RebootDelay int64
	Errors                     formErrors
	Confirm                    bool
	// Chosen are the nodes the run would work on (the confirm step).
	Chosen      []store.Node
	Baseline    *store.Baseline
	Inventories []inventoryView
}

func (s *Server) runFormData(ctx context.Context) (*runFormData, error) {
	nodes, err := s.db.Nodes(ctx, "")
	if err != nil {
		return nil, err
	}
	bs, err := s.db.Baselines(ctx)
	if err != nil {
		return nil, err
	}
	d := &runFormData{Nodes: nodes, Baselines: bs, Errors: formErrors{}}
	for _, n := range nodes {
		for _, t := range n.Tags {
			if !slices.Contains(d.Tags, t) {
				d.Tags = append(d.Tags, t)
			}
		}
	}
	slices.Sort(d.Tags)
	return d, nil
}

// runRequest reads a run form.
func runRequest(r *http.Request, kind string) (manager.RunRequest, error) {
	req := manager.RunRequest{Kind: kind, Tag: strings.TrimSpace(r.PostFormValue("tag"))}
	var err error
	if req.NodeIDs, err = formIDs(r, "node"); err != nil {
		return req, badField("node_ids", "not a valid choice")
	}
	if kind != store.RunInventory {
		if v := r.PostFormValue("baseline"); v != "" {
			if req.BaselineID, err = strconv.ParseInt(v, 10, 64); err != nil {
				return req, badField("baseline_id", "not a valid choice")
			}
		}
	}
	if kind != store.RunDeploy {
		return req, nil
	}
	req.Downgrade = formBool(r, "downgrade")
	req.Rewrite = formBool(r, "rewrite")
	req.OnFailedDependency = r.PostFormValue("on_failed_dependency")
	req.MaxFailures = strings.TrimSpace(r.PostFormValue("max_failures"))
	req.HealthCommand = strings.TrimSpace(r.PostFormValue("health_command"))
	req.Reboot = formBool(r, "reboot")
	req.RebootAlways = formBool(r, "reboot_always")
	req.RebootMessage = strings.TrimSpace(r.PostFormValue("reboot_message"))
	if req.Parallel, err = formInt(r, "parallel"); err != nil {
		return req, err
	}
	if req.Canary, err = formInt(r, "canary"); err != nil {
		return req, err
	}
	if req.HealthTimeout, err = formSeconds(r, "health_timeout"); err != nil {
		return req, err
	}
	if req.RebootDelay, err = formSeconds(r, "reboot_delay"); err != nil {
		return req, err
	}
	return req, nil
}

func (s *Server) runForm(w http.ResponseWriter, r *http.Request, kind, tmpl, title string) {
	d, err := s.runFormData(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d.Req.Kind = kind
	d.Req.Parallel = 8
	if id, err := strconv.ParseInt(r.URL.Query().Get("baseline"), 10, 64); err == nil {
		d.Req.BaselineID = id
	}
	if kind == store.RunInventory {
		if d.Inventories, err = s.inventoryViews(r.Context()); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.render(w, r, http.StatusOK, tmpl, title, d)
}

// runPost starts a run from a form; a deploy first shows a confirm step.
func (s *Server) runPost(w http.ResponseWriter, r *http.Request, kind, tmpl, title string) {
	ctx := r.Context()
	req, err := runRequest(r, kind)
	if err == nil && kind == store.RunDeploy && r.PostFormValue("confirm") != "yes" {
		d, derr := s.confirmData(ctx, req)
		if derr != nil {
			err = derr
		} else {
			d.Confirm = true
			s.render(w, r, http.StatusOK, tmpl, title, d)
			return
		}
	}
	var id string
	if err == nil {
		id, err = s.startRun(ctx, r, callerOf(r), req)
	}
	if err == nil {
		http.Redirect(w, r, "/runs/"+id, http.StatusSeeOther)
		return
	}
	code, msg := s.publicMessage(r, err)
	d, derr := s.runFormData(ctx)
	if derr != nil {
		s.fail(w, r, derr)
		return
	}
	d.Req = req
	d.HealthTimeout, d.RebootDelay = int64(req.HealthTimeout/time.Second), int64(req.RebootDelay/time.Second)
	if fe, ok := formError(err); ok {
		d.Errors = fe
	} else {
		d.Errors["form"] = msg
	}
	if kind == store.RunInventory {
		d.Inventories, _ = s.inventoryViews(ctx)
	}
	s.render(w, r, code, tmpl, title, d)
}

// confirmData is the deploy's confirm step: what it would work on, or the
// error of a request that would not start.
func (s *Server) confirmData(ctx context.Context, req manager.RunRequest) (*runFormData, error) {
	d, err := s.runFormData(ctx)
	if err != nil {
		return nil, err
	}
	d.Req = req
	d.HealthTimeout, d.RebootDelay = int64(req.HealthTimeout/time.Second), int64(req.RebootDelay/time.Second)
	if req.BaselineID == 0 {
		return nil, badField("baseline_id", "choose a baseline")
	}
	b, err := s.db.Baseline(ctx, req.BaselineID)
	if err != nil {
		return nil, badField("baseline_id", "no baseline %d", req.BaselineID)
	}
	if len(b.Problems) > 0 {
		return nil, badField("baseline_id", "baseline %q has %d problems: a baseline with problems is never deployed", b.Name, len(b.Problems))
	}
	d.Baseline = b
	for _, n := range d.Nodes {
		if slices.Contains(req.NodeIDs, n.ID) || (req.Tag != "" && slices.Contains(n.Tags, req.Tag)) {
			d.Chosen = append(d.Chosen, n)
		}
	}
	if len(d.Chosen) == 0 {
		return nil, badField("node_ids", "choose nodes or a tag")
	}
	return d, nil
}

func (s *Server) inventoryPage(w http.ResponseWriter, r *http.Request) {
	s.runForm(w, r, store.RunInventory, "inventory", "Inventory")
}

func (s *Server) inventoryPost(w http.ResponseWriter, r *http.Request) {
	s.runPost(w, r, store.RunInventory, "inventory", "Inventory")
}

func (s *Server) reviewPage(w http.ResponseWriter, r *http.Request) {
	s.runForm(w, r, store.RunReview, "review", "Review")
}

func (s *Server) reviewPost(w http.ResponseWriter, r *http.Request) {
	s.runPost(w, r, store.RunReview, "review", "Review")
}

func (s *Server) deployPage(w http.ResponseWriter, r *http.Request) {
	s.runForm(w, r, store.RunDeploy, "deploy", "Deploy")
}

func (s *Server) deployPost(w http.ResponseWriter, r *http.Request) {
	s.runPost(w, r, store.RunDeploy, "deploy", "Deploy")
}

// inventoryView is one node's latest inventory, for the inventory page.
type inventoryView struct {
	store.InventoryRecord
	NodeName string
}

func (s *Server) inventoryViews(ctx context.Context) ([]inventoryView, error) {
	recs, err := s.db.LatestInventories(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := s.db.Nodes(ctx, "")
	if err != nil {
		return nil, err
	}
	nameOf := map[string]string{}
	for _, n := range nodes {
		for _, t := range n.Targets {
			nameOf[t] = n.Name
		}
	}
	out := make([]inventoryView, 0, len(recs))
	for _, rec := range recs {
		if rec.Inv == nil {
			continue
		}
		out = append(out, inventoryView{InventoryRecord: rec, NodeName: nameOf[rec.Node]})
	}
	slices.SortStableFunc(out, func(a, b inventoryView) int {
		if c := strings.Compare(a.NodeName, b.NodeName); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	return out, nil
}

// Runs.

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) {
	kind := r.URL.Query().Get("kind")
	switch kind {
	case "", store.RunDeploy, store.RunReview, store.RunInventory:
	default:
		kind = ""
	}
	runs, err := s.db.Runs(r.Context(), kind, 500)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "runs", "Runs", map[string]any{"Runs": runs, "Kind": kind})
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.runView(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "run", "Run "+v.Run.ID, v)
}

func (s *Server) runCancelPost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.cancelRun(r.Context(), r, callerOf(r), id)
	if err != nil && !errors.Is(err, ErrNotRunning) {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/runs/"+id+"?done=run.cancel", http.StatusSeeOther)
}

// Audit, accounts, tokens.

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) {
	entries, err := s.auditLog(r.Context(), callerOf(r), 500)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "audit", "Audit log", entries)
}

type accountsData struct {
	Accounts []store.Account
	Form     accountInput
	Errors   formErrors
}

func (s *Server) accountsPage(w http.ResponseWriter, r *http.Request) {
	as, err := s.db.Accounts(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "accounts", "Accounts", &accountsData{Accounts: as, Form: accountInput{Role: store.RoleViewer}, Errors: formErrors{}})
}

func (s *Server) accountsPost(w http.ResponseWriter, r *http.Request) {
	in := accountInput{Name: r.PostFormValue("name"), Password: r.PostFormValue("password"), Role: r.PostFormValue("role")}
	_, err := s.addAccount(r.Context(), r, callerOf(r), in)
	if err == nil {
		http.Redirect(w, r, "/accounts?done=account.add", http.StatusSeeOther)
		return
	}
	code, msg := s.publicMessage(r, err)
	as, derr := s.db.Accounts(r.Context())
	if derr != nil {
		s.fail(w, r, derr)
		return
	}
	in.Password = ""
	d := &accountsData{Accounts: as, Form: in, Errors: formErrors{}}
	if fe, ok := formError(err); ok {
		d.Errors = fe
	} else {
		d.Errors["form"] = msg
	}
	s.render(w, r, code, "accounts", "Accounts", d)
}

type tokensData struct {
	Tokens []store.APIToken
	// New is the token just made, its secret shown this once.
	New    *store.APIToken
	Errors formErrors
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request) {
	s.renderTokens(w, r, http.StatusOK, nil, nil)
}

func (s *Server) renderTokens(w http.ResponseWriter, r *http.Request, code int, created *store.APIToken, errs formErrors) {
	ts, err := s.db.APITokens(r.Context(), callerOf(r).acct.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if errs == nil {
		errs = formErrors{}
	}
	s.render(w, r, code, "tokens", "API tokens", &tokensData{Tokens: ts, New: created, Errors: errs})
}

func (s *Server) tokensPost(w http.ResponseWriter, r *http.Request) {
	t, err := s.addToken(r.Context(), r, callerOf(r), r.PostFormValue("name"))
	if err != nil {
		code, msg := s.publicMessage(r, err)
		s.renderTokens(w, r, code, nil, formErrors{"name": msg})
		return
	}
	// Shown in the answer to the POST, never again: no redirect.
	s.renderTokens(w, r, http.StatusCreated, t, nil)
}

func (s *Server) tokenDeletePost(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = s.deleteToken(r.Context(), r, callerOf(r), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/tokens?done=token.delete", http.StatusSeeOther)
}

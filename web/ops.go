package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetup/fleetup/manager"
	"github.com/fleetup/fleetup/store"
	"github.com/fleetup/fleetup/target"
)

// The operations below are shared by the pages and the API: they
// validate, change the store and write the audit log.

// credentialInput is a user and password entered for a node or on the
// credentials page. The password only ever goes to store.PutCredential.
type credentialInput struct {
	Name     string `json:"name,omitempty"`
	User     string `json:"user"`
	Password string `json:"password"`
}

// nodeInput is a node to register.
type nodeInput struct {
	Name            string           `json:"name"`
	Targets         []string         `json:"targets"`
	CredentialID    int64            `json:"credential_id,omitempty"`
	BMCCredentialID int64            `json:"bmc_credential_id,omitempty"`
	Credential      *credentialInput `json:"credential,omitempty"`
	BMCCredential   *credentialInput `json:"bmc_credential,omitempty"`
	Tags            []string         `json:"tags,omitempty"`
}

// parseTargets validates a server's addresses: each as target.Parse reads
// it, together as a line of a nodes file (one of each kind at most).
func parseTargets(field string, addrs []string) ([]target.Target, error) {
	var ts []target.Target
	for i, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		t, err := target.Parse(a)
		if err != nil {
			return nil, badField(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return nil, badField(field, "at least one address is required")
	}
	if len(ts) > 1 {
		line := make([]string, len(ts))
		for i, t := range ts {
			line[i] = t.String()
		}
		if _, err := target.ParseList(strings.NewReader(strings.Join(line, " ")), "addresses"); err != nil {
			return nil, badField(field, "%v", strings.ReplaceAll(err.Error(), "addresses:1: ", ""))
		}
	}
	return ts, nil
}

func cleanTags(tags []string) ([]string, error) {
	var out []string
	for _, t := range tags {
		for _, f := range strings.FieldsFunc(t, func(r rune) bool { return r == ',' || r == ' ' }) {
			if len(f) > 64 || strings.ContainsAny(f, "<>\"'&") {
				return nil, badField("tags", "tag %q: at most 64 characters, no quotes or angle brackets", f)
			}
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

func checkName(field, name string) error {
	switch {
	case name == "":
		return badField(field, "is required")
	case len(name) > 128:
		return badField(field, "at most 128 characters")
	case strings.ContainsAny(name, "\r\n\t"):
		return badField(field, "no control characters")
	}
	return nil
}

// putCredential stores a new credential. A name that exists is refused
// (ErrExists) unless replace is set: then the credential of that name gets
// the new user and password, and the nodes that use it go on with them.
// Without a name, def is the name, made unique with a number.
func (s *Server) putCredential(ctx context.Context, r *http.Request, c *caller, field string, in credentialInput, def string, replace bool) (*store.Credential, error) {
	name := strings.TrimSpace(in.Name)
	prefix := field + "."
	if field == "" {
		prefix = ""
	}
	user := strings.TrimSpace(in.User)
	if user == "" {
		return nil, badField(prefix+"user", "is required")
	}
	if len(user) > 128 || strings.ContainsAny(user, " \t\r\n@:/") {
		return nil, badField(prefix+"user", "a user name, without spaces, '@', ':' or '/'")
	}
	if in.Password == "" {
		return nil, badField(prefix+"password", "is required")
	}
	if len(in.Password) > 4096 {
		return nil, badField(prefix+"password", "at most 4096 bytes")
	}
	creds, err := s.db.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	taken := func(n string) bool {
		return slices.ContainsFunc(creds, func(cr store.Credential) bool { return cr.Name == n })
	}
	switch {
	case name == "" && def != "":
		name = def
		for i := 2; taken(name); i++ {
			name = fmt.Sprintf("%s %d", def, i)
		}
	case !replace && taken(name):
		return nil, fmt.Errorf("credential %q: %w", name, store.ErrExists)
	}
	if err := checkName(prefix+"name", name); err != nil {
		return nil, err
	}
	secret := []byte(in.Password)
	cred, err := s.db.PutCredential(ctx, name, user, secret)
	clear(secret)
	if err != nil {
		return nil, err
	}
	action := "credential.add"
	if taken(name) {
		action = "credential.replace"
	}
	s.audit(r, c, action, cred.Name, "user "+cred.User)
	return cred, nil
}

func (s *Server) credentialExists(ctx context.Context, id int64) (bool, error) {
	creds, err := s.db.Credentials(ctx)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(creds, func(c store.Credential) bool { return c.ID == id }), nil
}

// addNode validates and registers a node, storing the credentials typed
// in for it.
func (s *Server) addNode(ctx context.Context, r *http.Request, c *caller, in nodeInput) (*store.Node, error) {
	ts, err := parseTargets("targets", in.Targets)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = ts[0].Host
	}
	if err := checkName("name", name); err != nil {
		return nil, err
	}
	tags, err := cleanTags(in.Tags)
	if err != nil {
		return nil, err
	}
	n := store.Node{Name: name, CredentialID: in.CredentialID, BMCCredentialID: in.BMCCredentialID, Tags: tags}
	for _, t := range ts {
		n.Targets = append(n.Targets, t.String())
	}
	for _, ref := range []struct {
		field string
		id    int64
	}{{"credential_id", in.CredentialID}, {"bmc_credential_id", in.BMCCredentialID}} {
		if ref.id == 0 {
			continue
		}
		ok, err := s.credentialExists(ctx, ref.id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, badField(ref.field, "no credential %d", ref.id)
		}
	}
	// Validate the typed-in credentials before storing either.
	typed := func(ci *credentialInput) bool { return ci != nil && (ci.User != "" || ci.Password != "") }
	if typed(in.Credential) && in.CredentialID != 0 {
		return nil, badField("credential", "pick a stored credential or enter a user and password, not both")
	}
	if typed(in.BMCCredential) && in.BMCCredentialID != 0 {
		return nil, badField("bmc_credential", "pick a stored credential or enter a user and password, not both")
	}
	if typed(in.Credential) {
		cred, err := s.putCredential(ctx, r, c, "credential", *in.Credential, name+" (ssh)", false)
		if err != nil {
			return nil, err
		}
		n.CredentialID = cred.ID
	}
	if typed(in.BMCCredential) {
		cred, err := s.putCredential(ctx, r, c, "bmc_credential", *in.BMCCredential, name+" (bmc)", false)
		if err != nil {
			return nil, err
		}
		n.BMCCredentialID = cred.ID
	}
	node, err := s.db.AddNode(ctx, n)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("node %q: a node with this name or address exists: %w", name, store.ErrExists)
		}
		return nil, err
	}
	s.audit(r, c, "node.add", node.Name, strings.Join(node.Targets, " "))
	return node, nil
}

// importInput is a nodes file or an HP SUM input file to import.
type importInput struct {
	// Format is "nodes" (a nodes file) or "hpsum" (an HP SUM input file);
	// "" guesses from the content ("[TARGETS]" makes it an input file).
	Format  string   `json:"format,omitempty"`
	Name    string   `json:"name,omitempty"` // the file's name, for messages
	Content string   `json:"content"`
	Tags    []string `json:"tags,omitempty"`
}

// importResult says what an import did.
type importResult struct {
	Added       []store.Node       `json:"added"`
	Credentials []store.Credential `json:"credentials,omitempty"`
	Skipped     []string           `json:"skipped,omitempty"`
	Warnings    []string           `json:"warnings,omitempty"`
}

// importNodes registers every server of a nodes file or an HP SUM input
// file: a line of several targets (a HOST= of several) is one node. The
// PWD= of an input file's section becomes a stored credential for its
// nodes. A node that exists already is skipped, named in Skipped.
func (s *Server) importNodes(ctx context.Context, r *http.Request, c *caller, in importInput) (*importResult, error) {
	name := filepath.Base(strings.TrimSpace(in.Name))
	if name == "" || name == "." || name == "/" {
		name = "import"
	}
	if strings.TrimSpace(in.Content) == "" {
		return nil, badField("content", "is empty")
	}
	tags, err := cleanTags(in.Tags)
	if err != nil {
		return nil, err
	}
	format := in.Format
	if format == "" {
		format = "nodes"
		if strings.Contains(strings.ToUpper(in.Content), "[TARGETS]") {
			format = "hpsum"
		}
	}
	type group struct {
		targets []target.Target
		user    string
		secret  target.Secret
		line    int
	}
	var groups []group
	res := &importResult{Added: []store.Node{}}
	switch format {
	case "nodes":
		ts, err := target.ParseList(strings.NewReader(in.Content), name)
		if err != nil {
			return nil, badField("content", "%v", err)
		}
		groups = append(groups, group{targets: ts})
	case "hpsum":
		f, err := target.ParseHPSUMInput(strings.NewReader(in.Content), name)
		if err != nil {
			return nil, badField("content", "%v", err)
		}
		res.Warnings = f.Warnings
		for _, g := range f.Groups {
			groups = append(groups, group{targets: g.Targets, user: g.User, secret: g.Password, line: g.Line})
		}
	default:
		return nil, badField("format", "want nodes or hpsum, not %q", in.Format)
	}
	for _, g := range groups {
		var credID int64
		if g.secret != nil {
			pw := string(g.secret)
			g.secret.Zero()
			cred, err := s.putCredential(ctx, r, c, "content", credentialInput{User: g.user, Password: pw},
				fmt.Sprintf("%s line %d", name, g.line), false)
			if err != nil {
				return nil, err
			}
			res.Credentials = append(res.Credentials, *cred)
			credID = cred.ID
		}
		// One node per server: targets with the same Server go together.
		var servers [][]target.Target
		index := map[string]int{}
		for _, t := range g.targets {
			if t.User == "" && g.user != "" {
				t.User = g.user
			}
			if t.Server == "" {
				servers = append(servers, []target.Target{t})
				continue
			}
			i, ok := index[t.Server]
			if !ok {
				i = len(servers)
				index[t.Server] = i
				servers = append(servers, nil)
			}
			servers[i] = append(servers[i], t)
		}
		for _, ts := range servers {
			n := store.Node{Name: ts[0].Host, Tags: tags}
			for _, t := range ts {
				n.Targets = append(n.Targets, t.String())
				if credID != 0 {
					if t.Kind == target.KindBMC {
						n.BMCCredentialID = credID
					} else {
						n.CredentialID = credID
					}
				}
			}
			node, err := s.db.AddNode(ctx, n)
			if errors.Is(err, store.ErrExists) {
				res.Skipped = append(res.Skipped, n.Name+": a node with this name or address exists")
				continue
			}
			if err != nil {
				return nil, err
			}
			res.Added = append(res.Added, *node)
		}
	}
	s.audit(r, c, "node.import", name, fmt.Sprintf("%s: %d added, %d skipped", format, len(res.Added), len(res.Skipped)))
	return res, nil
}

func (s *Server) deleteNode(ctx context.Context, r *http.Request, c *caller, id int64) error {
	n, err := s.db.Node(ctx, id)
	if err != nil {
		return err
	}
	if err := s.db.DeleteNode(ctx, id); err != nil {
		return err
	}
	s.audit(r, c, "node.delete", n.Name, strings.Join(n.Targets, " "))
	return nil
}

func (s *Server) deleteCredential(ctx context.Context, r *http.Request, c *caller, id int64) error {
	creds, err := s.db.Credentials(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(creds, func(cr store.Credential) bool { return cr.ID == id })
	if i < 0 {
		return fmt.Errorf("credential %d: %w", id, store.ErrNotFound)
	}
	nodes, err := s.db.Nodes(ctx, "")
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.CredentialID == id || n.BMCCredentialID == id {
			return fmt.Errorf("credential %q is used by node %q: %w", creds[i].Name, n.Name, store.ErrInUse)
		}
	}
	if err := s.db.DeleteCredential(ctx, id); err != nil {
		return err
	}
	s.audit(r, c, "credential.delete", creds[i].Name, "")
	return nil
}

// baselineInput is a baseline directory to register.
type baselineInput struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
}

func (s *Server) addBaseline(ctx context.Context, r *http.Request, c *caller, in baselineInput) (*store.Baseline, error) {
	dir := strings.TrimSpace(in.Dir)
	if dir == "" {
		return nil, badField("dir", "is required")
	}
	if !filepath.IsAbs(dir) {
		return nil, badField("dir", "must be an absolute path on the manager")
	}
	dir = filepath.Clean(dir)
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = filepath.Base(dir)
	}
	if err := checkName("name", name); err != nil {
		return nil, err
	}
	comps, problems, err := s.runner.CheckBaseline(ctx, dir)
	if err != nil {
		return nil, badField("dir", "%v", err)
	}
	b, err := s.db.AddBaseline(ctx, name, dir)
	if err != nil {
		return nil, err
	}
	if err := s.db.SetBaselineCheck(ctx, b.ID, comps, problems, s.now()); err != nil {
		return nil, err
	}
	s.audit(r, c, "baseline.add", b.Name, fmt.Sprintf("%s: %d components, %d problems", dir, len(comps), len(problems)))
	return s.db.Baseline(ctx, b.ID)
}

func (s *Server) checkBaseline(ctx context.Context, r *http.Request, c *caller, id int64) (*store.Baseline, error) {
	b, err := s.db.Baseline(ctx, id)
	if err != nil {
		return nil, err
	}
	comps, problems, err := s.runner.CheckBaseline(ctx, b.Dir)
	if err != nil {
		problems = []store.Problem{{File: b.Dir, Reason: err.Error()}}
		comps = nil
	}
	if err := s.db.SetBaselineCheck(ctx, id, comps, problems, s.now()); err != nil {
		return nil, err
	}
	s.audit(r, c, "baseline.check", b.Name, fmt.Sprintf("%d components, %d problems", len(comps), len(problems)))
	return s.db.Baseline(ctx, id)
}

func (s *Server) deleteBaseline(ctx context.Context, r *http.Request, c *caller, id int64) error {
	b, err := s.db.Baseline(ctx, id)
	if err != nil {
		return err
	}
	if err := s.db.DeleteBaseline(ctx, id); err != nil {
		return err
	}
	s.audit(r, c, "baseline.delete", b.Name, b.Dir)
	return nil
}

// startRun validates a run request and hands it to the Runner.
func (s *Server) startRun(ctx context.Context, r *http.Request, c *caller, req manager.RunRequest) (string, error) {
	switch req.Kind {
	case store.RunDeploy, store.RunReview, store.RunInventory:
	default:
		return "", badField("kind", "want deploy, review or inventory, not %q", req.Kind)
	}
	if req.Kind != store.RunInventory {
		if req.BaselineID == 0 {
			return "", badField("baseline_id", "is required for a %s", req.Kind)
		}
		b, err := s.db.Baseline(ctx, req.BaselineID)
		if errors.Is(err, store.ErrNotFound) {
			return "", badField("baseline_id", "no baseline %d", req.BaselineID)
		}
		if err != nil {
			return "", err
		}
		if len(b.Problems) > 0 {
			return "", badField("baseline_id", "baseline %q has %d problems: a baseline with problems is never deployed", b.Name, len(b.Problems))
		}
	}
	if len(req.NodeIDs) == 0 && req.Tag == "" {
		return "", badField("node_ids", "choose nodes or a tag")
	}
	for i, id := range req.NodeIDs {
		if _, err := s.db.Node(ctx, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return "", badField(fmt.Sprintf("node_ids[%d]", i), "no node %d", id)
			}
			return "", err
		}
	}
	if req.Tag != "" {
		ns, err := s.db.Nodes(ctx, req.Tag)
		if err != nil {
			return "", err
		}
		if len(ns) == 0 && len(req.NodeIDs) == 0 {
			return "", badField("tag", "no node has the tag %q", req.Tag)
		}
	}
	switch req.OnFailedDependency {
	case "", "omit-host", "omit-component", "force":
	default:
		return "", badField("on_failed_dependency", "want omit-host, omit-component or force")
	}
	if req.Parallel < 0 || req.Parallel > 1024 {
		return "", badField("parallel", "want 0 to 1024")
	}
	if req.Canary < 0 {
		return "", badField("canary", "must not be negative")
	}
	if m := strings.TrimSpace(req.MaxFailures); m != "" {
		v, pct := strings.CutSuffix(m, "%")
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || (pct && n > 100) {
			return "", badField("max_failures", "want a count (3) or a percentage (10%%)")
		}
	}
	if req.RebootDelay < 0 || req.HealthTimeout < 0 {
		return "", badField("reboot_delay_ns", "durations must not be negative")
	}
	if len(req.RebootMessage) > 1024 || len(req.HealthCommand) > 4096 {
		return "", badField("reboot_message", "too long")
	}
	req.Account = c.acct.Name
	req.Source = store.SourceUI
	if c.viaToken() {
		req.Source = store.SourceAPI
	}
	id, err := s.runner.Start(ctx, req)
	if err != nil {
		// What Start refuses about the request (a node or baseline gone,
		// options it cannot honour) is a *manager.RequestError, shown as
		// it is; anything else is the manager's own failure, logged and
		// not shown.
		return "", err
	}
	detail := fmt.Sprintf("kind %s, baseline %d, nodes %v", req.Kind, req.BaselineID, req.NodeIDs)
	if req.Tag != "" {
		detail += ", tag " + req.Tag
	}
	s.audit(r, c, "run.start", id, detail)
	return id, nil
}

func (s *Server) cancelRun(ctx context.Context, r *http.Request, c *caller, id string) error {
	if _, err := s.db.Run(ctx, id); err != nil {
		return err
	}
	if err := s.runner.Cancel(id); err != nil {
		return err
	}
	s.audit(r, c, "run.cancel", id, "")
	return nil
}

// accountInput is an account to create.
type accountInput struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (s *Server) addAccount(ctx context.Context, r *http.Request, c *caller, in accountInput) (*store.Account, error) {
	name := strings.TrimSpace(in.Name)
	if msg := checkAccountInput(name, in.Password, ""); msg != "" {
		field := "password"
		if strings.HasPrefix(msg, "Name") {
			field = "name"
		}
		return nil, badField(field, "%s", msg)
	}
	switch in.Role {
	case store.RoleAdmin, store.RoleOperator, store.RoleViewer:
	default:
		return nil, badField("role", "want admin, operator or viewer")
	}
	a, err := s.db.CreateAccount(ctx, name, []byte(in.Password), in.Role)
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("account %q exists: %w", name, store.ErrExists)
		}
		return nil, err
	}
	s.audit(r, c, "account.add", a.Name, "role "+a.Role)
	return a, nil
}

func (s *Server) addToken(ctx context.Context, r *http.Request, c *caller, name string) (*store.APIToken, error) {
	name = strings.TrimSpace(name)
	if err := checkName("name", name); err != nil {
		return nil, err
	}
	t, err := s.db.NewAPIToken(ctx, c.acct.ID, name)
	if err != nil {
		return nil, err
	}
	s.audit(r, c, "token.add", t.Name, "")
	return t, nil
}

func (s *Server) deleteToken(ctx context.Context, r *http.Request, c *caller, id int64) error {
	if err := s.db.DeleteAPIToken(ctx, c.acct.ID, id); err != nil {
		return err
	}
	s.audit(r, c, "token.delete", strconv.FormatInt(id, 10), "")
	return nil
}

// auditLog is what the caller may read of the audit log: everyone's for an
// administrator, their own for anyone else.
func (s *Server) auditLog(ctx context.Context, c *caller, limit int) ([]store.AuditEntry, error) {
	var id int64
	if c.acct.Role != store.RoleAdmin {
		id = c.acct.ID
	}
	return s.db.AuditLog(ctx, id, limit)
}

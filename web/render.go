package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/store"
)

// page is what every page template gets.
type page struct {
	Title string
	// Nav is the page's entry in the nav bar.
	Nav  string
	Me   *store.Account
	CSRF string
	// Notice is a one-line message after a change (from ?done=).
	Notice string
	Data   any
}

// IsAdmin and CanOperate drive what the pages offer.
func (p *page) IsAdmin() bool { return p.Me != nil && p.Me.Role == store.RoleAdmin }
func (p *page) CanOperate() bool {
	return p.Me != nil && (p.Me.Role == store.RoleAdmin || p.Me.Role == store.RoleOperator)
}

// notices are the messages a redirect after a change may show (?done=):
// fixed texts, so that a link cannot make the page say anything else.
var notices = map[string]string{
	"node.add":          "Node added.",
	"node.delete":       "Node deleted.",
	"credential.add":    "Credential stored.",
	"credential.delete": "Credential deleted.",
	"baseline.check":    "Baseline checked again.",
	"baseline.delete":   "Baseline deleted.",
	"account.add":       "Account created.",
	"token.delete":      "Token deleted.",
	"run.cancel":        "Cancel requested: the nodes are cleaning up.",
}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"isotime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"duration": func(d time.Duration) string {
		if d <= 0 {
			return "—"
		}
		return d.Round(time.Second).String()
	},
	"runDuration": func(r store.Run) string {
		if r.Ended.IsZero() || r.Started.IsZero() {
			return "—"
		}
		return r.Ended.Sub(r.Started).Round(time.Second).String()
	},
	"bytes":  humanBytes,
	"join":   strings.Join,
	"action": actionLabel,
	"stateClass": func(s any) string {
		return "st-" + strings.ReplaceAll(fmt.Sprint(s), " ", "-")
	},
	"has": func(list []int64, v int64) bool { return slices.Contains(list, v) },
	"hasString": func(list []string, v string) bool {
		return slices.Contains(list, v)
	},
	"itoa": itoa,
	"counts": func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%d %s", m[k], k)
		}
		return strings.Join(parts, ", ")
	},
	"kindOf": func(addr string) string {
		switch a := strings.ToLower(addr); {
		case strings.HasPrefix(a, "bmc://"):
			return "bmc"
		case strings.HasPrefix(a, "windows://"):
			return "windows"
		}
		return "ssh"
	},
	"percent": func(n, total int64) int64 {
		if total <= 0 {
			return 0
		}
		return n * 100 / total
	},
}

// actionLabel is how the review page names what a deploy would do.
func actionLabel(c fleetup.ComponentResult) string {
	switch c.Action {
	case fleetup.ActionUpdate:
		if c.Installed == "" {
			return "install"
		}
		return "upgrade"
	case fleetup.ActionDowngrade:
		return "downgrade"
	case fleetup.ActionNeedDowngrade:
		return "downgrade (needs the downgrade option)"
	case fleetup.ActionUpToDate:
		return "up to date"
	case fleetup.ActionNotApplicable:
		return "not applicable"
	case fleetup.ActionRewrite:
		return "rewrite"
	}
	return string(c.Action)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// parsePages parses every page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// render writes a page. data is the page's own part (page.Data).
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name, title string, data any) {
	t := s.pages[name]
	if t == nil {
		s.serverError(w, r, fmt.Errorf("no template %q", name))
		return
	}
	p := &page{Title: title, Nav: name, Data: data}
	if c := callerOf(r); c != nil {
		p.Me = c.acct
		p.CSRF = c.csrf()
	}
	p.Notice = notices[r.URL.Query().Get("done")]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	if isAPI(r) {
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// fail answers a request whose operation failed: JSON for the API, an
// error page else.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := s.publicMessage(r, err)
	if isAPI(r) {
		writeError(w, code, msg)
		return
	}
	s.render(w, r, code, "error", http.StatusText(code), map[string]any{"Code": code, "Message": msg})
}

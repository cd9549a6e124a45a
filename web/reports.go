package web

import (
	"bytes"
	"mime"
	"net/http"

	"github.com/fleetup/fleetup/report"
)

// report writes a run's report: ?kind= (deploy, inventory, firmware,
// failed-dependencies; default deploy) and ?format= (html, json, csv;
// default html). HTML opens in the browser unless ?download=1; JSON and
// CSV are attachments.
func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, format := q.Get("kind"), q.Get("format")
	if kind == "" {
		kind = string(report.KindDeploy)
	}
	if format == "" {
		format = string(report.FormatHTML)
	}
	k, err := report.ParseKind(kind)
	if err != nil {
		s.fail(w, r, badField("kind", "%v", err))
		return
	}
	f, err := report.ParseFormat(format)
	if err != nil {
		s.fail(w, r, badField("format", "%v", err))
		return
	}
	d, err := s.db.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var buf bytes.Buffer
	if err := report.Write(&buf, d, k, f); err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", report.ContentType(f))
	disp := "attachment"
	if f == report.FormatHTML && q.Get("download") == "" {
		disp = "inline"
		// The report carries its own inline CSS: let it, and nothing else.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": report.FileName(d.ID, k, f)}))
	w.Write(buf.Bytes())
}

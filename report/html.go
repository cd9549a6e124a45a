package report

import (
	_ "embed"
	"html/template"
	"io"
	"slices"
	"time"
)

// reportHTML is the template of every HTML report: one file, its CSS
// inline, no script, nothing fetched from anywhere.
//
//go:embed report.html.tmpl
var reportHTML string

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":   func(ns int64) string { return time.Duration(ns).Round(time.Millisecond).String() },
	"when":  when,
	"title": title,
	"orDash": func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	},
	"yesNo": boolCell,
}).Parse(reportHTML))

// page is what the template renders: the header, and the one report of
// its kind.
type page struct {
	Title     string
	H         Header
	Deploy    *DeployReport
	Inventory *InventoryReport
	Firmware  *FirmwareReport
	Deps      *DependencyReport
	// Totals are a deploy report's totals in stateOrder, states with no
	// node left out.
	Totals []total
}

type total struct {
	State string
	N     int
}

func writeHTML(w io.Writer, rep any) error {
	p := page{}
	switch r := rep.(type) {
	case *DeployReport:
		p.H, p.Deploy = r.Header, r
		p.Totals = totals(r.Totals)
	case *InventoryReport:
		p.H, p.Inventory = r.Header, r
	case *FirmwareReport:
		p.H, p.Firmware = r.Header, r
	case *DependencyReport:
		p.H, p.Deps = r.Header, r
	}
	p.Title = title(p.H.Report) + " report — run " + p.H.RunID
	return htmlTemplate.Execute(w, p)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func title(k Kind) string {
	switch k {
	case KindDeploy:
		return "Deploy"
	case KindInventory:
		return "Inventory"
	case KindFirmware:
		return "Firmware"
	case KindFailedDependencies:
		return "Failed dependencies"
	}
	return string(k)
}

// totals orders a deploy report's totals: the end states first, in
// stateOrder, then any other state by name.
func totals(m map[string]int) []total {
	var out []total
	seen := map[string]bool{}
	for _, s := range stateOrder {
		if n := m[string(s)]; n > 0 {
			out = append(out, total{string(s), n})
		}
		seen[string(s)] = true
	}
	var rest []string
	for s := range m {
		if !seen[s] && m[s] > 0 {
			rest = append(rest, s)
		}
	}
	slices.Sort(rest)
	for _, s := range rest {
		out = append(out, total{s, m[s]})
	}
	return out
}

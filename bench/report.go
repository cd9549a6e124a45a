package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// sample is one figure measured once per round.
type sample []float64

func (s sample) sorted() []float64 {
	c := slices.Clone([]float64(s))
	slices.Sort(c)
	return c
}

// median is the middle value (the mean of the two middle ones), NaN when
// empty.
func (s sample) median() float64 {
	c := s.sorted()
	switch n := len(c); {
	case n == 0:
		return math.NaN()
	case n%2 == 1:
		return c[n/2]
	default:
		return (c[n/2-1] + c[n/2]) / 2
	}
}

// ratios divides s by peer round by round (rounds where either is missing
// are skipped).
func (s sample) ratios(peer sample) sample {
	var out sample
	for i := range min(len(s), len(peer)) {
		if peer[i] > 0 && !math.IsNaN(s[i]) && !math.IsNaN(peer[i]) {
			out = append(out, s[i]/peer[i])
		}
	}
	return out
}

// format prints the median and, for several rounds, the spread:
// "4.12 s (3.90–4.51)".
func (s sample) format(unit func(float64) string) string {
	if len(s) == 0 {
		return "—"
	}
	c := s.sorted()
	m := unit(s.median())
	if len(c) == 1 || c[0] == c[len(c)-1] {
		return m
	}
	return fmt.Sprintf("%s (%s–%s)", m, unit(c[0]), unit(c[len(c)-1]))
}

func seconds(v float64) string {
	switch {
	case v < 0.01:
		return fmt.Sprintf("%.1f ms", v*1000)
	case v < 1:
		return fmt.Sprintf("%.0f ms", v*1000)
	case v < 10:
		return fmt.Sprintf("%.2f s", v)
	default:
		return fmt.Sprintf("%.1f s", v)
	}
}

func times(v float64) string { return fmt.Sprintf("%.2f×", v) }

func gbps(v float64) string { return fmt.Sprintf("%.2f GB/s", v/1e9) }

func mib(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }

func kib(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }

func durs(ds []time.Duration) sample {
	out := make(sample, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// row is one line of the results table.
type row struct {
	Section string
	Measure string
	Fleetup string
	Peer    string
	Ratio   string
	Goal    string
	Met     string
}

// goal says whether v meets "≤ limit" (or "≥ limit" with atLeast).
func goal(v, limit float64, atLeast bool) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case atLeast && v >= limit, !atLeast && v <= limit:
		return "yes"
	default:
		return "**no**"
	}
}

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

// table renders the rows as a Markdown table with the notes and problems
// below it.
func (b *bench) table() string {
	var t strings.Builder
	t.WriteString("| # | Measure | fleetup | Peer (same run) | fleetup ÷ peer | Goal | Goal met? |\n")
	t.WriteString("|---|---|---|---|---|---|---|\n")
	rows := slices.Clone(b.rows)
	slices.SortStableFunc(rows, func(a, b row) int { return strings.Compare(a.Section, b.Section) })
	for _, r := range rows {
		cells := []string{r.Section, r.Measure, r.Fleetup, r.Peer, r.Ratio, r.Goal, r.Met}
		for i, c := range cells {
			if c == "" {
				cells[i] = "—"
			}
			cells[i] = strings.ReplaceAll(cells[i], "|", "\\|")
		}
		t.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	if len(b.notes) > 0 {
		t.WriteString("\n")
		for _, n := range b.notes {
			t.WriteString("- " + n + "\n")
		}
	}
	if len(b.problems) > 0 {
		t.WriteString("\nProblems during the run:\n\n")
		for _, p := range b.problems {
			t.WriteString("- " + p + "\n")
		}
	}
	return t.String()
}

// writeResults writes the Markdown results file: date, machine, how to
// reproduce, the table.
func (b *bench) writeResults(path, tbl string) error {
	var s strings.Builder
	s.WriteString("# fleetup benchmark results\n\n")
	fmt.Fprintf(&s, "- Date: %s\n", b.start.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&s, "- Machine: %s\n", machine())
	fmt.Fprintf(&s, "- Command: `%s` (as root, from the repository root; took %s)\n", b.command(), time.Since(b.start).Round(time.Second))
	fmt.Fprintf(&s, "- Rounds: %d; every figure is the median of the rounds with the spread (min–max) in brackets; ratios are taken round by round, contenders alternate within a round.\n", b.cfg.Rounds)
	fmt.Fprintf(&s, "- Load average (1 min) at start %s, at end %s: the machine is shared, so figures from one run are only comparable with the peer measured in the same run.\n", b.loadStart, loadAvg())
	s.WriteString("\n")
	s.WriteString(tbl)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(path, []byte(s.String()), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func (b *bench) command() string {
	args := []string{"go", "run", "./bench"}
	for _, a := range os.Args[1:] {
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

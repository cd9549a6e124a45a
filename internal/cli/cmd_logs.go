package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/report"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/store"
)

type logsOptions struct {
	Run      string // a run id, or "latest"
	Output   string // "": fleetup-logs-RUN.tar.gz in the current directory
	StateDir string
	// runDir is where this machine's firewall state lives
	// (runstate.DefaultRunDir when empty); tests set it.
	runDir string
}

const logsUsage = "usage: fleetup logs RUN|latest [--output FILE] [--state-dir DIR]"

// runLogs is HP SUM's log gathering: everything fleetup knows of one run
// in one .tar.gz, to attach to a ticket.
func runLogs(ctx context.Context, env *Env, args []string) error {
	var opts logsOptions
	fs := newFlags("logs", env)
	fs.StringVar(&opts.Output, "output", "", "the archive to write (default fleetup-logs-RUN.tar.gz in the current directory)")
	fs.StringVar(&opts.StateDir, "state-dir", "", "the state directory holding the run store, the run history and the journal (default "+runstate.DefaultDir()+")")
	run, err := parseRunArg(fs, args)
	if err != nil {
		return err
	}
	if run == "" {
		return usagef("which run? %s", logsUsage)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q\n%s", fs.Arg(0), logsUsage)
	}
	opts.Run = run
	return gatherLogs(ctx, env, opts)
}

// eventPage is how many events are read from the store at once.
const eventPage = 1000

func gatherLogs(ctx context.Context, env *Env, opts logsOptions) error {
	if opts.StateDir == "" {
		opts.StateDir = runstate.DefaultDir()
	}
	db, err := openRunStore(opts.StateDir)
	if err != nil {
		return err
	}
	defer db.Close()
	run, err := loadRun(ctx, db, opts.Run)
	if err != nil {
		return err
	}
	var events []store.EventRecord
	for after := int64(0); ; {
		page, err := db.Events(ctx, run.ID, after, eventPage)
		if err != nil {
			return fmt.Errorf("read the events of run %s: %w", run.ID, err)
		}
		events = append(events, page...)
		if len(page) < eventPage {
			break
		}
		after = page[len(page)-1].Seq
	}
	out := opts.Output
	if out == "" {
		out = "fleetup-logs-" + safeName(run.ID) + ".tar.gz"
	}
	// The archive holds what the journal and the history hold, which are
	// mode 0600: so is the archive.
	if err := writeFileAtomic(out, 0o600, func(w io.Writer) error {
		return writeLogs(w, run, events, opts)
	}); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, out)
	return nil
}

// writeLogs writes the archive of run to w: run.json, events.log,
// nodes/NODE.log, report.html, and the run's files of the state
// directory when they exist (history/RUN.json, journal/RUN.json,
// localfw/RUN.json). Every member name is fixed or made safe here; the
// FTP credentials file of a run is never included.
func writeLogs(w io.Writer, run *store.RunDetail, events []store.EventRecord, opts logsOptions) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	mtime := time.Now()
	add := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	b, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	if err := add("run.json", append(b, '\n')); err != nil {
		return err
	}
	var all bytes.Buffer
	perNode := map[string]*bytes.Buffer{}
	for _, n := range run.Nodes {
		perNode[n.Node] = &bytes.Buffer{}
	}
	for _, e := range events {
		line := eventLine(e.Event)
		all.WriteString(line)
		if e.Event.Node == "" {
			continue
		}
		if perNode[e.Event.Node] == nil {
			perNode[e.Event.Node] = &bytes.Buffer{}
		}
		perNode[e.Event.Node].WriteString(line)
	}
	if err := add("events.log", all.Bytes()); err != nil {
		return err
	}
	nodes := make([]string, 0, len(perNode))
	for n := range perNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	used := map[string]bool{}
	for _, n := range nodes {
		name := safeName(n)
		for i := 2; used[name]; i++ {
			name = safeName(n) + "-" + strconv.Itoa(i)
		}
		used[name] = true
		if err := add("nodes/"+name+".log", perNode[n].Bytes()); err != nil {
			return err
		}
	}
	var rep bytes.Buffer
	if err := report.Write(&rep, run, report.KindDeploy, report.FormatHTML); err != nil {
		return err
	}
	if err := add("report.html", rep.Bytes()); err != nil {
		return err
	}
	// The state directory's files are named by the run id: only an id
	// that is a plain file name is looked up there.
	if runstate.ValidRunID(run.ID) == nil {
		files := []struct{ member, path string }{
			{"history/" + run.ID + ".json", filepath.Join(opts.StateDir, runstate.HistoryDir, run.ID+".json")},
			{"journal/" + run.ID + ".json", filepath.Join(opts.StateDir, run.ID+".json")},
			{"localfw/" + run.ID + ".json", filepath.Join(runstate.FirewallDir(opts.runDir), run.ID+".json")},
		}
		for _, f := range files {
			data, err := os.ReadFile(f.path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				// Said in the archive rather than failing it: the rest is
				// worth having.
				data = []byte(fmt.Sprintf("fleetup logs: %v\n", err))
				f.member += ".error"
			}
			if err := add(f.member, data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// eventLine is one event as a line of text, its fields separated by tabs:
// time, node ("manager" for the run's own), state, component, phase,
// bytes ("N" or "N/TOTAL"), message; "-" for an empty field. Tabs, line
// breaks and other control characters in a field are escaped, so that an
// event is always one line.
func eventLine(e fleetup.Event) string {
	node := e.Node
	if node == "" {
		node = "manager"
	}
	bytes := ""
	switch {
	case e.Total > 0:
		bytes = strconv.FormatInt(e.Bytes, 10) + "/" + strconv.FormatInt(e.Total, 10)
	case e.Bytes > 0:
		bytes = strconv.FormatInt(e.Bytes, 10)
	}
	fields := []string{e.Time.UTC().Format(time.RFC3339Nano), node, string(e.State), e.Component, string(e.Phase), bytes, e.Message}
	for i, f := range fields {
		fields[i] = logField(f)
	}
	return strings.Join(fields, "\t") + "\n"
}

func logField(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// safeName makes s a plain file name: letters, digits, '.', '_', '-' and
// '@' kept, everything else (path separators, colons of IPv6 addresses,
// brackets, control characters) '_'; no "..", no leading dot, at most 100
// bytes; "node" when nothing is left.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '@'):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	for strings.Contains(name, "..") {
		name = strings.ReplaceAll(name, "..", "_")
	}
	name = strings.TrimLeft(name, ".")
	if len(name) > 100 {
		name = name[:100]
	}
	if name == "" {
		return "node"
	}
	return name
}

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetup/fleetup/report"
	"github.com/fleetup/fleetup/runstate"
	"github.com/fleetup/fleetup/store"
)

func init() {
	// Reports name the version this program was linked as, when it was.
	if Version != "dev" {
		report.Version = Version
	}
}

type reportOptions struct {
	Run      string // a run id, or "latest"
	Kind     report.Kind
	Format   report.Format
	Output   string // "": standard output
	StateDir string
}

const reportUsage = "usage: fleetup report [RUN|latest] [--kind deploy|inventory|firmware|failed-dependencies] [--format html|json|csv] [--output FILE] [--state-dir DIR]"

func runReport(ctx context.Context, env *Env, args []string) error {
	opts := reportOptions{Run: "latest", Kind: report.KindDeploy, Format: report.FormatHTML}
	fs := newFlags("report", env)
	fs.Func("kind", "the report: deploy, inventory, firmware or failed-dependencies (default deploy)", func(s string) error {
		k, err := report.ParseKind(s)
		opts.Kind = k
		return err
	})
	fs.Func("format", "html, json or csv (default html; with --output FILE.json or FILE.csv, that)", func(s string) error {
		f, err := report.ParseFormat(s)
		opts.Format = f
		return err
	})
	fs.StringVar(&opts.Output, "output", "", "write the report to FILE (atomically, mode 0644) instead of standard output")
	fs.StringVar(&opts.StateDir, "state-dir", "", "the state directory holding the run store (default "+runstate.DefaultDir()+")")
	run, err := parseRunArg(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q\n%s", fs.Arg(0), reportUsage)
	}
	if run != "" {
		opts.Run = run
	}
	if !visited(fs)["format"] {
		switch strings.ToLower(filepath.Ext(opts.Output)) {
		case ".json":
			opts.Format = report.FormatJSON
		case ".csv":
			opts.Format = report.FormatCSV
		}
	}
	return writeReport(ctx, env, opts)
}

// leadingArg splits off a first argument that is not a flag (the RUN of
// "fleetup report RUN --kind x"), so that flags may follow it.
// parseRunArg parses fs's flags with the run's id (RUN or latest) before
// or after them, and returns the id ("" when none was given).
func parseRunArg(fs *flag.FlagSet, args []string) (string, error) {
	run, rest := leadingArg(args)
	if err := parse(fs, rest); err != nil {
		return "", err
	}
	if run == "" && fs.NArg() > 0 {
		run, rest = fs.Arg(0), fs.Args()[1:]
		if err := parse(fs, rest); err != nil {
			return "", err
		}
	}
	return run, nil
}

func leadingArg(args []string) (string, []string) {
	if len(args) > 0 && args[0] != "" && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

func writeReport(ctx context.Context, env *Env, opts reportOptions) error {
	db, err := openRunStore(opts.StateDir)
	if err != nil {
		return err
	}
	defer db.Close()
	run, err := loadRun(ctx, db, opts.Run)
	if err != nil {
		return err
	}
	if opts.Output == "" {
		return report.Write(env.Stdout, run, opts.Kind, opts.Format)
	}
	if err := writeFileAtomic(opts.Output, 0o644, func(w io.Writer) error {
		return report.Write(w, run, opts.Kind, opts.Format)
	}); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, opts.Output)
	return nil
}

// runStore is what reports and logs read of the store.
type runStore interface {
	Run(ctx context.Context, id string) (*store.RunDetail, error)
	Events(ctx context.Context, runID string, afterSeq int64, limit int) ([]store.EventRecord, error)
	Close() error
}

// openRunStore opens the run store of stateDir (runstate.DefaultDir()
// when empty). A state directory without a store is a usage error saying
// that no run was recorded there: the store is never created for a read.
// Tests replace it.
var openRunStore = func(stateDir string) (runStore, error) {
	if stateDir == "" {
		stateDir = runstate.DefaultDir()
	}
	path := store.Path(stateDir)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("no runs recorded in %s", stateDir)
	}
	db, err := store.Open(path, store.KeyPath(stateDir))
	if err != nil {
		return nil, fmt.Errorf("open the run store: %w", err)
	}
	return db, nil
}

// loadRun reads run id ("latest": the newest) from db; one the store does
// not hold is a usage error naming it.
func loadRun(ctx context.Context, db runStore, id string) (*store.RunDetail, error) {
	run, err := db.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if id == "latest" {
			return nil, usagef("no run recorded yet")
		}
		return nil, usagef("run %q is not recorded", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", id, err)
	}
	return run, nil
}

// writeFileAtomic writes name through fill: a temporary file beside it,
// synced, given mode perm and renamed over name, so that name is either
// as it was or whole. The temporary file is removed on failure.
func writeFileAtomic(name string, perm os.FileMode, fill func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// reportFlags are a deploy's or an inventory's report options (HP SUM's
// /report, /inventory_report, /firmware_report and /logdir): which
// reports of the run to write once it has ended, where, and how.
type reportFlags struct {
	// Kinds are the reports asked for (--report, repeatable); none: no
	// report is written.
	Kinds []report.Kind
	// Dir is where they go (--report-dir); "": the current directory.
	Dir string
	// Formats are the formats of each (--report-format, repeatable);
	// none: HTML.
	Formats []report.Format
}

// register adds --report, --report-dir and --report-format to fs.
func (rf *reportFlags) register(fs *flag.FlagSet) {
	fs.Func("report", "once the run ended, write its report KIND: deploy, inventory, firmware or failed-dependencies (repeatable; HP SUM's /report, /inventory_report, /firmware_report)", func(s string) error {
		k, err := report.ParseKind(s)
		if err == nil && !slices.Contains(rf.Kinds, k) {
			rf.Kinds = append(rf.Kinds, k)
		}
		return err
	})
	fs.StringVar(&rf.Dir, "report-dir", "", "the directory --report writes to (default the current directory; HP SUM's /logdir)")
	fs.Func("report-format", "the format of each --report: html, json or csv (repeatable; default html)", func(s string) error {
		f, err := report.ParseFormat(s)
		if err == nil && !slices.Contains(rf.Formats, f) {
			rf.Formats = append(rf.Formats, f)
		}
		return err
	})
}

// write writes the reports rf asks for of run runID, read from the store
// in stateDir (runstate.DefaultDir() when empty), into rf.Dir (made when missing), each file
// named by report.FileName and written atomically (mode 0644). It returns
// the paths written, in the order of rf.Kinds then rf.Formats, even when
// a later one failed; printing them is the caller's. Without --report it
// does nothing. env is unused today: room for warnings.
func (rf *reportFlags) write(ctx context.Context, env *Env, stateDir, runID string) ([]string, error) {
	if len(rf.Kinds) == 0 {
		return nil, nil
	}
	db, err := openRunStore(stateDir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	run, err := loadRun(ctx, db, runID)
	if err != nil {
		return nil, err
	}
	dir := rf.Dir
	if dir == "" {
		dir = "."
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	formats := rf.Formats
	if len(formats) == 0 {
		formats = []report.Format{report.FormatHTML}
	}
	var paths []string
	for _, k := range rf.Kinds {
		for _, f := range formats {
			path := filepath.Join(dir, report.FileName(run.ID, k, f))
			if err := writeFileAtomic(path, 0o644, func(w io.Writer) error { return report.Write(w, run, k, f) }); err != nil {
				return paths, err
			}
			paths = append(paths, path)
		}
	}
	return paths, nil
}

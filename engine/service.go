package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fleetup/fleetup"
	"github.com/fleetup/fleetup/installer"
	"github.com/fleetup/fleetup/inventory"
	"github.com/fleetup/fleetup/proc"
	"github.com/fleetup/fleetup/wire"
)

// Fetcher gets a component's payload for the engine.
type Fetcher interface {
	// Fetch writes c's payload to w, calling progress with the running
	// byte count. It does not check the payload; the Service does.
	Fetch(ctx context.Context, c *fleetup.Component, w io.Writer, progress func(n int64)) error
}

// FileFetcher reads payloads from the manager's own disk (c.Path); the local
// node uses it.
type FileFetcher struct{}

// Fetch implements Fetcher.
func (FileFetcher) Fetch(ctx context.Context, c *fleetup.Component, w io.Writer, progress func(int64)) error {
	f, err := os.Open(c.Path)
	if err != nil {
		return fmt.Errorf("open payload: %w", err)
	}
	defer f.Close()
	_, err = io.Copy(w, &ctxReader{ctx: ctx, r: f, progress: progress})
	return err
}

type ctxReader struct {
	ctx      context.Context
	r        io.Reader
	n        int64
	progress func(int64)
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	if r.progress != nil && n > 0 {
		r.progress(r.n)
	}
	return n, err
}

// Service is the node-side work: inventory, probes and installs. The engine
// serves it over TLS; the manager uses it in-process for the local node.
// One Install runs at a time.
type Service struct {
	Node       string
	Runner     *proc.Runner
	Installers map[fleetup.Kind]installer.Installer
	Inventory  inventory.Options
	Fetcher    Fetcher
	// WorkDir holds payloads while they are installed; each is removed
	// right after its install. The service makes it (mode 0700) if it does
	// not exist; one that exists must be what the service would have made:
	// a directory, not a symbolic link, of the engine's own user, with no
	// access for group or others. Anything else is refused.
	WorkDir string
	// InstallTimeout bounds one component's install (30 minutes when 0).
	InstallTimeout time.Duration

	cancelled  atomic.Bool
	cancelOnce sync.Once
	cancelCh   chan struct{} // closed by Cancel: aborts a transfer, not an install
	installMu  sync.Mutex
	// stop, when closed, abandons even the component being installed.
	stopOnce sync.Once
	stop     chan struct{}
	initOnce sync.Once

	// afterVerify, when set, is called with the payload's path once it
	// has been verified, before the checks that it is still the file the
	// service wrote: tests use it to swap the file.
	afterVerify func(path string)
}

func (s *Service) init() {
	s.initOnce.Do(func() {
		s.stop = make(chan struct{})
		s.cancelCh = make(chan struct{})
	})
}

// Collect inventories the node.
func (s *Service) Collect(ctx context.Context) *fleetup.Inventory {
	inv := inventory.Collect(ctx, s.Runner, s.Inventory)
	if inv.Hostname == "" {
		inv.Hostname = s.Node
	}
	return inv
}

// Probe asks each component's installer about the node.
func (s *Service) Probe(ctx context.Context, inv *fleetup.Inventory, comps []fleetup.Component) []fleetup.Probe {
	out := make([]fleetup.Probe, len(comps))
	for i := range comps {
		c := &comps[i]
		inst, ok := s.Installers[c.Kind]
		switch {
		case !ok && c.Kind == fleetup.KindBMC:
			out[i] = fleetup.Probe{ComponentID: c.ID, Reason: "a BMC image: flashed through the server's BMC node (bmc://), not from its OS"}
			continue
		case !ok:
			out[i] = fleetup.Probe{ComponentID: c.ID, Reason: fmt.Sprintf("this engine cannot install %q components", c.Kind)}
			continue
		}
		p, err := inst.Probe(ctx, c, inv)
		p.ComponentID = c.ID
		if err != nil {
			p.Applicable = false
			p.Reason = "probe failed: " + err.Error()
		}
		out[i] = p
	}
	return out
}

// Cancel makes the running Install finish the component it is installing
// and skip the rest (HP SUM's abort).
func (s *Service) Cancel() {
	s.init()
	s.cancelled.Store(true)
	s.cancelOnce.Do(func() { close(s.cancelCh) })
}

// Stop abandons the running install at once, even mid-component; the engine
// calls it when its grace period at shutdown runs out.
func (s *Service) Stop() {
	s.Cancel()
	s.stopOnce.Do(func() { close(s.stop) })
}

// Install installs the items in order, sending progress to emit, and
// returns one result per item. Cancel (or ctx ending) skips the items not
// yet started; the item being installed is finished first.
func (s *Service) Install(ctx context.Context, req wire.InstallRequest, emit func(fleetup.Event)) []fleetup.ComponentResult {
	s.init()
	s.installMu.Lock()
	defer s.installMu.Unlock()
	results := make([]fleetup.ComponentResult, 0, len(req.Items))
	for _, it := range req.Items {
		c := it.Component
		res := fleetup.ComponentResult{ComponentID: c.ID, Version: c.Version, Action: it.Action, Installed: it.Installed}
		if s.cancelled.Load() || ctx.Err() != nil {
			res.Phase = fleetup.PhaseSkipped
			res.Reason = "cancelled before it started"
			emit(s.event(&c, fleetup.PhaseSkipped, res.Reason))
			results = append(results, res)
			continue
		}
		err := s.installOne(ctx, &c, req, emit, &res)
		if err != nil {
			res.Phase = fleetup.PhaseFailed
			res.Error = err.Error()
			emit(s.event(&c, fleetup.PhaseFailed, res.Error))
		} else {
			res.Phase = fleetup.PhaseInstalled
			msg := "installed " + c.Version
			if res.After != "" && res.After != c.Version {
				msg += " (node now reports " + res.After + ")"
			}
			emit(s.event(&c, fleetup.PhaseInstalled, msg))
		}
		results = append(results, res)
	}
	return results
}

func (s *Service) event(c *fleetup.Component, ph fleetup.Phase, msg string) fleetup.Event {
	return fleetup.Event{Time: time.Now(), Node: s.Node, Component: c.ID, Phase: ph, Message: msg}
}

func (s *Service) installOne(ctx context.Context, c *fleetup.Component, req wire.InstallRequest, emit func(fleetup.Event), res *fleetup.ComponentResult) error {
	inst, ok := s.Installers[c.Kind]
	if !ok {
		return fmt.Errorf("this engine cannot install %q components", c.Kind)
	}
	name := filepath.Base(c.File)
	if name == "." || name == "/" || strings.ContainsAny(name, "/\\") || len(c.SHA256) != 64 {
		return fmt.Errorf("component %s: bad file name %q or hash %q", c.ID, c.File, c.SHA256)
	}
	dir, err := s.workDir()
	if err != nil {
		return err
	}
	path := filepath.Join(s.WorkDir, c.SHA256[:16]+"-"+name)
	defer os.Remove(path)

	emit(fleetup.Event{Time: time.Now(), Node: s.Node, Component: c.ID, Phase: fleetup.PhaseDownload, Total: c.Size, Message: "fetching " + c.File})
	// A transfer is cheap to abandon: a cancel stops it at once.
	fctx, fcancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.cancelCh:
			fcancel()
		case <-fctx.Done():
		}
	}()
	written, err := s.fetch(fctx, c, path, downloadProgress(c, func(n int64) {
		emit(fleetup.Event{Time: time.Now(), Node: s.Node, Component: c.ID, Phase: fleetup.PhaseDownload, Bytes: n, Total: c.Size})
	}))
	fcancel()
	if err != nil {
		if written != nil {
			written.Close()
		}
		if s.cancelled.Load() {
			return fmt.Errorf("cancelled while fetching %s: %w", c.File, err)
		}
		return err
	}
	if s.afterVerify != nil {
		s.afterVerify(path)
	}
	// The installer opens the payload by its path: make sure that path
	// still leads to the very file that was written and verified. Until
	// then the written file stays open, and after it the file reopened
	// for the check, until the install is over: an open file's inode
	// cannot be freed and its number given to another file, which the
	// check would take for it.
	held, err := s.checkPayload(dir, path, written, c.Size)
	written.Close()
	if err != nil {
		return fmt.Errorf("payload %s refused before install: %w", c.File, err)
	}
	defer held.Close()
	emit(s.event(c, fleetup.PhaseVerify, "sha256 "+c.SHA256[:12]+"… matches"))

	emit(s.event(c, fleetup.PhaseInstall, "installing "+c.Version))
	timeout := s.InstallTimeout
	if timeout == 0 {
		timeout = 30 * time.Minute
	}
	// The component being installed is finished even if the run is
	// cancelled: stopping a firmware flash half-way is worse than waiting.
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ictx.Done():
		}
	}()
	out, err := inst.Install(ictx, c, path, installer.Options{Downgrade: req.Downgrade, Rewrite: req.Rewrite})
	if err != nil {
		return fmt.Errorf("install %s: %w", c.File, err)
	}
	res.RebootNeeded = out.RebootNeeded || c.Reboot
	if out.Version != "" {
		res.After = out.Version
		return nil
	}
	// Read the version back from the node: the proof the install took.
	inv := s.Collect(ictx)
	p, perr := inst.Probe(ictx, c, inv)
	if perr == nil {
		res.After = p.Installed
	}
	return nil
}

// workDir makes s.WorkDir (mode 0700) unless it exists, and returns what
// Lstat says of it once it has checked that it is private to this
// process's user: a directory (a symbolic link is never followed), owned
// by the effective uid, with no permission for group or others.
func (s *Service) workDir() (fs.FileInfo, error) {
	if s.WorkDir == "" {
		return nil, errors.New("no payload directory")
	}
	if err := os.Mkdir(s.WorkDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("payload directory: %w", err)
	}
	fi, err := os.Lstat(s.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("payload directory: %w", err)
	}
	if err := privateTo(fi, os.Geteuid(), true); err != nil {
		return nil, fmt.Errorf("payload directory %s refused: %w", s.WorkDir, err)
	}
	return fi, nil
}

// fetch gets c's payload into a new file at path (created exclusively,
// mode 0600, never through a symbolic link) and checks its size and
// SHA-256 as it arrives. It returns the file written, still open (the
// caller closes it, also after an error).
func (s *Service) fetch(ctx context.Context, c *fleetup.Component, path string, progress func(int64)) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|oNoFollow, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create payload file: %w", err)
	}
	h := sha256.New()
	cw := &countWriter{}
	err = s.Fetcher.Fetch(ctx, c, io.MultiWriter(f, h, cw), progress)
	if err != nil {
		return f, fmt.Errorf("fetch %s: %w", c.File, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if cw.n != c.Size || got != c.SHA256 {
		return f, &ChecksumError{File: c.File, WantSHA: c.SHA256, GotSHA: got, WantSize: c.Size, GotSize: cw.n}
	}
	return f, nil
}

// checkPayload makes sure, just before the installer gets path, that the
// payload directory is still dir and that path (opened without following
// a symbolic link) is still the file written (f, still open), whose hash
// was checked: the same inode, owned by this process's user, writable by
// nobody else, of the verified size. Whoever can replace or change it
// must not get their file installed. It returns path opened read-only;
// the caller closes it.
func (s *Service) checkPayload(dir fs.FileInfo, path string, f *os.File, size int64) (*os.File, error) {
	written, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("payload file: %w", err)
	}
	now, err := os.Lstat(s.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("payload directory: %w", err)
	}
	if !os.SameFile(now, dir) {
		return nil, fmt.Errorf("the payload directory %s was replaced", s.WorkDir)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|oNoFollow|oNonblock, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s was replaced by a symbolic link", path)
		}
		return nil, fmt.Errorf("reopen %s: %w", path, err)
	}
	fi, err := r.Stat()
	switch {
	case err != nil:
		err = fmt.Errorf("reopen %s: %w", path, err)
	case !os.SameFile(fi, written):
		err = fmt.Errorf("%s is no longer the file that was written and verified", path)
	default:
		if perr := privateTo(fi, os.Geteuid(), false); perr != nil {
			err = fmt.Errorf("%s: %w", path, perr)
		} else if fi.Size() != size {
			err = fmt.Errorf("%s changed after verification: %d bytes, verified %d", path, fi.Size(), size)
		}
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// ChecksumError is a payload that arrived different from the baseline's: it
// is never installed.
type ChecksumError struct {
	File              string
	WantSHA, GotSHA   string
	WantSize, GotSize int64
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("payload %s refused before install: sha256 %s (%d bytes), baseline says %s (%d bytes)",
		e.File, e.GotSHA, e.GotSize, e.WantSHA, e.WantSize)
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// Cleanup ends everything this service's installs started (processes that
// carry the run's marker) and removes its work directory.
func (s *Service) Cleanup(grace time.Duration) *wire.CleanupReport {
	rep := &wire.CleanupReport{Node: s.Node}
	if s.Runner != nil && s.Runner.Marker != "" {
		killed, err := killMarked(s.Runner.Marker, grace)
		rep.Processes = append(rep.Processes, killed...)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	if s.WorkDir != "" {
		if _, err := os.Stat(s.WorkDir); err == nil {
			if err := removeAll(s.WorkDir); err != nil {
				rep.Errors = append(rep.Errors, err.Error())
			} else {
				rep.Files = append(rep.Files, s.WorkDir)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	return rep
}

// progressEvery bounds how often a download's progress is told: at most
// every progressStep bytes and progressGap of time, and at its end.
const (
	progressStep = 256 << 10
	progressGap  = 250 * time.Millisecond
)

// downloadProgress calls tell with the bytes of c's payload fetched so
// far, throttled (progressStep, progressGap), and always once the whole
// payload is there.
func downloadProgress(c *fleetup.Component, tell func(int64)) func(int64) {
	var last int64
	var at time.Time
	return func(n int64) {
		if n != c.Size && (n-last < progressStep || time.Since(at) < progressGap) {
			return
		}
		last, at = n, time.Now()
		tell(n)
	}
}

// stopInstalls cancels the installs: the component being installed may
// finish within grace, then its processes are stopped; it returns once no
// install runs.
func (s *Service) stopInstalls(grace time.Duration) {
	s.Cancel()
	deadline := time.Now().Add(grace)
	for !s.installMu.TryLock() {
		if time.Now().After(deadline) {
			s.Stop()
			s.installMu.Lock()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.installMu.Unlock()
}
